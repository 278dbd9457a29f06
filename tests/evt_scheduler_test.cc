// Tests of the per-OS-thread scheduler (evt/internal/scheduler.h) through
// the public API: green threads on two OS threads meeting on channels, yield
// order and timers and fds not starved by yielding threads, the lazily made
// scheduler of a plain std::thread, what happens to green threads when their
// OS thread exits (scheduler_owner), and fd readiness through io_handle
// (evt/io_handle.h) on a non-blocking socketpair.
//
// Waits are bounded (sync_within); tests that start OS threads check for
// leaked fds after joining them, since each OS thread's scheduler owns fds.
//
// Every rkt::sleep here is the behaviour under test (sleep, timers, a
// thread parked in sleep), never a way to wait for another thread: those
// waits go through sync_within.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "evt/channel.h"
#include "evt/exn.h"
#include "evt/evt.h"
#include "evt/io_handle.h"
#include "evt/reactor.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/child_process.h"
#include "tests/testing/fd_leak_check.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/sync_within.h"

namespace {

using ::rkt::test::sync_within;
using ::rkt::test::unwind_counter;
using ::rkt::test::await;
using ::rkt::test::start_os_thread;
using ::rkt::test::spawn_parked;
using ::rkt::test::ready_now;
using ::testing::IsEmpty;

// Every test here checks that it leaves no fd behind. The main OS thread's
// scheduler makes its own fds on first use and keeps them, so it is touched
// before the snapshot.
class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rkt::yield();
    fds_.emplace();
  }
  void TearDown() override {
    EXPECT_THAT(fds_->leaked(), IsEmpty()) << fds_->describe(fds_->leaked());
  }

 private:
  std::optional<rkt::test::fd_leak_check> fds_;
};

// ---------------------------------------------------------------------------
// Green threads on two OS threads.

TEST_F(SchedulerTest, GreenThreadsOnTwoOsThreadsRendezvousBothWays) {
  constexpr int kValues = 500;
  rkt::channel<int> main_to_worker;
  rkt::channel<int> worker_to_main;
  long worker_got = 0;
  std::jthread worker = start_os_thread([&] {
    rkt::thread getter([&] {
      for (int i = 0; i < kValues; ++i) worker_got += main_to_worker.get();
    });
    rkt::thread putter([&] {
      for (int i = 0; i < kValues; ++i) worker_to_main.put(i);
    });
    await(getter);
    await(putter);
  });
  long main_got = 0;
  rkt::thread getter([&] {
    for (int i = 0; i < kValues; ++i) main_got += worker_to_main.get();
  });
  rkt::thread putter([&] {
    for (int i = 0; i < kValues; ++i) main_to_worker.put(i);
  });
  await(getter);
  await(putter);
  worker.join();
  EXPECT_EQ(main_got, long{kValues} * (kValues - 1) / 2);
  EXPECT_EQ(worker_got, main_got);
}

// A green thread parked on another OS thread's channel is woken by a put on
// this one while that OS thread's root is itself parked.
TEST_F(SchedulerTest, PutWakesAGreenThreadParkedOnAnotherOsThread) {
  rkt::channel<std::string> ch;
  rkt::semaphore parked;
  std::string got;
  std::jthread worker = start_os_thread([&] {
    rkt::thread getter([&] {
      parked.post();
      got = ch.get();
    });
    await(getter);
  });
  sync_within(parked);
  sync_within(ch.put_evt("across"));
  worker.join();
  EXPECT_EQ(got, "across");
}

// ---------------------------------------------------------------------------
// Yield and fairness.

TEST_F(SchedulerTest, TwoYieldingThreadsAlternate) {
  std::string log;
  auto yielder = [&log](char name) {
    return rkt::thread([&log, name] {
      for (int i = 0; i < 5; ++i) {
        log += name;
        rkt::yield();
      }
    });
  };
  rkt::thread a = yielder('a');
  rkt::thread b = yielder('b');
  await(a);
  await(b);
  EXPECT_EQ(log, "ababababab");
}

