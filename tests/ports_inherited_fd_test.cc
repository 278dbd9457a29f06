// Tests of fd ports over descriptors that rkt did not open and that a
// deployed program meets (ports/fd_port.h): devices that epoll refuses
// (/dev/null, /dev/zero, /dev/urandom) as always-ready ports; pipes, FIFOs
// and terminals whose file status flags must stay as they were while ports
// use them and after the ports close (no O_NONBLOCK left behind for a shell's
// next command), with reads and writes that park the green thread instead
// of blocking the OS thread; SIGPIPE kept from the process without changing
// its disposition (a child started afterwards still dies of SIGPIPE); and a
// child process (ports_fd_child) that logs through ports over its fds 0-2
// with them on /dev/null, a file, a pipe or a terminal, under the epoll and
// the poll reactor.
//
// The tests of a call that must park rather than block the OS thread arm a
// watchdog OS thread that unblocks the call after a bound only a bug
// reaches, and then fail; no test sleeps to wait for another thread.
#include <fcntl.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "evt/exn.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ports/fd_port.h"
#include "ports/port.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/spawned_child.h"
#include "tests/testing/sync_within.h"

namespace {

using namespace std::string_literals;

using ::rkt::test::await;
using ::rkt::test::describe_status;
using ::rkt::test::pattern;
using ::rkt::test::raised;
using ::rkt::test::read_to_eof;
using ::rkt::test::scoped_thread;
using ::rkt::test::spawn_parked;
using ::rkt::test::spawned_child;
using ::rkt::test::sync_within;
using ::rkt::test::temp_dir;
using ::testing::HasSubstr;

// --- Helpers -------------------------------------------------------------------

// The file status flags of `fd` (F_GETFL).
int status_flags(int fd) { return ::fcntl(fd, F_GETFL); }

bool nonblocking(int fd) { return (status_flags(fd) & O_NONBLOCK) != 0; }

int dup_or_fail(int fd) {
  const int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  EXPECT_GE(d, 0) << std::strerror(errno);
  return d;
}

int open_or_fail(const char* path, int flags) {
  const int fd = ::open(path, flags | O_CLOEXEC, 0600);
  EXPECT_GE(fd, 0) << path << ": " << std::strerror(errno);
  return fd;
}

// A blocking pipe (no O_NONBLOCK), as a shell makes one.
std::array<int, 2> blocking_pipe() {
  int p[2] = {-1, -1};
  EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0) << std::strerror(errno);
  return {p[0], p[1]};
}

