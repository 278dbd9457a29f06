// Tests of shared-accept registrations (evt/reactor.h, io_mode::shared_accept):
// one listening socket in the reactors of two OS threads. With epoll one
// arrival wakes exactly one blocked reactor (EPOLLEXCLUSIVE), the first
// registered, and reregister() moves a reactor to the back; with poll(2), or
// epoll without the flag (the EINVAL fallback, forced), every blocked
// reactor wakes. Also: rearm(kWritable) leaves such a registration alone,
// reregister() reports a ready socket at once, withdraw() stops reports.
//
// No test sleeps: a thread is known to be idle in its reactor when
// /proc/self/task/<tid>/syscall shows it blocked in the wait, and every wait
// for another thread is bounded.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "evt/reactor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/blocked_in_wait.h"
#include "tests/testing/fd_leak_check.h"

namespace rkt::internal {
namespace {

using ::testing::IsEmpty;

constexpr auto kPatience = std::chrono::seconds(20);

// A listening Unix socket in the abstract namespace (no file to clean up).
int make_listener(sockaddr_un& addr, socklen_t& len) {
  // Parallel runs may share the abstract namespace and the pid (each
  // sandbox has its own pid namespace): a random number drawn once per run.
  static const uint64_t run = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }();
  static std::atomic<int> serial{0};
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  addr = sockaddr_un{};
  addr.sun_family = AF_UNIX;
  const std::string name = "rkt-shared-accept-" + std::to_string(getpid()) + "-" +
                           std::to_string(run) + "-" + std::to_string(serial++);
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, 64) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// A blocking client connected to the listener (queued in its backlog).
int connect_client(const sockaddr_un& addr, socklen_t len) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Accepts and closes every queued connection; returns how many.
int accept_all(int listen_fd) {
  int n = 0;
  for (;;) {
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return n;
    close(fd);
    ++n;
  }
}

// One OS thread with its own reactor, the listener added to it as a
// shared-accept source, counting the reports of the listener. Between two
// waits it runs the commands given to run().
class reactor_thread {
 public:
  reactor_thread(std::unique_ptr<reactor> (*make)(), int listen_fd)
      : src_(listen_fd, io_mode::shared_accept), thread_([this, make] { loop(make); }) {
    std::unique_lock<std::mutex> g(mu_);
    cv_.wait_for(g, kPatience, [this] { return started_; });
  }
  reactor_thread(const reactor_thread&) = delete;
  reactor_thread& operator=(const reactor_thread&) = delete;
  ~reactor_thread() { stop(); }

  bool ok() {
    std::lock_guard<std::mutex> g(mu_);
    return started_ && add_error_ == 0;
  }

  // Runs f(reactor, source) on the thread between two waits; false if it
  // did not run within kPatience.
  bool run(std::function<void(reactor&, io_source&)> f) {
    std::unique_lock<std::mutex> g(mu_);
    const uint64_t ticket = ++queued_;
    commands_.push_back(std::move(f));
    r_->wake();
    return cv_.wait_for(g, kPatience, [&] { return done_ >= ticket; });
  }

  // Waits (bounded) until at least n reports were seen.
  bool await_reports(int n) {
    std::unique_lock<std::mutex> g(mu_);
    return cv_.wait_for(g, kPatience, [&] { return reports_ >= n; });
  }
  int reports() {
    std::lock_guard<std::mutex> g(mu_);
    return reports_;
  }
  // True once the thread is blocked in its reactor's wait.
  bool await_idle() { return rkt::test::await_blocked_in_wait(tid_.load()); }

