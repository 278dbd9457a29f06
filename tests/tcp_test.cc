// Tests of racket/tcp (socket/tcp.h) on loopback only, IPv4 (127.0.0.1)
// and IPv6 (::1, skipped when it cannot be bound): tcp_listen on port 0 and
// tcp_addresses of a listener; connect/accept round trips both ways;
// "localhost" and a listener without a host name; tcp_addresses of the two
// ends agreeing; connecting from a given local address and port; the
// listener as an event (parked and polled) and tcp_accept_ready; a
// tcp_accept_evt that loses a choice accepting nothing, and its ports going
// to the custodian current when it was made; half-close
// and tcp_abandon_port; tcp_close twice, operations on a closed listener
// (exn_fail_contract with Racket 8.7's message), closing a listener (also
// from another OS thread) under a thread parked in tcp_accept, and under a
// client not yet accepted; a negative backlog's message; refused
// connections, unknown hosts, a port in use and SO_REUSEADDR over
// TIME_WAIT; custodian shutdown of listeners and connections, and refusal
// under a shut-down custodian (an accept raises before accept(2), leaving
// the connection for another accepter); an 8 MiB transfer to a slow reader; 200
// concurrent echo connections on green threads; a client and a server on
// another OS thread. The fixture checks that no descriptor leaks.
//
// No test sleeps to wait for another thread: waits are sync_within / await,
// and every call that could park (connect, accept) runs on a green thread
// whose death is awaited with a bound, so a bug fails instead of hanging.
// The few bounded sync_timeouts on an event that must NOT fire (no EOF
// after tcp_abandon_port) only weaken a check when the machine is slow. The
// one random element, sync's choice among ready events, is retried until
// the outcome under test happens (failing only with probability 2^-100).
#include "socket/tcp.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "evt/exn.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ports/fd_port.h"
#include "ports/pipe.h"
#include "ports/port.h"
#include "tests/testing/fd_leak_check.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/sync_within.h"

