// Tests of socket/tcp_unit.h, Racket's tcp^ as an interface, over both
// units: tcp_unit_tcp() on 127.0.0.1 and make_unix_socket_tcp_unit(path)
// on a socket file in a scratch directory. For each unit: listen, connect,
// accept, accept_evt, accept_ready, close, listener_p, addresses and
// abandon_port; the listener as an event whose result is itself (polled
// and parked on); accept_evt's ports belonging to the custodian current
// when it was made; a listener of the other unit refused with
// exn_fail_contract by every function; and the errors of a connection's
// ports as exn_fail_network with errno, message naming the port and the
// errno text: EPIPE writing to a peer that closed, ECONNRESET reading
// (and, over TCP, writing) after the peer reset.
// The Unix unit alone: port, reuse and host ignored; max_allow_wait as the
// listen(2) backlog, counted by non-blocking connects until EAGAIN; the
// addresses Racket 8.7's make-unix-socket-tcp@ reports ("127.0.0.1", ports
// 1 and 0, whatever the argument); connect to the unit's path; Racket's
// closed-listener behaviour; invalid paths at make_unix_socket_tcp_unit.
//
// Waits are bounded (sync_within, on_green_thread); the one wait that is
// not on an rkt event, for a TCP reset to arrive, is a poll(2) on the
// descriptor with a bound. The fixture checks that no descriptor leaks;
// the scratch directory (and its socket files) is removed at scope exit.
#include "socket/tcp_unit.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
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
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/sync_within.h"
#include "tests/testing/unix_socket_helpers.h"

namespace {

using namespace std::string_literals;

using ::rkt::test::arrives;
using ::rkt::test::await;
using ::rkt::test::conn;
using ::rkt::test::expect_nothing_arrives;
using ::rkt::test::is_socket_file;
using ::rkt::test::kHangBound;
using ::rkt::test::on_green_thread;
using ::rkt::test::raised;
using ::rkt::test::spawn_parked;
using ::rkt::test::sync_within;
using ::rkt::test::temp_dir;
using ::rkt::test::unique_abstract;
using ::testing::AnyOf;
using ::testing::HasSubstr;

using port_pair = std::pair<rkt::input_port, rkt::output_port>;

// How long a check waits for bytes (or EOF) that must not come.
constexpr absl::Duration kQuiet = absl::Milliseconds(30);

void send(const rkt::output_port& out, const std::string& s) {
  out.write_bytes(s);
  out.flush();
}

void expect_eof(const rkt::input_port& in) { EXPECT_EQ(arrives(in, 1), "<EOF>"); }

// Waits, bounded, until the kernel reports an error on `fd` (a reset
// arrived); the test's own OS thread blocks in poll(2), which is fine: the
// peer is the kernel.
bool wait_for_socket_error(int fd) {
  const absl::Time deadline = absl::Now() + kHangBound;
  while (absl::Now() < deadline) {
    pollfd p{fd, 0, 0};
    const int r = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now())));
    if (r > 0 && (p.revents & POLLERR) != 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
  return false;
}

// Makes the next close of `fd` send a reset instead of a FIN (TCP).
void reset_on_close(int fd) {
  linger lg{1, 0};
  ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0) << std::strerror(errno);
}

// Checks what a port's system call raised: exn_fail_network with `error`,
// naming the port and the errno text.
void expect_port_error(const std::optional<rkt::exn_fail_network>& e, const std::string& doing,
                       const std::string& port_name, std::vector<int> errors) {
  ASSERT_TRUE(e);
  EXPECT_THAT(errors, ::testing::Contains(e->error_number())) << e->what();
  EXPECT_THAT(e->what(), HasSubstr(doing + "\n  port: " + port_name + "\n  errno: " +
                                   std::to_string(e->error_number()) + "\n  error: " +
                                   std::strerror(e->error_number())));
}

// --- The two units behind one fixture ---------------------------------------------