TEST_F(SchedulerTest, SleepLetsOtherThreadsRunAndLastsAtLeastItsDuration) {
  std::string order;
  absl::Duration slept;
  rkt::thread sleeper([&] {
    absl::Time t0 = absl::Now();
    rkt::sleep(absl::Milliseconds(5));
    slept = absl::Now() - t0;
    order += 's';
  });
  rkt::thread other([&] { order += 'o'; });
  await(sleeper);
  await(other);
  EXPECT_EQ(order, "os");
  EXPECT_GE(slept, absl::Milliseconds(5));
}

// A thread that only ever yields keeps the run queue non-empty; timers must
// still fire. The spinner gives up after kHangBound so a bug cannot hang.
TEST_F(SchedulerTest, YieldingThreadDoesNotStarveTimers) {
  bool woke = false;
  rkt::thread sleeper([&] {
    rkt::sleep(absl::Milliseconds(1));
    woke = true;
  });
  rkt::thread spinner([&] {
    const absl::Time give_up = absl::Now() + rkt::test::kHangBound;
    while (!woke && absl::Now() < give_up) rkt::yield();
  });
  await(spinner);
  await(sleeper);
  EXPECT_TRUE(woke);
}

// Likewise for fd readiness reported by the reactor.
TEST_F(SchedulerTest, YieldingThreadDoesNotStarveFdReadiness) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  {
    rkt::node_ref<rkt::io_handle> h = rkt::io_handle::create(sv[0]);
    ASSERT_EQ(h->error(), 0);
    bool readable = false;
    rkt::semaphore ready;
    rkt::thread reader = spawn_parked(ready, [&] {
      rkt::sync(h->readable_evt());
      readable = true;
    });
    ASSERT_EQ(write(sv[1], "x", 1), 1);
    rkt::thread spinner([&] {
      const absl::Time give_up = absl::Now() + rkt::test::kHangBound;
      while (!readable && absl::Now() < give_up) rkt::yield();
    });
    await(spinner);
    await(reader);
    EXPECT_TRUE(readable);
    h->close();
  }
  close(sv[0]);
  close(sv[1]);
}

// ---------------------------------------------------------------------------
// The scheduler of a plain std::thread.

TEST_F(SchedulerTest, RootOfAPlainStdThreadCanSyncSpawnAndSleep) {
  std::optional<rkt::thread> worker_root;
  rkt::channel<int> never;
  std::jthread worker = start_os_thread([&] {
    rkt::channel<int> local;
    rkt::thread t([&] { local.put(5); });
    EXPECT_EQ(sync_within(local), 5);
    await(t);
    EXPECT_EQ(rkt::sync_timeout(absl::Milliseconds(2), never), std::nullopt);
    rkt::sleep(absl::Milliseconds(1));
    worker_root = rkt::current_thread();
  });
  worker.join();
  ASSERT_TRUE(worker_root.has_value());
  EXPECT_NE(*worker_root, rkt::current_thread());
}

// ---------------------------------------------------------------------------
// OS thread exit (scheduler_owner): the scheduler kills its green threads,
// lets each unwind, and closes its fds.