namespace {

using namespace std::string_literals;

using ::rkt::test::arrives;
using ::rkt::test::await;
using ::rkt::test::conn;
using ::rkt::test::expect_nothing_arrives;
using ::rkt::test::on_green_thread;
using ::rkt::test::pattern;
using ::rkt::test::raised;
using ::rkt::test::scoped_thread;
using ::rkt::test::spawn_parked;
using ::rkt::test::start_os_thread;
using ::rkt::test::sync_within;
using ::rkt::test::write_to_slow_reader;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using port_pair = std::pair<rkt::input_port, rkt::output_port>;

// How long a check waits for bytes (or EOF) that must not come (see
// expect_nothing_arrives).
constexpr absl::Duration kQuiet = absl::Milliseconds(30);

conn connect_to(const std::string& host, uint16_t port) {
  return conn(on_green_thread([&] { return rkt::tcp_connect(host, port); }));
}

conn accept_from(const rkt::tcp_listener& l) {
  return conn(on_green_thread([&] { return rkt::tcp_accept(l); }));
}

uint16_t port_of(const rkt::tcp_listener& l) { return rkt::tcp_addresses(l).local_port; }

void send(const rkt::output_port& out, const std::string& s) {
  out.write_bytes(s);
  out.flush();
}

// Waits, bounded, for EOF to be next in `in`; fails if bytes come first.
void expect_eof(const rkt::input_port& in) {
  std::string got = arrives(in, 1);
  EXPECT_EQ(got, "<EOF>") << "bytes came before EOF";
}

// Whether a TCP socket can be bound to ::1 here.
bool ipv6_loopback_available() {
  static const bool ok = [] {
    const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    const bool bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return bound;
  }();
  return ok;
}

// The fixture lets the scheduler run before the descriptor check, in case a
// close was handed to it from another OS thread.
class TcpTest : public rkt::test::clean_test {
 protected:
  void TearDown() override {
    rkt::yield();
    rkt::yield();
    clean_test::TearDown();
  }
};

struct family {
  const char* name;
  const char* host;      // the loopback address
  const char* any_host;  // what a listener reports as its remote host
  bool ipv6;
};

const family kIPv4{"IPv4", "127.0.0.1", "0.0.0.0", false};
const family kIPv6{"IPv6", "::1", "::", true};

class TcpFamilyTest : public TcpTest, public ::testing::WithParamInterface<family> {
 protected:
  void SetUp() override {
    TcpTest::SetUp();
    if (GetParam().ipv6 && !ipv6_loopback_available()) {
      GTEST_SKIP() << "::1 cannot be bound here";
    }
  }
  std::string host() const { return GetParam().host; }
  rkt::tcp_listener listen(int backlog = 4) {
    return rkt::tcp_listen(0, backlog, false, host());
  }
};

INSTANTIATE_TEST_SUITE_P(Loopback, TcpFamilyTest, ::testing::Values(kIPv4, kIPv6),
                         [](const ::testing::TestParamInfo<family>& i) {
                           return std::string(i.param.name);
                         });

// --- Listening and addresses ---------------------------------------------------

TEST_P(TcpFamilyTest, ListeningOnPortZeroPicksAPortThatTcpAddressesReports) {
  rkt::tcp_listener l = listen();
  EXPECT_TRUE(rkt::tcp_listener_p(l));
  EXPECT_FALSE(rkt::tcp_listener_p(42));
  rkt::tcp_address_info a = rkt::tcp_addresses(l);
  EXPECT_EQ(a.local_host, host());
  EXPECT_NE(a.local_port, 0);
  EXPECT_EQ(a.remote_host, GetParam().any_host);
  EXPECT_EQ(a.remote_port, 0);
  rkt::tcp_listener copy = l;
  EXPECT_TRUE(copy == l);
  EXPECT_FALSE(rkt::tcp_listen(0, 4, false, host()) == l);
  rkt::tcp_close(l);
}

TEST_P(TcpFamilyTest, ConnectAndAcceptCarryBytesBothWays) {
  rkt::tcp_listener l = listen();
  conn client = connect_to(host(), port_of(l));
  conn server = accept_from(l);
  send(client.out, "hello from the client\n");
  EXPECT_EQ(sync_within(rkt::read_line_evt(server.in)), "hello from the client"s);
  send(server.out, "hello from the server\n");
  EXPECT_EQ(sync_within(rkt::read_line_evt(client.in)), "hello from the server"s);
  // Several exchanges on the same connection, and ports start block-buffered.
  EXPECT_EQ(client.out.get_buffer_mode(), rkt::buffer_mode::block);
  EXPECT_EQ(server.out.get_buffer_mode(), rkt::buffer_mode::block);
  for (int i = 0; i < 10; ++i) {
    const std::string m = "round " + std::to_string(i);
    send(client.out, m);
    EXPECT_EQ(arrives(server.in, m.size()), m);
    send(server.out, m + m);
    EXPECT_EQ(arrives(client.in, 2 * m.size()), m + m);
  }
  client.out.close();
  expect_eof(server.in);
  server.out.close();
  expect_eof(client.in);
  rkt::tcp_close(l);
}

TEST_P(TcpFamilyTest, TheAddressesOfTheTwoEndsAgree) {
  rkt::tcp_listener l = listen();
  const uint16_t port = port_of(l);
  conn client = connect_to(host(), port);
  conn server = accept_from(l);
  for (const rkt::tcp_address_info& c :
       {rkt::tcp_addresses(client.in), rkt::tcp_addresses(client.out)}) {
    for (const rkt::tcp_address_info& s :
         {rkt::tcp_addresses(server.in), rkt::tcp_addresses(server.out)}) {
      EXPECT_EQ(c.local_host, host());
      EXPECT_EQ(s.local_host, host());
      EXPECT_EQ(s.local_port, port) << "the accepted end is on the listener's port";
      EXPECT_EQ(c.remote_host, s.local_host);
      EXPECT_EQ(c.remote_port, s.local_port);
      EXPECT_EQ(s.remote_host, c.local_host);
      EXPECT_EQ(s.remote_port, c.local_port);
      EXPECT_NE(c.local_port, 0);
      EXPECT_NE(c.local_port, port);
    }
  }
}

// --- The listener as an event, tcp_accept_ready, tcp_accept_evt -------------------

TEST_P(TcpFamilyTest, TheListenerIsAnEventReadyOnceAClientConnected) {
  rkt::tcp_listener l = listen();
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), l).has_value())
      << "nothing is pending";
  EXPECT_FALSE(rkt::tcp_accept_ready(l));
  conn client = connect_to(host(), port_of(l));
  std::optional<rkt::tcp_listener> r = rkt::sync_timeout(absl::ZeroDuration(), l);
  ASSERT_TRUE(r.has_value()) << "a connection waits";
  EXPECT_TRUE(*r == l) << "the result is the listener";
  EXPECT_TRUE(rkt::tcp_accept_ready(l));
  EXPECT_TRUE(sync_within(l) == l);
  EXPECT_TRUE(rkt::tcp_accept_ready(l)) << "syncing on the listener accepts nothing";
  conn server = accept_from(l);
  EXPECT_FALSE(rkt::tcp_accept_ready(l)) << "the one connection was accepted";
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), l).has_value());
  send(client.out, "x");
  EXPECT_EQ(arrives(server.in, 1), "x"s);
}

TEST_P(TcpFamilyTest, AThreadParkedOnTheListenerWakesWhenAClientConnects) {
  rkt::tcp_listener l = listen();
  std::optional<rkt::tcp_listener> got;
  rkt::semaphore ready;
  rkt::thread waiter = spawn_parked(ready, [&] { got = sync_within(l); });
  EXPECT_FALSE(got.has_value());
  conn client = connect_to(host(), port_of(l));
  await(waiter);
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(*got == l);
  EXPECT_TRUE(rkt::tcp_accept_ready(l)) << "the listener event consumes nothing";
  conn server = accept_from(l);
  EXPECT_FALSE(rkt::tcp_accept_ready(l));
}

TEST_P(TcpFamilyTest, AcceptReadyCountsEachWaitingConnection) {
  rkt::tcp_listener l = listen(8);
  EXPECT_FALSE(rkt::tcp_accept_ready(l));
  std::vector<conn> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(connect_to(host(), port_of(l)));
  std::vector<conn> servers;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(rkt::tcp_accept_ready(l)) << i;
    servers.push_back(accept_from(l));
  }
  EXPECT_FALSE(rkt::tcp_accept_ready(l));
  // Each accepted connection is a different client, in some order.
  for (int i = 0; i < 3; ++i) send(clients[i].out, std::to_string(i));
  std::string seen;
  for (const conn& s : servers) seen += arrives(s.in, 1);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, "012"s);
}