enum class unit_kind { tcp, unix_socket };

// For gtest's messages ("GetParam() = UnixSocket").
void PrintTo(unit_kind k, std::ostream* os) { *os << (k == unit_kind::tcp ? "Tcp" : "UnixSocket"); }

class TcpUnitTest : public rkt::test::clean_test,
                    public ::testing::WithParamInterface<unit_kind> {
 protected:
  void SetUp() override {
    clean_test::SetUp();
    dir_.emplace("rkt_unit");
    unit_ = GetParam() == unit_kind::tcp ? rkt::tcp_unit_tcp()
                                         : rkt::make_unix_socket_tcp_unit(path());
    other_ = GetParam() == unit_kind::tcp ? rkt::make_unix_socket_tcp_unit(dir_->file("other"))
                                          : rkt::tcp_unit_tcp();
  }
  void TearDown() override {
    unit_.reset();
    other_.reset();
    dir_.reset();
    rkt::yield();
    rkt::yield();
    clean_test::TearDown();
  }

  bool tcp() const { return GetParam() == unit_kind::tcp; }
  std::string path() const { return dir_->file("s"); }
  // The port name the unit's connections carry.
  std::string port_name() const { return tcp() ? "tcp" : "unix-socket"; }

  // A listener of this unit: TCP on a port the system picks; the Unix
  // unit given a port, reuse and host it must ignore.
  rkt::tcp_unit_listener listen(int backlog = 4) {
    if (tcp()) return unit_->listen(0, backlog, true, "127.0.0.1");
    return unit_->listen(8080, backlog, false, "no-such-host.invalid");
  }
  // A listener of the other kind of unit.
  rkt::tcp_unit_listener other_listen() {
    if (tcp()) return other_->listen(0, 4);
    return other_->listen(0, 4, true, "127.0.0.1");
  }
  conn connect(const rkt::tcp_unit_listener& l) {
    if (tcp()) {
      const uint16_t port = unit_->addresses(l).local_port;
      return conn(on_green_thread([&] { return unit_->connect("127.0.0.1", port); }));
    }
    return conn(on_green_thread([&] { return unit_->connect("no-such-host.invalid", 1); }));
  }
  conn accept(const rkt::tcp_unit_listener& l) {
    return conn(on_green_thread([&] { return unit_->accept(l); }));
  }
  // The client end of a connection whose server end was closed with a
  // reset: on TCP by SO_LINGER 0, on a Unix socket by closing with bytes
  // unread.
  conn client_of_reset_connection() {
    rkt::tcp_unit_listener l = listen();
    conn client = connect(l);
    conn server = accept(l);
    unit_->close(l);
    if (tcp()) {
      reset_on_close(rkt::fd_port_descriptor(server.in));
    } else {
      send(client.out, "never read");
    }
    server.close();
    return client;
  }

  std::optional<temp_dir> dir_;
  std::shared_ptr<rkt::tcp_unit> unit_;
  std::shared_ptr<rkt::tcp_unit> other_;
};

INSTANTIATE_TEST_SUITE_P(Units, TcpUnitTest,
                         ::testing::Values(unit_kind::tcp, unit_kind::unix_socket),
                         [](const ::testing::TestParamInfo<unit_kind>& i) {
                           return std::string(i.param == unit_kind::tcp ? "Tcp" : "UnixSocket");
                         });

TEST_P(TcpUnitTest, ConnectAndAcceptCarryBytesBothWays) {
  rkt::tcp_unit_listener l = listen();
  conn client = connect(l);
  conn server = accept(l);
  EXPECT_EQ(client.in.name(), port_name());
  send(client.out, "ping");
  EXPECT_EQ(arrives(server.in, 4), "ping"s);
  send(server.out, "pong");
  EXPECT_EQ(arrives(client.in, 4), "pong"s);
  client.out.close();
  expect_eof(server.in);
  send(server.out, "after your EOF");
  EXPECT_EQ(arrives(client.in, 14), "after your EOF"s);
  unit_->close(l);
}