  // Ends the thread after its current wait; reports seen by that last wait
  // still count.
  void stop() {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!thread_.joinable()) return;
      stopping_ = true;
      if (r_ != nullptr) r_->wake();
    }
    thread_.join();
  }

 private:
  void loop(std::unique_ptr<reactor> (*make)()) {
    std::unique_ptr<reactor> r = make();
    {
      std::lock_guard<std::mutex> g(mu_);
      tid_ = rkt::test::os_thread_id();
      r_ = r.get();
      add_error_ = r == nullptr ? errno : r->add(&src_);
      started_ = true;
      if (r == nullptr || add_error_ != 0) stopping_ = true;
    }
    cv_.notify_all();
    for (;;) {
      {
        std::unique_lock<std::mutex> g(mu_);
        while (!commands_.empty()) {
          auto f = std::move(commands_.front());
          commands_.pop_front();
          g.unlock();
          f(*r, src_);
          g.lock();
          ++done_;
        }
        cv_.notify_all();
        if (stopping_) break;
      }
      r->wait(-1, [&](io_source* s, uint32_t) {
        if (s != &src_) return;
        std::lock_guard<std::mutex> g(mu_);
        ++reports_;
        cv_.notify_all();
      });
    }
    if (r != nullptr) r->remove(&src_);
    std::lock_guard<std::mutex> g(mu_);
    r_ = nullptr;
  }

  io_source src_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;                                   // guarded by mu_
  bool stopping_ = false;                                  // guarded by mu_
  int add_error_ = 0;                                      // guarded by mu_
  int reports_ = 0;                                        // guarded by mu_
  reactor* r_ = nullptr;                                   // guarded by mu_
  std::deque<std::function<void(reactor&, io_source&)>> commands_;  // guarded by mu_
  uint64_t queued_ = 0;                                    // guarded by mu_
  uint64_t done_ = 0;                                      // guarded by mu_
  std::atomic<pid_t> tid_{0};
  std::thread thread_;  // last: starts once the members above exist
};

// The mask of fd's registration in the epoll instance epfd, from
// /proc/self/fdinfo (proc(5): "tfd: <fd> events: <hex mask> ..."), without
// EPOLLERR and EPOLLHUP, which the kernel adds to every registration.
std::optional<uint32_t> registered_mask(int epfd, int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(epfd));
  std::string line;
  while (std::getline(in, line)) {
    int tfd;
    unsigned mask;
    if (std::sscanf(line.c_str(), "tfd: %d events: %x", &tfd, &mask) == 2 && tfd == fd) {
      return mask & ~static_cast<uint32_t>(EPOLLERR | EPOLLHUP);
    }
  }
  return std::nullopt;
}

// The epoll descriptors open now.
std::set<int> epoll_fds() {
  std::set<int> out;
  for (int fd = 0; fd < 4096; ++fd) {
    char link[64];
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = readlink(path.c_str(), link, sizeof link - 1);
    if (n <= 0) continue;
    link[n] = '\0';
    if (std::strcmp(link, "anon_inode:[eventpoll]") == 0) out.insert(fd);
  }
  return out;
}

// An epoll reactor made on this thread, and its epoll descriptor.
std::unique_ptr<reactor> make_epoll_with_fd(int& epfd) {
  const std::set<int> before = epoll_fds();
  std::unique_ptr<reactor> r = make_epoll_reactor();
  epfd = -1;
  for (int fd : epoll_fds()) {
    if (before.count(fd) == 0) epfd = fd;
  }
  return r;
}

// How many reports a non-blocking wait() gives for src.
int reports_now(reactor& r, io_source& src) {
  int n = 0;
  r.wait(0, [&](io_source* s, uint32_t) { n += s == &src; });
  return n;
}

struct epoll_backend {
  static constexpr const char* kName = "epoll";
  static std::unique_ptr<reactor> make() { return make_epoll_reactor(); }
  static constexpr bool kExclusive = true;
};

struct poll_backend {
  static constexpr const char* kName = "poll";
  static std::unique_ptr<reactor> make() { return make_poll_reactor(); }
  static constexpr bool kExclusive = false;
};

struct backend_name {
  template <typename Backend>
  static std::string GetName(int) {
    return Backend::kName;
  }
};

template <typename Backend>
class SharedAcceptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    listen_fd_ = make_listener(addr_, len_);
    ASSERT_GE(listen_fd_, 0) << std::strerror(errno);
  }
  void TearDown() override {
    for (int fd : clients_) close(fd);
    if (listen_fd_ >= 0) close(listen_fd_);
    EXPECT_THAT(fds_.leaked(), IsEmpty()) << fds_.describe(fds_.leaked());
  }
  void connect_one() {
    const int fd = connect_client(addr_, len_);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    clients_.push_back(fd);
  }

  rkt::test::fd_leak_check fds_;
  sockaddr_un addr_{};
  socklen_t len_ = 0;
  int listen_fd_ = -1;
  std::vector<int> clients_;
};