TEST_P(TcpFamilyTest, AcceptEvtAcceptsWhenSynced) {
  rkt::tcp_listener l = listen();
  rkt::evt<port_pair> e = rkt::tcp_accept_evt(l);
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), e).has_value());
  conn client = connect_to(host(), port_of(l));
  conn server(sync_within(e));
  EXPECT_FALSE(rkt::tcp_accept_ready(l));
  send(client.out, "via evt");
  EXPECT_EQ(arrives(server.in, 7), "via evt"s);
  // The same event, parked this time: it accepts the next client.
  std::optional<conn> second;
  rkt::semaphore ready;
  rkt::thread t = spawn_parked(ready, [&] { second.emplace(sync_within(e)); });
  conn client2 = connect_to(host(), port_of(l));
  await(t);
  ASSERT_TRUE(second.has_value());
  send(client2.out, "second");
  EXPECT_EQ(arrives(second->in, 6), "second"s);
}

TEST_P(TcpFamilyTest, AnAcceptEvtThatLosesAParkedChoiceAcceptsNothing) {
  rkt::tcp_listener l = listen();
  rkt::semaphore other;
  rkt::semaphore ready;
  std::optional<int> winner;
  std::optional<conn> accepted;
  rkt::thread t = spawn_parked(ready, [&] {
    winner = sync_within(rkt::choice_evt(rkt::wrap_evt(rkt::tcp_accept_evt(l),
                                                       [&](port_pair p) {
                                                         accepted.emplace(std::move(p));
                                                         return 1;
                                                       }),
                                         rkt::wrap_evt(other, [] { return 2; })));
  });
  other.post();
  await(t);
  EXPECT_EQ(winner, 2);
  EXPECT_FALSE(accepted.has_value());
  // The event was armed and disarmed: a later client waits for tcp_accept.
  conn client = connect_to(host(), port_of(l));
  EXPECT_TRUE(rkt::tcp_accept_ready(l));
  send(client.out, "later");
  conn server = accept_from(l);
  EXPECT_EQ(arrives(server.in, 5), "later"s);
}

TEST_P(TcpFamilyTest, AReadyAcceptEvtThatLosesTheChoiceLeavesTheConnectionToTcpAccept) {
  rkt::tcp_listener l = listen();
  // sync picks among ready events at random: repeat until the always-ready
  // alternative wins once (each try loses with probability 1/2).
  bool lost = false;
  int accepted_by_evt = 0;
  for (int i = 0; i < 100 && !lost; ++i) {
    conn client = connect_to(host(), port_of(l));
    ASSERT_TRUE(rkt::tcp_accept_ready(l));
    std::optional<conn> got;
    const bool evt_won = sync_within(
        rkt::choice_evt(rkt::wrap_evt(rkt::tcp_accept_evt(l),
                                      [&](port_pair p) {
                                        got.emplace(std::move(p));
                                        return true;
                                      }),
                        rkt::wrap_evt(rkt::always_evt(), [] { return false; })));
    if (evt_won) {
      ASSERT_TRUE(got.has_value());
      ++accepted_by_evt;
      EXPECT_FALSE(rkt::tcp_accept_ready(l));
      send(client.out, "e");
      EXPECT_EQ(arrives(got->in, 1), "e"s);
      continue;
    }
    lost = true;
    EXPECT_FALSE(got.has_value());
    EXPECT_TRUE(rkt::tcp_accept_ready(l)) << "the losing accept evt took the connection";
    const std::string marker = "marker " + std::to_string(i);
    send(client.out, marker);
    conn server = accept_from(l);
    EXPECT_EQ(arrives(server.in, marker.size()), marker)
        << "tcp_accept got the connection the losing event left";
    EXPECT_FALSE(rkt::tcp_accept_ready(l));
  }
  EXPECT_TRUE(lost) << "the always-ready event never won in 100 tries";
}

// --- Half-close and tcp_abandon_port ---------------------------------------------

TEST_P(TcpFamilyTest, ClosingOurOutputGivesThePeerEofWhileThePeerCanStillReply) {
  rkt::tcp_listener l = listen();
  conn client = connect_to(host(), port_of(l));
  conn server = accept_from(l);
  send(client.out, "request");
  client.out.close();
  EXPECT_TRUE(client.out.closed());
  EXPECT_FALSE(client.in.closed());
  EXPECT_EQ(arrives(server.in, 7), "request"s);
  expect_eof(server.in);
  send(server.out, "reply after your EOF");
  EXPECT_EQ(arrives(client.in, 20), "reply after your EOF"s);
  server.out.close();
  expect_eof(client.in);
}

TEST_P(TcpFamilyTest, AbandoningTheOutputSendsNoEofUntilTheInputClosesToo) {
  rkt::tcp_listener l = listen();
  conn client = connect_to(host(), port_of(l));
  conn server = accept_from(l);
  client.out.write_bytes("last words");  // buffered: abandoning flushes them
  rkt::tcp_abandon_port(client.out);
  EXPECT_TRUE(client.out.closed());
  EXPECT_FALSE(client.in.closed());
  auto w = raised<rkt::exn_fail>([&] { client.out.write_bytes("more"); });
  ASSERT_TRUE(w);
  EXPECT_THAT(w->what(), HasSubstr("output port is closed"));
  EXPECT_EQ(arrives(server.in, 10), "last words"s);
  expect_nothing_arrives(server.in, kQuiet);  // no EOF: the input port is open
  // The connection still works toward the client.
  send(server.out, "still");
  EXPECT_EQ(arrives(client.in, 5), "still"s);
  expect_nothing_arrives(server.in, kQuiet);
  client.in.close();
  expect_eof(server.in);
}