// A terminal: {master, slave}, both blocking, the slave in canonical mode.
std::array<int, 2> terminal() {
  int master = -1;
  int slave = -1;
  EXPECT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0) << std::strerror(errno);
  (void)::fcntl(master, F_SETFD, FD_CLOEXEC);
  (void)::fcntl(slave, F_SETFD, FD_CLOEXEC);
  return {master, slave};
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.is_open()) << path;
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Reads `fd` (raw, bounded by poll) until `want` shows up in what it read,
// EOF, or the bound passes; returns what it read.
std::string read_raw_until(int fd, const std::string& want) {
  std::string got;
  const absl::Time deadline = absl::Now() + rkt::test::kHangBound;
  while (got.find(want) == std::string::npos) {
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) break;
    struct pollfd p {fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[512];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

// Unless done() comes first, runs `unblock` on an OS thread after a bound
// that only a bug reaches: a call that blocks the OS thread (instead of
// parking its green thread) is released, and the test fails on fired().
class watchdog {
 public:
  explicit watchdog(std::function<void()> unblock)
      : t_([this, unblock = std::move(unblock)] {
          std::unique_lock<std::mutex> l(mu_);
          if (!cv_.wait_for(l, absl::ToChronoMilliseconds(rkt::test::kHangBound),
                            [this] { return done_; })) {
            fired_ = true;
            l.unlock();
            unblock();
          }
        }) {}
  ~watchdog() {
    done();
    t_.join();
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  void done() {
    {
      std::lock_guard<std::mutex> g(mu_);
      done_ = true;
    }
    cv_.notify_all();
  }
  bool fired() const { return fired_.load(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> fired_{false};
  std::thread t_;
};

// Lets the scheduler run (a close handed to it completes), then the
// clean_test checks: no green thread, no descriptor left.
class InheritedFdTest : public rkt::test::clean_test {
 protected:
  void TearDown() override {
    rkt::yield();
    clean_test::TearDown();
  }
};

// --- Devices epoll refuses ---------------------------------------------------------

TEST_F(InheritedFdTest, OpenInputFileOnDevNullReadsEof) {
  rkt::input_port in = rkt::open_input_file("/dev/null");
  EXPECT_EQ(in.read_byte(), rkt::eof);
  EXPECT_EQ(in.read_line(), rkt::eof);
  sync_within(rkt::eof_evt(in));
  EXPECT_EQ(sync_within(in), in) << "the port is ready: at EOF";
  in.close();
}

TEST_F(InheritedFdTest, OpenOutputFileOnDevNullTakesEveryWrite) {
  for (rkt::exists_mode mode : {rkt::exists_mode::truncate, rkt::exists_mode::append,
                                rkt::exists_mode::update}) {
    rkt::output_port out = rkt::open_output_file("/dev/null", mode);
    EXPECT_EQ(out.write_bytes(pattern(100000)), 100000u);
    out.flush();
    EXPECT_EQ(sync_within(out), out);
    EXPECT_EQ(sync_within(rkt::write_bytes_avail_evt("abc", out)), 3u);
    EXPECT_EQ(out.write_bytes_avail_star("xyz"), std::optional<std::size_t>(3));
    out.close();
  }
}

TEST_F(InheritedFdTest, PortsOverDescriptorsOfDevicesEpollRefusesWork) {
  // As a daemon's stdin/stdout would be: opened by someone else, blocking.
  rkt::input_port zero = rkt::make_fd_input_port(open_or_fail("/dev/zero", O_RDONLY), "zero");
  EXPECT_EQ(zero.read_bytes(1000), std::string(1000, '\0'));
  EXPECT_EQ(sync_within(rkt::read_bytes_evt(3, zero)), std::string(3, '\0'));
  rkt::input_port urandom =
      rkt::make_fd_input_port(open_or_fail("/dev/urandom", O_RDONLY), "urandom");
  rkt::or_eof<std::string> noise = urandom.read_bytes(64);
  ASSERT_TRUE(noise.has_value());
  EXPECT_EQ(noise->size(), 64u);
  auto [null_in, null_out] = rkt::make_fd_ports(open_or_fail("/dev/null", O_RDWR), "null");
  EXPECT_EQ(null_in.read_bytes(10), rkt::eof);
  null_out.set_buffer_mode(rkt::buffer_mode::line);
  EXPECT_EQ(null_out.write_bytes("a log line\n"), 11u);
  EXPECT_EQ(null_out.write_bytes(pattern(70000)), 70000u);
  null_out.close();
  null_in.close();
  zero.close();
  urandom.close();
}

// --- File status flags -----------------------------------------------------------

TEST_F(InheritedFdTest, PortsOverABlockingPipeLeaveItsFlagsAsTheyWere) {
  const std::array<int, 2> p = blocking_pipe();
  const int read_flags = status_flags(p[0]);
  const int write_flags = status_flags(p[1]);
  {
    // Over duplicates: the same open file descriptions as p.
    rkt::input_port in = rkt::make_fd_input_port(dup_or_fail(p[0]), "pipe in");
    rkt::output_port out = rkt::make_fd_output_port(dup_or_fail(p[1]), "pipe out");
    EXPECT_EQ(status_flags(p[0]), read_flags);
    EXPECT_EQ(status_flags(p[1]), write_flags);
    out.write_bytes("one\n");
    out.flush();
    EXPECT_EQ(sync_within(rkt::read_line_evt(in)), "one"s);
    char buf[8];
    EXPECT_EQ(in.read_bytes_avail_star(buf), 0u) << "an empty pipe: nothing now";
    EXPECT_FALSE(nonblocking(p[0]));
    EXPECT_FALSE(nonblocking(p[1]));
    out.close();
    rkt::yield();
    EXPECT_EQ(status_flags(p[1]), write_flags);
    ::close(p[1]);  // the last writer: the port reads EOF
    EXPECT_TRUE(rkt::test::at_eof(in));
    in.close();
  }
  rkt::yield();
  EXPECT_EQ(status_flags(p[0]), read_flags);
  ::close(p[0]);
}

TEST_F(InheritedFdTest, PortsOverATerminalLeaveItsFlagsAsTheyWere) {
  const std::array<int, 2> t = terminal();
  const int flags = status_flags(t[1]);
  {
    auto [in, out] = rkt::make_fd_ports(dup_or_fail(t[1]), "tty");
    EXPECT_EQ(status_flags(t[1]), flags);
    out.write_bytes("to the terminal\n");
    out.flush();
    EXPECT_THAT(read_raw_until(t[0], "to the terminal"), HasSubstr("to the terminal"));
    const std::string typed = "typed line\n";
    ASSERT_EQ(::write(t[0], typed.data(), typed.size()), static_cast<ssize_t>(typed.size()));
    EXPECT_EQ(sync_within(rkt::read_line_evt(in)), "typed line"s);
    EXPECT_FALSE(nonblocking(t[1]));
    in.close();
    out.close();
  }
  rkt::yield();
  EXPECT_EQ(status_flags(t[1]), flags);
  ::close(t[0]);
  ::close(t[1]);
}

// A read of an empty blocking pipe, terminal or FIFO parks its green thread:
// the OS thread goes on (here: the main green thread writes what the reader
// waits for).
TEST_F(InheritedFdTest, AReadOfAnEmptyBlockingDescriptorParksTheGreenThread) {
  temp_dir dir;
  const std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  for (const char* what : {"pipe", "terminal", "fifo"}) {
    SCOPED_TRACE(what);
    int read_fd = -1;
    int write_fd = -1;
    int keep = -1;  // the caller's copy of what the port reads
    if (std::string(what) == "pipe") {
      const std::array<int, 2> p = blocking_pipe();
      read_fd = p[0];
      write_fd = p[1];
    } else if (std::string(what) == "terminal") {
      const std::array<int, 2> t = terminal();
      write_fd = t[0];
      read_fd = t[1];
    } else {
      read_fd = open_or_fail(fifo.c_str(), O_RDONLY | O_NONBLOCK);
      write_fd = open_or_fail(fifo.c_str(), O_WRONLY);
      ASSERT_EQ(::fcntl(read_fd, F_SETFL, status_flags(read_fd) & ~O_NONBLOCK), 0);
    }
    keep = dup_or_fail(read_fd);
    const int flags = status_flags(keep);
    watchdog dog([write_fd] { (void)!::write(write_fd, "!\n", 2); });
    {
      rkt::input_port in = rkt::make_fd_input_port(read_fd, what);
      std::optional<rkt::or_eof<std::string>> got;
      rkt::semaphore ready;
      rkt::thread reader = spawn_parked(ready, [&] { got = in.read_line(); });
      EXPECT_TRUE(reader.running());
      ASSERT_EQ(::write(write_fd, "woken\n", 6), 6);
      await(reader);
      dog.done();
      EXPECT_FALSE(dog.fired()) << "the read blocked the OS thread";
      EXPECT_EQ(got, std::optional<rkt::or_eof<std::string>>("woken"));
      EXPECT_EQ(status_flags(keep), flags);
      in.close();
    }
    rkt::yield();
    EXPECT_EQ(status_flags(keep), flags);
    ::close(keep);
    ::close(write_fd);
  }
}

// 1 MiB through a blocking pipe and a blocking FIFO, both ends ports: the
// writer parks on the full pipe (64 KiB) and the reader on the empty one,
// neither blocks the OS thread, and the flags stay as they were.
TEST_F(InheritedFdTest, ABigTransferThroughBlockingPipesParksBothEnds) {
  temp_dir dir;
  const std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const std::string data = pattern(1 << 20, 7);
  for (bool named : {false, true}) {
    SCOPED_TRACE(named ? "fifo" : "pipe");
    std::array<int, 2> p{};
    if (named) {
      p[0] = open_or_fail(fifo.c_str(), O_RDONLY | O_NONBLOCK);
      p[1] = open_or_fail(fifo.c_str(), O_WRONLY);
      ASSERT_EQ(::fcntl(p[0], F_SETFL, status_flags(p[0]) & ~O_NONBLOCK), 0);
    } else {
      p = blocking_pipe();
    }
    const int read_flags = status_flags(p[0]);
    const int write_flags = status_flags(p[1]);
    // Should a call block the OS thread, these unblock it (and the test fails).
    const int drain = dup_or_fail(p[0]);
    const int fill = dup_or_fail(p[1]);
    watchdog dog([drain, fill] {
      char buf[65536];
      (void)!::write(fill, "!", 1);
      (void)!::read(drain, buf, sizeof buf);
    });
    {
      rkt::input_port in = rkt::make_fd_input_port(p[0], "in");
      rkt::output_port out = rkt::make_fd_output_port(p[1], "out");
      std::string got;
      {
        // No EOF comes (drain and fill hold the pipe open): the reader
        // stops at data.size().
        scoped_thread reader([&] {
          char buf[rkt::test::kSlowReadSize];
          while (got.size() < data.size()) {
            rkt::or_eof<std::size_t> n = in.read_bytes_avail(buf);
            if (!n) return;
            got.append(buf, *n);
            rkt::yield();
          }
        });
        scoped_thread writer([&] {
          out.write_bytes(data);
          out.flush();
        });
        writer.join();
        reader.join();
      }
      dog.done();
      EXPECT_FALSE(dog.fired()) << "a read or write blocked the OS thread";
      EXPECT_TRUE(got == data) << "got " << got.size() << " bytes";
      EXPECT_EQ(status_flags(drain), read_flags);
      EXPECT_EQ(status_flags(fill), write_flags);
      out.close();
      in.close();
    }
    rkt::yield();
    EXPECT_EQ(status_flags(drain), read_flags);
    EXPECT_EQ(status_flags(fill), write_flags);
    ::close(drain);
    ::close(fill);
  }
}

// --- SIGPIPE -----------------------------------------------------------------------

// Sets SIGPIPE's disposition for a test and restores the previous one.
class sigpipe_disposition {
 public:
  explicit sigpipe_disposition(void (*handler)(int)) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    EXPECT_EQ(::sigaction(SIGPIPE, &sa, &old_), 0);
  }
  ~sigpipe_disposition() { ::sigaction(SIGPIPE, &old_, nullptr); }
  sigpipe_disposition(const sigpipe_disposition&) = delete;
  sigpipe_disposition& operator=(const sigpipe_disposition&) = delete;

 private:
  struct sigaction old_ {};
};

void (*current_sigpipe_handler())(int) {
  struct sigaction now {};
  EXPECT_EQ(::sigaction(SIGPIPE, nullptr, &now), 0);
  return now.sa_handler;
}

bool sigpipe_blocked() {
  sigset_t mask;
  EXPECT_EQ(::pthread_sigmask(SIG_BLOCK, nullptr, &mask), 0);
  return sigismember(&mask, SIGPIPE) == 1;
}

bool sigpipe_pending() {
  sigset_t set;
  EXPECT_EQ(::sigpending(&set), 0);
  return sigismember(&set, SIGPIPE) == 1;
}

// Writes to an fd output port over a pipe whose reader is gone; expects
// exn_fail_filesystem with EPIPE. `blocking` picks a blocking pipe or one
// with O_NONBLOCK.
void write_to_broken_pipe(bool blocking) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC | (blocking ? 0 : O_NONBLOCK)), 0);
  ASSERT_EQ(::close(p[0]), 0);
  rkt::output_port out = rkt::make_fd_output_port(p[1], "broken");
  out.set_buffer_mode(rkt::buffer_mode::none);
  auto e = raised<rkt::exn_fail_filesystem>([&] { out.write_bytes("data"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), EPIPE);
  out.close();
}

// Runs `yes` with its stdout on a pipe whose reader is gone: it must die of
// SIGPIPE (status 141 in a shell), as it does when its parent left SIGPIPE
// at the default; with SIGPIPE ignored it would exit 1 on EPIPE.
std::optional<int> run_yes_into_a_broken_pipe() {
  int p[2];
  EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ::close(p[0]);
  spawned_child yes({.argv = {"yes"}, .fds = {{p[1], 1}}, .env = {}});
  ::close(p[1]);
  return yes.wait();
}

TEST_F(InheritedFdTest, AWriteToABrokenPipeLeavesSigpipeAtItsDefaultForChildren) {
  sigpipe_disposition dfl(SIG_DFL);
  for (bool blocking : {true, false}) {
    write_to_broken_pipe(blocking);
    EXPECT_EQ(current_sigpipe_handler(), SIG_DFL) << "the disposition changed";
    EXPECT_FALSE(sigpipe_blocked()) << "the mask was not restored";
    EXPECT_FALSE(sigpipe_pending());
  }
  const std::optional<int> st = run_yes_into_a_broken_pipe();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGPIPE)
      << "a child started after the write: " << describe_status(st);
}

std::atomic<int> handled_sigpipes{0};
void count_sigpipe(int) { handled_sigpipes.fetch_add(1); }

TEST_F(InheritedFdTest, APortWriteNeverRunsTheProgramsSigpipeHandler) {
  sigpipe_disposition counting(count_sigpipe);
  handled_sigpipes = 0;
  write_to_broken_pipe(true);
  EXPECT_EQ(handled_sigpipes.load(), 0);
  EXPECT_EQ(current_sigpipe_handler(), &count_sigpipe);
  // The handler itself works: a SIGPIPE raised by the program reaches it.
  ASSERT_EQ(::pthread_kill(::pthread_self(), SIGPIPE), 0);
  EXPECT_EQ(handled_sigpipes.load(), 1);
}

// With SIGPIPE blocked by the program, a port write leaves the mask blocked,
// leaves a SIGPIPE that was pending before it pending, and adds none.
TEST_F(InheritedFdTest, APortWriteKeepsTheProgramsBlockedAndPendingSigpipe) {
  sigpipe_disposition dfl(SIG_DFL);
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigset_t old;
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &pipe_set, &old), 0);

  write_to_broken_pipe(true);
  EXPECT_TRUE(sigpipe_blocked());
  EXPECT_FALSE(sigpipe_pending()) << "the write's own SIGPIPE was left pending";

  ASSERT_EQ(::pthread_kill(::pthread_self(), SIGPIPE), 0);
  ASSERT_TRUE(sigpipe_pending());
  write_to_broken_pipe(true);
  EXPECT_TRUE(sigpipe_blocked());
  EXPECT_TRUE(sigpipe_pending()) << "the program's pending SIGPIPE was taken";

  const timespec zero{};
  EXPECT_EQ(::sigtimedwait(&pipe_set, nullptr, &zero), SIGPIPE);
  EXPECT_FALSE(sigpipe_pending());
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
}

