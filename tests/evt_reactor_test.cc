// Tests of the reactor contract (evt/reactor.h) against every backend: a
// typed suite instantiated for make_epoll_reactor() and make_poll_reactor(),
// each test named after reactor::name() ("ReactorTest/epoll.…").
//
// The tests assert what the contract promises, not what one kernel interface
// happens to do. Every test checks that it leaves no descriptor open, and no
// test sleeps: a wait that a broken backend would never end is cut short by a
// watchdog, and the test fails instead of hanging.
#include "evt/reactor.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/blocked_in_wait.h"
#include "tests/testing/fd_leak_check.h"

namespace rkt::internal {
namespace {

using ::testing::IsEmpty;
using steady = std::chrono::steady_clock;

// How long a correct backend may take for anything these tests wait for.
// Only a broken backend gets near it, so it can be generous.
constexpr auto kPatience = std::chrono::seconds(10);

int64_t to_ns(steady::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

struct epoll_backend {
  static constexpr const char* kName = "epoll";
  static std::unique_ptr<reactor> make() { return make_epoll_reactor(); }
};

struct poll_backend {
  static constexpr const char* kName = "poll";
  static std::unique_ptr<reactor> make() { return make_poll_reactor(); }
};

// Names each instantiation after the backend's own reactor::name().
struct backend_name {
  template <typename Backend>
  static std::string GetName(int) {
    std::unique_ptr<reactor> r = Backend::make();
    return r != nullptr ? r->name() : std::string(Backend::kName) + "_unavailable";
  }
};

struct event {
  io_source* src;
  uint32_t events;
};

void write_byte(int fd) { EXPECT_EQ(write(fd, "x", 1), 1) << std::strerror(errno); }

// Reads until EAGAIN, which is what entitles a caller to rearm(kReadable).
void drain(int fd) {
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
  }
  EXPECT_EQ(n, -1);
  EXPECT_EQ(errno, EAGAIN);
}

// Writes until EAGAIN, which is what entitles a caller to rearm(kWritable).
void fill(int fd) {
  static const char buf[4096] = {};
  ssize_t n;
  while ((n = write(fd, buf, sizeof buf)) > 0) {
  }
  EXPECT_EQ(n, -1);
  EXPECT_EQ(errno, EAGAIN);
}

// Ends a wait() that a broken backend would never end. Unless disarmed
// within kPatience, it records that it fired and writes to `rescue_fd`, the
// write end of a pipe whose read end the reactor watches.
class watchdog {
 public:
  explicit watchdog(int rescue_fd)
      : thread_([this, rescue_fd, disarmed = disarmed_.get_future()] {
          if (disarmed.wait_for(kPatience) == std::future_status::ready) return;
          fired_.store(true);
          write_byte(rescue_fd);
        }) {}
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;
  ~watchdog() { disarm(); }

  void disarm() {
    if (!thread_.joinable()) return;
    disarmed_.set_value();
    thread_.join();
  }
  bool fired() const { return fired_.load(); }

 private:
  std::promise<void> disarmed_;
  std::atomic<bool> fired_{false};
  std::thread thread_;  // last: starts once the members above exist
};

// Raises the soft RLIMIT_NOFILE to the hard limit for its lifetime, if
// `needed` descriptors would not fit otherwise.
class nofile_limit {
 public:
  explicit nofile_limit(rlim_t needed) {
    getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit raised = saved_;
    if (raised.rlim_cur < needed) raised.rlim_cur = raised.rlim_max;
    ok_ = raised.rlim_cur >= needed && setrlimit(RLIMIT_NOFILE, &raised) == 0;
  }
  nofile_limit(const nofile_limit&) = delete;
  nofile_limit& operator=(const nofile_limit&) = delete;
  ~nofile_limit() { setrlimit(RLIMIT_NOFILE, &saved_); }

  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

template <typename Backend>
class ReactorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    reactor_ = Backend::make();
    ASSERT_NE(reactor_, nullptr) << std::strerror(errno);
  }

