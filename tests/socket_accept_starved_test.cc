// Tests of accepting while the process has no descriptor left (EMFILE), for
// Unix and TCP listeners, on the epoll and the poll(2) reactor:
//   - a server whose loop is sync(accept_evt(l), stop), and one whose loop
//     is the blocking accept, takes what it can, waits while starved, and
//     once descriptors are freed accepts every connection still pending
//     without a new one arriving; bytes then flow on each;
//   - while starved the process stays nearly idle: user + system CPU time
//     over the starved window, measured with getrusage, is a small fraction
//     of the wall time (a behaviour bound against spinning, not a speed
//     check; it is generous enough for sanitizers);
//   - a stop event still wins a choice with a starved accept_evt, and the
//     connection it was waiting for stays pending for the next accepter;
//   - an accept_evt synced on another OS thread than the listener's
//     recovers too (its retry runs on that thread's own station);
//   - two OS threads accepting from one listener both starve, each backs
//     off on its own station (a bounded number of retries over the window),
//     the process stays nearly idle, and every pending connection is
//     accepted once descriptors are freed.
//
// Each case runs on a fresh OS thread whose scheduler gets the reactor named
// by the case (RKT_REACTOR is read when a scheduler is created), so both
// backends are covered whatever the build's default. The clients live in a
// child process (forked before the limit is lowered), so that their
// descriptors do not count against ours. RLIMIT_NOFILE is lowered for the
// case only and restored after; this suite runs in its own binary so that
// no other test shares the lowered limit.
//
// Waits are bounded (sync_within, a bounded poll(2) for the child's
// readiness); the one fixed-length wait is the starved window itself, which
// is what the CPU time is measured over.
//
// Under UBSan (the asan and ubsan configurations), the vptr check cannot run
// while the descriptor table is full: on a miss in its type cache it tests
// whether the vtable is readable by writing it into a pipe(2), which EMFILE
// refuses, and it then reports a valid object as having an "invalid vptr"
// ("<memory cannot be printed>"). This binary therefore defines the
// runtime's cache-miss handlers itself: while an fd_starvation holds the
// table full they accept the object unchecked, otherwise they forward to
// the runtime's own (found with dlsym). ASan and the other UBSan checks are
// unaffected, and so are the other suites.
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "evt/evt.h"
#include "evt/exn.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ports/port.h"
#include "socket/listener_threads.h"
#include "socket/tcp.h"
#include "socket/unix_socket.h"
#include "tests/testing/fd_leak_check.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/sync_within.h"

namespace {

// True while an fd_starvation holds the descriptor table full.
std::atomic<bool> fd_table_full{false};

}  // namespace

#if defined(RKT_ASAN) || defined(RKT_UBSAN)
namespace {

using ubsan_handler = void (*)(void* data, uintptr_t pointer, uintptr_t hash);

void check_vptr(const char* name, void* data, uintptr_t pointer, uintptr_t hash) {
  if (fd_table_full.load(std::memory_order_acquire)) return;  // cannot be checked now
  auto real = reinterpret_cast<ubsan_handler>(::dlsym(RTLD_NEXT, name));
  if (real != nullptr) real(data, pointer, hash);
}

}  // namespace

extern "C" void __ubsan_handle_dynamic_type_cache_miss(void* data, uintptr_t pointer,
                                                       uintptr_t hash) {
  check_vptr("__ubsan_handle_dynamic_type_cache_miss", data, pointer, hash);
}
extern "C" void __ubsan_handle_dynamic_type_cache_miss_abort(void* data, uintptr_t pointer,
                                                             uintptr_t hash) {
  check_vptr("__ubsan_handle_dynamic_type_cache_miss_abort", data, pointer, hash);
}
#endif  // RKT_ASAN || RKT_UBSAN

