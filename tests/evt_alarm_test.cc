// Tests of time and idleness in the evt core: alarm_evt (evt/alarm.h),
// sleep and yield, sync_timeout with long timeouts, and system_idle_evt
// (evt/thread.h). Alarms are ready at or after their time, never before;
// timers wake green threads in deadline order; the system is idle only when
// every other green thread is blocked, and a sleeping thread is blocked.
//
// The semantics are Racket 8.7's alarm-evt, sleep and system-idle-evt
// (reference, "11.2.1 Events" and "11.1 Threads"; the shared copies are
// racket/reference/sync-events.txt and threads.txt). Time is only ever
// bounded from below: a loaded machine may always be later.
//
// Every rkt::sleep here is the behaviour under test (sleep, timers, a
// thread parked in sleep), never a way to wait for another thread: those
// waits go through sync_within.
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "evt/alarm.h"
#include "evt/channel.h"
#include "evt/evt.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fd_leak_check.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/sync_within.h"

namespace {

using ::rkt::test::sync_within;
using ::rkt::test::scoped_thread;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;
using ::testing::IsEmpty;

constexpr absl::Duration kZero = absl::ZeroDuration();
// The ordering tests put their first deadline this far ahead, so that every
// thread is parked on its timer before any deadline passes. On a machine
// too loaded for that, they skip the order check (they never fail for it).
constexpr absl::Duration kArmingTime = absl::Milliseconds(100);

class EvtAlarmTest : public rkt::test::clean_test {};

// ---------------------------------------------------------------------------
// alarm_evt.

TEST_F(EvtAlarmTest, AlarmIsReadyAtOrAfterItsTime) {
  const absl::Time at = absl::Now() + absl::Milliseconds(20);
  sync_within(rkt::alarm_evt(at));
  EXPECT_GE(absl::Now(), at);
}

TEST_F(EvtAlarmTest, AlarmIsNotReadyBeforeItsTime) {
  const rkt::evt<void> alarm = rkt::alarm_evt(absl::Now() + absl::Hours(1));
  EXPECT_FALSE(rkt::sync_timeout(kZero, alarm));
  EXPECT_FALSE(rkt::sync_timeout(absl::Milliseconds(10), alarm));
}

TEST_F(EvtAlarmTest, AlarmInThePastIsReadyAtOnce) {
  EXPECT_TRUE(rkt::sync_timeout(kZero, rkt::alarm_evt(absl::Now() - absl::Seconds(1))));
  EXPECT_TRUE(rkt::sync_timeout(kZero, rkt::alarm_evt(absl::InfinitePast())));
  EXPECT_TRUE(rkt::sync_timeout(kZero, rkt::alarm_evt(absl::UnixEpoch())));
  rkt::sync(rkt::alarm_evt(absl::Now() - absl::Milliseconds(1)));
}

TEST_F(EvtAlarmTest, AlarmAtInfiniteFutureIsNeverReady) {
  const rkt::evt<void> never = rkt::alarm_evt(absl::InfiniteFuture());
  EXPECT_FALSE(rkt::sync_timeout(kZero, never));
  EXPECT_FALSE(rkt::sync_timeout(absl::Milliseconds(10), never));
  EXPECT_FALSE(rkt::sync_timeout(absl::Milliseconds(10),
                                 rkt::alarm_evt(absl::Now() + absl::Hours(24 * 365 * 1000))));
}

TEST_F(EvtAlarmTest, AnAlarmIsReusableOnceItsTimeHasPassed) {
  const absl::Time at = absl::Now() + absl::Milliseconds(5);
  const rkt::evt<void> alarm = rkt::alarm_evt(at);
  sync_within(alarm);
  EXPECT_TRUE(rkt::sync_timeout(kZero, alarm));
  sync_within(alarm);
}

TEST_F(EvtAlarmTest, AlarmInAChoiceLosesToAReadyEvent) {
  const rkt::evt<int> late =
      rkt::wrap_evt(rkt::alarm_evt(absl::Now() + absl::Hours(1)), [] { return 0; });
  rkt::channel<int> ch;
  scoped_thread putter([&] { ch.put(1); });
  EXPECT_EQ(sync_within(rkt::choice_evt(late, rkt::evt<int>(ch))), 1);
  putter.join();
}

TEST_F(EvtAlarmTest, AlarmInAChoiceWinsOverAnEventThatIsNeverReady) {
  rkt::channel<int> ch;
  const absl::Time at = absl::Now() + absl::Milliseconds(10);
  auto alarm = rkt::wrap_evt(rkt::alarm_evt(at), [] { return -1; });
  EXPECT_EQ(sync_within(rkt::choice_evt(rkt::evt<int>(ch), alarm)), -1);
  EXPECT_GE(absl::Now(), at);
  // The choice's getter on ch went away with the sync.
  EXPECT_FALSE(rkt::sync_timeout(kZero, ch.put_evt(1)));
}

// The order of the wakeups is the deadline order when every alarm was armed
// before the first deadline. On a machine so loaded that arming took longer
// than kArmingTime, an early deadline may pass before its thread armed, and
// only the set can be checked.
void expect_deadline_order(const std::vector<int>& woke, bool armed_in_time) {
  if (armed_in_time) {
    EXPECT_THAT(woke, ElementsAre(0, 1, 2, 3, 4));
  } else {
    EXPECT_THAT(woke, UnorderedElementsAre(0, 1, 2, 3, 4)) << "(arming took over " << kArmingTime
                                                           << ": order not checked)";
  }
}

TEST_F(EvtAlarmTest, ThreadsSyncingOnAlarmsWakeInDeadlineOrder) {
  const absl::Time base = absl::Now() + kArmingTime;
  // Spawned out of order; each waits for its own deadline.
  const std::vector<int> slots = {3, 0, 4, 1, 2};
  std::vector<int> woke;
  std::vector<std::unique_ptr<scoped_thread>> threads;
  for (int slot : slots) {
    const absl::Time at = base + slot * absl::Milliseconds(5);
    threads.push_back(std::make_unique<scoped_thread>([&woke, slot, at] {
      sync_within(rkt::alarm_evt(at));
      woke.push_back(slot);
    }));
  }
  // Idle once every thread is parked on its alarm.
  sync_within(rkt::system_idle_evt());
  const bool armed_in_time = absl::Now() < base;
  for (const auto& t : threads) t->join();
  expect_deadline_order(woke, armed_in_time);
}

TEST_F(EvtAlarmTest, SleepingThreadsWakeInDeadlineOrderThroughAChannel) {
  const absl::Time base = absl::Now() + kArmingTime;
  const std::vector<int> slots = {2, 4, 0, 3, 1};
  rkt::channel<int> order;
  std::vector<std::unique_ptr<scoped_thread>> threads;
  for (int slot : slots) {
    // Slots are 20ms apart: far more than the time between the two clock
    // reads that turn a deadline into a sleep.
    const absl::Time at = base + slot * absl::Milliseconds(20);
    threads.push_back(std::make_unique<scoped_thread>([&order, slot, at] {
      rkt::sleep(at - absl::Now());
      order.put(slot);
    }));
  }
  sync_within(rkt::system_idle_evt());
  const bool armed_in_time = absl::Now() < base;
  std::vector<int> woke;
  for (std::size_t i = 0; i < slots.size(); ++i) woke.push_back(sync_within(order));
  for (const auto& t : threads) t->join();
  expect_deadline_order(woke, armed_in_time);
}

TEST_F(EvtAlarmTest, EarliestAlarmInAChoiceWins) {
  const absl::Time base = absl::Now() + absl::Milliseconds(10);
  std::vector<rkt::evt<int>> alarms;
  for (int slot : {2, 0, 1}) {
    alarms.push_back(
        rkt::wrap_evt(rkt::alarm_evt(base + slot * absl::Hours(1)), [slot] { return slot; }));
  }
  EXPECT_EQ(sync_within(rkt::choice_evt(alarms)), 0);
  EXPECT_GE(absl::Now(), base);
}

TEST_F(EvtAlarmTest, AlarmsAndSleepOnAnotherOsThread) {
  absl::Time at;
  absl::Time woke_alarm;
  absl::Time slept_from;
  absl::Time woke_sleep;
  bool got_alarm = false;
  std::jthread other([&] {
    // That thread's own scheduler keeps its timers.
    at = absl::Now() + absl::Milliseconds(10);
    got_alarm = rkt::sync_timeout(rkt::test::kHangBound, rkt::alarm_evt(at));
    woke_alarm = absl::Now();
    slept_from = absl::Now();
    rkt::sleep(absl::Milliseconds(10));
    woke_sleep = absl::Now();
  });
  other.join();
  EXPECT_TRUE(got_alarm);
  EXPECT_GE(woke_alarm, at);
  EXPECT_GE(woke_sleep - slept_from, absl::Milliseconds(10));
}

// ---------------------------------------------------------------------------
// sleep and yield.

TEST_F(EvtAlarmTest, SleepLastsAtLeastItsDuration) {
  const absl::Time start = absl::Now();
  rkt::sleep(absl::Milliseconds(20));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
}

TEST_F(EvtAlarmTest, SleepZeroYields) {
  bool ran = false;
  scoped_thread other([&] { ran = true; });
  EXPECT_FALSE(ran);
  rkt::sleep(kZero);
  EXPECT_TRUE(ran);
  other.join();
}

TEST_F(EvtAlarmTest, SleepNegativeYields) {
  bool ran = false;
  scoped_thread other([&] { ran = true; });
  rkt::sleep(absl::Seconds(-1));
  EXPECT_TRUE(ran);
  other.join();
}

TEST_F(EvtAlarmTest, YieldLetsEveryRunnableThreadRunOnce) {
  std::string trace;
  scoped_thread a([&] {
    trace += "a1 ";
    rkt::yield();
    trace += "a2 ";
  });
  scoped_thread b([&] {
    trace += "b1 ";
    rkt::yield();
    trace += "b2 ";
  });
  rkt::yield();
  trace += "main ";
  a.join();
  b.join();
  EXPECT_EQ(trace.substr(0, 11), "a1 b1 main ");
}

TEST_F(EvtAlarmTest, SleepingThreadDoesNotDelayOthers) {
  rkt::channel<int> ch;
  scoped_thread sleeper([&] { rkt::sleep(absl::Hours(1)); });
  scoped_thread putter([&] { ch.put(1); });
  EXPECT_EQ(sync_within(ch), 1);
  putter.join();
  EXPECT_TRUE(sleeper.running());
  sleeper.get().kill();
  EXPECT_FALSE(sleeper.running());
}

// ---------------------------------------------------------------------------
// sync_timeout with long timeouts.

TEST_F(EvtAlarmTest, HugeTimeoutStillWaitsForTheAlarm) {
  for (absl::Duration timeout : {absl::InfiniteDuration(), absl::Hours(24 * 365 * 1000),
                                 absl::Seconds(1e9), absl::Hours(1)}) {
    const absl::Time at = absl::Now() + absl::Milliseconds(5);
    auto alarm = rkt::wrap_evt(rkt::alarm_evt(at), [] { return 1; });
    rkt::channel<int> never_put;
    // A timeout that overflowed into the past would return nullopt at once.
    EXPECT_EQ(rkt::sync_timeout(timeout, alarm, rkt::evt<int>(never_put)), std::optional<int>(1))
        << "timeout " << timeout;
    EXPECT_GE(absl::Now(), at) << "timeout " << timeout;
  }
}

TEST_F(EvtAlarmTest, HugeTimeoutOnAVoidAlarm) {
  const absl::Time at = absl::Now() + absl::Milliseconds(5);
  EXPECT_TRUE(rkt::sync_timeout(absl::Hours(24 * 365 * 1000), rkt::alarm_evt(at)));
  EXPECT_GE(absl::Now(), at);
}

TEST_F(EvtAlarmTest, TimeoutShorterThanTheAlarmWins) {
  const rkt::evt<void> alarm = rkt::alarm_evt(absl::Now() + absl::Hours(1));
  const absl::Time start = absl::Now();
  EXPECT_FALSE(rkt::sync_timeout(absl::Milliseconds(10), alarm));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(10));
}