TEST_P(TcpFamilyTest, AbandoningTheInputIsClosingIt) {
  rkt::tcp_listener l = listen();
  conn client = connect_to(host(), port_of(l));
  conn server = accept_from(l);
  rkt::tcp_abandon_port(client.in);
  EXPECT_TRUE(client.in.closed());
  auto r = raised<rkt::exn_fail>([&] { client.in.read_byte(); });
  ASSERT_TRUE(r);
  EXPECT_THAT(r->what(), HasSubstr("input port is closed"));
  send(client.out, "out");
  EXPECT_EQ(arrives(server.in, 3), "out"s);
  client.out.close();
  expect_eof(server.in);
}

TEST_P(TcpFamilyTest, ConnectFromAGivenLocalAddressAndPort) {
  rkt::tcp_listener l = listen();
  uint16_t local_port;
  {
    // A port nobody uses now: one the system picked for a listener, closed.
    rkt::tcp_listener probe = listen();
    local_port = port_of(probe);
    rkt::tcp_close(probe);
  }
  conn client(on_green_thread(
      [&] { return rkt::tcp_connect(host(), port_of(l), host(), local_port); }));
  conn server = accept_from(l);
  EXPECT_EQ(rkt::tcp_addresses(client.in).local_host, host());
  EXPECT_EQ(rkt::tcp_addresses(client.in).local_port, local_port);
  EXPECT_EQ(rkt::tcp_addresses(server.in).remote_port, local_port);
  send(client.out, "from");
  EXPECT_EQ(arrives(server.in, 4), "from"s);
}

// --- Errors ----------------------------------------------------------------------

TEST_P(TcpFamilyTest, ConnectingWhereNobodyListensRaisesConnectionRefused) {
  uint16_t port;
  {
    rkt::tcp_listener l = listen();
    port = port_of(l);
    rkt::tcp_close(l);
  }
  auto e = raised<rkt::exn_fail_network>([&] { connect_to(host(), port); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), ECONNREFUSED) << e->what();
  EXPECT_THAT(e->what(), StartsWith("tcp_connect: connection failed"));
  EXPECT_THAT(e->what(), HasSubstr("hostname: " + host()));
  EXPECT_THAT(e->what(), HasSubstr("port number: " + std::to_string(port)));
}

TEST_P(TcpFamilyTest, ListeningOnAPortInUseRaisesEaddrinuse) {
  rkt::tcp_listener l = listen();
  const uint16_t port = port_of(l);
  auto e = raised<rkt::exn_fail_network>([&] { rkt::tcp_listen(port, 4, false, host()); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), EADDRINUSE) << e->what();
  EXPECT_THAT(e->what(), StartsWith("tcp_listen: "));
  EXPECT_THAT(e->what(), HasSubstr(std::to_string(port)));
  // The first listener is unaffected.
  conn client = connect_to(host(), port);
  conn server = accept_from(l);
  send(client.out, "ok");
  EXPECT_EQ(arrives(server.in, 2), "ok"s);
}

TEST_P(TcpFamilyTest, ReuseRelistensOnAPortInTimeWaitAndWithoutReuseItIsInUse) {
  uint16_t port;
  {
    rkt::tcp_listener l = rkt::tcp_listen(0, 4, true, host());
    port = port_of(l);
    conn client = connect_to(host(), port);
    conn server = accept_from(l);
    rkt::tcp_close(l);
    // The server's end closes first, so its address stays in TIME_WAIT.
    server.out.close();
    server.in.close();
    expect_eof(client.in);
    client.out.close();
    client.in.close();
  }
  auto e = raised<rkt::exn_fail_network>([&] { rkt::tcp_listen(port, 4, false, host()); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), EADDRINUSE) << e->what();
  rkt::tcp_listener again = rkt::tcp_listen(port, 4, true, host());
  EXPECT_EQ(port_of(again), port);
  conn client = connect_to(host(), port);
  conn server = accept_from(again);
  send(client.out, "again");
  EXPECT_EQ(arrives(server.in, 5), "again"s);
}

// --- Large transfers and many connections -----------------------------------------

TEST_P(TcpFamilyTest, AnEightMebibyteTransferToASlowReaderArrivesIntact) {
  rkt::tcp_listener l = listen();
  conn client = connect_to(host(), port_of(l));
  conn server = accept_from(l);
  const std::string data = pattern(8u << 20);
  const rkt::test::slow_transfer t = write_to_slow_reader(server.out, client.in, data);
  EXPECT_EQ(t.written, data.size());
  EXPECT_GE(t.reads, data.size() / rkt::test::kSlowReadSize);
  ASSERT_EQ(t.got.size(), data.size());
  EXPECT_TRUE(t.got == data) << "the bytes arrived altered or out of order";
}

