// Tests of rkt::thread and the thread operations (evt/thread.h) against
// Racket 8.7's threads (reference 11.1): spawning and start order, wait,
// running/dead, dead_evt, uncaught exceptions, kill (stack unwinding, waking
// a thread parked in sync, threads that try to survive it, destructors that
// sync while unwinding), current_thread, ten thousand live threads, and the
// mailboxes (thread_send, thread_receive, thread_rewind_receive, ...).
//
// Every wait is bounded: kills go through kill_within, and blocking calls
// run on green threads that the test body awaits with sync_within.
//
// Every rkt::sleep here is the behaviour under test (sleep, timers, a
// thread parked in sleep), never a way to wait for another thread: those
// waits go through sync_within.
#include "evt/thread.h"

#include <unistd.h>

#include <any>
#include <chrono>
#include <atomic>
#include <exception>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "evt/alarm.h"
#include "evt/channel.h"
#include "evt/evt.h"
#include "evt/exn.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread_custody.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fd_leak_check.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/sync_within.h"

namespace {

using ::rkt::test::sync_within;
using ::rkt::test::unwind_counter;
using ::rkt::test::await;
using ::rkt::test::start_os_thread;
using ::rkt::test::spawn_parked;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Calls t.kill() on a helper green thread and waits for it with a bound, so
// that a kill that never returns fails the test instead of hanging it.
// Returns whether t was dead when kill() returned.
bool kill_within(const rkt::thread& t) {
  auto dead_on_return = std::make_shared<bool>(false);
  rkt::thread killer([t, dead_on_return] {
    t.kill();
    *dead_on_return = t.dead();
  });
  await(killer);
  return *dead_on_return;
}

std::any receive_within(absl::Duration d = rkt::test::kHangBound) {
  sync_within(rkt::thread_receive_evt(), d);
  std::optional<std::any> v = rkt::thread_try_receive();
  if (!v.has_value()) throw std::logic_error("receive evt ready, mailbox empty");
  return *v;
}

// ---------------------------------------------------------------------------
// Spawning, waiting, state.

TEST(ThreadTest, FunctionRunsOnlyOnceTheSpawnerYields) {
  bool ran = false;
  rkt::thread t([&] { ran = true; });
  EXPECT_FALSE(ran);
  rkt::yield();
  EXPECT_TRUE(ran);
  await(t);
}

TEST(ThreadTest, FunctionRunsOnceTheSpawnerSyncs) {
  rkt::semaphore started;
  rkt::thread t([&] { started.post(); });
  sync_within(started);
  await(t);
}

TEST(ThreadTest, RunningUntilTheFunctionReturnsThenDead) {
  rkt::semaphore go;
  rkt::thread t([&] { go.wait(); });
  EXPECT_TRUE(t.running());
  EXPECT_FALSE(t.dead());
  rkt::yield();
  EXPECT_TRUE(t.running());
  go.post();
  await(t);
  EXPECT_FALSE(t.running());
  EXPECT_TRUE(t.dead());
}

TEST(ThreadTest, DeadEvtIsReadyOnlyAfterTheThreadDies) {
  rkt::semaphore go;
  rkt::thread t([&] { go.wait(); });
  rkt::yield();
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), t.dead_evt()));
  go.post();
  sync_within(t.dead_evt());
  // Stays ready, and every dead_evt of the thread is.
  EXPECT_TRUE(rkt::sync_timeout(absl::ZeroDuration(), t.dead_evt()));
}

TEST(ThreadTest, WaitReturnsOnceTheThreadHasTerminated) {
  rkt::semaphore go;
  rkt::thread t([&] { go.wait(); });
  bool t_dead_after_wait = false;
  rkt::thread waiter([&] {
    t.wait();
    t_dead_after_wait = t.dead();
  });
  rkt::yield();
  EXPECT_TRUE(waiter.running());
  go.post();
  await(waiter);
  EXPECT_TRUE(t_dead_after_wait);
}

TEST(ThreadTest, DeadEvtInAChoiceReportsWhichThreadDied) {
  rkt::semaphore go;
  rkt::thread slow([&] { go.wait(); });
  rkt::thread quick([] {});
  int first = sync_within(rkt::choice_evt(rkt::wrap_evt(slow.dead_evt(), [] { return 1; }),
                                          rkt::wrap_evt(quick.dead_evt(), [] { return 2; })));
  EXPECT_EQ(first, 2);
  go.post();
  await(slow);
}

