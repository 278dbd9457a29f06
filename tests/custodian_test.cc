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

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

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
#include "ports/fd_port.h"
#include "ports/port.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/child_process.h"
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

// ---------------------------------------------------------------------------
// What shutdown_all guarantees when it returns.

// Every thread the shutdown killed on this OS thread is dead when
// shutdown_all returns: not running, its dead_evt ready, and the nack of
// the sync it was parked in posted.
TEST_F(CustodianTest, ThreadsKilledOnThisOsThreadAreDeadWhenShutdownReturns) {
  rkt::custodian c = rkt::make_custodian();
  rkt::channel<int> never;
  rkt::semaphore ready;
  std::optional<rkt::evt<void>> nack;
  std::vector<rkt::thread> ts;
  {
    rkt::custodian_scope in(c);
    ts.push_back(spawn_parked(ready, [&] {
      rkt::sync(rkt::nack_guard_evt([&](rkt::evt<void> n) {
        nack = n;
        return rkt::evt<int>(never);
      }));
    }));
    // Parked in a sleep that only the kill ends (not a wait for anything).
    ts.push_back(spawn_parked(ready, [&] { rkt::sleep(absl::Hours(1)); }));
    ts.emplace_back([] {});  // not started yet
  }
  c.shutdown_all();
  for (const rkt::thread& t : ts) {
    EXPECT_FALSE(t.running());
    EXPECT_TRUE(ready_now(t.dead_evt()));
  }
  ASSERT_TRUE(nack.has_value());
  EXPECT_TRUE(ready_now(*nack));
}

// A thread parked in read_line on a port that the same shutdown closes
// unwinds with the kill, whatever the order of registration: its exn_fail
// handler does not run and no "uncaught exception" line is printed.
TEST_F(CustodianTest, AThreadParkedOnAPortTheShutdownClosesUnwindsWithTheKill) {
  for (bool port_first : {true, false}) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    rkt::custodian c = rkt::make_custodian();
    rkt::semaphore ready;
    std::atomic<int> unwound{0};
    bool handler_ran = false;
    std::optional<rkt::thread> reader;
    {
      rkt::custodian_scope in(c);
      std::optional<rkt::input_port> in_port;
      if (port_first) in_port = rkt::make_fd_ports(fds[0], "conn").first;
      reader.emplace(spawn_parked(ready, [&, in_port]() mutable {
        unwind_counter u(unwound);
        if (!in_port) in_port = rkt::make_fd_ports(fds[0], "conn").first;
        try {
          in_port->read_line();
        } catch (const rkt::exn_fail&) {
          handler_ran = true;
        }
      }));
    }
    rkt::yield();  // let the reader park in read_line
    ::testing::internal::CaptureStderr();
    c.shutdown_all();
    EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
    EXPECT_TRUE(reader->dead());
    EXPECT_EQ(unwound.load(), 1);
    EXPECT_FALSE(handler_ran) << (port_first ? "port registered first" : "thread first");
    ::close(fds[1]);
  }
}

// shutdown_all does not wait for a thread of another OS thread; it dies as
// soon as its scheduler runs it.
TEST_F(CustodianTest, AThreadOfAnotherOsThreadDiesWhenItsSchedulerRunsIt) {
  rkt::custodian c = rkt::make_custodian();
  rkt::channel<rkt::thread> spawned;
  rkt::semaphore release;
  std::jthread os = start_os_thread([&] {
    rkt::thread t = [&] {
      rkt::custodian_scope in(c);
      // Parked in a sleep that only the kill ends.
      return rkt::thread([] { rkt::sleep(absl::Hours(1)); });
    }();
    spawned.put(t);
    sync_within(release);
    await(t);
  });
  rkt::thread remote = sync_within(spawned);
  c.shutdown_all();
  release.post();
  await(remote);
  os.join();
  EXPECT_TRUE(remote.dead());
}

// ---------------------------------------------------------------------------
// kill() and the custodians that manage a thread.