TEST_P(TcpFamilyTest, TwoHundredConcurrentEchoConnections) {
  constexpr int kClients = 200;
  constexpr int kRounds = 3;
  rkt::tcp_listener l = listen(kClients + 16);
  const uint16_t port = port_of(l);
  std::vector<std::unique_ptr<scoped_thread>> servers;
  std::atomic<int> served{0};
  scoped_thread acceptor([&] {
    for (int i = 0; i < kClients; ++i) {
      conn s(rkt::tcp_accept(l));
      servers.push_back(std::make_unique<scoped_thread>([s, &served] {
        char buf[4096];
        for (;;) {
          rkt::or_eof<std::size_t> n = s.in.read_bytes_avail(buf);
          if (!n) break;
          s.out.write_bytes(std::string_view(buf, *n));
          s.out.flush();
        }
        s.out.close();
        s.in.close();
        served.fetch_add(1);
      }));
    }
  });
  std::atomic<int> verified{0};
  std::vector<std::unique_ptr<scoped_thread>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<scoped_thread>([&, i] {
      conn c(rkt::tcp_connect(host(), port));
      for (int k = 0; k < kRounds; ++k) {
        const std::string m = "client " + std::to_string(i) + " round " + std::to_string(k) +
                              ":" + pattern(500 + 7 * i, static_cast<uint32_t>(i * 31 + k + 1));
        send(c.out, m);
        rkt::or_eof<std::string> back = c.in.read_bytes(m.size());
        if (back == m) {
          verified.fetch_add(1);
        } else {
          ADD_FAILURE() << "client " << i << " round " << k << " got "
                        << (back ? std::to_string(back->size()) + " other bytes" : "EOF"s);
        }
      }
      c.out.close();
      EXPECT_EQ(c.in.read_byte(), rkt::eof) << "client " << i;
      c.in.close();
    }));
  }
  for (const auto& c : clients) c->join();
  acceptor.join();
  for (const auto& s : servers) s->join();
  EXPECT_EQ(verified.load(), kClients * kRounds);
  EXPECT_EQ(served.load(), kClients);
  EXPECT_FALSE(rkt::tcp_accept_ready(l));
}

// --- Host names ---------------------------------------------------------------------

TEST_F(TcpTest, LocalhostConnectsToALocalhostListener) {
  rkt::tcp_listener l = rkt::tcp_listen(0, 4, false, "localhost");
  const rkt::tcp_address_info la = rkt::tcp_addresses(l);
  EXPECT_THAT(la.local_host, AnyOf("127.0.0.1", "::1"));
  conn client = connect_to("localhost", la.local_port);
  conn server = accept_from(l);
  EXPECT_EQ(rkt::tcp_addresses(server.in).remote_host, la.local_host);
  EXPECT_EQ(rkt::tcp_addresses(client.out).remote_host, la.local_host);
  send(client.out, "hi");
  EXPECT_EQ(arrives(server.in, 2), "hi"s);
  send(server.out, "ho");
  EXPECT_EQ(arrives(client.in, 2), "ho"s);
}

TEST_F(TcpTest, AListenerWithoutAHostNameAcceptsOnEveryLoopbackAddress) {
  rkt::tcp_listener l = rkt::tcp_listen(0);
  const uint16_t port = port_of(l);
  ASSERT_NE(port, 0);
  std::vector<std::string> hosts = {"127.0.0.1", "localhost"};
  if (ipv6_loopback_available()) hosts.push_back("::1");
  for (const std::string& h : hosts) {
    conn client = connect_to(h, port);
    conn server = accept_from(l);
    EXPECT_EQ(rkt::tcp_addresses(server.in).remote_port, rkt::tcp_addresses(client.in).local_port)
        << h;
    send(client.out, h);
    EXPECT_EQ(arrives(server.in, h.size()), h);
  }
}

TEST_F(TcpTest, AnUnresolvableHostRaisesHostNotFound) {
  auto e = raised<rkt::exn_fail_network>(
      [&] { on_green_thread([] { return rkt::tcp_connect("no-such-host.invalid", 80); }); });
  ASSERT_TRUE(e);
  EXPECT_THAT(e->what(), StartsWith("tcp_connect: host not found"));
  EXPECT_THAT(e->what(), HasSubstr("no-such-host.invalid"));
  EXPECT_NE(e->error_number(), 0);
  auto el = raised<rkt::exn_fail_network>(
      [&] { rkt::tcp_listen(0, 4, false, "no-such-host.invalid"); });
  ASSERT_TRUE(el);
  EXPECT_THAT(el->what(), StartsWith("tcp_listen: host not found"));
}

// --- Closed listeners ----------------------------------------------------------------

// Racket 8.7 (run): "tcp-accept: listener is closed\n  listener:
// #<tcp-listener>", an exn:fail:contract, for tcp-close, tcp-accept,
// tcp-accept-evt, tcp-accept-ready? and tcp-addresses alike.
std::string closed_message(const std::string& who) {
  return who + ": listener is closed\n  listener: #<tcp-listener>";
}

TEST_F(TcpTest, ClosingAListenerTwiceRaisesAContractError) {
  rkt::tcp_listener l = rkt::tcp_listen(0, 4, false, "127.0.0.1");
  rkt::tcp_close(l);
  auto e = raised<rkt::exn_fail_contract>([&] { rkt::tcp_close(l); });
  ASSERT_TRUE(e);
  EXPECT_EQ(std::string(e->what()), closed_message("tcp_close"));
}