TEST_P(TcpUnitTest, ListenerPTellsThisUnitsListenersFromTheOthers) {
  rkt::tcp_unit_listener l = listen();
  rkt::tcp_unit_listener o = other_listen();
  EXPECT_TRUE(unit_->listener_p(l));
  EXPECT_FALSE(unit_->listener_p(o));
  EXPECT_TRUE(other_->listener_p(o));
  EXPECT_FALSE(other_->listener_p(l));
  EXPECT_TRUE(l == l);
  EXPECT_FALSE(l == o);
  rkt::tcp_unit_listener copy = l;
  EXPECT_TRUE(copy == l);
  unit_->close(l);
  other_->close(o);
}

TEST_P(TcpUnitTest, TheListenerIsAnEventReadyOnAPendingConnectionWhoseResultIsItself) {
  rkt::tcp_unit_listener l = listen();
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), l).has_value());
  EXPECT_FALSE(unit_->accept_ready(l));
  conn client = connect(l);
  std::optional<rkt::tcp_unit_listener> got = sync_within(rkt::evt<rkt::tcp_unit_listener>(l));
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(*got == l);
  EXPECT_TRUE(unit_->accept_ready(l));
  EXPECT_TRUE(unit_->accept_ready(l)) << "asking accepts nothing";
  conn server = accept(l);
  EXPECT_FALSE(unit_->accept_ready(l));
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), l).has_value());
  unit_->close(l);
}

TEST_P(TcpUnitTest, AThreadParkedOnTheListenerWakesWhenAClientConnects) {
  rkt::tcp_unit_listener l = listen();
  std::optional<rkt::tcp_unit_listener> woke;
  rkt::semaphore ready;
  rkt::thread t = spawn_parked(ready, [&] { woke = sync_within(l); });
  EXPECT_FALSE(woke.has_value());
  conn client = connect(l);
  await(t);
  ASSERT_TRUE(woke.has_value());
  EXPECT_TRUE(*woke == l);
  conn server = accept(l);
  unit_->close(l);
}

TEST_P(TcpUnitTest, AcceptEvtAcceptsWhenSynced) {
  rkt::tcp_unit_listener l = listen();
  rkt::evt<port_pair> e = unit_->accept_evt(l);
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), e).has_value());
  conn client = connect(l);
  EXPECT_TRUE(unit_->accept_ready(l)) << "making the event accepted nothing";
  conn server(sync_within(e));
  EXPECT_FALSE(unit_->accept_ready(l));
  send(server.out, "synced");
  EXPECT_EQ(arrives(client.in, 6), "synced"s);
  unit_->close(l);
}

TEST_P(TcpUnitTest, AcceptEvtPortsBelongToTheCustodianCurrentWhenItWasMade) {
  rkt::tcp_unit_listener l = listen();
  rkt::custodian maker = rkt::make_custodian();
  rkt::custodian syncer = rkt::make_custodian();
  std::optional<rkt::evt<port_pair>> e;
  {
    rkt::custodian_scope in(maker);
    e.emplace(unit_->accept_evt(l));
  }
  EXPECT_TRUE(maker.managed_list().empty()) << "making the event accepts nothing";
  conn client = connect(l);
  std::optional<conn> server;
  {
    rkt::custodian_scope in(syncer);
    server.emplace(sync_within(*e));
  }
  syncer.shutdown_all();
  EXPECT_FALSE(server->in.closed()) << "the custodian current at the sync took the ports";
  send(server->out, "alive");
  EXPECT_EQ(arrives(client.in, 5), "alive"s);
  maker.shutdown_all();
  EXPECT_TRUE(server->in.closed());
  EXPECT_TRUE(server->out.closed());
  expect_eof(client.in);
  // The listener, made under the test's custodian, still accepts.
  conn client2 = connect(l);
  conn server2 = accept(l);
  send(client2.out, "next");
  EXPECT_EQ(arrives(server2.in, 4), "next"s);
  unit_->close(l);
}

