// Tests of rkt::channel<T> (evt/channel.h) against Racket 8.7's channels
// (reference 11.2.2): get/put/try_get, put_evt, the channel as an event,
// exactly-once hand-over when a put or a get sits in a choice that loses,
// no self-rendezvous inside one sync, FIFO service of waiting getters and
// putters, and exactly-once delivery under contention from green threads
// on two OS threads.
//
// Blocking calls run on green threads; the test body waits for them with a
// bound (sync_within), so a bug fails the test instead of hanging it.
#include "evt/channel.h"

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
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
using ::rkt::test::await;
using ::rkt::test::start_os_thread;
using ::rkt::test::spawn_parked;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

TEST(ChannelTest, GetReceivesWhatPutSends) {
  rkt::channel<int> ch;
  int got = 0;
  rkt::thread getter([&] { got = ch.get(); });
  rkt::thread putter([&] { ch.put(42); });
  await(getter);
  await(putter);
  EXPECT_EQ(got, 42);
}

TEST(ChannelTest, PutReturnsOnlyOnceAGetterHasTakenTheValue) {
  rkt::channel<std::string> ch;
  rkt::semaphore ready;
  bool put_returned = false;
  rkt::thread putter = spawn_parked(ready, [&] {
    ch.put("hello");
    put_returned = true;
  });
  rkt::yield();
  EXPECT_FALSE(put_returned);
  EXPECT_EQ(sync_within(ch), "hello");
  await(putter);
  EXPECT_TRUE(put_returned);
}

TEST(ChannelTest, TryGetIsEmptyWithoutAWaitingPutter) {
  rkt::channel<int> ch;
  EXPECT_EQ(ch.try_get(), std::nullopt);
}

TEST(ChannelTest, TryGetTakesFromAWaitingPutterOnce) {
  rkt::channel<int> ch;
  rkt::semaphore ready;
  rkt::thread putter = spawn_parked(ready, [&] { ch.put(3); });
  EXPECT_EQ(ch.try_get(), 3);
  EXPECT_EQ(ch.try_get(), std::nullopt);
  await(putter);
}

TEST(ChannelTest, ChannelIsAnEventWhoseResultIsTheValue) {
  rkt::channel<int> a;
  rkt::channel<int> b;
  rkt::thread putter([&] { b.put(5); });
  // Only b has a putter, so the choice can only commit to b.
  EXPECT_EQ(sync_within(rkt::choice_evt(a, b)), 5);
  rkt::thread putter2([&] { a.put(6); });
  EXPECT_EQ(sync_within(rkt::wrap_evt(a, [](int v) { return v * 10; })), 60);
  await(putter);
  await(putter2);
}

TEST(ChannelTest, PutEvtIsReadyOnlyWhileAGetterWaits) {
  rkt::channel<int> ch;
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), ch.put_evt(1)));
  rkt::semaphore ready;
  int got = 0;
  rkt::thread getter = spawn_parked(ready, [&] { got = ch.get(); });
  EXPECT_TRUE(rkt::sync_timeout(absl::ZeroDuration(), ch.put_evt(2)));
  await(getter);
  EXPECT_EQ(got, 2);
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), ch.put_evt(3)));
}

TEST(ChannelTest, PutEvtCopiesItsValueAtEachCommit) {
  rkt::channel<std::string> ch;
  rkt::evt<void> put = ch.put_evt("again");
  std::vector<std::string> got;
  rkt::thread getter([&] {
    got.push_back(ch.get());
    got.push_back(ch.get());
  });
  sync_within(put);
  sync_within(put);
  await(getter);
  EXPECT_THAT(got, ElementsAre("again", "again"));
}

// Counts the copies made of it, to tell a move from a copy.
struct copy_counter {
  explicit copy_counter(std::atomic<int>* c) : copies(c) {}
  copy_counter(const copy_counter& o) : copies(o.copies) { copies->fetch_add(1); }
  copy_counter(copy_counter&& o) noexcept = default;
  copy_counter& operator=(const copy_counter&) = delete;
  copy_counter& operator=(copy_counter&&) = delete;
  std::atomic<int>* copies;
};

TEST(ChannelTest, PutMovesItsValueToTheGetter) {
  rkt::channel<copy_counter> ch;
  std::atomic<int> copies{0};
  rkt::thread putter([&] { ch.put(copy_counter(&copies)); });
  copy_counter got = sync_within(ch);
  await(putter);
  EXPECT_EQ(got.copies, &copies);
  EXPECT_EQ(copies.load(), 0);
}