TEST_F(TcpTest, OperationsOnAClosedListenerRaiseListenerIsClosed) {
  rkt::tcp_listener l = rkt::tcp_listen(0, 4, false, "127.0.0.1");
  rkt::evt<port_pair> made_before = rkt::tcp_accept_evt(l);
  rkt::tcp_close(l);
  auto a = raised<rkt::exn_fail_contract>([&] { accept_from(l); });
  ASSERT_TRUE(a);
  EXPECT_EQ(std::string(a->what()), closed_message("tcp_accept"));
  auto r = raised<rkt::exn_fail_contract>([&] { rkt::tcp_accept_ready(l); });
  ASSERT_TRUE(r);
  EXPECT_EQ(std::string(r->what()), closed_message("tcp_accept_ready"));
  auto ad = raised<rkt::exn_fail_contract>([&] { rkt::tcp_addresses(l); });
  ASSERT_TRUE(ad);
  EXPECT_EQ(std::string(ad->what()), closed_message("tcp_addresses"));
  auto ev = raised<rkt::exn_fail_contract>([&] { sync_within(made_before); });
  ASSERT_TRUE(ev);
  EXPECT_EQ(std::string(ev->what()), closed_message("tcp_accept_evt"));
  auto ev2 = raised<rkt::exn_fail_contract>([&] { sync_within(rkt::tcp_accept_evt(l)); });
  ASSERT_TRUE(ev2);
  EXPECT_EQ(std::string(ev2->what()), closed_message("tcp_accept_evt"));
  // The listener event is ready once closed (tcp_accept would not block).
  std::optional<rkt::tcp_listener> ready = rkt::sync_timeout(absl::ZeroDuration(), l);
  ASSERT_TRUE(ready.has_value());
  EXPECT_TRUE(*ready == l);
}

TEST_F(TcpTest, ClosingAListenerWakesAThreadParkedInAccept) {
  rkt::tcp_listener l = rkt::tcp_listen(0, 4, false, "127.0.0.1");
  std::string error;
  rkt::semaphore ready;
  rkt::thread t = spawn_parked(ready, [&] {
    try {
      rkt::tcp_accept(l);
      ADD_FAILURE() << "tcp_accept returned";
    } catch (const rkt::exn_fail_contract& e) {
      error = e.what();
    }
  });
  rkt::tcp_close(l);
  await(t);
  EXPECT_EQ(error, closed_message("tcp_accept"));
}

TEST_F(TcpTest, ClosingAListenerLeavesAcceptedConnectionsWorking) {
  rkt::tcp_listener l = rkt::tcp_listen(0, 4, false, "127.0.0.1");
  conn client = connect_to("127.0.0.1", port_of(l));
  conn server = accept_from(l);
  rkt::tcp_close(l);
  send(client.out, "after close");
  EXPECT_EQ(arrives(server.in, 11), "after close"s);
  send(server.out, "yes");
  EXPECT_EQ(arrives(client.in, 3), "yes"s);
}

TEST_F(TcpTest, ClosingAListenerEndsTheConnectionsItHadNotAccepted) {
  rkt::tcp_listener l = rkt::tcp_listen(0, 4, false, "127.0.0.1");
  conn client = connect_to("127.0.0.1", port_of(l));
  ASSERT_TRUE(rkt::tcp_accept_ready(l));
  rkt::tcp_close(l);
  // Racket: "All unaccepted clients receive an end-of-file from the server";
  // Linux resets them, which a read reports as ECONNRESET. Either way the
  // client's read ends instead of waiting for a server that is gone.
  try {
    std::string got = arrives(client.in, 1);
    EXPECT_EQ(got, "<EOF>");
  } catch (const rkt::exn_fail_network& e) {
    EXPECT_EQ(e.error_number(), ECONNRESET) << e.what();
  }
}

TEST_F(TcpTest, ClosingAListenerFromAnotherOsThreadWakesAThreadParkedInAccept) {
  rkt::tcp_listener l = rkt::tcp_listen(0, 4, false, "127.0.0.1");
  const uint16_t port = port_of(l);
  std::string error;
  rkt::semaphore ready;
  rkt::thread t = spawn_parked(ready, [&] {
    try {
      rkt::tcp_accept(l);
      ADD_FAILURE() << "tcp_accept returned";
    } catch (const rkt::exn_fail_contract& e) {
      error = e.what();
    }
  });
  std::jthread os = start_os_thread([l] { rkt::tcp_close(l); });
  await(t);
  os.join();
  EXPECT_EQ(error, closed_message("tcp_accept"));
  // The close handed to this OS thread has run: the port refuses clients.
  rkt::yield();
  auto refused = raised<rkt::exn_fail_network>([&] { connect_to("127.0.0.1", port); });
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->error_number(), ECONNREFUSED) << refused->what();
}

TEST_F(TcpTest, ANegativeBacklogIsAContractError) {
  auto e = raised<rkt::exn_fail_contract>([] { rkt::tcp_listen(0, -1, false, "127.0.0.1"); });
  ASSERT_TRUE(e);
  // Racket 8.7's (tcp-listen 0 -1), word for word (racket/tcp's own check,
  // unlike racket/unix-socket's natural? contract).
  EXPECT_EQ(std::string(e->what()),
            "tcp_listen: contract violation\n  expected: exact-nonnegative-integer?\n  given: -1");
}

// --- tcp_addresses on other ports -----------------------------------------------------