TEST_F(SchedulerTest, OsThreadExitKillsAndUnwindsItsParkedGreenThreads) {
  std::atomic<int> unwound{0};
  std::atomic<int> returned{0};
  rkt::channel<int> nobody_puts;
  rkt::channel<int> nobody_gets;
  rkt::semaphore never_posted;
  std::vector<rkt::thread> ts;  // these handles outlive the worker's scheduler
  std::jthread worker = start_os_thread([&] {
    auto park_in = [&](std::function<void()> block) {
      rkt::semaphore ready;
      ts.push_back(spawn_parked(ready, [&unwound, &returned, block] {
        unwind_counter c(unwound);
        block();
        returned.fetch_add(1);
      }));
    };
    park_in([&] { nobody_puts.get(); });
    park_in([&] { nobody_gets.put(1); });
    park_in([&] { never_posted.wait(); });
    park_in([] { rkt::sleep(absl::Hours(1)); });
    park_in([&] { rkt::sync_timeout(absl::Hours(1), nobody_puts); });
    park_in([] { rkt::thread_receive(); });
  });
  worker.join();
  EXPECT_EQ(unwound.load(), 6);
  EXPECT_EQ(returned.load(), 0);
  for (const rkt::thread& t : ts) EXPECT_TRUE(t.dead());
  // Their waiters left the shared sources.
  EXPECT_FALSE(ready_now(nobody_puts.put_evt(1)));
  EXPECT_EQ(nobody_gets.try_get(), std::nullopt);
  never_posted.post();
  EXPECT_TRUE(never_posted.try_wait());
}

// A destructor that runs during that teardown may still sync, as long as
// the sync commits at once (a dying thread never parks): this one hands a
// value to a getter already parked on the main OS thread.
TEST_F(SchedulerTest, GreenThreadUnwoundAtOsThreadExitCanStillSync) {
  struct says_goodbye {
    rkt::channel<int>& out;
    ~says_goodbye() { out.put(7); }
  };
  rkt::channel<int> farewell;
  rkt::semaphore never_posted;
  rkt::semaphore getter_parked;
  std::jthread worker = start_os_thread([&] {
    rkt::semaphore ready;
    spawn_parked(ready, [&] {
      says_goodbye bye{farewell};
      never_posted.wait();
    });
    sync_within(getter_parked);
  });
  int got = 0;
  rkt::semaphore ready;
  rkt::thread getter = spawn_parked(ready, [&] { got = farewell.get(); });
  getter_parked.post();
  await(getter);
  worker.join();
  EXPECT_EQ(got, 7);
}

// Racket kills every thread at once when the program ends; a green thread
// that had not started when its OS thread exits must never start. Here an
// older, parked thread is killed first, which gives the fresh one a turn.
TEST_F(SchedulerTest, OsThreadExitNeverStartsAFreshGreenThread) {
  std::atomic<bool> fresh_ran{false};
  std::atomic<int> unwound{0};
  std::optional<rkt::thread> fresh;
  rkt::semaphore never_posted;
  std::jthread worker = start_os_thread([&] {
    rkt::semaphore ready;
    spawn_parked(ready, [&] {
      unwind_counter c(unwound);
      never_posted.wait();
    });
    fresh.emplace([&] { fresh_ran = true; });
  });
  worker.join();
  EXPECT_EQ(unwound.load(), 1);
  ASSERT_TRUE(fresh.has_value());
  EXPECT_TRUE(fresh->dead());
  EXPECT_FALSE(fresh_ran.load());
}

// The handle of an OS thread's root green thread (current_thread() there)
// must report it dead once that OS thread has exited.
TEST_F(SchedulerTest, RootGreenThreadOfAnExitedOsThreadIsDead) {
  std::optional<rkt::thread> root;
  std::jthread worker = start_os_thread([&] { root = rkt::current_thread(); });
  worker.join();
  ASSERT_TRUE(root.has_value());
  EXPECT_TRUE(root->dead());
  EXPECT_TRUE(ready_now(root->dead_evt()));
  EXPECT_FALSE(rkt::thread_send(*root, 1, std::nothrow));
}

