// unix_socket_listen_options: replace_stale (a socket file nothing listens
// on is replaced; a live one, or a file that is not a socket, never is),
// unlink_on_close (the file goes with the listener, by close, custodian
// shutdown or drop, unless another file took its place), and mode (exact
// permission bits, never wider; a user the mode excludes is refused).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <latch>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "custodian/custodian.h"
#include "evt/exn.h"
#include "gtest/gtest.h"
#include "socket/unix_socket.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/spawned_child.h"
#include "tests/testing/unix_socket_helpers.h"

namespace {

using rkt::test::accept_bounded;
using rkt::test::conn;
using rkt::test::is_socket_file;
using rkt::test::raised;
using rkt::test::temp_dir;

class UnixSocketFileTest : public rkt::test::clean_test {
 protected:
  void TearDown() override {
    rkt::yield();
    clean_test::TearDown();
  }
};

// What a server killed by SIGKILL leaves: a socket file nothing listens on.
void make_stale_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&a),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size())),
            0)
      << std::strerror(errno);
  ::close(fd);
}

ino_t inode_of(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st.st_ino;
}

mode_t mode_of(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st.st_mode & 07777;
}

// One connection through `path` to `l` carries a byte.
void expect_serves(const std::string& path, const rkt::unix_socket_listener& l) {
  conn client(rkt::unix_socket_connect(path));
  conn server = accept_bounded(l);
  client.out.write_bytes("x");
  client.out.flush();
  EXPECT_EQ(rkt::test::arrives(server.in, 1), "x");
  client.close();
  server.close();
}

void expect_in_use(const rkt::exn_fail_network& e, const std::string& text,
                   const std::string& path) {
  EXPECT_EQ(e.error_number(), EADDRINUSE) << e.what();
  const std::string m = e.what();
  EXPECT_NE(m.find("unix_socket_listen: " + text), std::string::npos) << m;
  EXPECT_NE(m.find("\n  path: \"" + path + "\""), std::string::npos) << m;
  EXPECT_NE(m.find("\n  errno: " + std::to_string(EADDRINUSE)), std::string::npos) << m;
}

// --- replace_stale ---------------------------------------------------------

TEST_F(UnixSocketFileTest, AStaleSocketFileIsInUseWithoutReplaceStale) {
  temp_dir dir;
  const std::string path = dir.file("s");
  make_stale_socket(path);
  auto e = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_listen(path); });
  ASSERT_TRUE(e);
  expect_in_use(*e, "failed to bind socket", path);
  EXPECT_TRUE(is_socket_file(path));
}

TEST_F(UnixSocketFileTest, ReplaceStaleReplacesASocketNothingListensOn) {
  temp_dir dir;
  const std::string path = dir.file("s");
  make_stale_socket(path);
  const ino_t stale = inode_of(path);
  rkt::unix_socket_listener l = rkt::unix_socket_listen(path, 4, {.replace_stale = true});
  EXPECT_NE(inode_of(path), stale);
  EXPECT_EQ(dir.entries(), 1u) << "a temporary file was left";
  expect_serves(path, l);
  rkt::unix_socket_close_listener(l);
  EXPECT_TRUE(is_socket_file(path)) << "closing without unlink_on_close keeps the file";
}

TEST_F(UnixSocketFileTest, ReplaceStaleOnAFreePathJustBinds) {
  temp_dir dir;
  const std::string path = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(path, 4, {.replace_stale = true});
  EXPECT_EQ(dir.entries(), 1u);
  expect_serves(path, l);
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketFileTest, ReplaceStaleNeverTakesAPathWhereSomethingListens) {
  temp_dir dir;
  const std::string path = dir.file("s");
  rkt::unix_socket_listener live = rkt::unix_socket_listen(path);
  const ino_t ino = inode_of(path);
  auto e = raised<rkt::exn_fail_network>(
      [&] { rkt::unix_socket_listen(path, 4, {.replace_stale = true}); });
  ASSERT_TRUE(e);
  expect_in_use(*e, "failed to bind socket: a listener answers on the socket file", path);
  EXPECT_EQ(inode_of(path), ino);
  EXPECT_EQ(dir.entries(), 1u) << "a temporary file was left";
  // The probe's connection waits in the live listener's queue; take it.
  conn probe = accept_bounded(live);
  EXPECT_TRUE(rkt::test::at_eof(probe.in));
  probe.close();
  expect_serves(path, live);
  rkt::unix_socket_close_listener(live);
}