namespace {

using ::rkt::test::arrives;
using ::rkt::test::conn;
using ::rkt::test::scoped_thread;
using ::rkt::test::sync_within;
using ::rkt::test::temp_dir;

using port_pair = std::pair<rkt::input_port, rkt::output_port>;
using maybe_ports = std::optional<port_pair>;

// Connections the child makes; each sends one byte, 'A' + its index.
constexpr int kClients = 8;
// Descriptors left free when the server starts: it accepts this many, then
// starves.
constexpr int kFreeAtStart = 2;
// How long the starved server is watched.
constexpr absl::Duration kStarvedWindow = absl::Milliseconds(300);
// The most CPU time (user + system, the whole process) the starved window
// may use, as a fraction of its wall time. A spinning accept uses ~100%.
constexpr double kMaxStarvedCpuShare = 0.20;

enum class family { unix_socket, tcp };
enum class loop_kind { accept_evt_with_stop, blocking_accept };

// A listener of either family, and the address a child connects to.
class server_listener {
 public:
  explicit server_listener(family f) : family_(f) {
    if (f == family::unix_socket) {
      path_ = dir_.file("s");
      unix_.emplace(rkt::unix_socket_listen(path_, 2 * kClients));
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::memcpy(a.sun_path, path_.data(), path_.size());
      std::memcpy(&addr_, &a, sizeof a);
      addr_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size());
      domain_ = AF_UNIX;
    } else {
      tcp_.emplace(rkt::tcp_listen(0, 2 * kClients, true, "127.0.0.1"));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(rkt::tcp_addresses(*tcp_).local_port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      std::memcpy(&addr_, &a, sizeof a);
      addr_len_ = sizeof a;
      domain_ = AF_INET;
    }
  }
  ~server_listener() { close(); }

  rkt::evt<port_pair> accept_evt() const {
    return unix_ ? rkt::unix_socket_accept_evt(*unix_) : rkt::tcp_accept_evt(*tcp_);
  }
  port_pair accept() const { return unix_ ? rkt::unix_socket_accept(*unix_) : rkt::tcp_accept(*tcp_); }
  // Whether a connection waits (the listener event, polled).
  bool connection_waits() const {
    return unix_ ? rkt::sync_timeout(absl::ZeroDuration(), *unix_).has_value()
                 : rkt::tcp_accept_ready(*tcp_);
  }
  void close() {
    if (closed_) return;
    closed_ = true;
    if (unix_) {
      rkt::unix_socket_close_listener(*unix_);
    } else {
      rkt::tcp_close(*tcp_);
    }
  }

  // What each OS thread accepting from it did.
  std::vector<rkt::listener_thread_stats> threads() const {
    return unix_ ? rkt::listener_threads(*unix_) : rkt::listener_threads(*tcp_);
  }

  int domain() const { return domain_; }
  const sockaddr* addr() const { return reinterpret_cast<const sockaddr*>(&addr_); }
  socklen_t addr_len() const { return addr_len_; }

 private:
  family family_;
  temp_dir dir_;
  std::string path_;
  std::optional<rkt::unix_socket_listener> unix_;
  std::optional<rkt::tcp_listener> tcp_;
  sockaddr_storage addr_{};
  socklen_t addr_len_ = 0;
  int domain_ = AF_UNIX;
  bool closed_ = false;
};

// A child process that connects kClients times to a listener, sends one
// byte on each connection, says so through a pipe, and then waits to be
// killed (at scope exit).
class child_clients {
 public:
  explicit child_clients(const server_listener& l) {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    // Everything the child uses is computed before the fork: after it, only
    // async-signal-safe calls.
    const int domain = l.domain();
    const sockaddr* addr = l.addr();
    const socklen_t len = l.addr_len();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      for (int i = 0; i < kClients; ++i) {
        const int fd = ::socket(domain, SOCK_STREAM, 0);
        if (fd < 0) ::_exit(2);
        while (::connect(fd, addr, len) != 0) {
          if (errno != EINTR) ::_exit(3);
        }
        const char byte = static_cast<char>('A' + i);
        if (::write(fd, &byte, 1) != 1) ::_exit(4);
      }
      if (::write(ready[1], "r", 1) != 1) ::_exit(5);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    if (pid_ < 0) {
      ADD_FAILURE() << "fork: " << std::strerror(errno);
      ::close(ready[0]);
      return;
    }
    // The child's word, bounded: it connects to a listener with room for
    // every connection, so nothing but a bug makes it slow.
    pollfd p{ready[0], POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(rkt::test::kHangBound)));
    char byte = 0;
    connected_ = n == 1 && ::read(ready[0], &byte, 1) == 1;
    ::close(ready[0]);
  }
  ~child_clients() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  child_clients(const child_clients&) = delete;
  child_clients& operator=(const child_clients&) = delete;

  bool connected() const { return connected_; }

 private:
  pid_t pid_ = -1;
  bool connected_ = false;
};