TEST_P(TcpUnitTest, ClosingTheListenerEndsAcceptingButNotAcceptedConnections) {
  rkt::tcp_unit_listener l = listen();
  conn client = connect(l);
  conn server = accept(l);
  unit_->close(l);
  // Ready once closed (an accept would not block: it raises).
  std::optional<rkt::tcp_unit_listener> ready = rkt::sync_timeout(absl::ZeroDuration(), l);
  ASSERT_TRUE(ready.has_value());
  EXPECT_TRUE(*ready == l);
  if (tcp()) {
    // tcp.h, as Racket's tcp@.
    auto a = raised<rkt::exn_fail_contract>([&] { accept(l); });
    ASSERT_TRUE(a);
    EXPECT_EQ(std::string(a->what()), "tcp_accept: listener is closed\n  listener: #<tcp-listener>");
    EXPECT_TRUE(raised<rkt::exn_fail_contract>([&] { unit_->accept_ready(l); }));
    EXPECT_TRUE(raised<rkt::exn_fail_contract>([&] { unit_->close(l); }));
    EXPECT_TRUE(raised<rkt::exn_fail_contract>([&] { sync_within(unit_->accept_evt(l)); }));
  } else {
    // unix_socket.h, as Racket's make-unix-socket-tcp@ (run in 8.7):
    // exn:fail without errno, tcp-accept-ready? #t, tcp-close again void.
    try {
      accept(l);
      ADD_FAILURE() << "accept on a closed listener returned";
    } catch (const rkt::exn_fail_network& e) {
      ADD_FAILURE() << "not a system call's failure: " << e.what();
    } catch (const rkt::exn_fail& e) {
      EXPECT_EQ(std::string(e.what()), "unix_socket_accept: unix socket listener is closed");
    }
    EXPECT_TRUE(unit_->accept_ready(l));
    unit_->close(l);
    EXPECT_TRUE(is_socket_file(path())) << "closing leaves the socket file";
  }
  send(client.out, "still here");
  EXPECT_EQ(arrives(server.in, 10), "still here"s);
}

TEST_P(TcpUnitTest, AListenerOfTheOtherUnitIsAContractError) {
  rkt::tcp_unit_listener o = other_listen();
  const std::string given = tcp() ? "#<unix-socket-listener>" : "#<tcp-listener>";
  const std::string expected = tcp() ? "tcp_listener_p" : "unix_socket_listener_p";
  auto message = [&](const std::string& who) {
    return who + ": contract violation\n  expected: " + expected + "\n  given: " + given;
  };
  auto a = raised<rkt::exn_fail_contract>([&] { unit_->accept(o); });
  ASSERT_TRUE(a);
  EXPECT_EQ(std::string(a->what()), message(tcp() ? "tcp_accept" : "unix_socket_accept"));
  auto ae = raised<rkt::exn_fail_contract>([&] { unit_->accept_evt(o); });
  ASSERT_TRUE(ae);
  EXPECT_EQ(std::string(ae->what()), message(tcp() ? "tcp_accept_evt" : "unix_socket_accept_evt"));
  auto r = raised<rkt::exn_fail_contract>([&] { unit_->accept_ready(o); });
  ASSERT_TRUE(r);
  EXPECT_EQ(std::string(r->what()), message("tcp_accept_ready"));
  auto c = raised<rkt::exn_fail_contract>([&] { unit_->close(o); });
  ASSERT_TRUE(c);
  EXPECT_EQ(std::string(c->what()), message(tcp() ? "tcp_close" : "unix_socket_close_listener"));
  auto ad = raised<rkt::exn_fail_contract>([&] { unit_->addresses(o); });
  ASSERT_TRUE(ad);
  EXPECT_EQ(std::string(ad->what()), message("tcp_addresses"));
  // None of it touched the listener.
  EXPECT_FALSE(other_->accept_ready(o));
  other_->close(o);
}