// Two OS threads replace one stale file at once: one wins, the other finds
// the path in use (never two listeners, never the winner's file removed),
// and no temporary file stays.
TEST_F(UnixSocketFileTest, TwoReplacingAtOnceOneWins) {
  temp_dir dir;
  const std::string path = dir.file("s");
  make_stale_socket(path);
  std::latch start(2);
  std::mutex mu;
  std::vector<rkt::unix_socket_listener> won;
  std::vector<int> lost_errors;
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < 2; ++i) {
      threads.push_back(rkt::test::start_os_thread([&, i] {
        const rkt::unix_socket_listen_options o{
            .mode = i == 0 ? std::optional<mode_t>(0600) : std::nullopt,
            .replace_stale = true,
            .unlink_on_close = true};
        start.arrive_and_wait();
        try {
          rkt::unix_socket_listener l = rkt::unix_socket_listen(path, 4, o);
          std::lock_guard<std::mutex> g(mu);
          won.push_back(l);
        } catch (const rkt::exn_fail_network& e) {
          std::lock_guard<std::mutex> g(mu);
          lost_errors.push_back(e.error_number());
        }
      }));
    }
  }
  ASSERT_EQ(won.size(), 1u);
  ASSERT_EQ(lost_errors.size(), 1u);
  EXPECT_EQ(lost_errors[0], EADDRINUSE);
  EXPECT_EQ(dir.entries(), 1u) << "a temporary file was left";
  // The winner listens at the path (its OS thread has exited: a connection
  // is queued, and accepted since it is there already).
  conn client(rkt::unix_socket_connect(path));
  conn server = accept_bounded(won[0]);
  client.close();
  server.close();
  rkt::unix_socket_close_listener(won[0]);
  EXPECT_EQ(dir.entries(), 0u);
}

TEST_F(UnixSocketFileTest, ReplaceStaleNeverRemovesAFileThatIsNotASocket) {
  temp_dir dir;
  const std::string path = dir.file("s");
  std::ofstream(path) << "data";
  auto e = raised<rkt::exn_fail_network>(
      [&] { rkt::unix_socket_listen(path, 4, {.replace_stale = true}); });
  ASSERT_TRUE(e);
  expect_in_use(*e, "failed to bind socket: the path exists and is not a socket", path);
  std::ifstream in(path);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "data");
  EXPECT_EQ(dir.entries(), 1u);
}

TEST_F(UnixSocketFileTest, ReplaceStaleNeverRemovesADirectoryOrASymlink) {
  temp_dir dir;
  const std::string sub = dir.file("d");
  ASSERT_EQ(::mkdir(sub.c_str(), 0700), 0);
  EXPECT_TRUE(raised<rkt::exn_fail_network>(
      [&] { rkt::unix_socket_listen(sub, 4, {.replace_stale = true}); }));
  EXPECT_TRUE(std::filesystem::is_directory(sub));
  // A symlink to a stale socket is not a socket file (lstat).
  const std::string target = dir.file("t");
  make_stale_socket(target);
  const std::string link = dir.file("l");
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  auto e = raised<rkt::exn_fail_network>(
      [&] { rkt::unix_socket_listen(link, 4, {.replace_stale = true}); });
  ASSERT_TRUE(e);
  expect_in_use(*e, "failed to bind socket: the path exists and is not a socket", link);
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(dir.entries(), 3u);
}

// --- unlink_on_close -------------------------------------------------------

TEST_F(UnixSocketFileTest, UnlinkOnCloseRemovesTheFileAtClose) {
  temp_dir dir;
  const std::string path = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(path, 4, {.unlink_on_close = true});
  expect_serves(path, l);
  EXPECT_TRUE(is_socket_file(path));
  rkt::unix_socket_close_listener(l);
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(path)));
  rkt::unix_socket_close_listener(l);  // idempotent
}