TEST_F(CustodianTest, KillRaisesUnlessTheCurrentCustodianManagesTheThread) {
  rkt::custodian parent = rkt::make_custodian();
  rkt::custodian c = rkt::make_custodian(parent);
  rkt::custodian other = rkt::make_custodian();
  rkt::channel<int> never;
  rkt::semaphore ready;
  std::optional<rkt::thread> t;
  {
    rkt::custodian_scope in(c);
    t.emplace(spawn_parked(ready, [&] { never.get(); }, "victim"));
  }
  {
    rkt::custodian_scope in(other);
    try {
      t->kill();
      ADD_FAILURE() << "kill from an unrelated custodian";
    } catch (const rkt::exn_fail_contract& e) {
      EXPECT_STREQ(e.what(),
                   "kill-thread: the current custodian does not solely manage the specified "
                   "thread\n  thread: #<thread:victim>");
    }
    EXPECT_TRUE(t->running());
  }
  {
    rkt::custodian_scope in(parent);  // a superior manages it
    t->kill();
  }
  EXPECT_TRUE(t->dead());
}

// Racket's thread-resume with a custodian benefactor: the thread gains a
// manager, outlives the shutdown of its first one, and dies with the last.
TEST_F(CustodianTest, ThreadResumeWithACustodianAddsAManager) {
  rkt::custodian first = rkt::make_custodian();
  rkt::custodian second = rkt::make_custodian();
  rkt::channel<int> never;
  rkt::semaphore ready;
  std::optional<rkt::thread> t;
  {
    rkt::custodian_scope in(first);
    t.emplace(spawn_parked(ready, [&] { never.get(); }));
  }
  rkt::thread_resume(*t, second);
  EXPECT_EQ(second.managed_list().size(), 1u);
  first.shutdown_all();
  EXPECT_TRUE(t->running());
  {
    // Managed by `second` too now: `first`'s scope alone may not kill it.
    rkt::custodian_scope in(rkt::make_custodian());
    EXPECT_THROW(t->kill(), rkt::exn_fail_contract);
  }
  second.shutdown_all();
  EXPECT_TRUE(t->dead());
}

// A benefactor that is a superior of a manager makes that manager
// redundant: it is dropped, so its shutdown no longer concerns the thread.
TEST_F(CustodianTest, ThreadResumeDropsARedundantSubordinateManager) {
  rkt::custodian parent = rkt::make_custodian();
  rkt::custodian child = rkt::make_custodian(parent);
  rkt::channel<int> never;
  rkt::semaphore ready;
  std::optional<rkt::thread> t;
  {
    rkt::custodian_scope in(child);
    t.emplace(spawn_parked(ready, [&] { never.get(); }));
  }
  rkt::thread_resume(*t, parent);
  EXPECT_TRUE(child.managed_list().empty());
  EXPECT_EQ(parent.managed_list().size(), 1u);
  child.shutdown_all();
  EXPECT_TRUE(t->running());
  // A subordinate of a manager adds nothing.
  rkt::thread_resume(*t, rkt::make_custodian(parent));
  EXPECT_EQ(parent.managed_list().size(), 1u);
  parent.shutdown_all();
  EXPECT_TRUE(t->dead());
}

// With a thread benefactor, the thread gains the benefactor's managers now
// and those it gains later (Racket 8.7, checked by running it).
TEST_F(CustodianTest, ThreadResumeWithAThreadFollowsItsManagers) {
  rkt::custodian ca = rkt::make_custodian();
  rkt::custodian cb = rkt::make_custodian();
  rkt::custodian later = rkt::make_custodian();
  rkt::channel<int> never;
  rkt::semaphore ready;
  std::optional<rkt::thread> a;
  std::optional<rkt::thread> b;
  {
    rkt::custodian_scope in(ca);
    a.emplace(spawn_parked(ready, [&] { never.get(); }));
  }
  {
    rkt::custodian_scope in(cb);
    b.emplace(spawn_parked(ready, [&] { never.get(); }));
  }
  rkt::thread_resume(*b, *a);  // b gains ca
  cb.shutdown_all();
  EXPECT_TRUE(b->running());
  rkt::thread_resume(*a, later);  // a gains `later`, and so does b
  ca.shutdown_all();
  EXPECT_TRUE(a->running());
  EXPECT_TRUE(b->running());
  later.shutdown_all();
  EXPECT_TRUE(a->dead());
  EXPECT_TRUE(b->dead());
}

