// 100,000 idle Unix-socket connections in one process (issue 12): a rkt
// server (a listener, an accept loop, one green thread per connection that
// echoes what it reads) takes 100,000 connections from raw client sockets of
// the same process, echoes one message on each, and holds them while every
// connection thread is parked in a read. The test measures the resident
// memory each idle connection adds (from /proc/self/statm, against a
// baseline taken with the server already listening) and asserts at most
// 8 KiB; then ONE custodian shutdown closes the listener, the 100,000
// server ends and their threads, and the test checks that every client
// sees EOF, that no descriptor leaked and that no socket file is left.
//
// It runs with the default vm.max_map_count (65530): the green threads'
// stacks are guarded with guard pages, which do not split their mapping
// (evt/thread.h, thread_options). It needs two descriptors per connection
// (the clients are in this process): the 100,000 case raises RLIMIT_NOFILE
// (root may, up to fs.nr_open, given CAP_SYS_RESOURCE) and skips, saying
// so, when that is refused, as in a container whose hard limit is lower; a
// second case then runs as many connections as the hard limit allows, with
// the same checks.
//
// Under ASan it runs 10,000 connections, under TSan 500 (TSan sets up
// about 900 KiB of state for each fiber, in some 20 ms), and neither makes
// the memory assertion: the sanitizers' shadow and bookkeeping memory is
// theirs, not rkt's, and their stacks are 1 MiB. The plain and poll(2) builds run the
// full 100,000. RKT_IDLE_CONNECTIONS overrides the count (for measuring);
// RKT_IDLE_SMAPS=<file> saves /proc/self/smaps while the connections idle.
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "custodian/custodian.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "gtest/gtest.h"
#include "ports/port.h"
#include "socket/unix_socket.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/idle_echo.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/resident_memory.h"
#include "tests/testing/sync_within.h"

namespace {

using ::rkt::test::sync_within;

#if defined(RKT_TSAN)
// TSan's state for each fiber takes about 900 KiB and 20 ms to set up.
constexpr std::size_t kDefaultConnections = 500;
constexpr bool kAssertMemory = false;
#elif defined(RKT_ASAN)
constexpr std::size_t kDefaultConnections = 10'000;
constexpr bool kAssertMemory = false;
#else
constexpr std::size_t kDefaultConnections = 100'000;
constexpr bool kAssertMemory = true;
#endif
constexpr std::size_t kMaxBytesPerIdleConnection = 8 * 1024;
// Connections opened before the test waits for their echoes: well under the
// listen backlog, so that a non-blocking connect never finds it full.
constexpr std::size_t kBatch = std::min<std::size_t>(1000, kDefaultConnections);
constexpr int kBacklog = 4096;
constexpr std::string_view kMessage = "ping";

std::size_t connection_count() {
  const char* v = std::getenv("RKT_IDLE_CONNECTIONS");
  if (v == nullptr) return kDefaultConnections;
  return static_cast<std::size_t>(std::strtoull(v, nullptr, 10));
}

// A non-blocking client socket connected to `path` (a Unix-socket connect
// completes at once while the backlog has room).
int connect_client(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    close(fd);
    throw std::system_error(e, std::generic_category(), "connect " + path);
  }
  return fd;
}

// Descriptors the test needs beside two per connection.
constexpr rlim_t kSpareDescriptors = 1024;

// Raises RLIMIT_NOFILE to at least `want`; false, saying why, when it
// cannot.
bool raise_fd_limit(rlim_t want, std::string* why) {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur >= want) return true;
  rlimit raised{want, lim.rlim_max >= want ? lim.rlim_max : want};
  if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    *why = "RLIMIT_NOFILE cannot be raised from " + std::to_string(lim.rlim_cur) + " (hard " +
           std::to_string(lim.rlim_max) + ") to " + std::to_string(want) + ": " +
           std::strerror(errno) +
           " (raising the hard limit takes CAP_SYS_RESOURCE; root may go up to fs.nr_open)";
    return false;
  }
  return true;
}

// Restores RLIMIT_NOFILE at scope exit.
class fd_limit_restorer {
 public:
  fd_limit_restorer() { getrlimit(RLIMIT_NOFILE, &saved_); }
  ~fd_limit_restorer() { setrlimit(RLIMIT_NOFILE, &saved_); }
  fd_limit_restorer(const fd_limit_restorer&) = delete;
  fd_limit_restorer& operator=(const fd_limit_restorer&) = delete;

 private:
  rlimit saved_{};
};

void run_idle_connections(std::size_t n);

class UnixSocketIdleTest : public rkt::test::clean_test {
 protected:
  fd_limit_restorer limit_;
};