  // Removes every source before closing its descriptor, as reactor.h asks.
  void TearDown() override {
    if (reactor_ != nullptr) {
      for (const auto& src : sources_) reactor_->remove(src.get());
    }
    for (int fd : fds_) close(fd);
    fds_.clear();
    sources_.clear();
    reactor_.reset();
    const std::vector<int> leaked = fds_check_.leaked();
    EXPECT_THAT(leaked, IsEmpty()) << rkt::test::fd_leak_check::describe(leaked);
    EXPECT_THAT(fds_check_.closed(), IsEmpty());
  }

  // A pipe, non-blocking and close-on-exec; TearDown closes it.
  std::array<int, 2> make_pipe() {
    int p[2] = {-1, -1};
    EXPECT_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0) << std::strerror(errno);
    fds_.insert(fds_.end(), {p[0], p[1]});
    return {p[0], p[1]};
  }

  // A Unix stream socket pair, non-blocking and close-on-exec; TearDown
  // closes it.
  std::array<int, 2> make_socketpair() {
    int s[2] = {-1, -1};
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s), 0)
        << std::strerror(errno);
    fds_.insert(fds_.end(), {s[0], s[1]});
    return {s[0], s[1]};
  }

  // Closes one of the test's descriptors before TearDown does.
  void close_fd(int fd) {
    fds_.erase(std::find(fds_.begin(), fds_.end(), fd));
    EXPECT_EQ(close(fd), 0);
  }

  // A new source for fd, added to the reactor. It stays allocated until
  // TearDown, as the scheduler defers freeing removed sources.
  io_source* watch(int fd) {
    sources_.push_back(std::make_unique<io_source>(fd));
    io_source* src = sources_.back().get();
    EXPECT_EQ(reactor_->add(src), 0) << "fd " << fd;
    return src;
  }

  // A watchdog whose rescue pipe this reactor watches.
  std::unique_ptr<watchdog> arm_watchdog() {
    const std::array<int, 2> rescue = make_pipe();
    watch(rescue[0]);
    return std::make_unique<watchdog>(rescue[1]);
  }

  // One wait(); the events it delivered, in order.
  std::vector<event> wait_once(int64_t timeout_ns) {
    std::vector<event> out;
    const int n = reactor_->wait(
        timeout_ns, [&](io_source* src, uint32_t events) { out.push_back({src, events}); });
    EXPECT_GE(n, 0) << std::strerror(-n);
    if (n >= 0) {
      EXPECT_EQ(static_cast<size_t>(n), out.size());
    }
    return out;
  }

  // What one non-blocking wait() reports for src.
  uint32_t reported_now(io_source* src) {
    uint32_t seen = 0;
    for (const event& e : wait_once(0)) {
      if (e.src == src) seen |= e.events;
    }
    return seen;
  }

  // Waits until src has been reported with all of `bits` (or kPatience has
  // passed); returns everything reported for src meanwhile.
  uint32_t wait_for(io_source* src, uint32_t bits) {
    const steady::time_point deadline = steady::now() + kPatience;
    uint32_t seen = 0;
    while ((seen & bits) != bits) {
      const steady::duration left = deadline - steady::now();
      if (left <= steady::duration::zero()) break;
      for (const event& e : wait_once(to_ns(left))) {
        if (e.src == src) seen |= e.events;
      }
    }
    return seen;
  }

  // First, so that the reactor's own descriptors count as leaks if its
  // destructor does not close them.
  rkt::test::fd_leak_check fds_check_;
  std::unique_ptr<reactor> reactor_;
  std::vector<std::unique_ptr<io_source>> sources_;
  std::vector<int> fds_;
};

using backends = ::testing::Types<epoll_backend, poll_backend>;
TYPED_TEST_SUITE(ReactorTest, backends, backend_name);

TYPED_TEST(ReactorTest, NameIsTheBackends) {
  EXPECT_STREQ(this->reactor_->name(), TypeParam::kName);
}