TEST_F(CustodianTest, ThreadResumeOfADeadThreadOrWithAShutDownCustodianDoesNothing) {
  rkt::custodian c = rkt::make_custodian();
  rkt::thread done([] {});
  await(done);
  rkt::thread_resume(done, c);
  EXPECT_TRUE(c.managed_list().empty());
  rkt::custodian gone = rkt::make_custodian();
  gone.shutdown_all();
  rkt::channel<int> never;
  rkt::semaphore ready;
  std::optional<rkt::thread> t;
  {
    rkt::custodian_scope in(c);
    t.emplace(spawn_parked(ready, [&] { never.get(); }));
  }
  rkt::thread_resume(*t, gone);
  c.shutdown_all();
  EXPECT_TRUE(t->dead());
}

// ---------------------------------------------------------------------------
// managed_list(super) and messages, as Racket's.

TEST_F(CustodianTest, ManagedListChecksThatSuperManagesTheCustodian) {
  rkt::custodian c1 = rkt::make_custodian();
  rkt::custodian c2 = rkt::make_custodian(c1);
  rkt::custodian other = rkt::make_custodian();
  EXPECT_TRUE(c2.managed_list(rkt::custodian::root()).empty());
  EXPECT_TRUE(c2.managed_list(c1).empty());
  for (auto [cust, super] : {std::pair{c1, c1}, std::pair{c1, c2}, std::pair{c2, other}}) {
    try {
      cust.managed_list(super);
      ADD_FAILURE() << "no error";
    } catch (const rkt::exn_fail_contract& e) {
      EXPECT_STREQ(e.what(),
                   "custodian-managed-list: the second custodian does not manage the first "
                   "custodian\n  first custodian: #<custodian>\n  second custodian: "
                   "#<custodian>");
    }
  }
  // A shutdown empties a custodian but leaves the tree as it was built.
  c1.shutdown_all();
  EXPECT_TRUE(c2.managed_list(rkt::custodian::root()).empty());
}

TEST_F(CustodianTest, MessagesNameTheCustodianAsRacketPrintsIt) {
  rkt::custodian c = rkt::make_custodian();
  c.shutdown_all();
  try {
    rkt::make_custodian(c);
    ADD_FAILURE() << "no error";
  } catch (const rkt::exn_fail_contract& e) {
    EXPECT_STREQ(e.what(),
                 "make-custodian: the custodian has been shut down\n  custodian: #<custodian>");
  }
}

// ---------------------------------------------------------------------------
// Process exit.

// A process whose main returns while green threads are parked kills them
// all, and finishes in bounded time even though their destructors would
// block: one syncs on a channel nobody serves (and catches the failure),
// one closes an fd port whose peer never reads, with unflushed output.
TEST_F(CustodianTest, ProcessExitFinishesWhenDestructorsWouldBlock) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child: a fresh scheduler of its own on a new OS thread, so that
    // nothing of the parent's threads is inherited.
    std::thread child_main([&] {
      // Everything the green threads use is captured by value: they unwind
      // after this function's locals are gone, during the OS thread's exit.
      rkt::channel<int> never;
      struct syncs_on_exit {
        rkt::channel<int> ch;
        ~syncs_on_exit() {
          try {
            ch.put(1);
          } catch (const rkt::exn_fail&) {
          }
        }
      };
      // Fill the socket's send buffer: the peer never reads, so no byte
      // written through the port below can ever be flushed.
      const std::string chunk(4096, 'x');
      while (::send(fds[0], chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) {
      }
      auto [in, out] = rkt::make_fd_ports(fds[0], "never-read");
      rkt::thread a([never] {
        syncs_on_exit s{never};
        never.get();
      });
      rkt::thread b([out = out, never] {
        struct closes_on_exit {
          rkt::output_port out;
          ~closes_on_exit() { out.close(); }
        } guard{out};
        guard.out.write_bytes(std::string(1000, 'y'));  // stays in the buffer
        never.get();
      });
      rkt::yield();
      rkt::yield();
    });  // the OS thread exits with both threads parked
    child_main.join();
    std::_Exit(0);
  }
  ::close(fds[0]);
  int status = 0;
  const bool exited = rkt::test::wait_for_child(pid, absl::Seconds(20), status);
  ::close(fds[1]);
  ASSERT_TRUE(exited) << "the child did not exit: a destructor blocked its teardown";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

}  // namespace