template <class C, class V>
concept has_put_evt = requires(const C& c, V v) { c.put_evt(std::move(v)); };

// A move-only T goes through put() and get(); put_evt, which copies, is
// not offered for it.
TEST(ChannelTest, MoveOnlyValuesPassThroughPut) {
  using ptr = std::unique_ptr<int>;
  static_assert(!has_put_evt<rkt::channel<ptr>, ptr>);
  static_assert(has_put_evt<rkt::channel<int>, int>);
  rkt::channel<ptr> ch;
  rkt::thread putter([&] { ch.put(std::make_unique<int>(42)); });
  std::unique_ptr<int> got = sync_within(ch);
  await(putter);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(*got, 42);
}

// Racket: the put event of a choice that commits elsewhere hands nothing
// over. Each round offers a put against an always-ready event while a getter
// waits, so either may win; every value the getter sees must be one whose
// put won, exactly once.
TEST(ChannelTest, PutInAChoiceThatLosesNeverDeliversItsValue) {
  constexpr int kRounds = 200;
  rkt::channel<int> ch;
  std::vector<int> received;
  rkt::thread getter([&] {
    for (;;) {
      int v = ch.get();
      if (v < 0) return;
      received.push_back(v);
    }
  });
  std::vector<int> delivered;
  for (int i = 0; i < kRounds; ++i) {
    rkt::yield();  // the getter parks again
    bool put_won = sync_within(rkt::choice_evt(rkt::wrap_evt(ch.put_evt(i), [] { return true; }),
                                               rkt::always_evt(false)));
    if (put_won) delivered.push_back(i);
  }
  sync_within(ch.put_evt(-1));
  await(getter);
  EXPECT_EQ(received, delivered);
  // Both branches must have won sometimes, or the test proved nothing.
  EXPECT_GT(delivered.size(), 0u);
  EXPECT_LT(delivered.size(), static_cast<size_t>(kRounds));
}

// The mirror image: a get that loses leaves the putter's value in place.
TEST(ChannelTest, GetInAChoiceThatLosesTakesNothing) {
  constexpr int kRounds = 200;
  rkt::channel<int> ch;
  rkt::thread putter([&] {
    for (int i = 0; i < kRounds; ++i) ch.put(i);
  });
  std::vector<int> got;
  int losses = 0;
  while (static_cast<int>(got.size()) < kRounds) {
    rkt::yield();  // the putter parks again
    std::optional<int> v = sync_within(rkt::choice_evt(
        rkt::wrap_evt(ch, [](int x) { return std::optional<int>(x); }),
        rkt::always_evt(std::optional<int>())));
    if (v.has_value()) {
      got.push_back(*v);
    } else {
      ++losses;
    }
  }
  await(putter);
  std::vector<int> expected(kRounds);
  for (int i = 0; i < kRounds; ++i) expected[i] = i;
  EXPECT_EQ(got, expected);
  EXPECT_GT(losses, 0);
}

TEST(ChannelTest, ChoiceOfTwoPutsDeliversExactlyOne) {
  rkt::channel<int> a;
  rkt::channel<int> b;
  rkt::semaphore ready;
  std::vector<int> got;
  rkt::thread get_a = spawn_parked(ready, [&] { got.push_back(a.get()); });
  rkt::thread get_b = spawn_parked(ready, [&] { got.push_back(b.get()); });
  sync_within(rkt::choice_evt(a.put_evt(1), b.put_evt(2)));
  rkt::yield();
  ASSERT_EQ(got.size(), 1u);
  // Release the getter that lost.
  const bool a_won = got[0] == 1;
  sync_within(a_won ? b.put_evt(2) : a.put_evt(1));
  await(get_a);
  await(get_b);
  EXPECT_THAT(got, UnorderedElementsAre(1, 2));
}

// Racket's channel never matches a get with a put of the same sync.
TEST(ChannelTest, GetAndPutOfTheSameSyncNeverMatch) {
  rkt::channel<int> ch;
  auto self_put = rkt::wrap_evt(ch.put_evt(1), [] { return -1; });
  EXPECT_EQ(rkt::sync_timeout(absl::ZeroDuration(), ch, self_put), std::nullopt);
  EXPECT_EQ(rkt::sync_timeout(absl::Milliseconds(20), ch, self_put), std::nullopt);
}