// The first rkt call on an OS thread when descriptors have run out raises
// exn_fail_filesystem with EMFILE, naming what could not be made, instead
// of aborting; once descriptors are freed the next call succeeds. Run in a
// child process, whose descriptor limit it lowers and exhausts.
TEST_F(SchedulerTest, FirstCallOnAnOsThreadWithoutDescriptorsRaisesEmfile) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The OS thread is started first (starting one needs no descriptor, but
    // the sanitizers' runtimes may) and waits on a pipe until the
    // descriptors are gone.
    int go[2];
    if (::pipe2(go, O_CLOEXEC) != 0) std::_Exit(9);
    std::vector<int> held;
    int code = 0;
    std::thread os([&] {
      char c;
      if (::read(go[0], &c, 1) != 1) {
        code = 17;
        return;
      }
      try {
        rkt::yield();
        code = 12;  // no error
        return;
      } catch (const rkt::exn_fail_filesystem& e) {
        // Descriptors first: UBSan's checks of the exception object need
        // some of their own.
        for (int i = 0; i < 4; ++i) {
          ::close(held.back());
          held.pop_back();
        }
        if (e.error_number() != EMFILE) code = 13;
        if (std::string_view(e.what()).find("cannot create this OS thread's scheduler") ==
            std::string_view::npos) {
          code = 14;
        }
      } catch (...) {
        code = 15;
        return;
      }
      try {
        rkt::semaphore s(1);
        s.wait();
        rkt::yield();
      } catch (...) {
        code = 16;
      }
    });
    // UBSan checks the dynamic type of the exception when it is made, and
    // that check needs descriptors of its own (a pipe) the first time it
    // sees a type; one exception made now leaves the answer in its cache.
    try {
      throw rkt::exn_fail_filesystem("warm-up", EMFILE);
    } catch (const rkt::exn_fail_filesystem& e) {
      if (e.error_number() != EMFILE) std::_Exit(19);
    }
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = 256;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) std::_Exit(10);
    for (;;) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) break;
      held.push_back(fd);
    }
    if (errno != EMFILE || held.size() < 4) std::_Exit(11);
    if (::write(go[1], "g", 1) != 1) std::_Exit(18);
    os.join();
    std::_Exit(code);
  }
  int status = 0;
  ASSERT_TRUE(rkt::test::wait_for_child(pid, rkt::test::kHangBound, status));
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// ---------------------------------------------------------------------------
// fd readiness through io_handle, on a non-blocking AF_UNIX socketpair.

class IoHandleTest : public SchedulerTest {
 protected:
  void SetUp() override {
    SchedulerTest::SetUp();
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv_), 0);
    h_ = rkt::io_handle::create(sv_[0]);
    ASSERT_EQ(h_->error(), 0);
  }
  void TearDown() override {
    if (h_) h_->close();  // before the fd closes (reactor.h)
    h_ = {};
    for (int fd : sv_) {
      if (fd >= 0) close(fd);
    }
    SchedulerTest::TearDown();
  }

  int local() const { return sv_[0]; }
  int peer() const { return sv_[1]; }
  void close_peer() {
    close(sv_[1]);
    sv_[1] = -1;
  }
  rkt::io_handle& h() { return *h_; }

  static void write_all(int fd, std::string_view data) {
    ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()))
        << std::strerror(errno);
  }
  // Reads until EAGAIN (or EOF); what was read.
  static std::string read_available(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      EXPECT_TRUE(n == 0 || errno == EAGAIN) << std::strerror(errno);
      return out;
    }
  }
  bool readable_now() { return ready_now(h_->readable_evt()); }
  bool writable_now() { return ready_now(h_->writable_evt()); }

  // Parks a green thread of another OS thread on readable_evt, runs `wake`
  // here, and waits (bounded) until that reader has returned.
  void wake_reader_on_another_os_thread(const std::function<void()>& wake) {
    rkt::semaphore parked;
    rkt::semaphore worker_done;
    std::jthread worker = start_os_thread([&] {
      rkt::thread reader([&] {
        parked.post();
        rkt::sync(h().readable_evt());
      });
      await(reader);
      worker_done.post();
    });
    sync_within(parked);
    wake();
    sync_within(worker_done);
    worker.join();
  }

 private:
  int sv_[2] = {-1, -1};
  rkt::node_ref<rkt::io_handle> h_;
};

