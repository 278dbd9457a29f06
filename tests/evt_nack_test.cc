// Tests of nack_guard_evt (evt/evt.h, posted by the sync in evt/sync.cc):
// the nack given to a maker becomes ready on every way out of the sync but
// one, the choice of the maker's own event: another event chosen, a
// timeout, a poll that finds nothing, an exception from a wrap, a handler,
// a guard maker or a replace maker, and the syncing thread killed while
// parked. Also nested nack guards, nacks under and around replace_evt, and
// nacks waking threads that wait on them, on this and other OS threads.
//
// The semantics are Racket 8.7's nack-guard-evt (reference, "11.2.1
// Events"; racket/reference/sync-events.txt); cases the docs leave open are
// matched against what `racket` 8.7 prints for the same program.
#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "evt/alarm.h"
#include "evt/channel.h"
#include "evt/evt.h"
#include "evt/evt_impl.h"
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
using ::rkt::test::hang_guard;
using ::rkt::test::scoped_thread;
using ::testing::IsEmpty;

constexpr absl::Duration kZero = absl::ZeroDuration();
constexpr absl::Duration kShort = absl::Milliseconds(10);

// What user procedures throw in these tests.
struct boom {
  int code;
};

// Where a nack guard's maker leaves the nack it was given.
struct nack_box {
  std::optional<rkt::evt<void>> nack;
  int makes = 0;

  bool made() const { return nack.has_value(); }
  // Whether the nack is ready now (false when there is none).
  bool posted() const { return nack.has_value() && rkt::sync_timeout(kZero, *nack); }
  // For guards that Racket may leave unrun: a maker that ran is told.
  bool posted_if_made() const { return !made() || posted(); }
};

// nack_guard_evt around `e`, recording the nack in `box`.
template <class E>
auto guarded(nack_box& box, E e) {
  return rkt::nack_guard_evt([&box, e](rkt::evt<void> nack) {
    box.nack = std::move(nack);
    ++box.makes;
    return e;
  });
}

// A base event that is never ready and posts `signal` when it is armed: it
// tells another thread that the sync it is part of is about to park.
class armed_signal final : public rkt::base_evt<void> {
 public:
  explicit armed_signal(rkt::semaphore signal) : signal_(std::move(signal)) {}
  bool try_sync(rkt::self_ref&) override { return false; }
  void arm(rkt::waiter&) override { signal_.post(); }
  void disarm(rkt::waiter&) noexcept override {}

 private:
  const rkt::semaphore signal_;
};

class EvtNackTest : public rkt::test::clean_test {};

// ---------------------------------------------------------------------------
// The ways out of a sync.

TEST_F(EvtNackTest, NackReadyWhenAnotherEventIsChosen) {
  nack_box box;
  rkt::channel<int> ch;
  scoped_thread putter([&] { ch.put(1); });
  EXPECT_EQ(sync_within(rkt::choice_evt(guarded(box, rkt::never_evt_of<int>()), ch)), 1);
  ASSERT_TRUE(box.made());
  EXPECT_TRUE(box.posted());
  putter.join();
}

TEST_F(EvtNackTest, NackReadyWhenAnEventReadyAtOnceIsChosen) {
  nack_box box;
  EXPECT_EQ(rkt::sync(guarded(box, rkt::never_evt_of<int>()), rkt::always_evt(1)), 1);
  // Racket may skip a guard when another event is ready; a maker that ran
  // must see its nack posted.
  EXPECT_TRUE(box.posted_if_made());
}

TEST_F(EvtNackTest, NackReadyWhenSyncTimeoutExpires) {
  nack_box box;
  EXPECT_FALSE(rkt::sync_timeout(kShort, guarded(box, rkt::never_evt())));
  ASSERT_TRUE(box.made());
  EXPECT_TRUE(box.posted());
}

TEST_F(EvtNackTest, NackReadyWhenSyncDeadlinePasses) {
  nack_box box;
  rkt::channel<int> ch;
  EXPECT_FALSE(rkt::sync_deadline(absl::Now() + kShort, guarded(box, ch)).has_value());
  ASSERT_TRUE(box.made());
  EXPECT_TRUE(box.posted());
}