// Dropping every handle neither kills nor detaches the thread: it runs on.
TEST(ThreadTest, ThreadRunsOnAfterItsLastHandleIsDropped) {
  rkt::semaphore go;
  rkt::semaphore done;
  {
    rkt::thread t([&] {
      go.wait();
      done.post();  // its last step: it is dead before the test body resumes
    });
  }
  go.post();
  sync_within(done);
}

TEST(ThreadTest, ExceptionEscapingTheFunctionIsPrintedAndTheThreadDies) {
  ::testing::internal::CaptureStderr();
  rkt::thread t([] { throw std::runtime_error("boom from a green thread"); });
  await(t);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(t.dead());
  EXPECT_THAT(err, HasSubstr("boom from a green thread"));
}

TEST(ThreadTest, NonStandardExceptionEscapingTheFunctionIsPrintedAndTheThreadDies) {
  ::testing::internal::CaptureStderr();
  rkt::thread t([] { throw 42; });
  await(t);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(t.dead());
  EXPECT_THAT(err, HasSubstr("exception"));
}

// ---------------------------------------------------------------------------
// current_thread.

TEST(ThreadTest, CurrentThreadIsTheSameThreadEachTime) {
  EXPECT_EQ(rkt::current_thread(), rkt::current_thread());
  EXPECT_TRUE(rkt::current_thread().running());
}

TEST(ThreadTest, CurrentThreadInsideAGreenThreadIsItsHandle) {
  std::optional<rkt::thread> seen;
  bool running_inside = false;
  rkt::thread t([&] {
    seen = rkt::current_thread();
    running_inside = seen->running();
  });
  await(t);
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(*seen, t);
  EXPECT_NE(*seen, rkt::current_thread());
  EXPECT_TRUE(running_inside);
  EXPECT_TRUE(seen->dead());
}

// ---------------------------------------------------------------------------
// kill.

TEST(ThreadTest, KillUnwindsTheStack) {
  std::atomic<int> unwound{0};
  rkt::channel<int> never;
  rkt::semaphore ready;
  bool after = false;
  rkt::thread t = spawn_parked(ready, [&] {
    unwind_counter outer(unwound);
    {
      unwind_counter inner(unwound);
      never.get();
    }
    after = true;
  });
  EXPECT_TRUE(kill_within(t));
  EXPECT_EQ(unwound.load(), 2);
  EXPECT_FALSE(after);
}

// Kill wakes a thread parked in each kind of sync at once, and kill()
// returns with the thread dead.
void expect_kill_wakes_a_thread_parked_in(const std::function<void()>& block) {
  std::atomic<int> unwound{0};
  rkt::semaphore ready;
  bool returned = false;
  rkt::thread t = spawn_parked(ready, [&] {
    unwind_counter c(unwound);
    block();
    returned = true;
  });
  EXPECT_TRUE(t.running());
  EXPECT_TRUE(kill_within(t));
  EXPECT_EQ(unwound.load(), 1);
  EXPECT_FALSE(returned);
}

TEST(ThreadTest, KillWakesAThreadParkedInChannelGet) {
  rkt::channel<int> never;
  expect_kill_wakes_a_thread_parked_in([&] { never.get(); });
  // The killed getter left the channel.
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), never.put_evt(1)));
}

TEST(ThreadTest, KillWakesAThreadParkedInChannelPut) {
  rkt::channel<int> never;
  expect_kill_wakes_a_thread_parked_in([&] { never.put(1); });
  EXPECT_EQ(never.try_get(), std::nullopt);
}

TEST(ThreadTest, KillWakesAThreadParkedInSemaphoreWait) {
  rkt::semaphore never;
  expect_kill_wakes_a_thread_parked_in([&] { never.wait(); });
  never.post();
  EXPECT_TRUE(never.try_wait());
}

TEST(ThreadTest, KillWakesAThreadParkedInSleep) {
  expect_kill_wakes_a_thread_parked_in([] { rkt::sleep(absl::Hours(1)); });
}

TEST(ThreadTest, KillWakesAThreadParkedInSyncTimeout) {
  rkt::channel<int> never;
  expect_kill_wakes_a_thread_parked_in([&] { rkt::sync_timeout(absl::Hours(1), never); });
}