// Edge semantics. The test rearms only after draining to EAGAIN, as the
// contract requires: with data left unread, epoll (EPOLLET) would not report
// again, while poll would.
TYPED_TEST(ReactorTest, PipeReadableReportedOnceUntilRearm) {
  const auto [r, w] = this->make_pipe();
  io_source* src = this->watch(r);
  EXPECT_EQ(this->reported_now(src), 0u) << "empty pipe";

  write_byte(w);
  EXPECT_TRUE(this->wait_for(src, kReadable) & kReadable);
  EXPECT_EQ(this->reported_now(src), 0u) << "reported again without rearm";
  EXPECT_EQ(this->reported_now(src), 0u) << "reported again without rearm";

  drain(r);
  this->reactor_->rearm(src, kReadable);
  EXPECT_EQ(this->reported_now(src) & kReadable, 0u) << "nothing to read";

  write_byte(w);
  EXPECT_TRUE(this->wait_for(src, kReadable) & kReadable);
}

// Writability is watched from the first rearm(kWritable) on (epoll may
// leave EPOLLOUT out of the registration until then; reactor.h).
TYPED_TEST(ReactorTest, PipeWriteEndWritableOnceAsked) {
  const auto [r, w] = this->make_pipe();
  io_source* src = this->watch(w);
  this->reactor_->rearm(src, kWritable);
  EXPECT_TRUE(this->wait_for(src, kWritable) & kWritable);
  EXPECT_EQ(this->reported_now(src), 0u) << "reported again without rearm";
}

// Until a writer asks, epoll does not report writability, so a peer that
// reads what was sent (a client reading each response) does not wake the
// reactor. poll(2) may report once at registration (reactor.h).
TYPED_TEST(ReactorTest, PeerReadsDoNotReportWritableUntilAsked) {
  if (std::string_view(TypeParam::kName) != "epoll") GTEST_SKIP() << "epoll only";
  const auto [a, b] = this->make_socketpair();
  io_source* src = this->watch(a);
  EXPECT_EQ(this->reported_now(src), 0u) << "nothing asked, nothing to read";
  for (int i = 0; i < 3; ++i) {
    write_byte(a);
    drain(b);
    EXPECT_EQ(this->reported_now(src), 0u) << "the peer's read woke the reactor";
  }
  this->reactor_->rearm(src, kWritable);
  EXPECT_TRUE(this->wait_for(src, kWritable) & kWritable);
}

TYPED_TEST(ReactorTest, SocketWritableAgainAfterRearmOnceSpaceFrees) {
  const auto [a, b] = this->make_socketpair();
  io_source* src = this->watch(a);
  this->reactor_->rearm(src, kWritable);
  ASSERT_TRUE(this->wait_for(src, kWritable) & kWritable);

  fill(a);
  this->reactor_->rearm(src, kWritable);
  EXPECT_EQ(this->reported_now(src) & kWritable, 0u) << "send buffer full";

  drain(b);
  EXPECT_TRUE(this->wait_for(src, kWritable) & kWritable);
}

TYPED_TEST(ReactorTest, SocketPeerCloseIsReadableAndHangup) {
  const auto [a, b] = this->make_socketpair();
  io_source* src = this->watch(a);
  this->reactor_->rearm(src, kWritable);
  ASSERT_TRUE(this->wait_for(src, kWritable) & kWritable);

  this->close_fd(b);
  EXPECT_EQ(this->wait_for(src, kReadable | kHangup) & (kReadable | kHangup),
            kReadable | kHangup);
  // A hangup is a lasting state; the edge is reported once, not each wait.
  EXPECT_EQ(this->reported_now(src), 0u) << "reported again without rearm";
}

TYPED_TEST(ReactorTest, SocketPeerShutdownWriteIsReadableAndHangup) {
  const auto [a, b] = this->make_socketpair();
  io_source* src = this->watch(a);
  this->reactor_->rearm(src, kWritable);
  ASSERT_TRUE(this->wait_for(src, kWritable) & kWritable);

  ASSERT_EQ(shutdown(b, SHUT_WR), 0);
  EXPECT_EQ(this->wait_for(src, kReadable | kHangup) & (kReadable | kHangup),
            kReadable | kHangup);
}