// Lowers RLIMIT_NOFILE just above the highest open descriptor and holds
// every descriptor below it but `left_free`; release() closes them all
// (the limit stays lowered), and the destructor restores the limit.
class fd_starvation {
 public:
  explicit fd_starvation(int left_free) {
    if (::getrlimit(RLIMIT_NOFILE, &saved_) != 0) {
      ADD_FAILURE() << "getrlimit: " << std::strerror(errno);
      return;
    }
    int highest = 0;
    for (const auto& [fd, target] : rkt::test::fd_leak_check::snapshot()) highest = std::max(highest, fd);
    rlimit low = saved_;
    low.rlim_cur = static_cast<rlim_t>(highest) + 1 + kClients + 4;
    if (::setrlimit(RLIMIT_NOFILE, &low) != 0) {
      ADD_FAILURE() << "setrlimit: " << std::strerror(errno);
      return;
    }
    lowered_ = true;
    fd_table_full.store(true, std::memory_order_release);
    for (;;) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        EXPECT_EQ(errno, EMFILE) << std::strerror(errno);
        break;
      }
      fillers_.push_back(fd);
    }
    for (int i = 0; i < left_free && !fillers_.empty(); ++i) {
      ::close(fillers_.back());
      fillers_.pop_back();
    }
  }
  ~fd_starvation() {
    release();
    if (lowered_) {
      EXPECT_EQ(::setrlimit(RLIMIT_NOFILE, &saved_), 0) << std::strerror(errno);
    }
  }
  fd_starvation(const fd_starvation&) = delete;
  fd_starvation& operator=(const fd_starvation&) = delete;

  // How many descriptors release() frees.
  std::size_t held() const { return fillers_.size(); }
  void release() {
    for (int fd : fillers_) ::close(fd);
    fillers_.clear();
    fd_table_full.store(false, std::memory_order_release);
  }

 private:
  rlimit saved_{};
  bool lowered_ = false;
  std::vector<int> fillers_;
};

// User + system CPU time of the whole process.
absl::Duration process_cpu_time() {
  rusage u{};
  EXPECT_EQ(::getrusage(RUSAGE_SELF, &u), 0) << std::strerror(errno);
  return absl::DurationFromTimeval(u.ru_utime) + absl::DurationFromTimeval(u.ru_stime);
}

// Runs `body` on a fresh OS thread whose scheduler uses `reactor` ("epoll"
// or "poll"), and checks that it does.
void on_reactor(const char* reactor, const std::function<void()>& body) {
  const char* saved = std::getenv("RKT_REACTOR");
  const std::optional<std::string> saved_value =
      saved != nullptr ? std::optional<std::string>(saved) : std::nullopt;
  ::setenv("RKT_REACTOR", reactor, 1);
  std::jthread os = rkt::test::start_os_thread([&] {
    rkt::yield();  // this OS thread's scheduler (and its descriptors) first
    ASSERT_STREQ(rkt::reactor_name(), reactor);
    body();
  });
  os.join();
  if (saved_value) {
    ::setenv("RKT_REACTOR", saved_value->c_str(), 1);
  } else {
    ::unsetenv("RKT_REACTOR");
  }
}

struct starved_case {
  family fam;
  loop_kind loop;
  const char* reactor;
};

std::string describe(const starved_case& c) {
  return std::string(c.fam == family::unix_socket ? "Unix" : "Tcp") +
         (c.loop == loop_kind::accept_evt_with_stop ? "AcceptEvtWithStop" : "BlockingAccept") +
         "On" + (std::string(c.reactor) == "epoll" ? "Epoll" : "Poll");
}

void PrintTo(const starved_case& c, std::ostream* os) { *os << describe(c); }

std::string case_name(const ::testing::TestParamInfo<starved_case>& info) {
  return describe(info.param);
}

class AcceptStarvedTest : public rkt::test::clean_test,
                          public ::testing::WithParamInterface<starved_case> {};