TEST(ThreadTest, KillWakesAThreadParkedInAChoice) {
  rkt::channel<int> never;
  rkt::semaphore never_posted;
  expect_kill_wakes_a_thread_parked_in([&] {
    rkt::sync(rkt::wrap_evt(never, [](int) {}), never_posted, rkt::alarm_evt(absl::InfiniteFuture()));
  });
}

TEST(ThreadTest, KillWakesAThreadParkedInThreadWait) {
  rkt::semaphore go;
  rkt::thread other([&] { go.wait(); });
  expect_kill_wakes_a_thread_parked_in([&] { other.wait(); });
  go.post();
  await(other);
}

TEST(ThreadTest, KillWakesAThreadParkedInThreadReceive) {
  expect_kill_wakes_a_thread_parked_in([] { rkt::thread_receive(); });
}

// A thread spawned and killed before it ever ran never runs its function.
TEST(ThreadTest, KillBeforeTheThreadStartsMeansItsFunctionNeverRuns) {
  std::optional<rkt::thread> victim;
  bool dead_on_return = false;
  // The killer is spawned first, so it runs before the victim ever does.
  rkt::thread killer([&] {
    victim->kill();
    dead_on_return = victim->dead();
  });
  bool ran = false;
  victim.emplace([&] { ran = true; });
  await(killer);
  EXPECT_TRUE(dead_on_return);
  EXPECT_FALSE(ran);
}

TEST(ThreadTest, KillOfTheCallingThreadThrowsThreadKilled) {
  bool threw = false;
  bool after = false;
  rkt::thread t([&] {
    try {
      rkt::current_thread().kill();
      after = true;
    } catch (const rkt::thread_killed&) {
      threw = true;
      throw;
    }
  });
  await(t);
  EXPECT_TRUE(threw);
  EXPECT_FALSE(after);
}

TEST(ThreadTest, CatchingStdExceptionCannotSwallowAKill) {
  rkt::channel<int> never;
  rkt::semaphore ready;
  bool swallowed = false;
  bool after = false;
  rkt::thread t = spawn_parked(ready, [&] {
    try {
      never.get();
    } catch (const std::exception&) {
      swallowed = true;
    }
    after = true;
  });
  EXPECT_TRUE(kill_within(t));
  EXPECT_FALSE(swallowed);
  EXPECT_FALSE(after);
}

// A thread that swallows the kill with catch (...) and carries on is killed
// again at its next switch point: yield, sync or sleep.
void expect_killed_again_at(const std::function<void()>& switch_point) {
  rkt::channel<int> never;
  rkt::semaphore ready;
  bool caught = false;
  bool carried_on = false;
  bool passed_switch_point = false;
  rkt::thread t = spawn_parked(ready, [&] {
    try {
      never.get();
    } catch (...) {
      caught = true;
    }
    carried_on = true;
    switch_point();
    passed_switch_point = true;
  });
  EXPECT_TRUE(kill_within(t));
  EXPECT_TRUE(caught);
  EXPECT_TRUE(carried_on);
  EXPECT_FALSE(passed_switch_point);
}

TEST(ThreadTest, ThreadThatSwallowsAKillIsKilledAgainAtItsNextYield) {
  expect_killed_again_at([] { rkt::yield(); });
}

TEST(ThreadTest, ThreadThatSwallowsAKillIsKilledAgainAtItsNextSync) {
  rkt::channel<int> ch;
  expect_killed_again_at([&] { ch.try_get(); });
}

TEST(ThreadTest, ThreadThatSwallowsAKillIsKilledAgainAtItsNextSleep) {
  expect_killed_again_at([] { rkt::sleep(absl::Milliseconds(1)); });
}