// --- A child process that logs through ports over fds 0-2 ----------------------------

// The helper program, from the test's runfiles.
std::string child_path() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) {
    const std::string p = std::string(srcdir) + "/" + workspace + "/tests/ports_fd_child";
    if (std::filesystem::exists(p)) return p;
  }
  return "tests/ports_fd_child";
}

constexpr const char* kReactors[] = {"epoll", "poll"};

// What the child's "log" mode writes to its stdout for `stdin_bytes`.
std::string expected_log(std::size_t stdin_bytes) {
  std::string s;
  for (int i = 0; i < 100; ++i) s += "out " + std::to_string(i) + "\n";
  return s + "stdin: " + std::to_string(stdin_bytes) + " bytes\n";
}

// A daemon started with >/dev/null 2>&1 (or with its log in a file) logs
// through ports over fds 1 and 2, under either reactor.
TEST_F(InheritedFdTest, AChildWhoseStdioIsDevNullOrAFileLogsThroughPorts) {
  temp_dir dir;
  for (const char* reactor : kReactors) {
    for (int layout = 0; layout < 3; ++layout) {
      SCOPED_TRACE(std::string(reactor) + " layout " + std::to_string(layout));
      const std::string out_path = dir.file("out" + std::to_string(layout) + reactor);
      const std::string err_path = dir.file("err" + std::to_string(layout) + reactor);
      const std::string in_path = dir.file("in");
      {
        std::ofstream f(in_path, std::ios::trunc);
        f << "twelve bytes";
      }
      const int devnull = open_or_fail("/dev/null", O_RDWR);
      const int out_file = open_or_fail(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC);
      const int err_file = open_or_fail(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC);
      const int in_file = open_or_fail(in_path.c_str(), O_RDONLY);
      // 0: everything on /dev/null; 1: stdout to a file, stderr to
      // /dev/null, stdin from a file; 2: stdout to /dev/null, stderr to a
      // file.
      const int in = layout == 1 ? in_file : devnull;
      const int out = layout == 1 ? out_file : devnull;
      const int err = layout == 2 ? err_file : devnull;
      const int null_flags = status_flags(devnull);
      std::optional<int> st;
      {
        spawned_child child({.argv = {child_path(), "log"},
                             .fds = {{in, 0}, {out, 1}, {err, 2}},
                             .env = {"RKT_REACTOR="s + reactor}});
        st = child.wait();
      }
      EXPECT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << describe_status(st);
      EXPECT_EQ(status_flags(devnull), null_flags);
      if (layout == 1) {
        EXPECT_EQ(read_file(out_path), expected_log(12));
      }
      if (layout == 2) {
        EXPECT_EQ(read_file(err_path), "err: "s + reactor + "\nerr: done\n");
      }
      for (int fd : {devnull, out_file, err_file, in_file}) ::close(fd);
    }
  }
}