// The figure: 100,000 (fewer under the sanitizers, see above).
TEST_F(UnixSocketIdleTest, HundredThousandIdleConnectionsFitAndOneShutdownClosesThemAll) {
  const std::size_t n = connection_count();
  std::string why;
  if (!raise_fd_limit(static_cast<rlim_t>(2 * n) + kSpareDescriptors, &why)) {
    GTEST_SKIP() << n << " connections need " << 2 * n + kSpareDescriptors
                 << " descriptors: " << why;
  }
  run_idle_connections(n);
}

// As many as the hard descriptor limit allows (at most the above): where
// the limit cannot be raised, the same checks at a smaller count.
TEST_F(UnixSocketIdleTest, AsManyIdleConnectionsAsTheDescriptorLimitAllows) {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  const rlim_t hard = lim.rlim_max;
  const std::size_t fits = hard > 2 * kSpareDescriptors
                               ? static_cast<std::size_t>((hard - kSpareDescriptors) / 2)
                               : 0;
  const std::size_t n = std::min(connection_count(), fits);
  if (n < kBatch) GTEST_SKIP() << "the hard descriptor limit " << hard << " is too low";
  std::string why;
  ASSERT_TRUE(raise_fd_limit(static_cast<rlim_t>(2 * n) + kSpareDescriptors, &why)) << why;
  run_idle_connections(n);
}

// What a run holds; released also when the run stops early (a failed
// assertion, a bounded wait that timed out).
struct idle_run {
  rkt::custodian server = rkt::make_custodian();
  std::vector<int> clients;
  ~idle_run() {
    server.shutdown_all();
    for (int fd : clients) close(fd);
  }
};

void run_idle_connections(std::size_t n) {
  rkt::test::temp_dir dir("rkt_idle");
  const std::string path = dir.file("s");
  idle_run run;
  run.clients.reserve(n);
  std::vector<int>& clients = run.clients;
  rkt::semaphore echoed;
  {
    rkt::custodian_scope in(run.server);
    const rkt::unix_socket_listener listener = rkt::unix_socket_listen(path, kBacklog);
    // The accept loop; each connection's thread echoes until EOF.
    rkt::thread acceptor([listener, &echoed] {
      for (;;) {
        auto [in, out] = rkt::unix_socket_accept(listener);
        rkt::thread([in = std::move(in), out = std::move(out), &echoed] {
          rkt::test::echo_until_eof(in, out, echoed);
        });
      }
    });
  }
  // The acceptor parks in its accept; the baseline includes it, the
  // listener and the clients' vector.
  sync_within(rkt::system_idle_evt());
  const std::size_t baseline = rkt::test::resident_bytes();

  // Open the connections a batch at a time; each batch's messages are
  // echoed before the next batch connects.
  for (std::size_t begin = 0; begin < n; begin += kBatch) {
    const std::size_t end = std::min(n, begin + kBatch);
    for (std::size_t i = begin; i < end; ++i) {
      const int fd = connect_client(path);
      clients.push_back(fd);
      ASSERT_EQ(write(fd, kMessage.data(), kMessage.size()),
                static_cast<ssize_t>(kMessage.size()))
          << std::strerror(errno);
    }
    for (std::size_t i = begin; i < end; ++i) sync_within(echoed);
    for (std::size_t i = begin; i < end; ++i) {
      char got[16];
      ASSERT_EQ(read(clients[i], got, sizeof got), static_cast<ssize_t>(kMessage.size()))
          << "connection " << i << ": " << std::strerror(errno);
      ASSERT_EQ(std::string_view(got, kMessage.size()), kMessage);
    }
  }
  // Every connection thread is parked in its read again.
  sync_within(rkt::system_idle_evt());
  EXPECT_EQ(rkt::live_thread_count(), n + 1);
  const std::size_t idle = rkt::test::resident_bytes();
  if (const char* dump = std::getenv("RKT_IDLE_SMAPS")) {
    std::ofstream(dump) << std::ifstream("/proc/self/smaps").rdbuf();
  }
  const double per_connection = rkt::test::resident_bytes_each(baseline, idle, n);
  std::printf("%zu idle connections (%s guards, %s reactor): %.0f bytes resident each\n", n,
              rkt::stack_guard_name(), rkt::reactor_name(), per_connection);
  ::testing::Test::RecordProperty("bytes_per_idle_connection",
                                  std::to_string(static_cast<long>(per_connection)));
  if (kAssertMemory) {
    EXPECT_LE(per_connection, static_cast<double>(kMaxBytesPerIdleConnection));
  }

  // One shutdown: the listener, every server end, every thread.
  run.server.shutdown_all();
  EXPECT_EQ(rkt::live_thread_count(), 0u);
  for (std::size_t i = 0; i < n; ++i) {
    char got[16];
    EXPECT_EQ(read(clients[i], got, sizeof got), 0) << "connection " << i << " is not at EOF";
    close(clients[i]);
  }
  clients.clear();
  // The listener's close leaves its socket file, as Racket's does.
  std::filesystem::remove(path);
  EXPECT_EQ(dir.entries(), 0u);
}

}  // namespace