// A destructor run by the kill may sync, but a dying thread never parks:
// a sync that can commit at once does (a getter is already waiting), one
// that would park fails at once with exn_fail, and a poll still works. So
// kill() returns in bounded time whatever the destructor tries.
TEST(ThreadTest, DestructorThatSyncsWhileTheKillUnwindsNeverParks) {
  struct says_goodbye {
    rkt::channel<int>& out;
    std::string& log;
    ~says_goodbye() {
      out.put(1);  // the test body is parked in a get: commits at once
      try {
        out.put(2);  // nobody waits: would park
        log += "put 2 returned;";
      } catch (const rkt::exn_fail& e) {
        log += std::string(e.what()) + ";";
      }
      log += rkt::sync_timeout(absl::ZeroDuration(), out.put_evt(3)) ? "poll committed;"
                                                                    : "poll found none;";
      log += rkt::current_thread_killed() ? "dying" : "not dying";
    }
  };
  rkt::channel<int> never;
  rkt::channel<int> farewell;
  std::string log;
  rkt::semaphore ready;
  rkt::thread t = spawn_parked(ready, [&] {
    says_goodbye bye{farewell, log};
    never.get();
  });
  auto killer_dead = std::make_shared<bool>(false);
  rkt::thread killer([t, killer_dead] {
    t.kill();
    *killer_dead = t.dead();
  });
  EXPECT_EQ(sync_within(farewell), 1);
  await(killer);
  EXPECT_TRUE(*killer_dead);
  EXPECT_EQ(log,
            "sync: cannot block in a thread that is being killed;poll found none;dying");
}

// Outside any unwinding (a handler that caught the kill and carries on), a
// sync that would park raises the kill again instead of parking.
TEST(ThreadTest, ADyingThreadThatWouldParkIsKilledInstead) {
  rkt::channel<int> never;
  rkt::semaphore ready;
  bool reached = false;
  rkt::thread t = spawn_parked(ready, [&] {
    try {
      never.get();
    } catch (...) {
    }
    try {
      never.get();
    } catch (const rkt::thread_killed&) {
      reached = true;
      throw;
    }
  });
  EXPECT_TRUE(kill_within(t));
  EXPECT_TRUE(reached);
}

// Once a thread is asked to die, nothing commits to its parked sync: a
// value put after the request goes to the next getter instead of being
// lost with the dying one (and a semaphore unit likewise).
TEST(ThreadTest, AValueOfferedToAThreadBeingKilledGoesToTheNextGetter) {
  rkt::channel<int> ch;
  rkt::semaphore ready;
  std::optional<int> dying_got;
  rkt::thread dying = spawn_parked(ready, [&] { dying_got = ch.get(); });
  std::optional<int> other_got;
  rkt::thread other = spawn_parked(ready, [&] { other_got = ch.get(); });
  // Ask for the kill without letting the dying thread run, then put: the
  // dying thread's get is first in line but must be passed over.
  rkt::custody::request_kill(dying);
  ch.put(7);
  await(dying);
  await(other);
  EXPECT_FALSE(dying_got.has_value());
  EXPECT_EQ(other_got, 7);
}

TEST(ThreadTest, ASemaphoreUnitPostedToAThreadBeingKilledIsNotLost) {
  rkt::semaphore s;
  rkt::semaphore ready;
  rkt::thread dying = spawn_parked(ready, [&] { s.wait(); });
  rkt::custody::request_kill(dying);
  s.post();
  await(dying);
  EXPECT_TRUE(s.try_wait()) << "the unit went down with the dying thread";
}

// kill() called from a destructor of a dying thread (which may not park)
// still waits for a target on the same OS thread, by letting it run.
TEST(ThreadTest, KillFromADyingThreadWaitsForALocalTarget) {
  rkt::channel<int> never;
  rkt::semaphore ready;
  rkt::thread target = spawn_parked(ready, [&] { never.get(); });
  struct kills_on_exit {
    rkt::thread target;
    bool& dead_after;
    ~kills_on_exit() {
      target.kill();
      dead_after = target.dead();
    }
  };
  bool dead_after = false;
  rkt::thread t = spawn_parked(ready, [&] {
    kills_on_exit k{target, dead_after};
    never.get();
  });
  EXPECT_TRUE(kill_within(t));
  EXPECT_TRUE(dead_after);
  EXPECT_TRUE(target.dead());
}

// An exception that escapes a thread being killed (here from a destructor
// handler that swallowed the kill and then failed) is not printed.
TEST(ThreadTest, AnExceptionEscapingADyingThreadIsNotPrinted) {
  rkt::channel<int> never;
  rkt::semaphore ready;
  rkt::thread t = spawn_parked(ready, [&] {
    try {
      never.get();
    } catch (...) {
    }
    throw std::runtime_error("after the kill");
  });
  ::testing::internal::CaptureStderr();
  EXPECT_TRUE(kill_within(t));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST(ThreadTest, NamedThreadsPrintAsRacketPrintsThem) {
  rkt::thread named([] {}, rkt::thread_options{.name = "worker"});
  rkt::thread unnamed([] {});
  EXPECT_EQ(named.name(), "worker");
  EXPECT_EQ(named.describe(), "#<thread:worker>");
  EXPECT_EQ(unnamed.describe(), "#<thread>");
  await(named);
  await(unnamed);
  rkt::thread failing([] { throw std::runtime_error("boom"); },
                      rkt::thread_options{.name = "failing"});
  ::testing::internal::CaptureStderr();
  await(failing);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "rkt: uncaught exception in green thread #<thread:failing>: boom\n");
}