// ---------------------------------------------------------------------------
// system_idle_evt.

TEST_F(EvtAlarmTest, IdleWhenNoOtherThreadExists) {
  sync_within(rkt::system_idle_evt());
  sync_within(rkt::system_idle_evt());
}

TEST_F(EvtAlarmTest, IdleIsAlwaysTheSameEvent) {
  EXPECT_EQ(rkt::system_idle_evt().node().get(), rkt::system_idle_evt().node().get());
}

TEST_F(EvtAlarmTest, PollingIdleFindsItNotReady) {
  // racket 8.7: (sync/timeout 0 (system-idle-evt)) => #f; the polling
  // thread itself is running.
  EXPECT_FALSE(rkt::sync_timeout(kZero, rkt::system_idle_evt()));
}

TEST_F(EvtAlarmTest, BusyThreadPreventsIdle) {
  // After the Racket example: a thread that never blocks keeps the system
  // busy; (sync/timeout 0.1 (system-idle-evt)) => #f.
  bool stop = false;
  int spins = 0;
  scoped_thread busy([&] {
    while (!stop) {
      ++spins;
      rkt::yield();
    }
  });
  EXPECT_FALSE(rkt::sync_timeout(absl::Milliseconds(20), rkt::system_idle_evt()));
  EXPECT_GT(spins, 0);
  stop = true;
  busy.join();
  sync_within(rkt::system_idle_evt());
}