TEST_F(EvtNackTest, NackReadyWhenAPollFindsNothing) {
  nack_box a, b;
  rkt::semaphore empty;
  EXPECT_FALSE(
      rkt::sync_timeout(kZero, guarded(a, rkt::evt<void>(empty)), guarded(b, rkt::never_evt())));
  ASSERT_TRUE(a.made());
  ASSERT_TRUE(b.made());
  EXPECT_TRUE(a.posted());
  EXPECT_TRUE(b.posted());
}

TEST_F(EvtNackTest, NackOfUnchosenPostedWhenTheChosenEventsWrapThrows) {
  nack_box chosen, other;
  rkt::channel<int> ch, never_put;
  auto throwing =
      rkt::wrap_evt(guarded(chosen, rkt::evt<int>(ch)), [](int v) -> int { throw boom{v}; });
  scoped_thread putter([&] { ch.put(1); });
  EXPECT_THROW(sync_within(rkt::choice_evt(throwing, guarded(other, rkt::evt<int>(never_put)))),
               boom);
  ASSERT_TRUE(chosen.made());
  ASSERT_TRUE(other.made());
  EXPECT_FALSE(chosen.posted()) << "the chosen event committed before its wrap threw";
  EXPECT_TRUE(other.posted());
  putter.join();
}

TEST_F(EvtNackTest, NackOfUnchosenPostedWhenAWrapInsideTheGuardThrows) {
  nack_box chosen, other;
  rkt::semaphore sem;
  rkt::channel<int> never_put;
  auto throwing = guarded(chosen, rkt::wrap_evt(sem, []() -> int { throw boom{2}; }));
  // Both guards run while the sync is blocked; then the semaphore wins.
  scoped_thread poster([&] { sem.post(); });
  EXPECT_THROW(sync_within(rkt::choice_evt(throwing, guarded(other, rkt::evt<int>(never_put)))),
               boom);
  EXPECT_FALSE(chosen.posted());
  EXPECT_TRUE(other.posted());
  poster.join();
}

TEST_F(EvtNackTest, NackOfUnchosenPostedWhenTheChosenHandlerThrows) {
  nack_box chosen, other;
  rkt::channel<int> ch, never_put;
  auto throwing =
      rkt::handle_evt(guarded(chosen, rkt::evt<int>(ch)), [](int v) -> int { throw boom{v}; });
  scoped_thread putter([&] { ch.put(3); });
  EXPECT_THROW(sync_within(rkt::choice_evt(throwing, guarded(other, rkt::evt<int>(never_put)))),
               boom);
  EXPECT_FALSE(chosen.posted());
  EXPECT_TRUE(other.posted());
  putter.join();
}

TEST_F(EvtNackTest, NacksPostedWhenAGuardMakerThrows) {
  nack_box outer, inner;
  // The outer maker has run by the time the inner one throws.
  auto e = rkt::nack_guard_evt([&](rkt::evt<void> nack) {
    outer.nack = nack;
    return rkt::nack_guard_evt([&](rkt::evt<void> n) -> rkt::evt<void> {
      inner.nack = n;
      throw boom{4};
    });
  });
  EXPECT_THROW(rkt::sync_timeout(kShort, e), boom);
  ASSERT_TRUE(outer.made());
  ASSERT_TRUE(inner.made());
  EXPECT_TRUE(inner.posted()) << "the nack of the maker that threw";
  EXPECT_TRUE(outer.posted()) << "the nack of a guard that had already run";
}

TEST_F(EvtNackTest, NacksOfSiblingGuardsPostedWhenAGuardMakerThrows) {
  nack_box before, thrower, after;
  auto bad = rkt::nack_guard_evt([&](rkt::evt<void> n) -> rkt::evt<void> {
    thrower.nack = n;
    throw boom{5};
  });
  EXPECT_THROW(rkt::sync(guarded(before, rkt::never_evt()), bad, guarded(after, rkt::never_evt())),
               boom);
  ASSERT_TRUE(thrower.made());
  EXPECT_TRUE(thrower.posted());
  // Guards may run in any order; every one that ran is told.
  EXPECT_TRUE(before.posted_if_made());
  EXPECT_TRUE(after.posted_if_made());
}