// The server accepts kFreeAtStart connections, starves, and after the
// descriptors are freed accepts the rest by itself.
void accepts_the_pending_connections_once_descriptors_are_freed(const starved_case& c) {
  server_listener l(c.fam);
  child_clients kids(l);
  ASSERT_TRUE(kids.connected()) << "the child could not connect its clients";

  std::vector<conn> accepted;
  rkt::semaphore accepted_one;
  rkt::semaphore stop;
  std::optional<fd_starvation> starve;
  starve.emplace(kFreeAtStart);
  ASSERT_GE(starve->held(), static_cast<std::size_t>(kClients - kFreeAtStart));

  scoped_thread server([&] {
    if (c.loop == loop_kind::accept_evt_with_stop) {
      for (;;) {
        maybe_ports got = rkt::sync(
            rkt::wrap_evt(l.accept_evt(), [](port_pair p) { return maybe_ports(std::move(p)); }),
            rkt::wrap_evt(stop, [] { return maybe_ports(); }));
        if (!got) return;
        accepted.emplace_back(std::move(*got));
        accepted_one.post();
      }
    } else {
      for (int i = 0; i < kClients; ++i) {
        accepted.emplace_back(l.accept());
        accepted_one.post();
      }
    }
  });

  for (int i = 0; i < kFreeAtStart; ++i) sync_within(accepted_one);

  // Starved: connections wait, no descriptor can take them. The sleep is
  // the observation window itself (CPU time is measured across it), not a
  // wait for another thread: nothing is expected to happen during it.
  const absl::Duration cpu_before = process_cpu_time();
  const absl::Time wall_before = absl::Now();
  rkt::sleep(kStarvedWindow);
  const absl::Duration cpu = process_cpu_time() - cpu_before;
  const absl::Duration wall = absl::Now() - wall_before;
  EXPECT_EQ(accepted.size(), static_cast<std::size_t>(kFreeAtStart))
      << "accepted without a descriptor to spare";
  EXPECT_TRUE(l.connection_waits()) << "the pending connections were dropped";
  EXPECT_LT(absl::FDivDuration(cpu, wall), kMaxStarvedCpuShare)
      << "the starved server used " << cpu << " of CPU in " << wall;

  // Freed: the rest come in with no new arrival to announce them.
  starve->release();
  for (int i = kFreeAtStart; i < kClients; ++i) sync_within(accepted_one);
  starve.reset();
  ASSERT_EQ(accepted.size(), static_cast<std::size_t>(kClients));

  // Each is a working connection: its byte arrives, and it can be written.
  std::set<std::string> bytes;
  for (const conn& s : accepted) {
    bytes.insert(arrives(s.in, 1));
    s.out.write_bytes("ok");
    s.out.flush();
  }
  std::set<std::string> expected;
  for (int i = 0; i < kClients; ++i) expected.insert(std::string(1, static_cast<char>('A' + i)));
  EXPECT_EQ(bytes, expected);

  stop.post();
  server.join();
  for (const conn& s : accepted) s.close();
  l.close();
}

TEST_P(AcceptStarvedTest, AcceptsThePendingConnectionsOnceDescriptorsAreFreedAndStaysIdleMeanwhile) {
  const starved_case c = GetParam();
  on_reactor(c.reactor, [&] { accepts_the_pending_connections_once_descriptors_are_freed(c); });
}

INSTANTIATE_TEST_SUITE_P(
    AllFamiliesLoopsAndReactors, AcceptStarvedTest,
    ::testing::Values(
        starved_case{family::unix_socket, loop_kind::accept_evt_with_stop, "epoll"},
        starved_case{family::unix_socket, loop_kind::accept_evt_with_stop, "poll"},
        starved_case{family::unix_socket, loop_kind::blocking_accept, "epoll"},
        starved_case{family::unix_socket, loop_kind::blocking_accept, "poll"},
        starved_case{family::tcp, loop_kind::accept_evt_with_stop, "epoll"},
        starved_case{family::tcp, loop_kind::accept_evt_with_stop, "poll"},
        starved_case{family::tcp, loop_kind::blocking_accept, "epoll"},
        starved_case{family::tcp, loop_kind::blocking_accept, "poll"}),
    case_name);

// A stop event wins over a starved accept_evt; the connection stays pending
// and a later accept, with descriptors to spare, takes it.
void a_stop_event_wins_over_a_starved_accept_evt(family fam) {
  server_listener l(fam);
  child_clients kids(l);
  ASSERT_TRUE(kids.connected()) << "the child could not connect its clients";
  rkt::semaphore stop;
  bool stopped = false;
  {
    fd_starvation starve(0);
    rkt::semaphore parked;
    scoped_thread server([&] {
      parked.post();
      maybe_ports got = rkt::sync(
          rkt::wrap_evt(l.accept_evt(), [](port_pair p) { return maybe_ports(std::move(p)); }),
          rkt::wrap_evt(stop, [] { return maybe_ports(); }));
      stopped = !got.has_value();
    });
    sync_within(parked);
    rkt::yield();  // the server is parked in its sync now
    stop.post();
    server.join();
    EXPECT_TRUE(stopped) << "the starved accept_evt committed without a descriptor";
  }
  // The retry the starved sync asked for finds nobody waiting; the
  // connections are still there for the next accepter.
  EXPECT_TRUE(l.connection_waits());
  std::vector<conn> accepted;
  for (int i = 0; i < kClients; ++i) accepted.emplace_back(sync_within(l.accept_evt()));
  std::set<std::string> bytes;
  for (const conn& s : accepted) bytes.insert(arrives(s.in, 1));
  EXPECT_EQ(bytes.size(), static_cast<std::size_t>(kClients));
  for (const conn& s : accepted) s.close();
  l.close();
}