TEST_F(UnixSocketFileTest, UnlinkOnCloseRemovesTheFileAtCustodianShutdown) {
  temp_dir dir;
  const std::string path = dir.file("s");
  rkt::custodian c = rkt::make_custodian();
  {
    rkt::custodian_scope in(c);
    rkt::unix_socket_listener l =
        rkt::unix_socket_listen(path, 4, {.replace_stale = true, .unlink_on_close = true});
    EXPECT_TRUE(is_socket_file(path));
    c.shutdown_all();
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(path)));
  }
}

TEST_F(UnixSocketFileTest, UnlinkOnCloseRemovesTheFileWhenTheLastHandleGoes) {
  temp_dir dir;
  const std::string path = dir.file("s");
  { rkt::unix_socket_listen(path, 4, {.unlink_on_close = true}); }
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(path)));
}

TEST_F(UnixSocketFileTest, UnlinkOnCloseLeavesAFileThatReplacedItsOwn) {
  temp_dir dir;
  const std::string path = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(path, 4, {.unlink_on_close = true});
  ASSERT_EQ(::unlink(path.c_str()), 0);
  make_stale_socket(path);  // another process's file now
  const ino_t other = inode_of(path);
  rkt::unix_socket_close_listener(l);
  ASSERT_TRUE(is_socket_file(path));
  EXPECT_EQ(inode_of(path), other);
}

TEST_F(UnixSocketFileTest, UnlinkOnCloseWithAnAbstractNameHasNoFileToRemove) {
  const std::string name = rkt::test::unique_abstract("unlink");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(
      rkt::unix_socket_abstract_name(name), 4, {.replace_stale = true, .unlink_on_close = true});
  rkt::unix_socket_close_listener(l);
}

// --- mode ------------------------------------------------------------------

TEST_F(UnixSocketFileTest, TheModeIsExactWhateverTheUmask) {
  temp_dir dir;
  const mode_t saved = ::umask(077);
  for (mode_t m : {0600, 0660, 0666, 0777, 0}) {
    const std::string path = dir.file("m" + std::to_string(m));
    rkt::unix_socket_listener l = rkt::unix_socket_listen(path, 4, {.mode = m});
    EXPECT_EQ(mode_of(path), m) << std::oct << m;
    EXPECT_TRUE(S_ISSOCK([&] {
      struct stat st;
      ::lstat(path.c_str(), &st);
      return st.st_mode;
    }()));
    rkt::unix_socket_close_listener(l);
    ::unlink(path.c_str());
  }
  ::umask(saved);
  EXPECT_EQ(dir.entries(), 0u) << "a temporary file was left";
}

TEST_F(UnixSocketFileTest, AModeWithReplaceStaleAndUnlinkOnClose) {
  temp_dir dir;
  const std::string path = dir.file("s");
  make_stale_socket(path);
  rkt::unix_socket_listener l = rkt::unix_socket_listen(
      path, 4, {.mode = 0640, .replace_stale = true, .unlink_on_close = true});
  EXPECT_EQ(mode_of(path), 0640u);
  EXPECT_EQ(dir.entries(), 1u);
  expect_serves(path, l);
  rkt::unix_socket_close_listener(l);
  EXPECT_EQ(dir.entries(), 0u);
}

TEST_F(UnixSocketFileTest, AModeOnAPathInUseLeavesNoTemporaryFile) {
  temp_dir dir;
  const std::string path = dir.file("s");
  make_stale_socket(path);
  auto e = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_listen(path, 4, {.mode = 0600}); });
  ASSERT_TRUE(e);
  expect_in_use(*e, "failed to bind socket", path);
  EXPECT_EQ(dir.entries(), 1u);
}

// sun_path has 108 bytes: a path that fills them leaves no room for the
// temporary name beside it, which is then reached through /proc/self/fd.
TEST_F(UnixSocketFileTest, AModeOnAPathOfTheLongestLength) {
  temp_dir dir;
  const std::string path = dir.file_of_length(sizeof(sockaddr_un::sun_path));
  ASSERT_TRUE(rkt::unix_socket_path_p(path));
  make_stale_socket(path);
  rkt::unix_socket_listener l = rkt::unix_socket_listen(
      path, 4, {.mode = 0600, .replace_stale = true, .unlink_on_close = true});
  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_EQ(dir.entries(), 1u);
  expect_serves(path, l);
  rkt::unix_socket_close_listener(l);
  EXPECT_EQ(dir.entries(), 0u);
}