TEST_P(TcpUnitTest, AbandoningTheOutputSendsNoEofWhileTheInputIsOpen) {
  rkt::tcp_unit_listener l = listen();
  conn client = connect(l);
  conn server = accept(l);
  server.out.write_bytes("last words");  // buffered: abandoning flushes them
  unit_->abandon_port(server.out);
  EXPECT_TRUE(server.out.closed());
  EXPECT_FALSE(server.in.closed());
  EXPECT_EQ(arrives(client.in, 10), "last words"s);
  expect_nothing_arrives(client.in, kQuiet);  // no EOF: the input port is open
  send(client.out, "still");
  EXPECT_EQ(arrives(server.in, 5), "still"s);
  expect_nothing_arrives(client.in, kQuiet);
  server.in.close();
  expect_eof(client.in);
  unit_->close(l);
}

TEST_P(TcpUnitTest, AbandoningTheInputIsClosingIt) {
  rkt::tcp_unit_listener l = listen();
  conn client = connect(l);
  conn server = accept(l);
  unit_->abandon_port(server.in);
  EXPECT_TRUE(server.in.closed());
  auto r = raised<rkt::exn_fail>([&] { server.in.read_byte(); });
  ASSERT_TRUE(r);
  EXPECT_THAT(r->what(), HasSubstr("input port is closed"));
  send(server.out, "out");
  EXPECT_EQ(arrives(client.in, 3), "out"s);
  server.out.close();
  expect_eof(client.in);
  unit_->close(l);
}

// --- Errors of a connection's ports ------------------------------------------------

// racket/web-server#102: a peer's EPIPE must be a network error.
TEST_P(TcpUnitTest, WritingToAPeerThatClosedRaisesEpipeAsANetworkError) {
  rkt::tcp_unit_listener l = listen();
  conn client = connect(l);
  conn server = accept(l);
  unit_->close(l);
  server.close();
  expect_eof(client.in);  // the server's socket is closed
  if (tcp()) {
    // The first write after the FIN is sent; the peer answers it with a
    // reset, after which (the connection half-closed by the peer) writing
    // raises EPIPE.
    send(client.out, "x");
    ASSERT_TRUE(wait_for_socket_error(rkt::fd_port_descriptor(client.out)));
  }
  auto e = raised<rkt::exn_fail_network>([&] { send(client.out, "into the void"); });
  expect_port_error(e, "error writing to stream port", port_name(), {EPIPE});
  client.close();
}

TEST_P(TcpUnitTest, ReadingAfterThePeerResetRaisesEconnresetAsANetworkError) {
  conn client = client_of_reset_connection();
  auto e = raised<rkt::exn_fail_network>([&] { arrives(client.in, 1); });
  expect_port_error(e, "error reading from stream port", port_name(), {ECONNRESET});
  client.close();
}

TEST_P(TcpUnitTest, WritingAfterThePeerResetRaisesANetworkError) {
  conn client = client_of_reset_connection();
  if (tcp()) {
    ASSERT_TRUE(wait_for_socket_error(rkt::fd_port_descriptor(client.out)));
  }
  auto e = raised<rkt::exn_fail_network>([&] { send(client.out, "too late"); });
  // TCP reports the reset to the first write; Linux's Unix sockets report
  // the reset only to reads, and EPIPE to writes.
  expect_port_error(e, "error writing to stream port", port_name(),
                    tcp() ? std::vector<int>{ECONNRESET} : std::vector<int>{EPIPE});
  client.close();
}

// --- The TCP unit ---------------------------------------------------------------

class TcpUnitTcpTest : public rkt::test::clean_test {
 protected:
  void TearDown() override {
    rkt::yield();
    rkt::yield();
    clean_test::TearDown();
  }
};