// Two syncs that each offer both directions do match each other: one's put
// meets the other's get.
TEST(ChannelTest, SyncsOfferingBothDirectionsMatchEachOther) {
  rkt::channel<int> ch;
  std::vector<int> results;
  auto both_ways = [&](int id) {
    return rkt::thread([&, id] {
      results.push_back(rkt::sync(ch, rkt::wrap_evt(ch.put_evt(id), [] { return -1; })));
    });
  };
  rkt::thread one = both_ways(1);
  rkt::thread two = both_ways(2);
  await(one);
  await(two);
  EXPECT_THAT(results, ::testing::AnyOf(UnorderedElementsAre(-1, 1), UnorderedElementsAre(-1, 2)));
}

TEST(ChannelTest, WaitingGettersAreServedInArrivalOrder) {
  rkt::channel<int> ch;
  rkt::semaphore ready;
  int got[3] = {0, 0, 0};
  rkt::thread a = spawn_parked(ready, [&] { got[0] = ch.get(); });
  rkt::thread b = spawn_parked(ready, [&] { got[1] = ch.get(); });
  rkt::thread c = spawn_parked(ready, [&] { got[2] = ch.get(); });
  // Each put goes to the oldest waiting getter, one at a time.
  sync_within(ch.put_evt(1));
  await(a);
  EXPECT_TRUE(b.running());
  EXPECT_TRUE(c.running());
  sync_within(ch.put_evt(2));
  await(b);
  EXPECT_TRUE(c.running());
  sync_within(ch.put_evt(3));
  await(c);
  EXPECT_THAT(got, ElementsAre(1, 2, 3));
}

TEST(ChannelTest, WaitingPuttersAreServedInArrivalOrder) {
  rkt::channel<char> ch;
  rkt::semaphore ready;
  rkt::thread a = spawn_parked(ready, [&] { ch.put('a'); });
  rkt::thread b = spawn_parked(ready, [&] { ch.put('b'); });
  rkt::thread c = spawn_parked(ready, [&] { ch.put('c'); });
  EXPECT_EQ(sync_within(ch), 'a');
  EXPECT_EQ(sync_within(ch), 'b');
  EXPECT_EQ(sync_within(ch), 'c');
  await(a);
  await(b);
  await(c);
}

// Racket: a thread blocked on a channel that sees infinitely many
// transactions eventually takes part. Statistically: three looping getters
// all get a fair share of many puts.
TEST(ChannelTest, NoWaitingGetterStarves) {
  constexpr int kGetters = 3;
  constexpr int kPuts = 600;
  rkt::channel<int> ch;
  int share[kGetters] = {0, 0, 0};
  std::vector<rkt::thread> getters;
  for (int g = 0; g < kGetters; ++g) {
    getters.emplace_back([&, g] {
      while (ch.get() >= 0) ++share[g];
    });
  }
  for (int i = 0; i < kPuts; ++i) sync_within(ch.put_evt(i));
  for (int g = 0; g < kGetters; ++g) sync_within(ch.put_evt(-1));
  for (const rkt::thread& t : getters) await(t);
  for (int g = 0; g < kGetters; ++g) EXPECT_GE(share[g], kPuts / (4 * kGetters)) << "getter " << g;
  EXPECT_EQ(share[0] + share[1] + share[2], kPuts);
}

// A getter killed while parked must leave the channel: a later put finds
// nobody.
TEST(ChannelTest, KilledGetterTakesNoValue) {
  rkt::channel<int> ch;
  rkt::semaphore ready;
  rkt::thread getter = spawn_parked(ready, [&] { ch.get(); });
  rkt::thread killer([&] { getter.kill(); });
  await(killer);
  EXPECT_TRUE(getter.dead());
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), ch.put_evt(1)));
}

// Kill-safety: getters are killed while parked in a get that another OS
// thread's put may be committing at that moment. A get that committed first
// is delivered and the kill lands at the getter's next switch point, after
// it has recorded the value; otherwise the value goes to the next getter.
// Every value is recorded exactly once.
TEST(ChannelTest, KillingGettersNeverLosesOrDuplicatesAValue) {
  constexpr int kValues = 1000;
  rkt::channel<int> ch;
  std::vector<int> hits(kValues, 0);
  int received = 0;
  rkt::semaphore took;         // posted by a getter after each value
  rkt::semaphore worker_done;  // every put has committed
  std::jthread worker = start_os_thread([&] {
    for (int v = 0; v < kValues; ++v) sync_within(ch.put_evt(v));
    worker_done.post();
  });
  const rkt::evt<void> done = worker_done.peek_evt();
  for (int round = 0; !rkt::sync_timeout(absl::ZeroDuration(), done); ++round) {
    rkt::thread getter([&] {
      for (;;) {
        int v = ch.get();
        ++hits[v];
        ++received;
        took.post();
      }
    });
    // Once it has taken a value or two, the getter is parked in its next
    // get (threads switch only at syncs); kill it there.
    for (int i = 0; i < 1 + round % 2; ++i) sync_within(rkt::choice_evt(took, done));
    rkt::thread killer([getter] { getter.kill(); });
    await(killer);
    ASSERT_TRUE(getter.dead());
  }
  worker.join();
  EXPECT_EQ(received, kValues);
  for (int v = 0; v < kValues; ++v) EXPECT_EQ(hits[v], 1) << "value " << v;
}