// A shell that runs `prog; cat` must not find O_NONBLOCK left on the pipe
// or terminal it shares with prog: the child's ports leave the flags of
// fds 0-2 as they were while it runs (else it exits 3) and after it exits.
TEST_F(InheritedFdTest, AChildLeavesTheFlagsOfItsInheritedPipesAsItFoundThem) {
  temp_dir dir;
  for (const char* reactor : kReactors) {
    SCOPED_TRACE(reactor);
    const std::array<int, 2> in = blocking_pipe();
    const std::array<int, 2> out = blocking_pipe();
    const int err = open_or_fail(dir.file("err").c_str(), O_WRONLY | O_CREAT | O_TRUNC);
    const int in_flags = status_flags(in[0]);
    const int out_flags = status_flags(out[1]);
    std::optional<int> st;
    {
      spawned_child child({.argv = {child_path(), "log"},
                           .fds = {{in[0], 0}, {out[1], 1}, {err, 2}},
                           .env = {"RKT_REACTOR="s + reactor}});
      // The child parks on its empty stdin until these come.
      ASSERT_EQ(::write(in[1], "hello", 5), 5);
      ::close(in[1]);
      st = child.wait();
    }
    EXPECT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << describe_status(st);
    EXPECT_EQ(status_flags(in[0]), in_flags) << "stdin's pipe";
    EXPECT_EQ(status_flags(out[1]), out_flags) << "stdout's pipe";
    ::close(out[1]);
    EXPECT_EQ(read_raw_until(out[0], "stdin: 5 bytes\n"), expected_log(5));
    EXPECT_THAT(read_file(dir.file("err")), HasSubstr("err: done"));
    ::close(in[0]);
    ::close(out[0]);
    ::close(err);
  }
}

TEST_F(InheritedFdTest, AChildLeavesTheFlagsOfItsTerminalAsItFoundThem) {
  temp_dir dir;
  for (const char* reactor : kReactors) {
    SCOPED_TRACE(reactor);
    const std::array<int, 2> t = terminal();
    const int err = open_or_fail(dir.file("err").c_str(), O_WRONLY | O_CREAT | O_TRUNC);
    const int flags = status_flags(t[1]);
    std::optional<int> st;
    std::string seen;
    {
      spawned_child child({.argv = {child_path(), "echo-line"},
                           .fds = {{t[1], 0}, {t[1], 1}, {err, 2}},
                           .env = {"RKT_REACTOR="s + reactor}});
      ASSERT_EQ(::write(t[0], "typed\n", 6), 6);
      seen = read_raw_until(t[0], "got: typed");
      st = child.wait();
    }
    EXPECT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
        << describe_status(st) << "; stderr: " << read_file(dir.file("err"));
    EXPECT_THAT(seen, HasSubstr("got: typed"));
    EXPECT_EQ(status_flags(t[1]), flags);
    ::close(t[0]);
    ::close(t[1]);
    ::close(err);
  }
}

}  // namespace