TEST_F(TcpUnitTcpTest, AddressesAreTheConnectionsOwn) {
  std::shared_ptr<rkt::tcp_unit> unit = rkt::tcp_unit_tcp();
  EXPECT_EQ(unit, rkt::tcp_unit_tcp()) << "one shared instance";
  rkt::tcp_unit_listener l = unit->listen(0, 4, true, "127.0.0.1");
  const rkt::tcp_address_info la = unit->addresses(l);
  EXPECT_EQ(la.local_host, "127.0.0.1");
  EXPECT_NE(la.local_port, 0);
  EXPECT_EQ(la.remote_host, "0.0.0.0");
  EXPECT_EQ(la.remote_port, 0);
  conn client(on_green_thread([&] { return unit->connect("127.0.0.1", la.local_port); }));
  conn server(on_green_thread([&] { return unit->accept(l); }));
  const rkt::tcp_address_info s = unit->addresses(server.in);
  const rkt::tcp_address_info c = unit->addresses(client.out);
  EXPECT_EQ(s.local_port, la.local_port);
  EXPECT_EQ(s.remote_port, c.local_port);
  EXPECT_EQ(c.remote_port, la.local_port);
  EXPECT_EQ(unit->addresses(server.out).remote_port, c.local_port);
  // A port that is not a TCP port is refused, as tcp_addresses does.
  auto [pin, pout] = rkt::make_pipe();
  EXPECT_TRUE(raised<rkt::exn_fail_contract>([&] { unit->addresses(pin); }));
  unit->close(l);
}

TEST_F(TcpUnitTcpTest, ARefusedConnectIsANetworkErrorWithErrno) {
  std::shared_ptr<rkt::tcp_unit> unit = rkt::tcp_unit_tcp();
  rkt::tcp_unit_listener l = unit->listen(0, 4, false, "127.0.0.1");
  const uint16_t port = unit->addresses(l).local_port;
  unit->close(l);
  auto e = raised<rkt::exn_fail_network>(
      [&] { on_green_thread([&] { return unit->connect("127.0.0.1", port); }); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), ECONNREFUSED) << e->what();
  EXPECT_THAT(e->what(), HasSubstr("tcp_connect: connection failed"));
}

// --- The Unix-socket unit ---------------------------------------------------------

class TcpUnitUnixTest : public TcpUnitTcpTest {
 protected:
  temp_dir dir_{"rkt_unit"};
};

TEST_F(TcpUnitUnixTest, AddressesAreRacketsWhateverTheArgument) {
  // Racket 8.7 (run): (tcp-addresses x #t) => "127.0.0.1" 1 "127.0.0.1" 0
  // for the listener and for both ends of a connection.
  std::shared_ptr<rkt::tcp_unit> unit = rkt::make_unix_socket_tcp_unit(dir_.file("s"));
  rkt::tcp_unit_listener l = unit->listen(0, 4);
  conn client(on_green_thread([&] { return unit->connect("localhost", 80); }));
  conn server(on_green_thread([&] { return unit->accept(l); }));
  auto [pin, pout] = rkt::make_pipe();
  for (const rkt::tcp_address_info& a :
       {unit->addresses(l), unit->addresses(server.in), unit->addresses(server.out),
        unit->addresses(client.in), unit->addresses(client.out), unit->addresses(pin),
        unit->addresses(pout)}) {
    EXPECT_EQ(a.local_host, "127.0.0.1");
    EXPECT_EQ(a.local_port, 1);
    EXPECT_EQ(a.remote_host, "127.0.0.1");
    EXPECT_EQ(a.remote_port, 0);
  }
  unit->close(l);
}