using backends = ::testing::Types<epoll_backend, poll_backend>;
TYPED_TEST_SUITE(SharedAcceptTest, backends, backend_name);

// Two reactors blocked on the listener; one connection. The connection is
// accepted only after both threads have ended, so a reactor that the
// arrival reached still reports it in its last wait: epoll reports it in
// exactly one reactor, poll in both.
TYPED_TEST(SharedAcceptTest, OneArrivalWakesOneEpollReactorAndEveryPollReactor) {
  reactor_thread a(&TypeParam::make, this->listen_fd_);
  reactor_thread b(&TypeParam::make, this->listen_fd_);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(a.await_idle() && b.await_idle());
  this->connect_one();
  const int expected = TypeParam::kExclusive && !epoll_exclusive_refused() ? 1 : 2;
  for (reactor_thread* t : {&a, &b}) {
    if (expected == 2) {
      ASSERT_TRUE(t->await_reports(1)) << "a reactor was not woken";
    }
  }
  // The first registered gets it: the kernel wakes exclusive entries in
  // the order they were added.
  if (expected == 1) {
    ASSERT_TRUE(a.await_reports(1)) << "the first registered was not woken";
  }
  a.stop();
  b.stop();
  EXPECT_EQ(a.reports() + b.reports(), expected);
  EXPECT_EQ(accept_all(this->listen_fd_), 1);
}

// reregister() puts a reactor after the others: the next arrival goes to
// the other one (epoll); poll wakes both either way.
TYPED_TEST(SharedAcceptTest, ReregisterMovesAReactorBehindTheOthers) {
  if (!TypeParam::kExclusive || epoll_exclusive_refused()) GTEST_SKIP() << "no exclusive wake-ups";
  reactor_thread a(&TypeParam::make, this->listen_fd_);
  reactor_thread b(&TypeParam::make, this->listen_fd_);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(a.await_idle() && b.await_idle());
  this->connect_one();
  ASSERT_TRUE(a.await_reports(1));
  EXPECT_EQ(accept_all(this->listen_fd_), 1);
  int rc = -1;
  ASSERT_TRUE(a.run([&](reactor& r, io_source& s) { rc = r.reregister(&s); }));
  EXPECT_EQ(rc, 0);
  ASSERT_TRUE(a.await_idle() && b.await_idle());
  this->connect_one();
  ASSERT_TRUE(b.await_reports(1));
  a.stop();
  b.stop();
  EXPECT_EQ(a.reports(), 1);
  EXPECT_EQ(b.reports(), 1);
  EXPECT_EQ(accept_all(this->listen_fd_), 1);
}

// A registration of a ready socket reports it at once; withdraw() stops the
// reports until the next reregister().
TYPED_TEST(SharedAcceptTest, ReregisterReportsAReadySocketAtOnceAndWithdrawSilences) {
  std::unique_ptr<reactor> r = TypeParam::make();
  ASSERT_NE(r, nullptr);
  io_source src(this->listen_fd_, io_mode::shared_accept);
  ASSERT_EQ(r->add(&src), 0);
  EXPECT_EQ(reports_now(*r, src), 0);
  this->connect_one();
  EXPECT_EQ(reports_now(*r, src), 1);
  EXPECT_EQ(reports_now(*r, src), 0);  // edge: reported once until consumed
  EXPECT_EQ(r->reregister(&src), 0);
  EXPECT_EQ(reports_now(*r, src), 1);  // still pending: reported again
  r->withdraw(&src);
  this->connect_one();
  EXPECT_EQ(reports_now(*r, src), 0);
  EXPECT_EQ(r->reregister(&src), 0);
  EXPECT_EQ(reports_now(*r, src), 1);
  EXPECT_EQ(accept_all(this->listen_fd_), 2);
  r->rearm(&src, kReadable);
  EXPECT_EQ(reports_now(*r, src), 0);
  r->remove(&src);
}

