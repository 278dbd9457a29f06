// Interoperability of racket/unix-socket (socket/unix_socket.h) with
// programs nobody here wrote, run as child processes:
//   - socat (`socat - UNIX-CONNECT:<path>`) connects to our listener, and our
//     client connects to a socat echo (`socat UNIX-LISTEN:<path> EXEC:cat`),
//     both over a filesystem path and over an abstract name
//     (ABSTRACT-CONNECT / ABSTRACT-LISTEN), with half-closes both ways;
//   - Racket 8.7's own racket/unix-socket connects to our listener and
//     listens for our client, exchanging bytes both ways with a half-close.
//
// Children are started with posix_spawn (not fork: the test process may
// have several OS threads, and posix_spawn is also what TSan copes with
// best); their stdin and stdout are pipes wrapped as rkt fd ports, so
// every wait parks a green thread and is bounded (sync_within); a child's
// exit is waited for on its pidfd. Only "the child listens now" has no
// event to wait on, so connect_when_listening retries its connect with
// short bounded pauses. A child is always reaped, and killed first when the
// test fails. Missing socat or
// racket skips the test. Filesystem sockets live in a mkdtemp directory
// removed at the end; abstract names carry the pid and a random number.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "evt/alarm.h"
#include "evt/evt.h"
#include "evt/exn.h"
#include "evt/io_handle.h"
#include "evt/sync.h"
#include "gtest/gtest.h"
#include "ports/fd_port.h"
#include "ports/port.h"
#include "socket/unix_socket.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/unix_socket_helpers.h"
#include "tests/testing/sync_within.h"

extern char** environ;

namespace {

using namespace std::string_literals;

using ::rkt::test::accept_bounded;
using ::rkt::test::arrives;
using ::rkt::test::at_eof;
using ::rkt::test::is_socket_file;
using ::rkt::test::kHangBound;
using ::rkt::test::pattern;
using ::rkt::test::read_to_eof;
using ::rkt::test::sync_within;
using ::rkt::test::temp_dir;
using ::rkt::test::unique_abstract;

using side = ::rkt::test::conn;

// Parks this green thread for `d` (a bounded wait on an alarm, not sleep).
void pause_for(absl::Duration d) {
  rkt::sync_timeout(d, rkt::alarm_evt(absl::Now() + d));
}

// The executable `name` on PATH (or in /usr/bin), or nullopt.
std::optional<std::string> find_program(const std::string& name) {
  const char* env = std::getenv("PATH");
  std::string path = (env != nullptr ? std::string(env) + ":" : std::string()) + "/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    const std::string dir = path.substr(start, end - start);
    if (!dir.empty()) {
      const std::string candidate = dir + "/" + name;
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    start = end + 1;
  }
  return std::nullopt;
}

// A child process whose stdin and stdout are rkt ports. Its stderr is the
// test's (shown in the test log). The destructor kills and reaps a child
// that is still running, and closes the ports.
class child_process {
 public:
  explicit child_process(const std::vector<std::string>& argv) {
    int in_pipe[2];   // child's stdin: we write in_pipe[1]
    int out_pipe[2];  // child's stdout: we read out_pipe[0]
    EXPECT_EQ(pipe2(in_pipe, O_CLOEXEC), 0) << std::strerror(errno);
    EXPECT_EQ(pipe2(out_pipe, O_CLOEXEC), 0) << std::strerror(errno);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    // dup2 onto 0 and 1 clears close-on-exec there; every other descriptor
    // of this process is close-on-exec.
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    // A default SIGPIPE disposition in the child, whatever ours is.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(in_pipe[0]);
    close(out_pipe[1]);
    EXPECT_EQ(rc, 0) << argv[0] << ": " << std::strerror(rc);
    if (rc != 0) pid_ = -1;
    stdin_ = rkt::make_fd_output_port(in_pipe[1], argv[0] + " stdin");
    stdout_ = rkt::make_fd_input_port(out_pipe[0], argv[0] + " stdout");
  }
  ~child_process() {
    stdin_->close();
    stdout_->close();
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      int status;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  const rkt::output_port& in() const { return *stdin_; }
  const rkt::input_port& out() const { return *stdout_; }

  // Whether the child has exited (reaping it if so).
  bool exited() {
    if (pid_ <= 0) return true;
    int status;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      status_ = status;
      return true;
    }
    return false;
  }