// A socket family and a reactor: the parameters of the two suites below.
using family_and_reactor = std::pair<family, const char*>;

const auto kFamiliesAndReactors =
    ::testing::Values(family_and_reactor{family::unix_socket, "epoll"},
                      family_and_reactor{family::unix_socket, "poll"},
                      family_and_reactor{family::tcp, "epoll"},
                      family_and_reactor{family::tcp, "poll"});

std::string family_and_reactor_name(const ::testing::TestParamInfo<family_and_reactor>& info) {
  return std::string(info.param.first == family::unix_socket ? "Unix" : "Tcp") + "On" +
         (std::string(info.param.second) == "epoll" ? "Epoll" : "Poll");
}

class StopWhileStarvedTest : public rkt::test::clean_test,
                             public ::testing::WithParamInterface<family_and_reactor> {};

TEST_P(StopWhileStarvedTest, AStopEventWinsAndTheConnectionStaysPending) {
  const auto [fam, reactor] = GetParam();
  on_reactor(reactor, [fam = fam] { a_stop_event_wins_over_a_starved_accept_evt(fam); });
}

INSTANTIATE_TEST_SUITE_P(
    AllFamiliesAndReactors, StopWhileStarvedTest,
    kFamiliesAndReactors, family_and_reactor_name);

// An accept_evt synced on another OS thread than the listener's: it parks on
// that thread's station, whose retries run on that thread's timers.
void a_starved_accept_on_another_os_thread_recovers(family fam) {
  server_listener l(fam);
  child_clients kids(l);
  ASSERT_TRUE(kids.connected()) << "the child could not connect its clients";
  rkt::semaphore go;
  rkt::semaphore accepted_one;
  rkt::semaphore stop;
  std::set<std::string> bytes;  // written by the other OS thread until it is joined
  // The other OS thread makes its scheduler (which needs descriptors) before
  // the starvation, then accepts until stopped.
  rkt::semaphore started;
  std::jthread other = rkt::test::start_os_thread([&] {
    rkt::yield();
    started.post();
    sync_within(go);
    std::vector<conn> accepted;
    for (;;) {
      maybe_ports got = rkt::sync(
          rkt::wrap_evt(l.accept_evt(), [](port_pair p) { return maybe_ports(std::move(p)); }),
          rkt::wrap_evt(stop, [] { return maybe_ports(); }));
      if (!got) break;
      accepted.emplace_back(std::move(*got));
      accepted_one.post();
    }
    for (const conn& s : accepted) {
      bytes.insert(arrives(s.in, 1));
      s.close();
    }
  });
  sync_within(started);
  {
    fd_starvation starve(0);
    go.post();
    // This OS thread idles in its scheduler meanwhile.
    EXPECT_FALSE(rkt::sync_timeout(kStarvedWindow, accepted_one))
        << "accepted without a descriptor to spare";
    starve.release();
    for (int i = 0; i < kClients; ++i) sync_within(accepted_one);
  }
  stop.post();
  other.join();
  EXPECT_EQ(bytes.size(), static_cast<std::size_t>(kClients));
  l.close();
}

class OtherOsThreadTest : public rkt::test::clean_test,
                          public ::testing::WithParamInterface<family_and_reactor> {};

TEST_P(OtherOsThreadTest, AStarvedAcceptEvtOnAnotherOsThreadRecoversThroughItsOwnStation) {
  const auto [fam, reactor] = GetParam();
  on_reactor(reactor, [fam = fam] { a_starved_accept_on_another_os_thread_recovers(fam); });
}

INSTANTIATE_TEST_SUITE_P(
    AllFamiliesAndReactors, OtherOsThreadTest,
    kFamiliesAndReactors, family_and_reactor_name);


// Retries a starved station may make over kStarvedWindow: the backoff's
// first steps (1, 2, 4, ... 64 ms: seven) and then one per 100 ms, with
// room for a report or two more (a connection's, a nudge's).
constexpr uint64_t kMaxStarvedReports = 7 + 3 + 5;