TEST_F(TcpUnitUnixTest, ListenBindsThePathIgnoringPortReuseAndHost) {
  const std::string path = dir_.file("s");
  std::shared_ptr<rkt::tcp_unit> unit = rkt::make_unix_socket_tcp_unit(path);
  EXPECT_FALSE(is_socket_file(path));
  rkt::tcp_unit_listener l = unit->listen(80, 4, true, "no-such-host.invalid");
  EXPECT_TRUE(is_socket_file(path));
  // Any hostname and ports: connect goes to the path.
  conn client(on_green_thread(
      [&] { return unit->connect("no-such-host.invalid", 9, "no-such-host.invalid", 7); }));
  conn server(on_green_thread([&] { return unit->accept(l); }));
  send(client.out, "via path");
  EXPECT_EQ(arrives(server.in, 8), "via path"s);
  // One path, one listener: a second listen finds it in use.
  auto again = raised<rkt::exn_fail_network>([&] { unit->listen(81, 4); });
  ASSERT_TRUE(again);
  EXPECT_EQ(again->error_number(), EADDRINUSE) << again->what();
  unit->close(l);
}

TEST_F(TcpUnitUnixTest, ConnectingWhereNobodyListensIsANetworkErrorNamingThePath) {
  const std::string path = dir_.file("nobody");
  std::shared_ptr<rkt::tcp_unit> unit = rkt::make_unix_socket_tcp_unit(path);
  auto e = raised<rkt::exn_fail_network>(
      [&] { on_green_thread([&] { return unit->connect("localhost", 80); }); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), ENOENT) << e->what();
  EXPECT_THAT(e->what(), HasSubstr("unix_socket_connect: failed to connect socket\n  path: \"" +
                                   path + "\""));
}

TEST_F(TcpUnitUnixTest, AnAbstractNameWorksToo) {
  std::shared_ptr<rkt::tcp_unit> unit =
      rkt::make_unix_socket_tcp_unit(rkt::unix_socket_abstract_name(unique_abstract("unit")));
  rkt::tcp_unit_listener l = unit->listen(0, 4);
  conn client(on_green_thread([&] { return unit->connect("localhost", 80); }));
  conn server(on_green_thread([&] { return unit->accept(l); }));
  send(server.out, "abstract");
  EXPECT_EQ(arrives(client.in, 8), "abstract"s);
  unit->close(l);
}

// How many non-blocking connects a Unix listener takes before EAGAIN; the
// descriptors are appended to `fds`.
int connects_until_full(const std::string& path, std::vector<int>& fds) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  for (int n = 0; n < 1000; ++n) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      ADD_FAILURE() << "socket: " << std::strerror(errno);
      return -1;
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
      const int e = errno;
      ::close(fd);
      EXPECT_EQ(e, EAGAIN) << std::strerror(e);
      return n;
    }
    fds.push_back(fd);
  }
  ADD_FAILURE() << "the backlog never filled";
  return -1;
}

// max_allow_wait is listen(2)'s backlog: a full backlog refuses a
// non-blocking connect at once (EAGAIN). Linux lets one connection more than
// the backlog wait (the queue is full when it is longer than the backlog),
// so the test compares two backlogs rather than trusting that off-by-one.
TEST_F(TcpUnitUnixTest, MaxAllowWaitIsTheBacklog) {
  std::vector<int> fds;
  int counts[2] = {0, 0};
  const int backlogs[2] = {1, 6};
  for (int i = 0; i < 2; ++i) {
    const std::string path = dir_.file("b" + std::to_string(i));
    std::shared_ptr<rkt::tcp_unit> unit = rkt::make_unix_socket_tcp_unit(path);
    rkt::tcp_unit_listener l = unit->listen(0, backlogs[i], false, std::nullopt);
    const std::size_t before = fds.size();
    counts[i] = connects_until_full(path, fds);
    EXPECT_THAT(counts[i], AnyOf(backlogs[i], backlogs[i] + 1));
    // Every waiting connection is there to accept; then there is room.
    for (int k = 0; k < counts[i]; ++k) {
      conn server(on_green_thread([&] { return unit->accept(l); }));
      server.close();
    }
    EXPECT_FALSE(unit->accept_ready(l));
    std::vector<int> more;
    EXPECT_EQ(connects_until_full(path, more), counts[i]) << "accepting made room";
    for (int fd : more) ::close(fd);
    for (std::size_t k = before; k < fds.size(); ++k) ::close(fds[k]);
    unit->close(l);
  }
  EXPECT_EQ(counts[1] - counts[0], backlogs[1] - backlogs[0]);
}