TEST_F(EvtNackTest, NackPostedWhenAReplaceMakerThrowsForAnotherEvent) {
  nack_box chosen, other;
  rkt::semaphore sem;
  rkt::channel<int> never_put;
  auto r = rkt::replace_evt(guarded(chosen, rkt::evt<void>(sem)),
                            []() -> rkt::evt<int> { throw boom{6}; });
  scoped_thread poster([&] { sem.post(); });
  EXPECT_THROW(sync_within(rkt::choice_evt(r, guarded(other, rkt::evt<int>(never_put)))), boom);
  // As racket 8.7 prints: the semaphore's guard was chosen, the other not.
  EXPECT_FALSE(chosen.posted());
  EXPECT_TRUE(other.posted());
  EXPECT_FALSE(sem.try_wait());
  poster.join();
}

// DISABLED: fails on the core at c966e64 (the chosen leaf's nack is posted);
// see the report. sync_frame::replace applies the wraps under the replace
// before it marks the chosen leaf's nack scopes chosen, so a throwing wrap
// leaves through ~sync_frame, which posts them.
TEST_F(EvtNackTest, NackOfAReplacedEventNotPostedWhenAWrapUnderTheReplaceThrows) {
  nack_box chosen, other;
  rkt::semaphore sem;
  rkt::channel<int> never_put;
  auto r = rkt::replace_evt(guarded(chosen, rkt::wrap_evt(sem, []() -> int { throw boom{7}; })),
                            [](int v) { return rkt::always_evt(v); });
  scoped_thread poster([&] { sem.post(); });
  EXPECT_THROW(sync_within(rkt::choice_evt(r, guarded(other, rkt::evt<int>(never_put)))), boom);
  // racket 8.7: n1=#f n2=#t for the same program (the semaphore's event was
  // chosen before its wrap raised).
  EXPECT_FALSE(chosen.posted());
  EXPECT_TRUE(other.posted());
  poster.join();
}

TEST_F(EvtNackTest, NackPostedWhenTheSyncingThreadIsKilledWhileParked) {
  nack_box box;
  scoped_thread syncer([&] { rkt::sync(guarded(box, rkt::never_evt_of<int>()), hang_guard(-1)); });
  bool made_before_kill = false;
  bool posted_before_kill = true;
  bool posted_after_kill = false;
  scoped_thread killer([&] {
    // Idle means the syncer is parked in its sync.
    sync_within(rkt::system_idle_evt());
    made_before_kill = box.made();
    posted_before_kill = box.posted();
    syncer.get().kill();
    posted_after_kill = box.posted();
  });
  killer.join();
  syncer.join();
  EXPECT_TRUE(made_before_kill);
  EXPECT_FALSE(posted_before_kill);
  EXPECT_TRUE(posted_after_kill);
}

TEST_F(EvtNackTest, NackPostedWhenTheThreadIsKilledInsideTheGuardMaker) {
  nack_box box;
  rkt::channel<int> gate;
  bool maker_returned = false;
  scoped_thread syncer([&] {
    auto e = rkt::nack_guard_evt([&](rkt::evt<void> nack) {
      box.nack = nack;
      // Parks inside the maker, before it has returned an event.
      sync_within(gate);
      maker_returned = true;
      return rkt::never_evt();
    });
    sync_within(e);
  });
  sync_within(rkt::system_idle_evt());
  ASSERT_TRUE(box.made());
  EXPECT_FALSE(box.posted());
  syncer.get().kill();
  EXPECT_FALSE(maker_returned);
  // racket 8.7 docs: "even if nack-guard's maker has not yet returned".
  EXPECT_TRUE(box.posted());
}

TEST_F(EvtNackTest, NackPostedWhenTheSyncingThreadIsKilledFromAnotherOsThread) {
  nack_box box;
  scoped_thread syncer([&] { sync_within(guarded(box, rkt::never_evt())); });
  sync_within(rkt::system_idle_evt());
  ASSERT_TRUE(box.made());
  bool posted_seen_there = false;
  std::jthread killer([&] {
    syncer.get().kill();
    // The kill returns once the syncer is dead, so its nack is posted.
    posted_seen_there = rkt::sync_timeout(kZero, *box.nack);
  });
  // This OS thread must keep running its scheduler for the syncer to die.
  syncer.join();
  killer.join();
  EXPECT_TRUE(posted_seen_there);
  EXPECT_TRUE(box.posted());
}