// Two OS threads accept from one listener while the process has no
// descriptor to spare: each station backs off on its own timers, and once
// descriptors are freed the pending connections are all accepted.
void two_starved_threads_recover(family fam) {
  server_listener l(fam);
  child_clients kids(l);
  ASSERT_TRUE(kids.connected()) << "the child could not connect its clients";
  rkt::semaphore go;
  rkt::semaphore started;
  rkt::semaphore accepted_one;
  rkt::semaphore stop;
  std::atomic<int> accepted_by[2] = {0, 0};
  std::vector<conn> accepted[2];  // each written by its own OS thread until joined
  const auto accept_loop = [&](int k) {
    for (;;) {
      maybe_ports got = rkt::sync(
          rkt::wrap_evt(l.accept_evt(), [](port_pair p) { return maybe_ports(std::move(p)); }),
          rkt::wrap_evt(stop.peek_evt(), [] { return maybe_ports(); }));
      if (!got) break;
      accepted[k].emplace_back(std::move(*got));
      accepted_by[k].fetch_add(1);
      accepted_one.post();
    }
  };
  // The other OS thread makes its scheduler (which needs descriptors) first.
  std::jthread other = rkt::test::start_os_thread([&] {
    rkt::yield();
    started.post();
    sync_within(go);
    accept_loop(1);
    for (const conn& s : accepted[1]) s.close();
  });
  sync_within(started);
  {
    fd_starvation starve(0);
    scoped_thread here([&] { accept_loop(0); });
    go.post();
    // Both stations exist and have a starved accept parked.
    const absl::Time deadline = absl::Now() + rkt::test::kHangBound;
    std::vector<rkt::listener_thread_stats> st;
    for (;;) {
      st = l.threads();
      if (st.size() == 2 && st[0].parked && st[1].parked) break;
      ASSERT_LT(absl::Now(), deadline) << "the two accepts did not park";
      // No event says that a sync has parked on a station, so this polls the
      // stations' counters, bounded by kHangBound; the pause also lets this
      // OS thread's own accept loop run and park.
      rkt::sleep(absl::Milliseconds(1));
    }
    const uint64_t before[2] = {st[0].reports, st[1].reports};
    // The observation window (see the single-thread case): the sleep is the
    // window CPU time is measured across, not a wait for another thread.
    const absl::Duration cpu_before = process_cpu_time();
    const absl::Time wall_before = absl::Now();
    rkt::sleep(kStarvedWindow);
    const absl::Duration cpu = process_cpu_time() - cpu_before;
    const absl::Duration wall = absl::Now() - wall_before;
    st = l.threads();
    EXPECT_EQ(accepted_by[0].load() + accepted_by[1].load(), 0)
        << "accepted without a descriptor to spare";
    EXPECT_LT(absl::FDivDuration(cpu, wall), kMaxStarvedCpuShare)
        << "the starved server used " << cpu << " of CPU in " << wall;
    for (int k = 0; k < 2; ++k) {
      const uint64_t retries = st[k].reports - before[k];
      EXPECT_GE(retries, 1u) << "station " << k << " did not retry";
      EXPECT_LE(retries, kMaxStarvedReports) << "station " << k << " retried too often";
    }
    starve.release();
    for (int i = 0; i < kClients; ++i) sync_within(accepted_one);
    stop.post();
    here.join();
  }
  other.join();
  EXPECT_EQ(accepted_by[0].load() + accepted_by[1].load(), kClients);
  std::set<std::string> bytes;
  for (const conn& s : accepted[0]) {
    bytes.insert(arrives(s.in, 1));
    s.close();
  }
  EXPECT_EQ(bytes.size(), static_cast<std::size_t>(accepted_by[0].load()));
  l.close();
}

class TwoThreadsStarvedTest : public rkt::test::clean_test,
                              public ::testing::WithParamInterface<family_and_reactor> {};

TEST_P(TwoThreadsStarvedTest, EachStationBacksOffAndAllPendingConnectionsAreAcceptedOnceFreed) {
  const auto [fam, reactor] = GetParam();
  on_reactor(reactor, [fam = fam] { two_starved_threads_recover(fam); });
}

INSTANTIATE_TEST_SUITE_P(
    AllFamiliesAndReactors, TwoThreadsStarvedTest,
    kFamiliesAndReactors, family_and_reactor_name);

}  // namespace