// The unit's connect, unlike a raw non-blocking connect, waits for room in
// a full backlog (unix_socket_connect) and completes once one is accepted.
TEST_F(TcpUnitUnixTest, ConnectWaitsForRoomInAFullBacklog) {
  const std::string path = dir_.file("full");
  std::shared_ptr<rkt::tcp_unit> unit = rkt::make_unix_socket_tcp_unit(path);
  rkt::tcp_unit_listener l = unit->listen(0, 1);
  std::vector<int> fds;
  const int n = connects_until_full(path, fds);
  ASSERT_GE(n, 1);
  std::optional<conn> client;
  rkt::semaphore ready;
  rkt::thread t = spawn_parked(
      ready, [&] { client.emplace(unit->connect("localhost", 80)); }, "connecter");
  EXPECT_FALSE(client.has_value());
  for (int k = 0; k < n; ++k) {
    conn server(on_green_thread([&] { return unit->accept(l); }));
    server.close();
  }
  await(t);
  ASSERT_TRUE(client.has_value());
  conn server(on_green_thread([&] { return unit->accept(l); }));
  send(client->out, "made it");
  EXPECT_EQ(arrives(server.in, 7), "made it"s);
  for (int fd : fds) ::close(fd);
  unit->close(l);
}

TEST_F(TcpUnitUnixTest, AnInvalidPathIsAContractErrorNamingIt) {
  auto message = [](const std::string& given) {
    return "make_unix_socket_tcp_unit: contract violation\n  expected: unix_socket_path_p\n"
           "  given: " +
           given;
  };
  auto empty = raised<rkt::exn_fail_contract>([] { rkt::make_unix_socket_tcp_unit(""); });
  ASSERT_TRUE(empty);
  EXPECT_EQ(std::string(empty->what()), message("\"\""));
  const std::string long_path = "/tmp/" + std::string(200, 'x');
  auto too_long = raised<rkt::exn_fail_contract>([&] { rkt::make_unix_socket_tcp_unit(long_path); });
  ASSERT_TRUE(too_long);
  EXPECT_EQ(std::string(too_long->what()), message("\"" + long_path + "\""));
  auto nul = raised<rkt::exn_fail_contract>(
      [] { rkt::make_unix_socket_tcp_unit(std::string("a\0b\n", 4)); });
  ASSERT_TRUE(nul);
  EXPECT_EQ(std::string(nul->what()), message("\"a\\u0000b\\n\""));
  // An abstract name is written as a byte string: too long here.
  const std::string name = std::string("\0x\x01", 3) + std::string(120, 'n');
  auto abstract = raised<rkt::exn_fail_contract>(
      [&] { rkt::make_unix_socket_tcp_unit(rkt::unix_socket_abstract_name(name)); });
  ASSERT_TRUE(abstract);
  EXPECT_EQ(std::string(abstract->what()), message("#\"\\0x\\1" + std::string(120, 'n') + "\""));
  // Not starting with NUL: not an abstract name.
  auto not_abstract = raised<rkt::exn_fail_contract>(
      [] { rkt::make_unix_socket_tcp_unit(rkt::unix_socket_abstract_name("plain")); });
  ASSERT_TRUE(not_abstract);
  EXPECT_EQ(std::string(not_abstract->what()), message("#\"plain\""));
}

}  // namespace