TEST_F(TcpTest, AddressesOfNonTcpPortsAndClosedPortsRaise) {
  {
    auto [in, out] = rkt::make_pipe();
    EXPECT_TRUE(raised<rkt::exn_fail_contract>([&] { rkt::tcp_addresses(in); }));
    EXPECT_TRUE(raised<rkt::exn_fail_contract>([&] { rkt::tcp_addresses(out); }));
  }
  {
    int s[2] = {-1, -1};
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0) << std::strerror(errno);
    ::close(s[1]);
    auto [in, out] = rkt::make_fd_ports(s[0], "socketpair");
    EXPECT_TRUE(raised<rkt::exn_fail_contract>([&] { rkt::tcp_addresses(in); }));
  }
  rkt::tcp_listener l = rkt::tcp_listen(0, 4, false, "127.0.0.1");
  conn client = connect_to("127.0.0.1", port_of(l));
  conn server = accept_from(l);
  client.in.close();
  EXPECT_TRUE(raised<rkt::exn_fail_network>([&] { rkt::tcp_addresses(client.in); }));
  EXPECT_EQ(rkt::tcp_addresses(client.out).remote_port, port_of(l)) << "the output is open";
  client.out.close();
  EXPECT_TRUE(raised<rkt::exn_fail_network>([&] { rkt::tcp_addresses(client.out); }));
}

// --- Custodians -----------------------------------------------------------------------

TEST_F(TcpTest, AcceptEvtPortsGoToTheCustodianCurrentWhenItWasMade) {
  rkt::tcp_listener l = rkt::tcp_listen(0, 4, false, "127.0.0.1");
  rkt::custodian maker = rkt::make_custodian();
  rkt::custodian syncer = rkt::make_custodian();
  std::optional<rkt::evt<port_pair>> e;
  {
    rkt::custodian_scope in(maker);
    e.emplace(rkt::tcp_accept_evt(l));
  }
  EXPECT_TRUE(maker.managed_list().empty()) << "making the event accepts nothing";
  conn client = connect_to("127.0.0.1", port_of(l));
  std::optional<conn> server;
  {
    rkt::custodian_scope in(syncer);
    server.emplace(sync_within(*e));
  }
  EXPECT_FALSE(maker.managed_list().empty());
  EXPECT_TRUE(syncer.managed_list().empty());
  syncer.shutdown_all();
  EXPECT_FALSE(server->in.closed()) << "the custodian current at the sync took the ports";
  EXPECT_FALSE(server->out.closed());
  send(server->out, "alive");
  EXPECT_EQ(arrives(client.in, 5), "alive"s);
  maker.shutdown_all();
  EXPECT_TRUE(server->in.closed());
  EXPECT_TRUE(server->out.closed());
  expect_eof(client.in);
}

TEST_F(TcpTest, CustodianShutdownClosesListenersAndConnections) {
  rkt::custodian c = rkt::make_custodian();
  std::optional<rkt::tcp_listener> inside_l;
  {
    rkt::custodian_scope in(c);
    inside_l.emplace(rkt::tcp_listen(0, 4, false, "127.0.0.1"));
  }
  const uint16_t inside_port = port_of(*inside_l);
  rkt::tcp_listener outside_l = rkt::tcp_listen(0, 4, false, "127.0.0.1");
  // A connection accepted inside, whose client is outside.
  conn outside_client = connect_to("127.0.0.1", inside_port);
  std::optional<conn> inside_server;
  // A connection made inside, accepted outside.
  std::optional<conn> inside_client;
  {
    rkt::custodian_scope in(c);
    inside_server.emplace(accept_from(*inside_l));
    inside_client.emplace(connect_to("127.0.0.1", port_of(outside_l)));
  }
  conn outside_server = accept_from(outside_l);
  bool saw_listener = false;
  for (const auto& r : c.managed_list()) {
    if (r->describe().find("tcp listener") != std::string::npos) saw_listener = true;
  }
  EXPECT_TRUE(saw_listener);
  // A thread outside the custodian parked accepting on the managed listener.
  std::string accept_error;
  rkt::semaphore ready;
  rkt::thread acceptor = spawn_parked(ready, [&] {
    try {
      rkt::tcp_accept(*inside_l);
      ADD_FAILURE() << "tcp_accept returned";
    } catch (const rkt::exn_fail_contract& e) {
      accept_error = e.what();
    }
  });
  c.shutdown_all();
  await(acceptor);
  EXPECT_EQ(accept_error, closed_message("tcp_accept"));
  EXPECT_TRUE(c.managed_list().empty());
  auto r = raised<rkt::exn_fail_contract>([&] { rkt::tcp_accept_ready(*inside_l); });
  ASSERT_TRUE(r);
  EXPECT_EQ(std::string(r->what()), closed_message("tcp_accept_ready"));
  EXPECT_TRUE(inside_server->in.closed());
  EXPECT_TRUE(inside_server->out.closed());
  EXPECT_TRUE(inside_client->in.closed());
  EXPECT_TRUE(inside_client->out.closed());
  expect_eof(outside_client.in);
  expect_eof(outside_server.in);
  // What is outside is untouched.
  EXPECT_FALSE(rkt::tcp_accept_ready(outside_l));
  EXPECT_FALSE(outside_client.in.closed());
  EXPECT_FALSE(outside_server.out.closed());
  // The listener's socket is gone: its port refuses new clients.
  auto refused = raised<rkt::exn_fail_network>([&] { connect_to("127.0.0.1", inside_port); });
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->error_number(), ECONNREFUSED) << refused->what();
}