TEST_F(IoHandleTest, WritableEvtIsReadyAtOnce) { sync_within(h().writable_evt()); }

TEST_F(IoHandleTest, ReadableEvtIsReadyOnlyAfterThePeerWrites) {
  sync_within(h().writable_evt());  // the reactor has reported this fd
  EXPECT_FALSE(readable_now());
  EXPECT_FALSE(rkt::sync_timeout(absl::Milliseconds(10), h().readable_evt()));
  write_all(peer(), "hi");
  sync_within(h().readable_evt());
  EXPECT_TRUE(readable_now());
  EXPECT_EQ(read_available(local()), "hi");
}

// The protocol of io_handle.h: after a read that saw EAGAIN, consume(seen)
// clears the readable bit, and the next write reports it again.
TEST_F(IoHandleTest, ConsumeAfterEagainClearsReadableUntilTheNextWrite) {
  write_all(peer(), "abc");
  sync_within(h().readable_evt());
  uint64_t seen = h().readiness();
  EXPECT_EQ(read_available(local()), "abc");
  h().consume(seen, rkt::internal::kReadable);
  EXPECT_EQ(rkt::io_handle::bits(h().readiness()) & rkt::internal::kReadable, 0u);
  EXPECT_FALSE(readable_now());
  write_all(peer(), "d");
  sync_within(h().readable_evt());
  EXPECT_EQ(read_available(local()), "d");
}

// consume() with a stale `seen` keeps a report that arrived after it, so
// that readiness landing between the read and the consume is not lost.
// (on_ready stands in for the reactor's report.)
TEST_F(IoHandleTest, ConsumeKeepsAReportNewerThanSeen) {
  uint64_t seen = h().readiness();
  h().on_ready(rkt::internal::kReadable);
  h().consume(seen, rkt::internal::kReadable);
  EXPECT_NE(rkt::io_handle::bits(h().readiness()) & rkt::internal::kReadable, 0u);
  EXPECT_TRUE(readable_now());
  h().consume(h().readiness(), rkt::internal::kReadable);
  EXPECT_FALSE(readable_now());
}

// The same with a real edge: data arrives after the read saw EAGAIN, and
// the reader parks briefly (letting the reactor report it) before consume.
// Whichever order the report and the consume take, the data is seen.
TEST_F(IoHandleTest, DataArrivingBetweenTheReadAndTheConsumeIsNotLost) {
  write_all(peer(), "first");
  sync_within(h().readable_evt());
  uint64_t seen = h().readiness();
  EXPECT_EQ(read_available(local()), "first");
  write_all(peer(), "second");
  rkt::sync_timeout(absl::Milliseconds(1), rkt::never_evt());
  h().consume(seen, rkt::internal::kReadable);
  sync_within(h().readable_evt());
  EXPECT_EQ(read_available(local()), "second");
}

TEST_F(IoHandleTest, WritableAgainOnceThePeerDrainsAFullBuffer) {
  sync_within(h().writable_evt());  // reported writable
  ASSERT_NE(rkt::io_handle::bits(h().readiness()) & rkt::internal::kWritable, 0u);
  uint64_t seen = h().readiness();
  const std::string chunk(4096, 'z');
  size_t written = 0;
  for (;;) {
    ssize_t n = write(local(), chunk.data(), chunk.size());
    if (n < 0) {
      ASSERT_EQ(errno, EAGAIN) << std::strerror(errno);
      break;
    }
    written += static_cast<size_t>(n);
  }
  h().consume(seen, rkt::internal::kWritable);
  EXPECT_FALSE(writable_now());
  EXPECT_EQ(read_available(peer()).size(), written);
  sync_within(h().writable_evt());
}

TEST_F(IoHandleTest, PeerCloseMakesReadableEvtReadyWithEof) {
  close_peer();
  sync_within(h().readable_evt());
  char c;
  EXPECT_EQ(read(local(), &c, 1), 0);
}