  // Waits, bounded, for the child to exit and returns its wait status;
  // kills it and fails the test when it outlives the bound. The wait is an
  // event: a pidfd (pidfd_open(2)) turns readable when the child exits.
  int wait() {
    if (exited()) return status_;
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
    EXPECT_GE(pidfd, 0) << "pidfd_open: " << std::strerror(errno);
    bool done = false;
    if (pidfd >= 0) {
      rkt::node_ref<rkt::io_handle> io = rkt::io_handle::create(pidfd);
      EXPECT_EQ(io->error(), 0) << std::strerror(io->error());
      done = rkt::sync_timeout(kHangBound, io->readable_evt());
      io->close();
      close(pidfd);
    }
    if (done && exited()) return status_;
    ADD_FAILURE() << "child " << pid_ << " did not exit within " << kHangBound;
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  std::optional<rkt::output_port> stdin_;
  std::optional<rkt::input_port> stdout_;
};

// Connects to a child's listener once it listens: waits for the socket
// file (filesystem paths), then retries while the connection is refused
// (bound but not yet listening, or an abstract name not yet bound). Fails
// the test when the child exits first or nothing listens within the bound.
side connect_when_listening(const rkt::unix_socket_path& p, child_process& child) {
  const absl::Time deadline = absl::Now() + kHangBound;
  for (;;) {
    if (p.abstract() || is_socket_file(p.bytes())) {
      try {
        return side(rkt::unix_socket_connect(p));
      } catch (const rkt::exn_fail_network& e) {
        if (e.error_number() != ECONNREFUSED && e.error_number() != ENOENT) throw;
      }
    }
    if (child.exited()) throw std::runtime_error("the listening child exited");
    if (absl::Now() > deadline) {
      ADD_FAILURE() << "nothing listened within " << kHangBound;
      throw std::runtime_error("nothing listened");
    }
    pause_for(absl::Milliseconds(10));
  }
}

class UnixSocketInteropTest : public rkt::test::clean_test {
 protected:
  void SetUp() override {
    clean_test::SetUp();
  }
  void TearDown() override {
    rkt::yield();
    clean_test::TearDown();
  }
};

// Skips the test when `name` is not installed.
#define REQUIRE_PROGRAM(var, name)                                          \
  const std::optional<std::string> var = find_program(name);                \
  if (!var) {                                                               \
    GTEST_SKIP() << name " is not installed (apt-get install " name ")";    \
  }

// --- socat ------------------------------------------------------------------

// `socat - <address>` connects to our listener on `p`: what we write to
// socat's stdin reaches us, our reply reaches its stdout; closing its stdin
// gives us EOF while we can still write, and our close ends it.
void socat_connects_to_us(const std::string& socat, const rkt::unix_socket_path& listen_on,
                          const std::string& address) {
  rkt::unix_socket_listener l = rkt::unix_socket_listen(listen_on);
  // -t: after one direction's EOF, keep the other open (default 0.5 s).
  child_process c({socat, "-t", "30", "-", address});
  side server = accept_bounded(l);
  c.in().write_bytes("hello from socat's stdin\n");
  c.in().flush();
  EXPECT_EQ(arrives(server.in, 25), "hello from socat's stdin\n");
  server.out.write_bytes("reply from rkt\n");
  server.out.flush();
  EXPECT_EQ(arrives(c.out(), 15), "reply from rkt\n");
  c.in().close();
  EXPECT_TRUE(at_eof(server.in)) << "socat's stdin EOF is a half-close";
  server.out.write_bytes("after the half-close\n");
  server.out.flush();
  EXPECT_EQ(arrives(c.out(), 21), "after the half-close\n");
  server.close();
  EXPECT_TRUE(at_eof(c.out()));
  const int status = c.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  rkt::unix_socket_close_listener(l);
}

// Our client talks to `socat <address> EXEC:cat`, an echo: the bytes come
// back, and our half-close comes back as EOF.
void we_connect_to_socat(const std::string& socat, const rkt::unix_socket_path& p,
                         const std::string& address) {
  child_process c({socat, "-t", "30", address, "EXEC:cat"});
  side client = connect_when_listening(p, c);
  const std::string data = pattern(20000, 3);
  client.out.write_bytes("line one\n");
  client.out.flush();
  EXPECT_EQ(arrives(client.in, 9), "line one\n");
  client.out.write_bytes(data);
  client.out.close();
  EXPECT_TRUE(read_to_eof(client.in) == data) << "the echo of 20000 bytes";
  client.in.close();
  const int status = c.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

TEST_F(UnixSocketInteropTest, SocatConnectsToOurListener) {
  REQUIRE_PROGRAM(socat, "socat");
  temp_dir dir;
  const std::string p = dir.file("s");
  socat_connects_to_us(*socat, p, "UNIX-CONNECT:" + p);
}

TEST_F(UnixSocketInteropTest, OurClientConnectsToASocatEcho) {
  REQUIRE_PROGRAM(socat, "socat");
  temp_dir dir;
  const std::string p = dir.file("s");
  we_connect_to_socat(*socat, p, "UNIX-LISTEN:" + p);
}

TEST_F(UnixSocketInteropTest, SocatConnectsToOurListenerOnAnAbstractName) {
  REQUIRE_PROGRAM(socat, "socat");
  const std::string name = unique_abstract("to_us");
  socat_connects_to_us(*socat, rkt::unix_socket_abstract_name(name),
                       "ABSTRACT-CONNECT:" + name.substr(1));
}

TEST_F(UnixSocketInteropTest, OurClientConnectsToASocatEchoOnAnAbstractName) {
  REQUIRE_PROGRAM(socat, "socat");
  const std::string name = unique_abstract("to_socat");
  we_connect_to_socat(*socat, rkt::unix_socket_abstract_name(name),
                      "ABSTRACT-LISTEN:" + name.substr(1));
}

// --- Racket 8.7 ---------------------------------------------------------------

TEST_F(UnixSocketInteropTest, RacketConnectsToOurListener) {
  REQUIRE_PROGRAM(racket, "racket");
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  // `racket -e` prints the value of each top-level expression: (void ...).
  child_process c({*racket, "-e",
                   "(require racket/unix-socket)"
                   "(define-values (i o) (unix-socket-connect \"" + p + "\"))"
                   "(void (write-bytes #\"ping\" o))"
                   "(close-output-port o)"
                   "(void (write-bytes (read-bytes 4 i) (current-output-port)))"
                   "(unless (eof-object? (read-byte i)) (exit 3))"});
  c.in().close();
  side server = accept_bounded(l);
  EXPECT_EQ(read_to_eof(server.in), "ping") << "racket's close-output-port is a half-close";
  server.out.write_bytes("pong");
  server.close();
  EXPECT_EQ(read_to_eof(c.out()), "pong");
  const int status = c.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketInteropTest, OurClientConnectsToARacketListener) {
  REQUIRE_PROGRAM(racket, "racket");
  temp_dir dir;
  const std::string p = dir.file("s");
  // `racket -e` prints the value of each top-level expression: (void ...).
  child_process c({*racket, "-e",
                   "(require racket/unix-socket racket/port)"
                   "(define l (unix-socket-listen \"" + p + "\"))"
                   "(define-values (i o) (unix-socket-accept l))"
                   "(void (write-bytes (port->bytes i) o))"
                   "(close-output-port o)"
                   "(unless (eof-object? (read-byte i)) (exit 3))"});
  c.in().close();
  side client = connect_when_listening(p, c);
  const std::string data = "to racket and back\n" + pattern(5000, 11);
  client.out.write_bytes(data);
  client.out.close();
  EXPECT_TRUE(read_to_eof(client.in) == data) << "racket echoes what it read up to our EOF";
  client.in.close();
  EXPECT_EQ(read_to_eof(c.out()), "");
  const int status = c.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

}  // namespace
