// systemd_listeners: a child process (systemd_child) started with the
// LISTEN_* variables takes its listeners by name, close-on-exec, unsets the
// variables and serves through make_inherited_tcp_unit; variables meant for
// another pid give nothing; malformed ones and descriptors that are not
// listening sockets raise. Also through systemd-socket-activate, when the
// machine has it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "ports/fd_port.h"
#include "socket/tcp.h"
#include "socket/unix_socket.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/spawned_child.h"
#include "tests/testing/unix_socket_helpers.h"

namespace {

using rkt::test::conn;
using rkt::test::spawned_child;

class SystemdListenersTest : public rkt::test::clean_test {
 protected:
  void TearDown() override {
    rkt::yield();
    clean_test::TearDown();
  }
};

std::string child_path() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) {
    const std::string p = std::string(srcdir) + "/" + workspace + "/tests/systemd_child";
    if (std::filesystem::exists(p)) return p;
  }
  return "tests/systemd_child";
}

// A listening socket on the abstract name `name` (what a service manager
// would hold).
int unix_listening(const std::string& name) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, name.data(), name.size());
  EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&a),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())),
            0);
  EXPECT_EQ(::listen(fd, 4), 0);
  return fd;
}

// A listening TCP socket on 127.0.0.1 and the port it got.
int tcp_listening(uint16_t& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

// Runs the child with `fds` as 3, 4, ... and the variables in `env`
// (LISTEN_PID set to the child's own pid unless `pid` is given), waits for
// it, and returns its stdout; `status` gets waitpid's status.
std::string run_child(const std::vector<int>& fds, std::vector<std::string> env,
                      const std::string& mode, int& status,
                      const std::function<void()>& while_running = nullptr,
                      const std::string& pid = "$$") {
  int out[2];
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  std::vector<std::pair<int, int>> map{{out[1], 1}};
  for (std::size_t i = 0; i < fds.size(); ++i) map.push_back({fds[i], 3 + static_cast<int>(i)});
  {
    // sh gives LISTEN_PID its own pid, which exec keeps for the child.
    spawned_child c({.argv = {"/bin/sh", "-c", "LISTEN_PID=" + pid + " exec \"$0\" \"$1\"",
                              child_path(), mode},
                     .fds = map,
                     .env = std::move(env)});
    ::close(out[1]);
    if (while_running) while_running();
    status = c.wait().value_or(-1);
  }
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  return text;
}

bool exited_with(int status, int code) { return WIFEXITED(status) && WEXITSTATUS(status) == code; }

TEST_F(SystemdListenersTest, TheChildTakesItsListenersByNameAndServesOnThem) {
  const std::string name = rkt::test::unique_abstract("sd");
  const int u = unix_listening(name);
  uint16_t port = 0;
  const int t = tcp_listening(port);
  int status = -1;
  std::string unix_reply, tcp_reply;
  const std::string out =
      run_child({u, t}, {"LISTEN_FDS=2", "LISTEN_FDNAMES=control:web"}, "serve", status, [&] {
        conn a(rkt::unix_socket_connect(rkt::unix_socket_abstract_name(name)));
        unix_reply = rkt::test::read_to_eof(a.in);
        a.close();
        conn b(rkt::tcp_connect("127.0.0.1", port));
        tcp_reply = rkt::test::read_to_eof(b.in);
        b.close();
      });
  EXPECT_TRUE(exited_with(status, 0)) << status << ": " << out;
  EXPECT_EQ(out,
            "listener control unix cloexec\n"
            "listener web tcp cloexec\n"
            "env unset\n");
  EXPECT_EQ(unix_reply, "control");
  EXPECT_EQ(tcp_reply, "web");
  ::close(u);
  ::close(t);
}

TEST_F(SystemdListenersTest, WithoutNamesEachIsUnknown) {
  const std::string name = rkt::test::unique_abstract("sd-unnamed");
  const int u = unix_listening(name);
  int status = -1;
  const std::string out = run_child({u}, {"LISTEN_FDS=1"}, "list", status);
  EXPECT_TRUE(exited_with(status, 0)) << out;
  EXPECT_EQ(out, "listener unknown unix cloexec\nenv unset\n");
  ::close(u);
}

TEST_F(SystemdListenersTest, VariablesForAnotherProcessGiveNothingAndAreUnset) {
  const std::string name = rkt::test::unique_abstract("sd-other");
  const int u = unix_listening(name);
  int status = -1;
  const std::string out =
      run_child({u}, {"LISTEN_FDS=1", "LISTEN_FDNAMES=x"}, "list", status, nullptr, "1");
  EXPECT_TRUE(exited_with(status, 0)) << out;
  EXPECT_EQ(out, "env unset\n");
  ::close(u);
}

TEST_F(SystemdListenersTest, NoVariablesGiveNothing) {
  int status = -1;
  const std::string out = run_child({}, {}, "list", status, nullptr, "");
  EXPECT_TRUE(exited_with(status, 0)) << out;
  EXPECT_EQ(out, "env unset\n");
}

TEST_F(SystemdListenersTest, ADescriptorThatIsNotListeningIsRefused) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  int status = -1;
  const std::string out = run_child({pair[0]}, {"LISTEN_FDS=1"}, "list", status);
  EXPECT_TRUE(exited_with(status, 3)) << out;
  EXPECT_NE(out.find("error: systemd_listeners: not a listening socket\n  fd: 3\n  errno: "),
            std::string::npos)
      << out;
  ::close(pair[0]);
  ::close(pair[1]);

  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  const std::string pipe_out = run_child({p[0]}, {"LISTEN_FDS=1"}, "list", status);
  EXPECT_TRUE(exited_with(status, 3)) << pipe_out;
  EXPECT_NE(pipe_out.find("error: systemd_listeners: not a socket\n  fd: 3"), std::string::npos)
      << pipe_out;
  ::close(p[0]);
  ::close(p[1]);
}