TYPED_TEST(ReactorTest, WakeBeforeWaitEndsTheNextWait) {
  this->reactor_->wake();
  this->reactor_->wake();
  {
    auto dog = this->arm_watchdog();
    EXPECT_THAT(this->wait_once(-1), IsEmpty());
    dog->disarm();
    EXPECT_FALSE(dog->fired()) << "wait(-1) blocked after wake()";
  }
  // The wake-ups above are consumed, and a later wake() still writes.
  EXPECT_THAT(this->wait_once(0), IsEmpty());
  this->reactor_->wake();
  {
    auto dog = this->arm_watchdog();
    EXPECT_THAT(this->wait_once(-1), IsEmpty());
    dog->disarm();
    EXPECT_FALSE(dog->fired()) << "second wait(-1) blocked after wake()";
  }
}

TYPED_TEST(ReactorTest, WakeFromAnotherThreadEndsABlockedWait) {
  auto dog = this->arm_watchdog();
  const pid_t owner = gettid();
  std::promise<void> about_to_wait;
  std::thread waker([this, owner, ready = about_to_wait.get_future()] {
    ASSERT_EQ(ready.wait_for(kPatience), std::future_status::ready);
    EXPECT_TRUE(rkt::test::await_blocked_in_wait(owner, kPatience)) << "could not see the owner block";
    this->reactor_->wake();
  });
  about_to_wait.set_value();
  const std::vector<event> events = this->wait_once(-1);
  dog->disarm();
  waker.join();
  EXPECT_FALSE(dog->fired()) << "wait(-1) did not return after wake()";
  EXPECT_THAT(events, IsEmpty());
}

// Every wake() either writes or finds a write the owner has not drained yet;
// the loop's exit condition shows that what a waker published before its
// wake() is visible when wait() returns.
TYPED_TEST(ReactorTest, WakesFromManyThreadsAreNotLost) {
  constexpr int kThreads = 4;
  constexpr int kWakesEach = 2000;
  auto dog = this->arm_watchdog();
  std::atomic<int> done{0};
  std::vector<std::thread> wakers;
  for (int i = 0; i < kThreads; ++i) {
    wakers.emplace_back([this, &done] {
      for (int j = 0; j < kWakesEach; ++j) this->reactor_->wake();
      done.fetch_add(1);
      this->reactor_->wake();
    });
  }
  while (done.load() < kThreads && !dog->fired()) this->wait_once(-1);
  dog->disarm();
  for (std::thread& t : wakers) t.join();
  EXPECT_FALSE(dog->fired()) << "a wake() was lost";
}

// The poll backend leaves a drained source out of its poll set; rearm() from
// another thread must wake the blocked wait so that the next one includes it.
TYPED_TEST(ReactorTest, RearmFromAnotherThreadWhileBlocked) {
  const auto [r, w] = this->make_pipe();
  io_source* src = this->watch(r);
  write_byte(w);
  ASSERT_TRUE(this->wait_for(src, kReadable) & kReadable);
  drain(r);

  auto dog = this->arm_watchdog();
  const pid_t owner = gettid();
  std::promise<void> about_to_wait;
  std::thread other([this, owner, src, w = w, ready = about_to_wait.get_future()] {
    ASSERT_EQ(ready.wait_for(kPatience), std::future_status::ready);
    EXPECT_TRUE(rkt::test::await_blocked_in_wait(owner, kPatience)) << "could not see the owner block";
    this->reactor_->rearm(src, kReadable);
    write_byte(w);
  });
  about_to_wait.set_value();
  uint32_t seen = 0;
  while (!(seen & kReadable) && !dog->fired()) {
    for (const event& e : this->wait_once(-1)) {
      if (e.src == src) seen |= e.events;
    }
  }
  dog->disarm();
  other.join();
  EXPECT_FALSE(dog->fired()) << "readable never reported after rearm()";
  EXPECT_TRUE(seen & kReadable);
}

