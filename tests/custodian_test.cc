// Tests of custodians (custodian/custodian.h) against Racket 8.7's
// (reference 14.7): the tree, the current custodian and its inheritance,
// shutdown killing green threads wherever they are parked, recursively
// through subordinates and from another OS thread, the thread that shuts
// down its own custodian, refusal to manage under a shut-down custodian,
// managed_list, and the shutdown event.
//
// The rkt::sleep here parks a thread for the shutdown to kill (behaviour
// under test), never a wait for another thread: those use sync_within.
#include "custodian/custodian.h"

#include "custodian/box.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "evt/channel.h"
#include "evt/exn.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/sync_within.h"

namespace {

using ::rkt::test::await;
using ::rkt::test::ready_now;
using ::rkt::test::spawn_parked;
using ::rkt::test::start_os_thread;
using ::rkt::test::sync_within;
using ::rkt::test::unwind_counter;
using ::testing::HasSubstr;

class CustodianTest : public rkt::test::clean_test {};

TEST_F(CustodianTest, TheRootIsCurrentByDefault) {
  EXPECT_EQ(rkt::current_custodian(), rkt::custodian::root());
  EXPECT_FALSE(rkt::custodian::root().is_shut_down());
}

TEST_F(CustodianTest, ScopeSetsTheCurrentCustodianAndRestoresIt) {
  rkt::custodian c = rkt::make_custodian();
  {
    rkt::custodian_scope in(c);
    EXPECT_EQ(rkt::current_custodian(), c);
  }
  EXPECT_EQ(rkt::current_custodian(), rkt::custodian::root());
}

TEST_F(CustodianTest, NewThreadsInheritTheCurrentCustodian) {
  rkt::custodian c = rkt::make_custodian();
  rkt::channel<bool> same;
  std::optional<rkt::thread> t;
  {
    rkt::custodian_scope in(c);
    t.emplace([&] { same.put(rkt::current_custodian() == c); });
  }
  EXPECT_TRUE(sync_within(same));
  await(*t);
}

TEST_F(CustodianTest, ShutdownKillsThreadsParkedOnAChannelAndInSleep) {
  rkt::custodian c = rkt::make_custodian();
  std::atomic<int> unwound{0};
  rkt::channel<int> never;
  rkt::semaphore ready;
  std::vector<rkt::thread> ts;
  {
    rkt::custodian_scope in(c);
    ts.push_back(spawn_parked(ready, [&] {
      unwind_counter u(unwound);
      never.get();
    }));
    ts.push_back(spawn_parked(ready, [&] {
      unwind_counter u(unwound);
      rkt::sleep(absl::Hours(1));
    }));
  }
  EXPECT_EQ(c.managed_list().size(), 2u);
  c.shutdown_all();
  for (const rkt::thread& t : ts) await(t);
  EXPECT_EQ(unwound.load(), 2);
  EXPECT_TRUE(c.is_shut_down());
  EXPECT_TRUE(c.managed_list().empty());
}

TEST_F(CustodianTest, ShutdownReachesSubordinatesRecursively) {
  rkt::custodian parent = rkt::make_custodian();
  rkt::custodian child = rkt::make_custodian(parent);
  rkt::custodian grandchild = rkt::make_custodian(child);
  EXPECT_THAT(parent.children(), ::testing::ElementsAre(child));
  rkt::channel<int> never;
  rkt::semaphore ready;
  std::optional<rkt::thread> t;
  {
    rkt::custodian_scope in(grandchild);
    t.emplace(spawn_parked(ready, [&] { never.get(); }));
  }
  parent.shutdown_all();
  await(*t);
  EXPECT_TRUE(child.is_shut_down());
  EXPECT_TRUE(grandchild.is_shut_down());
  EXPECT_TRUE(parent.children().empty());
}

TEST_F(CustodianTest, ShutdownIsIdempotentAndLeavesOthersAlone) {
  rkt::custodian a = rkt::make_custodian();
  rkt::custodian b = rkt::make_custodian();
  rkt::channel<int> ch;
  rkt::semaphore ready;
  std::optional<rkt::thread> survivor;
  {
    rkt::custodian_scope in(b);
    survivor.emplace(spawn_parked(ready, [&] { ch.get(); }));
  }
  a.shutdown_all();
  a.shutdown_all();
  EXPECT_TRUE(a.is_shut_down());
  EXPECT_FALSE(b.is_shut_down());
  EXPECT_TRUE(survivor->running());
  ch.put(1);
  await(*survivor);
}

TEST_F(CustodianTest, NoThreadOrCustodianUnderAShutDownCustodian) {
  rkt::custodian c = rkt::make_custodian();
  c.shutdown_all();
  rkt::custodian_scope in(c);
  try {
    rkt::thread t([] {});
    FAIL() << "spawned a thread under a shut-down custodian";
  } catch (const rkt::exn_fail_contract& e) {
    EXPECT_THAT(e.what(), HasSubstr("thread: the custodian has been shut down"));
  }
  EXPECT_THROW(rkt::make_custodian(c), rkt::exn_fail_contract);
}

TEST_F(CustodianTest, AThreadThatShutsDownItsOwnCustodianDiesAfterTheRest) {
  rkt::custodian c = rkt::make_custodian();
  rkt::channel<int> never;
  rkt::semaphore ready;
  std::atomic<int> unwound{0};
  bool other_dead_when_self_killed = false;
  std::optional<rkt::thread> other;
  std::optional<rkt::thread> self;
  {
    rkt::custodian_scope in(c);
    other.emplace(spawn_parked(ready, [&] { never.get(); }));
    self.emplace([&, c] {
      unwind_counter u(unwound);
      try {
        c.shutdown_all();
      } catch (...) {
        // The other thread was asked to die before this one was killed.
        other_dead_when_self_killed = c.is_shut_down() && c.managed_list().empty();
        throw;
      }
      ADD_FAILURE() << "shutdown_all returned in a thread it manages";
    });
  }
  await(*self);
  await(*other);
  EXPECT_EQ(unwound.load(), 1);
  EXPECT_TRUE(other_dead_when_self_killed);
}

TEST_F(CustodianTest, ShutdownFromAnotherOsThreadWakesAParkedThread) {
  rkt::custodian c = rkt::make_custodian();
  rkt::channel<int> never;
  rkt::semaphore ready;
  std::optional<rkt::thread> t;
  {
    rkt::custodian_scope in(c);
    t.emplace(spawn_parked(ready, [&] { never.get(); }));
  }
  std::jthread os = start_os_thread([c] { c.shutdown_all(); });
  await(*t);
  os.join();
  EXPECT_TRUE(c.is_shut_down());
}

TEST_F(CustodianTest, ShutdownEvtIsReadyOnlyAfterShutdown) {
  rkt::custodian c = rkt::make_custodian();
  rkt::custodian child = rkt::make_custodian(c);
  EXPECT_FALSE(ready_now(c.shutdown_evt()));
  rkt::thread waiter([child] { sync_within(child.shutdown_evt()); });
  rkt::yield();
  c.shutdown_all();
  await(waiter);
  EXPECT_TRUE(ready_now(c.shutdown_evt()));
}

TEST_F(CustodianTest, DeadThreadsLeaveTheirCustodian) {
  rkt::custodian c = rkt::make_custodian();
  std::vector<rkt::thread> ts;
  {
    rkt::custodian_scope in(c);
    for (int i = 0; i < 100; ++i) ts.emplace_back([] {});
  }
  EXPECT_EQ(c.managed_list().size(), 100u);
  for (const rkt::thread& t : ts) await(t);
  EXPECT_TRUE(c.managed_list().empty());
}

TEST_F(CustodianTest, ThousandsOfCreateAndShutdownCycles) {
  for (int i = 0; i < 2000; ++i) {
    rkt::custodian c = rkt::make_custodian();
    rkt::channel<int> never;
    std::optional<rkt::thread> t;
    {
      rkt::custodian_scope in(c);
      t.emplace([never] { never.get(); });
    }
    rkt::yield();
    c.shutdown_all();
    await(*t);
  }
  EXPECT_TRUE(rkt::custodian::root().children().empty());
}

TEST_F(CustodianTest, BoxHoldsItsValueUntilShutdownAndIsThenReady) {
  rkt::custodian c = rkt::make_custodian();
  rkt::custodian_box<std::string> box(c, "kept");
  EXPECT_EQ(box.value(), std::optional<std::string>("kept"));
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), box));
  rkt::thread waiter([box] { sync_within(box); });
  rkt::yield();
  c.shutdown_all();
  await(waiter);
  EXPECT_EQ(box.value(), std::nullopt);
  EXPECT_TRUE(rkt::sync_timeout(absl::ZeroDuration(), box));
}

