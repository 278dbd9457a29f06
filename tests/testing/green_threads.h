// Helpers for tests that run green threads and OS threads: bounded waits for
// a thread's death, OS threads whose failures become test failures, a
// thread parked at a known point, and a fixture that checks that a test
// leaves no green thread alive and no descriptor open.
#ifndef RKT_TESTS_TESTING_GREEN_THREADS_H_
#define RKT_TESTS_TESTING_GREEN_THREADS_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "absl/time/time.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "tests/testing/fd_leak_check.h"
#include "tests/testing/sync_within.h"

namespace rkt::test {

// Waits, bounded, for a green thread to finish.
inline void await(const rkt::thread& t) { sync_within(t.dead_evt()); }

// Whether `e` is ready now (a poll).
inline bool ready_now(const rkt::evt<void>& e) {
  return rkt::sync_timeout(absl::ZeroDuration(), e);
}

// Runs `body` on a new OS thread. Its own waits are bounded, so the join is
// too; a timeout inside it becomes a test failure, not std::terminate.
inline std::jthread start_os_thread(std::function<void()> body) {
  return std::jthread([body = std::move(body)] {
    try {
      body();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "OS thread: " << e.what();
    }
  });
}

// Spawns a green thread that signals `ready` and then runs `block`; when
// sync_within(ready) returns on the same OS thread, the new thread has
// reached the sync inside `block` and is parked there (threads switch only
// at syncs).
inline rkt::thread spawn_parked(const rkt::semaphore& ready, std::function<void()> block,
                                std::string name = "") {
  rkt::thread t(
      [ready, block = std::move(block)] {
        ready.post();
        block();
      },
      rkt::thread_options{.name = std::move(name)});
  sync_within(ready);
  return t;
}

// A green thread that is killed at scope exit if it is still running, so a
// failing test does not leave it behind for the next one.
class scoped_thread {
 public:
  template <class F>
  explicit scoped_thread(F&& fn) : t_(std::forward<F>(fn)) {}
  scoped_thread(const scoped_thread&) = delete;
  scoped_thread& operator=(const scoped_thread&) = delete;
  ~scoped_thread() { t_.kill(); }

  // Waits, bounded, for the thread to finish.
  void join() const { sync_within(t_.dead_evt()); }
  bool running() const { return t_.running(); }
  const rkt::thread& get() const { return t_; }

 private:
  rkt::thread t_;
};

// Counts its destructions: proves that a stack was unwound.
struct unwind_counter {
  explicit unwind_counter(std::atomic<int>& n) : count(n) {}
  unwind_counter(const unwind_counter&) = delete;
  unwind_counter& operator=(const unwind_counter&) = delete;
  ~unwind_counter() { count.fetch_add(1); }
  std::atomic<int>& count;
};

// Checks that each test leaves no green thread of this OS thread alive and
// no descriptor open. The scheduler's own descriptors are created before the
// snapshot (by the first yield).
class clean_test : public ::testing::Test {
 protected:
  void SetUp() override {
    rkt::yield();
    fds_.emplace();
  }
  void TearDown() override {
    EXPECT_EQ(rkt::live_thread_count(), 0u)
        << "the test left a green thread alive";
    EXPECT_THAT(fds_->leaked(), ::testing::IsEmpty())
        << fd_leak_check::describe(fds_->leaked());
  }

 private:
  std::optional<fd_leak_check> fds_;
};

}  // namespace rkt::test

#endif  // RKT_TESTS_TESTING_GREEN_THREADS_H_