TEST(ThreadTest, KillOfADeadThreadIsANoOp) {
  rkt::thread t([] {});
  await(t);
  t.kill();
  t.kill();
  EXPECT_TRUE(t.dead());
}

TEST(ThreadTest, KillFromAnotherOsThreadWakesAParkedThread) {
  rkt::yield();
  rkt::test::fd_leak_check fds;
  std::atomic<int> unwound{0};
  rkt::channel<int> never;
  rkt::semaphore ready;
  rkt::thread t = spawn_parked(ready, [&] {
    unwind_counter c(unwound);
    never.get();
  });
  std::atomic<bool> dead_on_return{false};
  std::jthread killer = start_os_thread([&] {
    t.kill();
    dead_on_return = t.dead();
  });
  await(t);
  killer.join();
  EXPECT_TRUE(dead_on_return.load());
  EXPECT_EQ(unwound.load(), 1);
  EXPECT_THAT(fds.leaked(), IsEmpty()) << fds.describe(fds.leaked());
}

// A thread that never parks, only yields, is killed at its next yield,
// also when kill() comes from another OS thread.
TEST(ThreadTest, KillFromAnotherOsThreadStopsAThreadThatOnlyYields) {
  rkt::semaphore ready;
  rkt::thread spinner([&] {
    ready.post();
    for (;;) rkt::yield();
  });
  sync_within(ready);
  std::jthread killer = start_os_thread([&] { spinner.kill(); });
  await(spinner);
  killer.join();
}

// A value whose copy, once armed, signals `in_copy` and then holds the
// copying thread for a while. channel::put_evt copies its value while it
// holds the claim on the getter's sync, so this keeps a cross-thread commit
// in flight long enough for a kill to arrive in the middle of it.
struct slow_copy {
  struct control {
    std::atomic<bool> armed{false};
    std::promise<void> in_copy;
  };
  slow_copy(control* c, int v) : ctl(c), value(v) {}
  slow_copy(const slow_copy& o) : ctl(o.ctl), value(o.value) {
    if (ctl->armed.exchange(false)) {
      ctl->in_copy.set_value();
      const absl::Time until = absl::Now() + absl::Milliseconds(20);
      while (absl::Now() < until) {
      }
    }
  }
  slow_copy(slow_copy&&) noexcept = default;
  slow_copy& operator=(const slow_copy&) = delete;
  slow_copy& operator=(slow_copy&&) = delete;
  control* ctl;
  int value;
};

// A put on another OS thread has claimed the getter's sync and is
// committing it when the getter is killed. The commit got in first, so it
// is delivered (the kill lands at the next switch point), and since the
// getter's event was chosen its nack never becomes ready (Racket: "If the
// event returned by maker is chosen, then the NACK event never becomes
// ready").
TEST(ThreadTest, KillDuringACrossThreadCommitDeliversItAndPostsNoNack) {
  rkt::channel<slow_copy> ch;
  slow_copy::control control;
  std::future<void> in_copy = control.in_copy.get_future();
  std::optional<rkt::evt<void>> nack;
  int got = 0;
  rkt::semaphore ready;
  rkt::thread getter = spawn_parked(ready, [&] {
    got = rkt::sync(rkt::nack_guard_evt([&](rkt::evt<void> n) {
                      nack = n;
                      return ch;
                    })).value;
  });
  std::atomic<bool> put_committed{false};
  std::jthread putter = start_os_thread([&] {
    rkt::evt<void> put = ch.put_evt(slow_copy(&control, 7));
    control.armed = true;
    put_committed = rkt::sync_timeout(absl::ZeroDuration(), put);
  });
  ASSERT_EQ(in_copy.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_TRUE(kill_within(getter));
  putter.join();
  ASSERT_TRUE(put_committed.load());
  EXPECT_EQ(got, 7);
  ASSERT_TRUE(nack.has_value());
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), *nack));
}