TEST(ChannelTest, RendezvousBetweenTheRootsOfTwoOsThreads) {
  constexpr int kValues = 1000;
  rkt::channel<int> to_main;
  rkt::channel<int> to_worker;
  long worker_sum = 0;
  std::jthread worker = start_os_thread([&] {
    for (int i = 0; i < kValues; ++i) sync_within(to_main.put_evt(i));
    for (int i = 0; i < kValues; ++i) worker_sum += sync_within(to_worker);
  });
  long main_sum = 0;
  for (int i = 0; i < kValues; ++i) main_sum += sync_within(to_main);
  for (int i = 0; i < kValues; ++i) sync_within(to_worker.put_evt(i));
  worker.join();
  EXPECT_EQ(main_sum, long{kValues} * (kValues - 1) / 2);
  EXPECT_EQ(worker_sum, main_sum);
}

// Green threads on two OS threads put and get on two shared channels, with
// plain puts, choices of puts, choices of gets, and syncs that offer a put
// on one channel against gets on both. Every value must arrive exactly once.
TEST(ChannelTest, EveryValueIsReceivedExactlyOnceUnderContention) {
  constexpr int kProducers = 3;  // per OS thread
  constexpr int kMixed = 2;      // per OS thread: put and get in one sync
  constexpr int kConsumers = 3;  // per OS thread
  constexpr int kPerPutter = 400;
  constexpr int kPutters = 2 * (kProducers + kMixed);
  constexpr int kTotal = kPutters * kPerPutter;

  rkt::yield();
  rkt::test::fd_leak_check fds;

  rkt::channel<int> a;
  rkt::channel<int> b;
  rkt::semaphore all_received;  // posted once, by whoever receives the last
  std::vector<std::atomic<int>> hits(kTotal);
  std::atomic<int> received{0};
  auto record = [&](int v) {
    ASSERT_GE(v, 0);
    ASSERT_LT(v, kTotal);
    hits[v].fetch_add(1);
    if (received.fetch_add(1) + 1 == kTotal) all_received.post();
  };
  // Gets from either channel until every value has been received.
  auto consume = [&] {
    for (;;) {
      int v = rkt::sync(a, b, rkt::wrap_evt(all_received.peek_evt(), [] { return -1; }));
      if (v < 0) return;
      record(v);
    }
  };
  // Spawns this OS thread's share and waits for it; `side` picks the values.
  auto run_side = [&](int side) {
    std::vector<rkt::thread> ts;
    for (int p = 0; p < kProducers + kMixed; ++p) {
      const int base = (side * (kProducers + kMixed) + p) * kPerPutter;
      if (p < kProducers) {
        ts.emplace_back([&, base] {
          for (int k = 0; k < kPerPutter; ++k) {
            const int v = base + k;
            switch (k % 3) {
              case 0: a.put(v); break;
              case 1: b.put(v); break;
              default: rkt::sync(a.put_evt(v), b.put_evt(v)); break;
            }
          }
        });
      } else {
        ts.emplace_back([&, base] {
          for (int k = 0; k < kPerPutter;) {
            auto put = rkt::wrap_evt(a.put_evt(base + k), [] { return -1; });
            int v = rkt::sync(put, a, b);
            if (v == -1) {
              ++k;
            } else {
              record(v);
            }
          }
          consume();
        });
      }
    }
    for (int c = 0; c < kConsumers; ++c) ts.emplace_back(consume);
    for (const rkt::thread& t : ts) await(t);
  };

  rkt::semaphore worker_done;
  std::jthread worker = start_os_thread([&] {
    run_side(1);
    worker_done.post();
  });
  run_side(0);
  sync_within(worker_done);
  worker.join();

  EXPECT_EQ(received.load(), kTotal);
  for (int v = 0; v < kTotal; ++v) EXPECT_EQ(hits[v].load(), 1) << "value " << v;
  EXPECT_THAT(fds.leaked(), IsEmpty()) << fds.describe(fds.leaked());
}

}  // namespace