TEST_F(EvtNackTest, EveryNackPostedWhenAThreadIsKilledInAChoice) {
  nack_box a, b, inner;
  rkt::channel<int> ch;
  scoped_thread syncer([&] {
    auto nested = guarded(b, rkt::choice_evt(guarded(inner, rkt::evt<int>(ch))));
    sync_within(rkt::choice_evt(guarded(a, rkt::never_evt_of<int>()), nested));
  });
  // Idle means the syncer is parked; its sync_within bounds the kill.
  sync_within(rkt::system_idle_evt());
  ASSERT_TRUE(a.made() && b.made() && inner.made());
  EXPECT_FALSE(a.posted() || b.posted() || inner.posted());
  syncer.get().kill();
  EXPECT_TRUE(a.posted());
  EXPECT_TRUE(b.posted());
  EXPECT_TRUE(inner.posted());
  // The killed sync left no getter on the channel.
  EXPECT_FALSE(rkt::sync_timeout(kZero, ch.put_evt(1)));
}

// ---------------------------------------------------------------------------
// The chosen event's nack.

TEST_F(EvtNackTest, NackOfTheChosenEventNeverBecomesReady) {
  nack_box chosen, other;
  EXPECT_EQ(
      rkt::sync(guarded(chosen, rkt::always_evt(1)), guarded(other, rkt::never_evt_of<int>())), 1);
  ASSERT_TRUE(chosen.made());
  EXPECT_FALSE(chosen.posted());
  // Nor later, whatever else syncs.
  for (int i = 0; i < 10; ++i) rkt::sync(rkt::always_evt());
  EXPECT_FALSE(rkt::sync_timeout(kShort, *chosen.nack));
  EXPECT_TRUE(other.posted_if_made());
}

TEST_F(EvtNackTest, NackOfAChosenEventThatBlockedFirstNeverBecomesReady) {
  nack_box chosen, other;
  rkt::channel<int> ch, never_put;
  scoped_thread putter([&] { ch.put(5); });
  EXPECT_EQ(sync_within(rkt::choice_evt(guarded(chosen, rkt::evt<int>(ch)),
                                        guarded(other, rkt::evt<int>(never_put)))),
            5);
  putter.join();
  EXPECT_FALSE(chosen.posted());
  EXPECT_TRUE(other.posted());
  EXPECT_FALSE(rkt::sync_timeout(kShort, *chosen.nack));
}

TEST_F(EvtNackTest, EachSyncGetsItsOwnNack) {
  nack_box first, second;
  int syncs = 0;
  auto g = rkt::nack_guard_evt([&](rkt::evt<void> nack) {
    ++syncs;
    (syncs == 1 ? first : second).nack = nack;
    return syncs == 1 ? rkt::always_evt() : rkt::never_evt();
  });
  EXPECT_TRUE(rkt::sync_timeout(kShort, g));
  EXPECT_FALSE(rkt::sync_timeout(kZero, g));
  ASSERT_TRUE(first.made() && second.made());
  EXPECT_NE(first.nack->node().get(), second.nack->node().get());
  EXPECT_FALSE(first.posted());
  EXPECT_TRUE(second.posted());
}

TEST_F(EvtNackTest, APostedNackStaysReady) {
  nack_box box;
  EXPECT_FALSE(rkt::sync_timeout(kZero, guarded(box, rkt::never_evt())));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(box.posted());
  EXPECT_EQ(rkt::sync(rkt::wrap_evt(*box.nack, [] { return 1; }), rkt::never_evt_of<int>()), 1);
}

TEST_F(EvtNackTest, ManyNackGuardsAllButTheChosenPosted) {
  constexpr int kGuards = 300;
  std::vector<nack_box> boxes(kGuards);
  std::vector<rkt::channel<int>> chans(kGuards);
  std::vector<rkt::evt<int>> evts;
  for (int i = 0; i < kGuards; ++i) evts.push_back(guarded(boxes[i], rkt::evt<int>(chans[i])));
  constexpr int kChosen = 123;
  scoped_thread putter([&] { chans[kChosen].put(kChosen); });
  EXPECT_EQ(sync_within(rkt::choice_evt(evts)), kChosen);
  putter.join();
  for (int i = 0; i < kGuards; ++i) {
    ASSERT_TRUE(boxes[i].made());
    EXPECT_EQ(boxes[i].posted(), i != kChosen) << "guard " << i;
  }
}