// ---------------------------------------------------------------------------
// Many threads.

// Resident memory of the process, from /proc/self/statm.
long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long size_pages = 0;
  long resident_pages = 0;
  statm >> size_pages >> resident_pages;
  return resident_pages * sysconf(_SC_PAGESIZE);
}

// 10,000 live green threads, each parked in a rendezvous with the test
// body at once; all complete. Stacks are mapped lazily (10,000 x 256 KiB of
// address space), so each parked thread costs a few pages of memory.
TEST(ThreadTest, TenThousandThreadsEachRendezvousWithMain) {
#if defined(RKT_TSAN)
  // TSan gives each fiber its own clock and state (most of a MiB): past a
  // few thousand live fibers its work grows quadratically and its mappings
  // exceed vm.max_map_count (65530).
  constexpr int kThreads = 2000;
  constexpr long kMaxResidentPerThread = 2 * 1024 * 1024;
#else
  constexpr int kThreads = 10000;
  constexpr long kMaxResidentPerThread = 64 * 1024;
#endif
  rkt::channel<int> ch;
  std::vector<rkt::thread> ts;
  ts.reserve(kThreads);
  const long resident_before = resident_bytes();
  for (int i = 0; i < kThreads; ++i) ts.emplace_back([&ch, i] { ch.put(i); });
  rkt::yield();  // every thread runs and parks in its put
  EXPECT_LT(resident_bytes() - resident_before, kThreads * kMaxResidentPerThread);
  std::vector<char> seen(kThreads, 0);
  for (int i = 0; i < kThreads; ++i) ++seen[sync_within(ch)];
  for (const rkt::thread& t : ts) await(t);
  for (int i = 0; i < kThreads; ++i) ASSERT_EQ(seen[i], 1) << "value " << i;
}

// ---------------------------------------------------------------------------
// Mailboxes.

TEST(ThreadMailboxTest, MessagesArriveInSendOrder) {
  std::vector<int> got;
  rkt::thread t([&] {
    for (int i = 0; i < 3; ++i) got.push_back(std::any_cast<int>(rkt::thread_receive()));
  });
  // Sent before t has even started.
  rkt::thread_send(t, 1);
  rkt::thread_send(t, 2);
  rkt::thread_send(t, 3);
  await(t);
  EXPECT_THAT(got, ElementsAre(1, 2, 3));
}

TEST(ThreadMailboxTest, ReceiveParksUntilAMessageArrives) {
  rkt::semaphore ready;
  std::string got;
  rkt::thread t = spawn_parked(ready, [&] {
    got = std::any_cast<std::string>(rkt::thread_receive());
  });
  rkt::yield();
  EXPECT_TRUE(t.running());
  rkt::thread_send(t, std::string("hi"));
  await(t);
  EXPECT_EQ(got, "hi");
}

TEST(ThreadMailboxTest, TryReceiveIsEmptyWithoutAMessage) {
  bool empty = false;
  rkt::thread t([&] { empty = !rkt::thread_try_receive().has_value(); });
  await(t);
  EXPECT_TRUE(empty);
}

TEST(ThreadMailboxTest, TryReceiveDequeuesTheOldestMessage) {
  std::vector<int> got;
  bool empty_after = false;
  rkt::thread t([&] {
    for (int i = 0; i < 2; ++i) got.push_back(std::any_cast<int>(*rkt::thread_try_receive()));
    empty_after = !rkt::thread_try_receive().has_value();
  });
  rkt::thread_send(t, 7);
  rkt::thread_send(t, 8);
  await(t);
  EXPECT_THAT(got, ElementsAre(7, 8));
  EXPECT_TRUE(empty_after);
}

TEST(ThreadMailboxTest, ReceiveEvtIsReadyWithAMessageAndDoesNotDequeueIt) {
  rkt::semaphore ready;
  bool ready_when_empty = true;
  bool ready_twice = false;
  std::optional<int> got;
  bool ready_after_dequeue = true;
  rkt::thread t = spawn_parked(ready, [&] {
    ready_when_empty = rkt::sync_timeout(absl::ZeroDuration(), rkt::thread_receive_evt());
    sync_within(rkt::thread_receive_evt());
    ready_twice = rkt::sync_timeout(absl::ZeroDuration(), rkt::thread_receive_evt());
    got = std::any_cast<int>(*rkt::thread_try_receive());
    ready_after_dequeue = rkt::sync_timeout(absl::ZeroDuration(), rkt::thread_receive_evt());
  });
  rkt::thread_send(t, 5);
  await(t);
  EXPECT_FALSE(ready_when_empty);
  EXPECT_TRUE(ready_twice);
  EXPECT_EQ(got, 5);
  EXPECT_FALSE(ready_after_dequeue);
}