TYPED_TEST(ReactorTest, TimeoutIsHonoured) {
  const auto [r, w] = this->make_pipe();
  this->watch(r);
  // 1.5 ms: a backend that rounds down to whole milliseconds returns early.
  for (const steady::duration timeout :
       {steady::duration(std::chrono::milliseconds(20)),
        steady::duration(std::chrono::microseconds(1500))}) {
    const steady::time_point start = steady::now();
    EXPECT_THAT(this->wait_once(to_ns(timeout)), IsEmpty());
    const steady::duration elapsed = steady::now() - start;
    EXPECT_GE(elapsed, timeout) << to_ns(elapsed) << " ns";
  }
}

TYPED_TEST(ReactorTest, RemoveInCallbackDropsTheRestOfTheBatch) {
  const auto [ar, aw] = this->make_pipe();
  const auto [br, bw] = this->make_pipe();
  io_source* a = this->watch(ar);
  io_source* b = this->watch(br);
  write_byte(aw);
  write_byte(bw);

  // Both are ready before wait() starts, so one batch holds both events.
  std::vector<io_source*> delivered;
  const int n = this->reactor_->wait(to_ns(kPatience), [&](io_source* src, uint32_t) {
    delivered.push_back(src);
    if (delivered.size() == 1) this->reactor_->remove(src == a ? b : a);
  });
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(n, 1);
  io_source* removed = delivered[0] == a ? b : a;
  for (int i = 0; i < 3; ++i) {
    for (const event& e : this->wait_once(0)) EXPECT_NE(e.src, removed);
  }
}

TYPED_TEST(ReactorTest, FdNumberReusedAfterRemoveAndClose) {
  const auto [old_r, old_w] = this->make_pipe();
  io_source* old_src = this->watch(old_r);
  write_byte(old_w);
  ASSERT_TRUE(this->wait_for(old_src, kReadable) & kReadable);
  write_byte(old_w);  // the old registration has something to report again

  this->reactor_->remove(old_src);
  this->close_fd(old_r);
  this->close_fd(old_w);
  const auto [new_r, new_w] = this->make_pipe();
  ASSERT_EQ(new_r, old_r) << "open(2) hands out the lowest free number";
  io_source* new_src = this->watch(new_r);

  for (const event& e : this->wait_once(0)) {
    EXPECT_NE(e.src, old_src);
    EXPECT_FALSE(e.src == new_src && (e.events & kReadable)) << "new pipe is empty";
  }
  write_byte(new_w);
  const steady::time_point deadline = steady::now() + kPatience;
  uint32_t seen = 0;
  while (!(seen & kReadable) && steady::now() < deadline) {
    for (const event& e : this->wait_once(to_ns(deadline - steady::now()))) {
      EXPECT_NE(e.src, old_src);
      if (e.src == new_src) seen |= e.events;
    }
  }
  EXPECT_TRUE(seen & kReadable);
}

// The same, inside one batch: the callback removes and closes the other
// source and a new pipe takes its number before that source's event is
// dispatched.
TYPED_TEST(ReactorTest, FdNumberReusedInsideTheBatch) {
  const auto [ar, aw] = this->make_pipe();
  const auto [br, bw] = this->make_pipe();
  io_source* a = this->watch(ar);
  io_source* b = this->watch(br);
  write_byte(aw);
  write_byte(bw);

  io_source* old_src = nullptr;
  io_source* new_src = nullptr;
  int new_w = -1;
  std::vector<io_source*> delivered;
  this->reactor_->wait(to_ns(kPatience), [&](io_source* src, uint32_t) {
    delivered.push_back(src);
    if (old_src != nullptr) return;
    old_src = src == a ? b : a;
    this->reactor_->remove(old_src);
    this->close_fd(old_src->fd);
    const auto [r, w] = this->make_pipe();
    EXPECT_EQ(r, old_src->fd) << "open(2) hands out the lowest free number";
    new_src = this->watch(r);
    new_w = w;
  });
  ASSERT_NE(new_src, nullptr);
  EXPECT_THAT(delivered, ::testing::Not(::testing::Contains(old_src)));
  EXPECT_THAT(delivered, ::testing::Not(::testing::Contains(new_src))) << "new pipe is empty";

  EXPECT_FALSE(this->reported_now(new_src) & kReadable) << "new pipe is empty";
  write_byte(new_w);
  EXPECT_TRUE(this->wait_for(new_src, kReadable) & kReadable);
}