TEST_F(UnixSocketFileTest, AModeWithAnAbstractNameOrBitsBeyond0777IsAContractError) {
  const std::string name = rkt::test::unique_abstract("mode");
  auto e = raised<rkt::exn_fail_contract>(
      [&] { rkt::unix_socket_listen(rkt::unix_socket_abstract_name(name), 4, {.mode = 0600}); });
  ASSERT_TRUE(e);
  EXPECT_NE(std::string(e->what()).find("unix_socket_listen: contract violation"),
            std::string::npos)
      << e->what();
  temp_dir dir;
  auto e2 = raised<rkt::exn_fail_contract>(
      [&] { rkt::unix_socket_listen(dir.file("s"), 4, {.mode = 04755}); });
  ASSERT_TRUE(e2);
  EXPECT_NE(std::string(e2->what()).find("given: 04755"), std::string::npos) << e2->what();
  EXPECT_EQ(dir.entries(), 0u);
}

// A user the mode leaves out cannot connect: socat as uid/gid 65534
// (nobody), through setpriv. Needs root, and a user namespace that maps
// 65534 (Bazel's sandbox maps root alone: the target runs unsandboxed).
class UnixSocketModeAsOtherUserTest : public UnixSocketFileTest {
 protected:
  // Whether /proc/self/uid_map has a range holding uid 65534.
  static bool maps_nobody() {
    std::ifstream map("/proc/self/uid_map");
    unsigned long inside, outside, count;
    while (map >> inside >> outside >> count) {
      if (inside <= 65534 && 65534 < inside + count) return true;
    }
    return false;
  }
  // socat's exit status connecting to `path` as nobody; its stderr in `err`.
  int connect_as_nobody(const temp_dir& dir, const std::string& path, std::string& err) {
    const std::string err_file = dir.file("err");
    const int err_fd = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(err_fd, 0);
    int status = -1;
    {
      rkt::test::spawned_child c({.argv = {"setpriv", "--reuid=65534", "--regid=65534",
                                           "--clear-groups", "socat", "-u", "OPEN:/dev/null",
                                           "UNIX-CONNECT:" + path},
                                  .fds = {{err_fd, 2}},
                                  .env = {}});
      ::close(err_fd);
      status = c.wait().value_or(-1);
    }
    std::ifstream in(err_file);
    err.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    ::unlink(err_file.c_str());
    return status;
  }
};

TEST_F(UnixSocketModeAsOtherUserTest, Mode0600RefusesOthersAnd0666LetsThemIn) {
  if (::geteuid() != 0) GTEST_SKIP() << "changing user needs root";
  if (!maps_nobody()) GTEST_SKIP() << "uid 65534 is not mapped in this user namespace";
  if (::system("command -v setpriv >/dev/null && command -v socat >/dev/null") != 0) {
    GTEST_SKIP() << "setpriv or socat is not installed";
  }
  temp_dir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);  // nobody may search it
  const std::string closed_path = dir.file("closed");
  rkt::unix_socket_listener closed = rkt::unix_socket_listen(closed_path, 4, {.mode = 0600});
  std::string err;
  const int refused = connect_as_nobody(dir, closed_path, err);
  EXPECT_TRUE(WIFEXITED(refused) && WEXITSTATUS(refused) != 0) << "status " << refused;
  EXPECT_NE(err.find("Permission denied"), std::string::npos) << err;
  rkt::unix_socket_close_listener(closed);

  const std::string open_path = dir.file("open");
  rkt::unix_socket_listener open = rkt::unix_socket_listen(open_path, 4, {.mode = 0666});
  const int let_in = connect_as_nobody(dir, open_path, err);
  ASSERT_TRUE(WIFEXITED(let_in) && WEXITSTATUS(let_in) == 0) << "status " << let_in << ": "
                                                               << err;
  conn server = accept_bounded(open);
  EXPECT_EQ(rkt::unix_socket_peer_credentials(server.in).uid, 65534u);
  server.close();
  rkt::unix_socket_close_listener(open);
  ::unlink(closed_path.c_str());
  ::unlink(open_path.c_str());
}

}  // namespace
