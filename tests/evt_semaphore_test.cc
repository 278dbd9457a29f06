// Tests of rkt::semaphore (evt/semaphore.h) against Racket 8.7's semaphores
// (reference 11.2.3): post/wait/try_wait, the initial count, the semaphore
// as an event that decrements only when it commits, peek_evt, FIFO service
// of waiters, the maximum count (exn_fail), and posts that cross OS
// threads.
//
// Blocking calls run on green threads; the test body waits for them with a
// bound (sync_within), so a bug fails the test instead of hanging it.
#include "evt/semaphore.h"

#include <atomic>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "evt/evt.h"
#include "evt/exn.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fd_leak_check.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/sync_within.h"

namespace {

using ::rkt::test::sync_within;
using ::rkt::test::await;
using ::rkt::test::start_os_thread;
using ::rkt::test::spawn_parked;
using ::rkt::test::ready_now;
using ::testing::IsEmpty;

// Takes every unit the semaphore has, without blocking.
int drain(const rkt::semaphore& s) {
  int n = 0;
  while (s.try_wait()) ++n;
  return n;
}

TEST(SemaphoreTest, DefaultCountIsZero) {
  rkt::semaphore s;
  EXPECT_FALSE(s.try_wait());
}

TEST(SemaphoreTest, InitialCountIsAvailableAtOnce) {
  rkt::semaphore s(3);
  EXPECT_EQ(drain(s), 3);
}

TEST(SemaphoreTest, EachPostAddsOneUnit) {
  rkt::semaphore s;
  s.post();
  s.post();
  EXPECT_TRUE(s.try_wait());
  EXPECT_TRUE(s.try_wait());
  EXPECT_FALSE(s.try_wait());
}

TEST(SemaphoreTest, WaitParksUntilAPost) {
  rkt::semaphore s;
  rkt::semaphore ready;
  bool woke = false;
  rkt::thread waiter = spawn_parked(ready, [&] {
    s.wait();
    woke = true;
  });
  rkt::yield();
  EXPECT_FALSE(woke);
  s.post();
  await(waiter);
  EXPECT_TRUE(woke);
  // The post went to the waiter, not to the count.
  EXPECT_FALSE(s.try_wait());
}

TEST(SemaphoreTest, SemaphoreIsAnEventThatDecrementsWhenItCommits) {
  rkt::semaphore s(2);
  sync_within(s);
  EXPECT_TRUE(ready_now(s));
  EXPECT_FALSE(ready_now(s));
  EXPECT_FALSE(s.try_wait());
}

TEST(SemaphoreTest, PeekEvtIsReadyWhileTheCountIsPositiveAndDoesNotDecrement) {
  rkt::semaphore s;
  rkt::evt<void> peek = s.peek_evt();
  EXPECT_FALSE(ready_now(peek));
  s.post();
  EXPECT_TRUE(ready_now(peek));
  EXPECT_TRUE(ready_now(peek));
  EXPECT_TRUE(s.try_wait());
  EXPECT_FALSE(ready_now(peek));
}

TEST(SemaphoreTest, PeekEvtWakesAParkedThreadAndLeavesTheUnit) {
  rkt::semaphore s;
  rkt::semaphore ready;
  rkt::thread peeker = spawn_parked(ready, [&] { rkt::sync(s.peek_evt()); });
  s.post();
  await(peeker);
  EXPECT_EQ(drain(s), 1);
}

// A post while both a waiter and a peeker are parked goes to the waiter;
// the peeker stays parked, since the count never becomes positive.
TEST(SemaphoreTest, PostToAWaiterDoesNotWakePeekers) {
  rkt::semaphore s;
  rkt::semaphore ready;
  rkt::thread peeker = spawn_parked(ready, [&] { rkt::sync(s.peek_evt()); });
  rkt::thread waiter = spawn_parked(ready, [&] { s.wait(); });
  s.post();
  await(waiter);
  EXPECT_TRUE(peeker.running());
  s.post();
  await(peeker);
  EXPECT_EQ(drain(s), 1);
}

TEST(SemaphoreTest, WaitersAreServedInArrivalOrder) {
  rkt::semaphore s;
  rkt::semaphore ready;
  rkt::thread a = spawn_parked(ready, [&] { s.wait(); });
  rkt::thread b = spawn_parked(ready, [&] { s.wait(); });
  rkt::thread c = spawn_parked(ready, [&] { s.wait(); });
  // Each post serves the oldest waiter only.
  s.post();
  await(a);
  EXPECT_TRUE(b.running());
  EXPECT_TRUE(c.running());
  s.post();
  await(b);
  EXPECT_TRUE(c.running());
  s.post();
  await(c);
  EXPECT_FALSE(s.try_wait());
}

// Posting in a burst wakes the waiters in arrival order too.
TEST(SemaphoreTest, BurstOfPostsWakesWaitersInArrivalOrder) {
  rkt::semaphore s;
  rkt::semaphore ready;
  std::string order;
  std::vector<rkt::thread> ts;
  for (char name : std::string("abcde")) {
    ts.push_back(spawn_parked(ready, [&, name] {
      s.wait();
      order += name;
    }));
  }
  for (int i = 0; i < 5; ++i) s.post();
  for (const rkt::thread& t : ts) await(t);
  EXPECT_EQ(order, "abcde");
}

// The semaphore's waiter in a choice that commits to something else must
// leave the semaphore: a later post counts instead of vanishing.
TEST(SemaphoreTest, ParkedChoiceThatLosesDoesNotTakeAUnit) {
  rkt::semaphore s;
  rkt::semaphore other;
  rkt::semaphore ready;
  int chosen = 0;
  rkt::thread t = spawn_parked(ready, [&] {
    chosen = rkt::sync(rkt::wrap_evt(s, [] { return 1; }), rkt::wrap_evt(other, [] { return 2; }));
  });
  other.post();
  await(t);
  EXPECT_EQ(chosen, 2);
  s.post();
  EXPECT_EQ(drain(s), 1);
}

// When both branches are ready, the choice commits to one of them at
// random; the semaphore is decremented exactly when it was chosen.
TEST(SemaphoreTest, ReadyChoiceDecrementsOnlyWhenTheSemaphoreIsChosen) {
  constexpr int kRounds = 400;
  rkt::semaphore s(kRounds);
  int semaphore_won = 0;
  for (int i = 0; i < kRounds; ++i) {
    semaphore_won += sync_within(
        rkt::choice_evt(rkt::wrap_evt(s, [] { return 1; }), rkt::always_evt(0)));
  }
  EXPECT_GT(semaphore_won, 0);
  EXPECT_LT(semaphore_won, kRounds);
  EXPECT_EQ(drain(s), kRounds - semaphore_won);
}

TEST(SemaphoreTest, ChoiceOfTwoSemaphoresTakesOneUnit) {
  rkt::semaphore a(1);
  rkt::semaphore b(1);
  sync_within(rkt::choice_evt(a, b));
  EXPECT_EQ(drain(a) + drain(b), 1);
}

// A waiter killed while parked must not swallow the next post.
TEST(SemaphoreTest, KilledWaiterDoesNotConsumeAPost) {
  rkt::semaphore s;
  rkt::semaphore ready;
  rkt::thread waiter = spawn_parked(ready, [&] { s.wait(); });
  rkt::thread killer([&] { waiter.kill(); });
  await(killer);
  EXPECT_TRUE(waiter.dead());
  s.post();
  EXPECT_EQ(drain(s), 1);
}

// Kill-safety: waiters are killed while parked in a wait that another OS
// thread's post may be committing at that moment. A wait that committed
// first is delivered and the kill lands at the waiter's next switch point,
// after it has counted the unit; otherwise the unit stays in the semaphore.
TEST(SemaphoreTest, KillingWaitersNeverLosesOrDuplicatesAUnit) {
  constexpr int kPosts = 1000;
  rkt::semaphore s;
  int taken = 0;
  rkt::semaphore took_main;    // posted by a waiter after each unit
  rkt::semaphore took_worker;  // the same, to pace the poster
  rkt::semaphore killed;       // posted after each kill, to pace the poster
  rkt::semaphore worker_done;
  std::jthread worker = start_os_thread([&] {
    for (int p = 0; p < kPosts; ++p) {
      s.post();
      sync_within(rkt::choice_evt(took_worker, killed));
    }
    worker_done.post();
  });
  const rkt::evt<void> done = worker_done.peek_evt();
  for (int round = 0; !ready_now(done); ++round) {
    rkt::thread waiter([&] {
      for (;;) {
        s.wait();
        ++taken;
        took_main.post();
        took_worker.post();
      }
    });
    // Once it has taken a unit or two, the waiter is parked in its next
    // wait (threads switch only at syncs); kill it there.
    for (int i = 0; i < 1 + round % 2; ++i) sync_within(rkt::choice_evt(took_main, done));
    rkt::thread killer([waiter] { waiter.kill(); });
    await(killer);
    ASSERT_TRUE(waiter.dead());
    killed.post();
  }
  worker.join();
  EXPECT_EQ(taken + drain(s), kPosts);
}

TEST(SemaphoreTest, InitialCountAtTheMaximumIsAccepted) {
  rkt::semaphore s(rkt::semaphore::kMaxCount);
  EXPECT_TRUE(s.try_wait());
}

// Racket: make-semaphore raises exn:fail when init is above the maximum.
TEST(SemaphoreTest, InitialCountAboveTheMaximumRaisesExnFail) {
  EXPECT_THROW(rkt::semaphore(rkt::semaphore::kMaxCount + 1), rkt::exn_fail);
}

// Racket: semaphore-post raises exn:fail at the maximum, and the count
// stays where it was.
TEST(SemaphoreTest, PostAtTheMaximumRaisesExnFailAndKeepsTheCount) {
  rkt::semaphore s(rkt::semaphore::kMaxCount);
  EXPECT_THROW(s.post(), rkt::exn_fail);
  ASSERT_TRUE(s.try_wait());
  s.post();  // back at the maximum: fine
  EXPECT_THROW(s.post(), rkt::exn_fail);
}

// Racket guarantees at least 10000.
TEST(SemaphoreTest, MaximumIsAtLeastRacketsMinimum) {
  EXPECT_GE(rkt::semaphore::kMaxCount, 10000u);
}

TEST(SemaphoreTest, PostFromAnotherOsThreadWakesAParkedGreenThread) {
  rkt::yield();
  rkt::test::fd_leak_check fds;
  rkt::semaphore s;
  rkt::semaphore ready;
  rkt::thread waiter = spawn_parked(ready, [&] { s.wait(); });
  std::jthread poster = start_os_thread([&] { s.post(); });
  await(waiter);
  poster.join();
  EXPECT_FALSE(s.try_wait());
  EXPECT_THAT(fds.leaked(), IsEmpty()) << fds.describe(fds.leaked());
}

TEST(SemaphoreTest, PostFromMainWakesAGreenThreadParkedOnAnotherOsThread) {
  rkt::yield();
  rkt::test::fd_leak_check fds;
  rkt::semaphore s;
  rkt::semaphore parked;  // the worker's green thread is about to wait
  rkt::semaphore woke;
  std::jthread worker = start_os_thread([&] {
    rkt::thread waiter([&] {
      parked.post();
      s.wait();
      woke.post();
    });
    await(waiter);
  });
  sync_within(parked);
  s.post();
  sync_within(woke);
  worker.join();
  EXPECT_FALSE(s.try_wait());
  EXPECT_THAT(fds.leaked(), IsEmpty()) << fds.describe(fds.leaked());
}

// Waiters on two OS threads, posters on both: every post serves exactly one
// wait, so all waiters finish and no unit is left over or lost.
TEST(SemaphoreTest, EveryPostServesExactlyOneWaitAcrossOsThreads) {
  constexpr int kWaitersPerSide = 20;
  constexpr int kWaitsPerWaiter = 25;
  constexpr int kPostsPerSide = kWaitersPerSide * kWaitsPerWaiter;
  rkt::semaphore s;
  std::atomic<int> waits{0};
  auto run_side = [&] {
    std::vector<rkt::thread> ts;
    for (int w = 0; w < kWaitersPerSide; ++w) {
      ts.emplace_back([&] {
        for (int k = 0; k < kWaitsPerWaiter; ++k) {
          // Alternate the plain wait with the semaphore as a choice branch.
          if (k % 2 == 0) {
            s.wait();
          } else {
            rkt::sync(s, rkt::never_evt());
          }
          waits.fetch_add(1);
        }
      });
    }
    ts.emplace_back([&] {
      for (int p = 0; p < kPostsPerSide; ++p) {
        s.post();
        if (p % 7 == 0) rkt::yield();
      }
    });
    for (const rkt::thread& t : ts) await(t);
  };
  rkt::semaphore worker_done;
  std::jthread worker = start_os_thread([&] {
    run_side();
    worker_done.post();
  });
  run_side();
  sync_within(worker_done);
  worker.join();
  EXPECT_EQ(waits.load(), 2 * kWaitersPerSide * kWaitsPerWaiter);
  EXPECT_FALSE(s.try_wait());
}

}  // namespace