// ---------------------------------------------------------------------------
// Nested nack guards.

TEST_F(EvtNackTest, NestedNacksWhenTheInnerEventIsChosen) {
  nack_box outer, inner, sibling;
  rkt::semaphore sem(1);
  auto e = guarded(outer, rkt::choice_evt(guarded(inner, rkt::evt<void>(sem)),
                                          guarded(sibling, rkt::never_evt())));
  rkt::sync(e);
  ASSERT_TRUE(outer.made() && inner.made());
  // As racket 8.7 prints: o=#f i=#f s=#t.
  EXPECT_FALSE(outer.posted());
  EXPECT_FALSE(inner.posted());
  EXPECT_TRUE(sibling.posted_if_made());
}

TEST_F(EvtNackTest, NestedNacksWhenTheInnerEventIsChosenAfterBlocking) {
  nack_box outer, inner, sibling;
  rkt::channel<int> ch, never_put;
  auto e = guarded(outer, rkt::choice_evt(guarded(inner, rkt::evt<int>(ch)),
                                          guarded(sibling, rkt::evt<int>(never_put))));
  scoped_thread putter([&] { ch.put(1); });
  EXPECT_EQ(sync_within(e), 1);
  EXPECT_FALSE(outer.posted());
  EXPECT_FALSE(inner.posted());
  EXPECT_TRUE(sibling.posted());
  putter.join();
}

TEST_F(EvtNackTest, NestedNacksWhenAnOutsideEventIsChosen) {
  nack_box outer, inner, sibling;
  rkt::channel<int> ch, never_put;
  auto e = guarded(outer, rkt::choice_evt(guarded(inner, rkt::evt<int>(never_put)),
                                          guarded(sibling, rkt::never_evt_of<int>())));
  scoped_thread putter([&] { ch.put(2); });
  EXPECT_EQ(sync_within(rkt::choice_evt(e, rkt::evt<int>(ch))), 2);
  EXPECT_TRUE(outer.posted());
  EXPECT_TRUE(inner.posted());
  EXPECT_TRUE(sibling.posted());
  putter.join();
}

// ---------------------------------------------------------------------------
// Nacks and replace_evt.

TEST_F(EvtNackTest, ReplacementChosenPostsOnlyTheOthers) {
  nack_box under, replacement, other;
  rkt::semaphore sem(1);
  auto r = rkt::replace_evt(guarded(under, rkt::evt<void>(sem)),
                            [&] { return guarded(replacement, rkt::always_evt(5)); });
  EXPECT_EQ(rkt::sync(r, guarded(other, rkt::never_evt_of<int>())), 5);
  // As racket 8.7 prints: n1=#f n2=#f n3=#t.
  EXPECT_FALSE(under.posted());
  EXPECT_FALSE(replacement.posted());
  EXPECT_TRUE(other.posted_if_made());
}

TEST_F(EvtNackTest, NackUnderAReplaceNotPostedWhenTheReplacementTimesOut) {
  nack_box under, replacement;
  rkt::semaphore sem(1);
  auto r = rkt::replace_evt(guarded(under, rkt::evt<void>(sem)),
                            [&] { return guarded(replacement, rkt::never_evt()); });
  EXPECT_FALSE(rkt::sync_timeout(kShort, r));
  // The semaphore committed on its own and its guard's event was chosen
  // (racket 8.7: n1=#f); the replacement's was not.
  EXPECT_FALSE(sem.try_wait());
  EXPECT_FALSE(under.posted());
  ASSERT_TRUE(replacement.made());
  EXPECT_TRUE(replacement.posted());
}

TEST_F(EvtNackTest, NackUnderAReplaceNotPostedWhenAPollFindsNoReplacement) {
  nack_box under, replacement;
  rkt::semaphore sem(1);
  auto r = rkt::replace_evt(guarded(under, rkt::evt<void>(sem)),
                            [&] { return guarded(replacement, rkt::never_evt()); });
  EXPECT_FALSE(rkt::sync_timeout(kZero, r));
  EXPECT_FALSE(sem.try_wait());
  EXPECT_FALSE(under.posted());
  EXPECT_TRUE(replacement.posted());
}