TEST_F(EvtAlarmTest, YieldingThreadDelaysIdleUntilItFinishes) {
  constexpr int kYields = 200;
  int yields = 0;
  scoped_thread busy([&] {
    for (int i = 0; i < kYields; ++i) {
      ++yields;
      rkt::yield();
    }
  });
  sync_within(rkt::system_idle_evt());
  EXPECT_EQ(yields, kYields);
  busy.join();
}

TEST_F(EvtAlarmTest, YieldingThreadDelaysIdleUntilItBlocks) {
  constexpr int kYields = 200;
  int yields = 0;
  rkt::channel<int> ch;
  scoped_thread busy([&] {
    for (int i = 0; i < kYields; ++i) {
      ++yields;
      rkt::yield();
    }
    sync_within(ch);
  });
  sync_within(rkt::system_idle_evt());
  EXPECT_EQ(yields, kYields);
  EXPECT_TRUE(busy.running()) << "blocked on the channel, not finished";
  ch.put(1);
  busy.join();
}

TEST_F(EvtAlarmTest, SleepingThreadCountsAsBlocked) {
  scoped_thread sleeper([] { rkt::sleep(absl::Hours(1)); });
  scoped_thread alarm_syncer([] { sync_within(rkt::alarm_evt(absl::Now() + absl::Hours(1))); });
  sync_within(rkt::system_idle_evt());
  EXPECT_TRUE(sleeper.running());
  EXPECT_TRUE(alarm_syncer.running());
  sleeper.get().kill();
  alarm_syncer.get().kill();
}

TEST_F(EvtAlarmTest, IdleWakesEveryThreadWaitingForIt) {
  int woken = 0;
  scoped_thread a([&] {
    sync_within(rkt::system_idle_evt());
    ++woken;
  });
  scoped_thread b([&] {
    sync_within(rkt::system_idle_evt());
    ++woken;
  });
  a.join();
  b.join();
  EXPECT_EQ(woken, 2);
}

TEST_F(EvtAlarmTest, IdleInAChoiceLosesToAReadyEvent) {
  rkt::semaphore sem(1);
  const auto idle = rkt::wrap_evt(rkt::system_idle_evt(), [] { return 0; });
  const auto taken = rkt::wrap_evt(sem, [] { return 1; });
  EXPECT_EQ(sync_within(rkt::choice_evt(idle, taken)), 1);
  EXPECT_EQ(sync_within(rkt::choice_evt(idle, taken)), 0);
}

}  // namespace