TEST_F(SystemdListenersTest, MalformedVariablesAreContractErrors) {
  const std::string name = rkt::test::unique_abstract("sd-bad");
  const int u = unix_listening(name);
  int status = -1;
  std::string out = run_child({u}, {"LISTEN_FDS=1", "LISTEN_FDNAMES=a:b"}, "list", status);
  EXPECT_TRUE(exited_with(status, 3)) << out;
  EXPECT_NE(out.find("expected: LISTEN_FDNAMES with one name per descriptor (LISTEN_FDS=1)"),
            std::string::npos)
      << out;
  out = run_child({u}, {"LISTEN_FDS=one"}, "list", status);
  EXPECT_TRUE(exited_with(status, 3)) << out;
  EXPECT_NE(out.find("expected: LISTEN_FDS as a count of descriptors\n  given: \"one\""),
            std::string::npos)
      << out;
  ::close(u);
}

// systemd-socket-activate listens on a path, starts the child at the first
// connection (exec'ing it in its own process, so LISTEN_PID matches), and
// the child answers that connection.
TEST_F(SystemdListenersTest, UnderSystemdSocketActivate) {
  if (::system("command -v systemd-socket-activate >/dev/null") != 0) {
    GTEST_SKIP() << "systemd-socket-activate is not installed";
  }
  rkt::test::temp_dir dir;
  const std::string path = dir.file("s");
  int err[2];
  ASSERT_EQ(::pipe2(err, O_CLOEXEC), 0);
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  std::string reply;
  std::optional<int> status;
  {
    spawned_child c({.argv = {"systemd-socket-activate", "-l", path, "--fdname=activated",
                              child_path(), "serve"},
                     .fds = {{out[1], 1}, {err[1], 2}},
                     .env = {}});
    ::close(out[1]);
    ::close(err[1]);
    // It says "Listening on <path> as 3." once it listens.
    rkt::input_port log = rkt::make_fd_input_port(err[0], "systemd-socket-activate stderr");
    rkt::or_eof<std::string> line = rkt::test::sync_within(rkt::read_line_evt(log));
    ASSERT_TRUE(line.has_value());
    EXPECT_NE(line->find("Listening on"), std::string::npos) << *line;
    conn a(rkt::unix_socket_connect(path));
    reply = rkt::test::read_to_eof(a.in);
    a.close();
    status = c.wait();
    log.close();
  }
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  EXPECT_EQ(reply, "activated");
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(exited_with(*status, 0)) << *status;
  EXPECT_EQ(text, "listener activated unix cloexec\nenv unset\n");
}

}  // namespace