TEST_F(EvtNackTest, NackAroundAReplacePostedWhenTheReplacementTimesOut) {
  nack_box around, replacement;
  rkt::semaphore sem(1);
  auto e = guarded(around,
                   rkt::replace_evt(sem, [&] { return guarded(replacement, rkt::never_evt()); }));
  EXPECT_FALSE(rkt::sync_timeout(kShort, e));
  // racket 8.7: n0=#t n2=#t.
  EXPECT_TRUE(around.posted());
  EXPECT_TRUE(replacement.posted());
  EXPECT_FALSE(sem.try_wait());
}

TEST_F(EvtNackTest, NackAroundAReplaceNotPostedWhenTheReplacementIsChosen) {
  nack_box around, replacement;
  rkt::semaphore sem(1);
  auto e = guarded(around,
                   rkt::replace_evt(sem, [&] { return guarded(replacement, rkt::always_evt(3)); }));
  EXPECT_EQ(rkt::sync_timeout(kShort, e), std::optional<int>(3));
  EXPECT_FALSE(around.posted());
  EXPECT_FALSE(replacement.posted());
}

TEST_F(EvtNackTest, ReplacementsNackPostedWhenAnotherEventWins) {
  nack_box under, replacement;
  rkt::semaphore sem(1);
  rkt::channel<int> ch;
  auto r = rkt::replace_evt(guarded(under, rkt::evt<void>(sem)),
                            [&] { return guarded(replacement, rkt::never_evt_of<int>()); });
  scoped_thread putter([&] { ch.put(8); });
  EXPECT_EQ(sync_within(rkt::choice_evt(r, rkt::evt<int>(ch))), 8);
  // racket 8.7: n1=#f n2=#t.
  EXPECT_FALSE(under.posted());
  EXPECT_TRUE(replacement.posted());
  putter.join();
}

// ---------------------------------------------------------------------------
// Nacks wake the threads that wait on them.

TEST_F(EvtNackTest, PostingANackWakesAGreenThreadParkedOnIt) {
  nack_box box;
  rkt::semaphore made;
  rkt::channel<int> ch;
  auto e = rkt::nack_guard_evt([&](rkt::evt<void> nack) {
    box.nack = nack;
    made.post();
    return rkt::never_evt_of<int>();
  });
  bool woken = false;
  scoped_thread waiter([&] {
    sync_within(made);
    woken = rkt::sync_timeout(rkt::test::kHangBound, *box.nack);
  });
  scoped_thread putter([&] {
    // Idle: the main sync and the waiter are both parked.
    sync_within(rkt::system_idle_evt());
    ch.put(1);
  });
  EXPECT_EQ(sync_within(rkt::choice_evt(e, rkt::evt<int>(ch))), 1);
  waiter.join();
  putter.join();
  EXPECT_TRUE(woken);
}

TEST_F(EvtNackTest, PostingANackWakesASyncOnAnotherOsThread) {
  std::promise<rkt::evt<void>> nack_promise;
  std::future<rkt::evt<void>> nack_future = nack_promise.get_future();
  rkt::semaphore other_is_arming;
  std::atomic<bool> woken{false};
  std::jthread other([&] {
    if (nack_future.wait_for(std::chrono::seconds(20)) != std::future_status::ready) return;
    rkt::evt<void> nack = nack_future.get();
    rkt::evt<void> signal(rkt::make_node<armed_signal>(other_is_arming));
    woken = rkt::sync_timeout(rkt::test::kHangBound, rkt::choice_evt(nack, signal));
  });
  auto e = rkt::nack_guard_evt([&](rkt::evt<void> nack) {
    nack_promise.set_value(nack);
    return rkt::never_evt();
  });
  // The main sync ends when the other OS thread arms its own sync, so the
  // nack is posted while that sync is arming or parked.
  EXPECT_TRUE(rkt::sync_timeout(rkt::test::kHangBound, e, rkt::evt<void>(other_is_arming)));
  other.join();
  EXPECT_TRUE(woken);
}

}  // namespace