// The receive event refers to the syncing thread's own mailbox: a message
// for another thread does not make it ready.
TEST(ThreadMailboxTest, ReceiveEvtWatchesTheSyncingThreadsMailbox) {
  rkt::semaphore ready;
  rkt::semaphore go;
  bool ready_for_a = true;
  rkt::thread a = spawn_parked(ready, [&] {
    go.wait();
    ready_for_a = rkt::sync_timeout(absl::ZeroDuration(), rkt::thread_receive_evt());
  });
  rkt::thread b([] {});
  rkt::thread_send(b, 1);
  go.post();
  await(a);
  await(b);
  EXPECT_FALSE(ready_for_a);
}

// Racket: the elements are pushed back one by one, so the first message
// available afterwards is the last element of the list.
TEST(ThreadMailboxTest, RewindReceivePushesTheListBackLastElementFirst) {
  std::vector<std::string> got;
  rkt::thread t([&] {
    rkt::thread_rewind_receive({std::string("a"), std::string("b"), std::string("c")});
    for (int i = 0; i < 4; ++i) got.push_back(std::any_cast<std::string>(rkt::thread_receive()));
  });
  rkt::thread_send(t, std::string("x"));
  await(t);
  EXPECT_THAT(got, ElementsAre("c", "b", "a", "x"));
}

TEST(ThreadMailboxTest, RewindReceiveMakesReceiveEvtReady) {
  bool ready_after = false;
  rkt::thread t([&] {
    rkt::thread_rewind_receive({1});
    ready_after = rkt::sync_timeout(absl::ZeroDuration(), rkt::thread_receive_evt());
    rkt::thread_receive();
  });
  await(t);
  EXPECT_TRUE(ready_after);
}

TEST(ThreadMailboxTest, SendToADeadThreadRaisesExnFailContract) {
  rkt::thread t([] {});
  await(t);
  EXPECT_THROW(rkt::thread_send(t, 1), rkt::exn_fail_contract);
}

TEST(ThreadMailboxTest, NothrowSendToADeadThreadReturnsFalse) {
  rkt::thread t([] {});
  await(t);
  EXPECT_FALSE(rkt::thread_send(t, 1, std::nothrow));
  rkt::thread u([] { rkt::thread_receive(); });
  EXPECT_TRUE(rkt::thread_send(u, 1, std::nothrow));
  await(u);
}

TEST(ThreadMailboxTest, ReceiveEvtInAChoiceWithAChannel) {
  rkt::channel<int> never;
  rkt::semaphore ready;
  int got = 0;
  rkt::thread t = spawn_parked(ready, [&] {
    rkt::sync(rkt::wrap_evt(never, [](int) {}), rkt::thread_receive_evt());
    got = std::any_cast<int>(rkt::thread_receive());
  });
  rkt::thread_send(t, 11);
  await(t);
  EXPECT_EQ(got, 11);
}

TEST(ThreadMailboxTest, ReceiveIsWokenBySendFromAnotherOsThread) {
  rkt::yield();
  rkt::test::fd_leak_check fds;
  rkt::semaphore ready;
  int got = 0;
  rkt::thread t = spawn_parked(ready, [&] { got = std::any_cast<int>(rkt::thread_receive()); });
  std::jthread sender = start_os_thread([&] { rkt::thread_send(t, 99); });
  await(t);
  sender.join();
  EXPECT_EQ(got, 99);
  EXPECT_THAT(fds.leaked(), IsEmpty()) << fds.describe(fds.leaked());
}

TEST(ThreadMailboxTest, TheRootThreadHasAMailboxToo) {
  rkt::thread_send(rkt::current_thread(), std::string("to myself"));
  EXPECT_EQ(std::any_cast<std::string>(receive_within()), "to myself");
  EXPECT_FALSE(rkt::thread_try_receive().has_value());
}

}  // namespace