TEST_F(IoHandleTest, CloseWakesAParkedWaiterAndEveryEvtIsReadyAfter) {
  rkt::semaphore ready;
  bool woke = false;
  rkt::thread reader = spawn_parked(ready, [&] {
    rkt::sync(h().readable_evt());
    woke = true;
  });
  EXPECT_FALSE(woke);
  h().close();
  await(reader);
  EXPECT_TRUE(woke);
  EXPECT_TRUE(h().closed());
  EXPECT_TRUE(readable_now());
  EXPECT_TRUE(writable_now());
  h().close();  // idempotent
}

TEST_F(IoHandleTest, ParkedReaderIsWokenByAWriteFromAnotherOsThread) {
  rkt::semaphore parked;
  rkt::thread reader([&] {
    parked.post();
    rkt::sync(h().readable_evt());
  });
  std::jthread writer = start_os_thread([&] {
    sync_within(parked);
    write_all(peer(), "ping");
  });
  await(reader);
  writer.join();
  EXPECT_EQ(read_available(local()), "ping");
}

// The reader and writer loops of io_handle.h, on two OS threads: the
// writer's many small writes fill the socket buffer (EAGAIN) and park on
// writable_evt of its own handle; every byte arrives, in order.
TEST_F(IoHandleTest, ReaderAndWriterLoopsFollowingTheProtocolPassEveryByte) {
  constexpr int kChunks = 2000;
  std::string expected;
  for (int i = 0; i < kChunks; ++i) expected += "chunk" + std::to_string(i) + ";";
  std::string got;
  rkt::thread reader([&] {
    char buf[256];
    while (got.size() < expected.size()) {
      uint64_t seen = h().readiness();
      ssize_t n = read(local(), buf, sizeof buf);
      if (n > 0) {
        got.append(buf, static_cast<size_t>(n));
        continue;
      }
      ASSERT_TRUE(n < 0 && errno == EAGAIN) << n << " " << std::strerror(errno);
      h().consume(seen, rkt::internal::kReadable);
      sync_within(h().readable_evt());
    }
  });
  int writer_parks = 0;
  std::jthread writer = start_os_thread([&] {
    rkt::node_ref<rkt::io_handle> w = rkt::io_handle::create(peer());
    ASSERT_EQ(w->error(), 0);
    for (int i = 0; i < kChunks;) {
      const std::string chunk = "chunk" + std::to_string(i) + ";";
      uint64_t seen = w->readiness();
      ssize_t n = write(peer(), chunk.data(), chunk.size());
      if (n >= 0) {
        // A stream socket takes a small write whole or not at all.
        ASSERT_EQ(n, static_cast<ssize_t>(chunk.size()));
        ++i;
        continue;
      }
      ASSERT_EQ(errno, EAGAIN) << std::strerror(errno);
      w->consume(seen, rkt::internal::kWritable);
      sync_within(w->writable_evt());
      ++writer_parks;
    }
    w->close();  // on the handle's own OS thread
  });
  await(reader);
  writer.join();
  EXPECT_EQ(got, expected);
  RecordProperty("writer_parks", writer_parks);
}

// The handle belongs to the main OS thread's reactor, but its events may be
// synced from another OS thread's green thread.
TEST_F(IoHandleTest, EvtsOfAHandleCanBeSyncedFromAnotherOsThread) {
  // main parks in the wait for the reader: its reactor sees the fd.
  wake_reader_on_another_os_thread([&] { write_all(peer(), "x"); });
  EXPECT_EQ(read_available(local()), "x");
}

// close() runs on the handle's own OS thread and wakes a waiter parked on
// another.
TEST_F(IoHandleTest, CloseWakesAWaiterParkedOnAnotherOsThread) {
  wake_reader_on_another_os_thread([&] { h().close(); });
  EXPECT_TRUE(h().closed());
}

}  // namespace