// The registration: EPOLLIN|EPOLLET|EPOLLEXCLUSIVE, no EPOLLRDHUP, and
// rearm(kWritable) does not change it (a normal source gains EPOLLOUT).
TEST(SharedAcceptEpoll, RegistrationMaskAndRearmWritableLeaveItAlone) {
  if (epoll_exclusive_refused()) GTEST_SKIP() << "EPOLLEXCLUSIVE refused";
  rkt::test::fd_leak_check fds;
  {
    sockaddr_un addr;
    socklen_t len;
    const int lfd = make_listener(addr, len);
    ASSERT_GE(lfd, 0);
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
    int epfd;
    std::unique_ptr<reactor> r = make_epoll_with_fd(epfd);
    ASSERT_NE(r, nullptr);
    ASSERT_GE(epfd, 0);
    io_source shared(lfd, io_mode::shared_accept);
    io_source normal(pair[0]);
    ASSERT_EQ(r->add(&shared), 0);
    ASSERT_EQ(r->add(&normal), 0);
    const uint32_t want = EPOLLIN | EPOLLET | EPOLLEXCLUSIVE;
    EXPECT_EQ(registered_mask(epfd, lfd), want);
    r->rearm(&shared, kReadable | kWritable);
    EXPECT_EQ(registered_mask(epfd, lfd), want);
    r->rearm(&normal, kWritable);
    EXPECT_EQ(registered_mask(epfd, pair[0]), EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    ASSERT_EQ(r->reregister(&shared), 0);
    EXPECT_EQ(registered_mask(epfd, lfd), want);
    ASSERT_EQ(r->reregister(&normal), 0);  // keeps EPOLLOUT
    EXPECT_EQ(registered_mask(epfd, pair[0]), EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    r->withdraw(&shared);
    EXPECT_EQ(registered_mask(epfd, lfd), std::nullopt);
    r->remove(&shared);
    r->remove(&normal);
    r.reset();
    close(pair[0]);
    close(pair[1]);
    close(lfd);
  }
  EXPECT_THAT(fds.leaked(), IsEmpty()) << fds.describe(fds.leaked());
}

// In a child process (the setting is for the whole process): once the
// kernel is taken to refuse EPOLLEXCLUSIVE, shared-accept sources are added
// without it, and one arrival wakes both reactors.
std::string fallback_scenario() {
  force_epoll_exclusive_refused();
  if (!epoll_exclusive_refused()) return "not forced";
  sockaddr_un addr;
  socklen_t len;
  const int lfd = make_listener(addr, len);
  if (lfd < 0) return "listener";
  int epfd;
  std::unique_ptr<reactor> r = make_epoll_with_fd(epfd);
  if (r == nullptr || epfd < 0) return "reactor";
  io_source src(lfd, io_mode::shared_accept);
  if (r->add(&src) != 0) return "add";
  if (registered_mask(epfd, lfd) != static_cast<uint32_t>(EPOLLIN | EPOLLET)) return "mask";
  r->remove(&src);
  int reports = 0;
  {
    reactor_thread a(&make_epoll_reactor, lfd);
    reactor_thread b(&make_epoll_reactor, lfd);
    if (!a.ok() || !b.ok()) return "threads";
    if (!a.await_idle() || !b.await_idle()) return "idle";
    const int client = connect_client(addr, len);
    if (client < 0) return "connect";
    if (!a.await_reports(1) || !b.await_reports(1)) return "not both woken";
    a.stop();
    b.stop();
    reports = a.reports() + b.reports();
    close(client);
  }
  close(lfd);
  return reports == 2 ? "" : "reports: " + std::to_string(reports);
}

TEST(SharedAcceptEpollDeathTest, WithoutTheFlagEveryReactorWakes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        const std::string failure = fallback_scenario();
        if (!failure.empty()) std::fprintf(stderr, "fallback: %s\n", failure.c_str());
        std::_Exit(failure.empty() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace rkt::internal