TEST_F(CustodianTest, BoxUnderAShutDownCustodianStartsEmpty) {
  rkt::custodian c = rkt::make_custodian();
  c.shutdown_all();
  rkt::custodian_box<int> box(c, 7);
  EXPECT_EQ(box.value(), std::nullopt);
  EXPECT_TRUE(rkt::sync_timeout(absl::ZeroDuration(), box));
}

TEST_F(CustodianTest, ShutdownOfAnAncestorEmptiesTheBox) {
  rkt::custodian parent = rkt::make_custodian();
  rkt::custodian child = rkt::make_custodian(parent);
  auto value = std::make_shared<int>(3);
  std::weak_ptr<int> watch = value;
  rkt::custodian_box<std::shared_ptr<int>> box(child, std::move(value));
  parent.shutdown_all();
  EXPECT_EQ(box.value(), std::nullopt);
  EXPECT_TRUE(watch.expired()) << "the box still holds its value";
}

TEST_F(CustodianTest, TheCustodianDoesNotKeepADroppedBox) {
  rkt::custodian c = rkt::make_custodian();
  auto value = std::make_shared<int>(1);
  std::weak_ptr<int> watch = value;
  {
    rkt::custodian_box<std::shared_ptr<int>> box(c, std::move(value));
    // As in Racket, custodian_managed_list leaves boxes out.
    EXPECT_TRUE(c.managed_list().empty());
  }
  EXPECT_TRUE(watch.expired());
}

}  // namespace