TYPED_TEST(ReactorTest, AddRejectsABadDescriptor) {
  io_source negative(-1);
  EXPECT_EQ(this->reactor_->add(&negative), EBADF);
  this->reactor_->remove(&negative);

  const auto [r, w] = this->make_pipe();
  this->close_fd(r);
  io_source closed(r);
  EXPECT_EQ(this->reactor_->add(&closed), EBADF);
  this->reactor_->remove(&closed);
}

TYPED_TEST(ReactorTest, RemoveIsIdempotentAndToleratesAClosedFd) {
  const auto [r, w] = this->make_pipe();
  io_source* src = this->watch(r);
  write_byte(w);
  this->close_fd(r);  // out of order, but must not crash
  this->reactor_->remove(src);
  this->reactor_->remove(src);
  for (const event& e : this->wait_once(0)) EXPECT_NE(e.src, src);
}

TYPED_TEST(ReactorTest, ManySourcesAllReported) {
  constexpr int kPairs = 1000;
  const nofile_limit limit(rkt::test::fd_leak_check::snapshot().size() + 2 * kPairs + 64);
  ASSERT_TRUE(limit.ok()) << "cannot raise RLIMIT_NOFILE for " << kPairs << " socket pairs";

  std::vector<io_source*> srcs;
  std::vector<int> peers;
  for (int i = 0; i < kPairs; ++i) {
    const auto [a, b] = this->make_socketpair();
    ASSERT_FALSE(this->HasFailure());
    srcs.push_back(this->watch(a));
    this->reactor_->rearm(srcs.back(), kWritable);
    peers.push_back(b);
  }

  // Collects, until all kPairs are in or kPatience passes, the sources
  // reported with `bit`.
  auto collect = [&](uint32_t bit) {
    std::set<io_source*> seen;
    const steady::time_point deadline = steady::now() + kPatience;
    while (seen.size() < srcs.size() && steady::now() < deadline) {
      for (const event& e : this->wait_once(to_ns(deadline - steady::now()))) {
        if (e.events & bit) seen.insert(e.src);
      }
    }
    return seen;
  };
  EXPECT_EQ(collect(kWritable), std::set<io_source*>(srcs.begin(), srcs.end()));
  for (int b : peers) write_byte(b);
  EXPECT_EQ(collect(kReadable), std::set<io_source*>(srcs.begin(), srcs.end()));
}

TEST(DefaultReactorTest, EnvironmentChoosesTheBackend) {
  const rkt::test::fd_leak_check fds_check;
  const char* saved = std::getenv("RKT_REACTOR");
  const std::optional<std::string> restore =
      saved != nullptr ? std::optional<std::string>(saved) : std::nullopt;

  ASSERT_EQ(setenv("RKT_REACTOR", "poll", 1), 0);
  std::unique_ptr<reactor> r = make_default_reactor();
  ASSERT_NE(r, nullptr);
  EXPECT_STREQ(r->name(), "poll");

  ASSERT_EQ(setenv("RKT_REACTOR", "epoll", 1), 0);
  r = make_default_reactor();
  ASSERT_NE(r, nullptr);
  EXPECT_STREQ(r->name(), "epoll");

  ASSERT_EQ(unsetenv("RKT_REACTOR"), 0);
  r = make_default_reactor();
  EXPECT_NE(r, nullptr);
  r.reset();

  if (restore) setenv("RKT_REACTOR", restore->c_str(), 1);
  EXPECT_THAT(fds_check.leaked(), IsEmpty());
}

}  // namespace
}  // namespace rkt::internal