TEST_F(TcpTest, ListeningOrConnectingUnderAShutDownCustodianRaises) {
  rkt::tcp_listener l = rkt::tcp_listen(0, 4, false, "127.0.0.1");
  const uint16_t port = port_of(l);
  rkt::custodian c = rkt::make_custodian();
  c.shutdown_all();
  {
    rkt::custodian_scope in(c);
    auto el = raised<rkt::exn_fail_contract>([&] { rkt::tcp_listen(0, 4, false, "127.0.0.1"); });
    ASSERT_TRUE(el);
    EXPECT_THAT(el->what(), StartsWith("tcp_listen: the custodian has been shut down"));
    auto ec = raised<rkt::exn_fail_contract>([&] { rkt::tcp_connect("127.0.0.1", port); });
    ASSERT_TRUE(ec);
    EXPECT_THAT(ec->what(), StartsWith("tcp_connect: the custodian has been shut down"));
  }
  EXPECT_FALSE(rkt::tcp_accept_ready(l)) << "the refused tcp_connect connected anyway";
}

// As Racket's accept poller: the custodian is looked at before accept(2).
// Accepting under a shut-down custodian raises at once, whether or not a
// connection waits, and a waiting connection stays queued: another
// accepter, under a live custodian, gets it, and bytes flow.
TEST_F(TcpTest, AcceptingUnderAShutDownCustodianLeavesTheConnectionForAnotherAccepter) {
  rkt::tcp_listener l = rkt::tcp_listen(0, 4, false, "127.0.0.1");
  rkt::custodian dead = rkt::make_custodian();
  dead.shutdown_all();
  auto accept_under_dead = [&] {
    return on_green_thread([&] {
      rkt::custodian_scope in(dead);
      return rkt::tcp_accept(l);
    });
  };
  auto idle = raised<rkt::exn_fail_contract>(accept_under_dead);
  ASSERT_TRUE(idle) << "with nothing waiting, the accept raises instead of parking";
  EXPECT_EQ(std::string(idle->what()),
            "tcp_accept: the custodian has been shut down\n  custodian: #<custodian>");

  conn client = connect_to("127.0.0.1", port_of(l));
  ASSERT_TRUE(rkt::tcp_accept_ready(l));
  auto blocking = raised<rkt::exn_fail_contract>(accept_under_dead);
  ASSERT_TRUE(blocking);
  EXPECT_EQ(std::string(blocking->what()),
            "tcp_accept: the custodian has been shut down\n  custodian: #<custodian>");
  std::optional<rkt::evt<port_pair>> e;
  {
    rkt::custodian_scope in(dead);
    e.emplace(rkt::tcp_accept_evt(l));
  }
  auto from_evt = raised<rkt::exn_fail_contract>([&] { sync_within(*e); });
  ASSERT_TRUE(from_evt);
  EXPECT_EQ(std::string(from_evt->what()),
            "tcp_accept_evt: the custodian has been shut down\n  custodian: #<custodian>");
  EXPECT_TRUE(rkt::tcp_accept_ready(l)) << "the connection left the queue";

  conn server = accept_from(l);
  send(client.out, "ping");
  EXPECT_EQ(arrives(server.in, 4), "ping"s);
  send(server.out, "pong");
  EXPECT_EQ(arrives(client.in, 4), "pong"s);
  EXPECT_FALSE(rkt::tcp_accept_ready(l));
  rkt::tcp_close(l);
}

// --- Other OS threads -------------------------------------------------------------------

TEST_F(TcpTest, AClientOnAnotherOsThread) {
  rkt::tcp_listener l = rkt::tcp_listen(0, 4, false, "127.0.0.1");
  const uint16_t port = port_of(l);
  std::jthread os = start_os_thread([port] {
    conn c = connect_to("127.0.0.1", port);
    send(c.out, "ping\n");
    EXPECT_EQ(sync_within(rkt::read_line_evt(c.in)), "pong"s);
    c.out.close();
    expect_eof(c.in);
    c.in.close();
  });
  // The main OS thread parks in the accept while the other one connects.
  conn server(sync_within(rkt::tcp_accept_evt(l)));
  EXPECT_EQ(sync_within(rkt::read_line_evt(server.in)), "ping"s);
  send(server.out, "pong\n");
  expect_eof(server.in);
  server.out.close();
  os.join();
}

TEST_F(TcpTest, AServerOnAnotherOsThread) {
  std::atomic<uint16_t> port{0};
  rkt::semaphore listening;
  std::jthread os = start_os_thread([&port, listening] {
    rkt::tcp_listener l = rkt::tcp_listen(0, 4, false, "127.0.0.1");
    port.store(port_of(l));
    listening.post();
    conn s = accept_from(l);
    rkt::tcp_close(l);
    const std::string line = sync_within(rkt::read_line_evt(s.in)).value_or("<EOF>");
    send(s.out, line + " back\n");
    expect_eof(s.in);
    s.out.close();
    s.in.close();
  });
  sync_within(listening);
  conn client = connect_to("127.0.0.1", port.load());
  send(client.out, "echo\n");
  EXPECT_EQ(sync_within(rkt::read_line_evt(client.in)), "echo back"s);
  client.out.close();
  expect_eof(client.in);
  os.join();
}

}  // namespace
