// Tests of racket/unix-socket (socket/unix_socket.h) against Racket 8.7's
// documented and observed behaviour:
//   - unix_socket_path_p: filesystem paths (non-empty, no NUL, absolute form
//     against the current directory with repeated slashes collapsed at most
//     108 bytes: 108 accepted, 109 rejected, relative paths counted with the
//     cwd, and invalid with ENOENT from connect and listen once the cwd was
//     removed) and abstract names (1..108 bytes, first byte NUL, later NULs
//     part of the name); invalid paths make connect and listen raise
//     exn_fail_contract naming the path, and are never truncated;
//   - connect / listen / accept round trips over a filesystem path, an
//     abstract name and a 108-byte path; half-close; the connection closing
//     only with both ports;
//   - the listener as an event (not ready, ready with itself, not consumed,
//     always ready once closed), closing twice, accept on a closed listener
//     (plain exn_fail, no errno), closing under a parked accept (also from
//     another OS thread);
//   - unix_socket_accept_evt: accepts nothing when it loses a choice or its
//     sync gives up, and its ports go to the custodian current when it was
//     made;
//   - custodians: shutdown closes listeners and ports (the socket file
//     stays); a shut-down custodian refuses listen, connect and accept, the
//     accept before accept(2), leaving the connection to another accepter;
//     the negative backlog's message;
//   - errors with errno and Racket's message shape: ENOENT, ECONNREFUSED
//     (nobody listening, a regular file, an unbound abstract name), EACCES,
//     EADDRINUSE (live and stale socket files); paths in messages written as
//     Racket's ~e writes them (strings and byte strings, escapes checked
//     against racket 8.7);
//   - close-on-exec descriptors, 1000 concurrent echo connections each
//     served by a green thread, a client on another OS thread, and no
//     descriptor leaks (fixture, and a cycle test).
//
// No test sleeps to wait for another thread: waits are sync_within / await,
// and calls that could block (accept) run on green threads awaited with a
// bound, so a bug fails a test rather than hanging it. The few bounded
// sync_timeouts on an event that must NOT fire only weaken a check when the
// machine is slow. Filesystem sockets live in a mkdtemp directory under
// /tmp removed at the end; abstract names carry the pid, a random number and
// a counter.
#include "socket/unix_socket.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "evt/evt.h"
#include "evt/exn.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ports/fd_port.h"
#include "ports/port.h"
#include "tests/testing/fd_leak_check.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/unix_socket_helpers.h"
#include "tests/testing/sync_within.h"

namespace {

using namespace std::string_literals;

using ::rkt::test::accept_bounded;
using ::rkt::test::arrives;
using ::rkt::test::at_eof;
using ::rkt::test::await;
using ::rkt::test::is_socket_file;
using ::rkt::test::on_green_thread;
using ::rkt::test::pattern;
using ::rkt::test::read_to_eof;
using ::rkt::test::raised;
using ::rkt::test::scoped_thread;
using ::rkt::test::spawn_parked;
using ::rkt::test::start_os_thread;
using ::rkt::test::sync_within;
using ::rkt::test::temp_dir;
using ::rkt::test::unique_abstract;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

using port_pair = std::pair<rkt::input_port, rkt::output_port>;
using maybe_ports = std::optional<port_pair>;

// sizeof(sockaddr_un::sun_path) on Linux.
constexpr std::size_t kMaxPath = 108;

// One end of a connection.
using side = ::rkt::test::conn;

side connect_to(const rkt::unix_socket_path& p) { return side(rkt::unix_socket_connect(p)); }

bool ready_now(const rkt::unix_socket_listener& l) {
  return rkt::sync_timeout(absl::ZeroDuration(), l).has_value();
}

rkt::unix_socket_abstract_name abstract(std::string bytes) {
  return rkt::unix_socket_abstract_name(std::move(bytes));
}

std::string current_dir() {
  char buf[8192];
  const char* p = getcwd(buf, sizeof buf);
  EXPECT_NE(p, nullptr) << std::strerror(errno);
  return p != nullptr ? std::string(p) : std::string();
}

// Changes the process's directory for a scope. Only while no other OS
// thread runs.
class cwd_scope {
 public:
  explicit cwd_scope(const std::string& dir) : saved_(current_dir()) {
    EXPECT_EQ(chdir(dir.c_str()), 0) << dir << ": " << std::strerror(errno);
  }
  ~cwd_scope() { EXPECT_EQ(chdir(saved_.c_str()), 0) << saved_ << ": " << std::strerror(errno); }
  cwd_scope(const cwd_scope&) = delete;
  cwd_scope& operator=(const cwd_scope&) = delete;

 private:
  std::string saved_;
};

// The "socket:[inode]" descriptors of the process.
std::map<int, std::string> socket_fds() {
  std::map<int, std::string> out;
  for (const auto& [fd, target] : rkt::test::fd_leak_check::snapshot()) {
    if (target.rfind("socket:", 0) == 0) out.emplace(fd, target);
  }
  return out;
}

std::string link_of(int fd) {
  char buf[256];
  const std::string p = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = readlink(p.c_str(), buf, sizeof buf);
  return n < 0 ? std::string() : std::string(buf, static_cast<std::size_t>(n));
}

bool has_target(const std::string& target) {
  for (const auto& [fd, t] : rkt::test::fd_leak_check::snapshot()) {
    if (t == target) return true;
  }
  return false;
}

// Racket's message for a failed socket call on a filesystem path.
std::string racket_message(const std::string& who_what, const std::string& path, int error,
                           const std::string& text) {
  return who_what + "\n  path: \"" + path + "\"\n  errno: " + std::to_string(error) +
         "\n  error: " + text;
}

// Runs `f`, which must raise exactly rkt::exn_fail (not a subclass: the
// error is no system call's, so it carries no errno), and returns its
// message; records a failure otherwise.
template <class F>
std::optional<std::string> raised_plain_fail(F&& f) {
  try {
    f();
  } catch (const rkt::exn_fail& e) {
    if (typeid(e) == typeid(rkt::exn_fail)) return std::string(e.what());
    ADD_FAILURE() << "expected a plain rkt::exn_fail, got " << typeid(e).name() << ": "
                  << e.what();
    return std::nullopt;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected rkt::exn_fail, got " << typeid(e).name() << ": " << e.what();
    return std::nullopt;
  }
  ADD_FAILURE() << "expected rkt::exn_fail, nothing was raised";
  return std::nullopt;
}

// The fixture lets the scheduler run once before the descriptor check, in
// case a close was handed to it from another OS thread.
class UnixSocketTest : public rkt::test::clean_test {
 protected:
  void TearDown() override {
    rkt::yield();
    clean_test::TearDown();
  }
};

// --- Paths ------------------------------------------------------------------

TEST_F(UnixSocketTest, AvailableOnLinuxAndTheListenerPredicate) {
  EXPECT_TRUE(rkt::unix_socket_available);
  temp_dir dir;
  rkt::unix_socket_listener l = rkt::unix_socket_listen(dir.file("s"));
  EXPECT_TRUE(rkt::unix_socket_listener_p(l));
  EXPECT_FALSE(rkt::unix_socket_listener_p(42));
  EXPECT_FALSE(rkt::unix_socket_listener_p(dir.file("s")));
  rkt::unix_socket_listener copy = l;
  EXPECT_TRUE(copy == l) << "copies share one listener";
  rkt::unix_socket_close_listener(copy);
  EXPECT_TRUE(ready_now(l)) << "closing a copy closes the listener";
}

TEST_F(UnixSocketTest, FilesystemPathValidity) {
  EXPECT_TRUE(rkt::unix_socket_path_p("/tmp/x.sock"));
  EXPECT_TRUE(rkt::unix_socket_path_p(std::string("/tmp/x.sock")));
  EXPECT_TRUE(rkt::unix_socket_path_p(std::string_view("/tmp/x.sock")));
  EXPECT_TRUE(rkt::unix_socket_path_p(std::filesystem::path("/tmp/x.sock")));
  EXPECT_FALSE(rkt::unix_socket_path_p("")) << "empty";
  EXPECT_FALSE(rkt::unix_socket_path_p(std::string()));
  EXPECT_FALSE(rkt::unix_socket_path_p("/tmp/a\0b"s)) << "NUL inside";
  EXPECT_FALSE(rkt::unix_socket_path_p("/tmp/ab\0"s)) << "NUL at the end";
  EXPECT_FALSE(rkt::unix_socket_path_p("\0/tmp/ab"s)) << "a string is never an abstract name";

  const std::string p108 = "/" + std::string(kMaxPath - 1, 'a');
  const std::string p109 = "/" + std::string(kMaxPath, 'a');
  ASSERT_EQ(p108.size(), 108u);
  EXPECT_TRUE(rkt::unix_socket_path_p(p108)) << "108 bytes: no byte is kept for a NUL";
  EXPECT_FALSE(rkt::unix_socket_path_p(p109)) << "109 bytes";
  EXPECT_FALSE(rkt::unix_socket_path_p("/" + std::string(300, 'a')));
  EXPECT_TRUE(rkt::unix_socket_path_p(std::filesystem::path(p108)));
  EXPECT_FALSE(rkt::unix_socket_path_p(std::filesystem::path(p109)));
}

TEST_F(UnixSocketTest, RepeatedSlashesCollapseBeforeTheLengthCheck) {
  temp_dir dir;
  const std::string name = dir.file_of_length(kMaxPath).substr(dir.path().size() + 1);
  const std::string collapsed108 = dir.path() + "/" + name;
  ASSERT_EQ(collapsed108.size(), 108u);
  const std::string raw = "/" + dir.path() + "/////" + name;  // 113 bytes as given
  EXPECT_TRUE(rkt::unix_socket_path_p(raw)) << "its absolute form has 108 bytes";
  EXPECT_FALSE(rkt::unix_socket_path_p("/" + dir.path() + "/////" + name + "x"))
      << "its absolute form has 109 bytes";

  // The collapsed form is the one bound: a listener on the long spelling
  // answers at the short one, and the other way round.
  rkt::unix_socket_listener l = rkt::unix_socket_listen(raw);
  EXPECT_TRUE(is_socket_file(collapsed108));
  side client = connect_to(collapsed108);
  side server = accept_bounded(l);
  client.out.write_bytes("via the short spelling");
  client.out.flush();
  EXPECT_EQ(arrives(server.in, 22), "via the short spelling");
  side client2 = connect_to(raw);
  side server2 = accept_bounded(l);
  server2.out.write_bytes("long");
  server2.out.flush();
  EXPECT_EQ(arrives(client2.in, 4), "long");
  client.close();
  server.close();
  client2.close();
  server2.close();
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketTest, RelativePathsCountTheCurrentDirectory) {
  // In whatever directory the test runs in (Bazel's runfiles directory can
  // itself be longer than 108 bytes).
  {
    const std::string cwd = current_dir();
    const std::size_t room = cwd.size() + 1 < kMaxPath ? kMaxPath - cwd.size() - 1 : 0;
    if (room > 0) {
      EXPECT_TRUE(rkt::unix_socket_path_p(std::string(room, 'r'))) << "cwd " << cwd;
      EXPECT_TRUE(rkt::unix_socket_path_p("a"));
    } else {
      EXPECT_FALSE(rkt::unix_socket_path_p("a")) << "cwd " << cwd << " leaves no room";
    }
    EXPECT_FALSE(rkt::unix_socket_path_p(std::string(room + 1, 'r'))) << "cwd " << cwd;
  }

  // In a short directory: the boundary, a relative path with repeated
  // slashes, and a listener bound through a relative path.
  temp_dir dir;
  std::filesystem::create_directory(dir.file("sub"));
  cwd_scope in(dir.path());
  const std::string cwd = current_dir();
  ASSERT_LT(cwd.size() + 10, kMaxPath);
  const std::size_t room = kMaxPath - cwd.size() - 1;  // cwd + "/" + name
  const std::string max_name(room, 'r');
  EXPECT_TRUE(rkt::unix_socket_path_p(max_name));
  EXPECT_FALSE(rkt::unix_socket_path_p(max_name + "r"));
  // "sub//" + name: collapsed, cwd + "/sub/" + name.
  const std::string in_sub(room - 4, 's');
  EXPECT_TRUE(rkt::unix_socket_path_p("sub//" + in_sub));
  EXPECT_TRUE(rkt::unix_socket_path_p("sub/" + in_sub));
  EXPECT_FALSE(rkt::unix_socket_path_p("sub//" + in_sub + "s"));

  rkt::unix_socket_listener l = rkt::unix_socket_listen(max_name);
  EXPECT_TRUE(is_socket_file(cwd + "/" + max_name));
  side client = connect_to(cwd + "/" + max_name);
  side server = accept_bounded(l);
  client.out.write_bytes("relative");
  client.out.flush();
  EXPECT_EQ(arrives(server.in, 8), "relative");
  client.close();
  server.close();
  rkt::unix_socket_close_listener(l);
  auto e = raised<rkt::exn_fail_contract>([&] { rkt::unix_socket_listen(max_name + "r"); });
  ASSERT_TRUE(e);
  EXPECT_THAT(e->what(), HasSubstr(max_name + "r"));
  EXPECT_FALSE(std::filesystem::exists(cwd + "/" + max_name + "r"));
}

// A relative path needs the absolute form of the current directory. Once
// that directory is removed it has none, and the path names nothing: it is
// not a valid path, and connect and listen raise ENOENT (getcwd's errno)
// instead of binding or connecting at "/". The directory is restored at
// the end of the scope.
TEST_F(UnixSocketTest, ARelativePathUnderARemovedCurrentDirectoryNamesNothingNotAPathAtTheRoot) {
  temp_dir dir;
  const std::string gone = dir.file("gone");
  ASSERT_EQ(mkdir(gone.c_str(), 0700), 0) << std::strerror(errno);
  const std::string name = "rkt-removed-cwd-" + std::to_string(getpid()) + ".sock";
  const std::string at_root = "/" + name;
  std::error_code ec;
  ASSERT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(at_root, ec)));
  {
    cwd_scope in(gone);
    ASSERT_EQ(rmdir(gone.c_str()), 0) << std::strerror(errno);
    EXPECT_FALSE(rkt::unix_socket_path_p(name));
    EXPECT_FALSE(rkt::unix_socket_path_p("./" + name));
    auto el = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_listen(name); });
    ASSERT_TRUE(el);
    EXPECT_EQ(el->error_number(), ENOENT);
    EXPECT_EQ(std::string(el->what()),
              racket_message("unix_socket_listen: cannot make the path absolute: no current "
                             "directory",
                             name, ENOENT, "No such file or directory"));
    auto ec2 = raised<rkt::exn_fail_network>(
        [&] { on_green_thread([&] { return rkt::unix_socket_connect(name); }); });
    ASSERT_TRUE(ec2);
    EXPECT_EQ(ec2->error_number(), ENOENT);
    EXPECT_THAT(ec2->what(), StartsWith("unix_socket_connect: cannot make the path absolute"));
    // Invalid whatever the directory: still a contract violation.
    EXPECT_TRUE(raised<rkt::exn_fail_contract>([] { rkt::unix_socket_listen(""); }));
    // Absolute paths and abstract names need no current directory.
    EXPECT_TRUE(rkt::unix_socket_path_p(dir.file("s")));
    EXPECT_TRUE(rkt::unix_socket_path_p(abstract(unique_abstract("cwd"))));
    rkt::unix_socket_listener l = rkt::unix_socket_listen(dir.file("s"));
    side client = connect_to(dir.file("s"));
    side server = accept_bounded(l);
    client.close();
    server.close();
    rkt::unix_socket_close_listener(l);
  }
  const bool made_at_root = std::filesystem::exists(std::filesystem::symlink_status(at_root, ec));
  if (made_at_root) std::filesystem::remove(at_root, ec);
  EXPECT_FALSE(made_at_root) << "a socket file was bound at " << at_root;
}

TEST_F(UnixSocketTest, AbstractNameValidity) {
  EXPECT_TRUE(rkt::unix_socket_path_p(abstract("\0"s))) << "a lone NUL is a name";
  EXPECT_TRUE(rkt::unix_socket_path_p(abstract("\0name"s)));
  EXPECT_TRUE(rkt::unix_socket_path_p(abstract("\0name\0"s))) << "trailing NUL";
  EXPECT_TRUE(rkt::unix_socket_path_p(abstract("\0na\0me"s))) << "embedded NUL";
  EXPECT_TRUE(rkt::unix_socket_path_p(abstract("\0\0\0"s)));
  EXPECT_TRUE(rkt::unix_socket_path_p(abstract("\0"s + std::string(kMaxPath - 1, 'a'))))
      << "108 bytes";
  EXPECT_TRUE(rkt::unix_socket_path_p(abstract(std::string(kMaxPath, '\0'))))
      << "108 NULs";
  EXPECT_FALSE(rkt::unix_socket_path_p(abstract("\0"s + std::string(kMaxPath, 'a'))))
      << "109 bytes";
  EXPECT_FALSE(rkt::unix_socket_path_p(abstract(""))) << "empty";
  EXPECT_FALSE(rkt::unix_socket_path_p(abstract("/tmp/x.sock")))
      << "bytes without a leading NUL are not a filesystem path either";
  EXPECT_FALSE(rkt::unix_socket_path_p(abstract("a\0"s)));

  const rkt::unix_socket_path fs("/tmp/x");
  const rkt::unix_socket_path ab(abstract("\0x"s));
  EXPECT_FALSE(fs.abstract());
  EXPECT_TRUE(ab.abstract());
  EXPECT_EQ(ab.bytes(), "\0x"s);
  EXPECT_TRUE(abstract("\0x"s) == abstract("\0x"s));
  EXPECT_FALSE(abstract("\0x"s) == abstract("\0x\0"s));
}

TEST_F(UnixSocketTest, InvalidPathsRaiseContractErrorsNamingThePath) {
  temp_dir dir;
  const std::string p109 = dir.file_of_length(kMaxPath + 1);
  struct bad_fs {
    std::string path;
    std::string shown;  // what the message must contain
  };
  const std::vector<bad_fs> bad = {
      {p109, "\"" + p109 + "\""},
      {"", "\"\""},
      {dir.file("nul\0inside"s), dir.file("nul")},
  };
  for (const bad_fs& b : bad) {
    auto l = raised<rkt::exn_fail_contract>([&] { rkt::unix_socket_listen(b.path); });
    ASSERT_TRUE(l) << b.shown;
    EXPECT_THAT(l->what(), StartsWith("unix_socket_listen: "));
    EXPECT_THAT(l->what(), HasSubstr(b.shown));
    auto c = raised<rkt::exn_fail_contract>([&] { rkt::unix_socket_connect(b.path); });
    ASSERT_TRUE(c) << b.shown;
    EXPECT_THAT(c->what(), StartsWith("unix_socket_connect: "));
    EXPECT_THAT(c->what(), HasSubstr(b.shown));
  }
  EXPECT_EQ(dir.entries(), 0u) << "nothing was bound, truncated or not";

  const std::string name109 = unique_abstract("");
  const std::string long_abstract =
      name109 + std::string(kMaxPath + 1 - name109.size(), 'z');  // 109 bytes
  ASSERT_EQ(long_abstract.size(), 109u);
  const std::vector<std::string> bad_abstract = {long_abstract, "", "/tmp/rkt_no_leading_nul"};
  for (const std::string& b : bad_abstract) {
    auto l = raised<rkt::exn_fail_contract>([&] { rkt::unix_socket_listen(abstract(b)); });
    ASSERT_TRUE(l);
    EXPECT_THAT(l->what(), StartsWith("unix_socket_listen: "));
    auto c = raised<rkt::exn_fail_contract>([&] { rkt::unix_socket_connect(abstract(b)); });
    ASSERT_TRUE(c);
    EXPECT_THAT(c->what(), StartsWith("unix_socket_connect: "));
    if (!b.empty()) {
      const std::string printable = b.substr(b.find_first_not_of('\0'), 20);
      EXPECT_THAT(l->what(), HasSubstr(printable));
      EXPECT_THAT(c->what(), HasSubstr(printable));
    }
  }
  EXPECT_FALSE(std::filesystem::exists("/tmp/rkt_no_leading_nul"));
}

TEST_F(UnixSocketTest, OverlongPathsAreNeverTruncatedToAListenersName) {
  temp_dir dir;
  // A listener at 108 bytes, and its name plus one byte.
  const std::string p108 = dir.file_of_length(kMaxPath);
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p108);
  auto c = raised<rkt::exn_fail_contract>([&] { rkt::unix_socket_connect(p108 + "x"); });
  ASSERT_TRUE(c);
  EXPECT_THAT(c->what(), HasSubstr(p108 + "x"));
  EXPECT_FALSE(ready_now(l)) << "the 109-byte connect reached the 108-byte listener";
  auto again = raised<rkt::exn_fail_contract>([&] { rkt::unix_socket_listen(p108 + "x"); });
  ASSERT_TRUE(again) << "a truncating listen would have failed with EADDRINUSE instead";
  rkt::unix_socket_close_listener(l);

  // Likewise an abstract name.
  const std::string base = unique_abstract("");
  const std::string a108 = base + std::string(kMaxPath - base.size(), 'z');
  rkt::unix_socket_listener la = rkt::unix_socket_listen(abstract(a108));
  EXPECT_TRUE(raised<rkt::exn_fail_contract>(
      [&] { rkt::unix_socket_connect(abstract(a108 + "z")); }));
  EXPECT_FALSE(ready_now(la));
  EXPECT_TRUE(raised<rkt::exn_fail_contract>(
      [&] { rkt::unix_socket_listen(abstract(a108 + "z")); }));
  rkt::unix_socket_close_listener(la);
}

// --- Round trips ------------------------------------------------------------

// Listen, connect, accept, and talk both ways; the ports are fd ports named
// unix-socket whose output starts in block mode.
void round_trip(const rkt::unix_socket_path& listen_at, const rkt::unix_socket_path& connect_at) {
  rkt::unix_socket_listener l = rkt::unix_socket_listen(listen_at);
  side client = connect_to(connect_at);
  side server = accept_bounded(l);
  EXPECT_EQ(client.in.name(), "unix-socket");
  EXPECT_EQ(server.out.name(), "unix-socket");
  EXPECT_EQ(client.out.get_buffer_mode(), rkt::buffer_mode::block);
  EXPECT_NE(rkt::fd_port_descriptor(client.in), -1);

  client.out.write_bytes("hello\nfrom the client");
  client.out.flush();
  EXPECT_EQ(sync_within(rkt::read_line_evt(server.in)), "hello"s);
  EXPECT_EQ(arrives(server.in, 15), "from the client");
  const std::string big = pattern(300000, 7);
  scoped_thread writer([&] {
    server.out.write_bytes(big);
    server.out.flush();
  });
  EXPECT_TRUE(arrives(client.in, big.size()) == big) << "300 KB back";
  writer.join();
  client.close();
  EXPECT_TRUE(at_eof(server.in));
  server.close();
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketTest, RoundTripOverAFilesystemPath) {
  temp_dir dir;
  const std::string p = dir.file("rt.sock");
  round_trip(p, std::string_view(p));
  EXPECT_TRUE(is_socket_file(p)) << "closing the listener leaves the file";
  std::filesystem::remove(p);
  round_trip(std::filesystem::path(p), p.c_str());
}

TEST_F(UnixSocketTest, RoundTripOverAnAbstractName) {
  const std::string name = unique_abstract("rt");
  round_trip(abstract(name), abstract(name));
  // An abstract name leaves no file behind and is free again after close.
  round_trip(abstract(name), abstract(name));
}

TEST_F(UnixSocketTest, RoundTripOverA108BytePathAndA108ByteAbstractName) {
  temp_dir dir;
  const std::string p = dir.file_of_length(kMaxPath);
  round_trip(p, p);
  EXPECT_TRUE(is_socket_file(p));
  const std::string base = unique_abstract("");
  round_trip(abstract(base + std::string(kMaxPath - base.size(), 'm')),
             abstract(base + std::string(kMaxPath - base.size(), 'm')));
}

TEST_F(UnixSocketTest, AbstractNamesWithTrailingAndEmbeddedNulsAreDistinct) {
  const std::string base = unique_abstract("n");
  const std::vector<std::string> names = {base, base + "\0"s, base + "\0x"s, base + "\0\0"s,
                                          base.substr(0, base.size() - 1) + "\0n"s};
  std::vector<rkt::unix_socket_listener> ls;
  for (const std::string& n : names) {
    ls.push_back(rkt::unix_socket_listen(abstract(n)));  // none is in use
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    side client = connect_to(abstract(names[i]));
    client.out.write_byte(static_cast<uint8_t>(i));
    client.out.flush();
    for (std::size_t j = 0; j < names.size(); ++j) {
      if (j != i) {
        EXPECT_FALSE(ready_now(ls[j])) << "name " << i << " reached listener " << j;
      }
    }
    side server = accept_bounded(ls[i]);
    EXPECT_EQ(arrives(server.in, 1), std::string(1, static_cast<char>(i)));
    client.close();
    server.close();
  }
  for (const auto& l : ls) rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketTest, UnixSocketAcceptParksUntilAClientConnects) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  std::optional<side> server;
  rkt::semaphore ready;
  rkt::thread acceptor = spawn_parked(ready, [&] { server.emplace(rkt::unix_socket_accept(l)); });
  EXPECT_TRUE(acceptor.running());
  EXPECT_FALSE(server.has_value());
  side client = connect_to(p);
  await(acceptor);
  ASSERT_TRUE(server.has_value());
  server->out.write_bytes("accepted");
  server->out.close();
  EXPECT_EQ(read_to_eof(client.in), "accepted");
  client.close();
  server->close();
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketTest, ClosingOurOutputGivesThePeerEofWhileThePeerCanStillReply) {
  temp_dir dir;
  rkt::unix_socket_listener l = rkt::unix_socket_listen(dir.file("s"));
  side client = connect_to(dir.file("s"));
  side server = accept_bounded(l);
  client.out.write_bytes("request");
  client.out.close();
  EXPECT_EQ(read_to_eof(server.in), "request");
  server.out.write_bytes("reply after the peer's EOF");
  server.out.flush();
  EXPECT_EQ(arrives(client.in, 26), "reply after the peer's EOF");
  server.out.close();
  EXPECT_TRUE(at_eof(client.in));
  client.in.close();
  server.in.close();
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketTest, TheConnectionClosesOnlyWhenBothPortsAreClosed) {
  temp_dir dir;
  rkt::unix_socket_listener l = rkt::unix_socket_listen(dir.file("s"));
  side client = connect_to(dir.file("s"));
  side server = accept_bounded(l);
  const int fd = rkt::fd_port_descriptor(client.out);
  ASSERT_GE(fd, 0);
  const std::string target = link_of(fd);
  ASSERT_THAT(target, StartsWith("socket:"));

  client.in.close();
  EXPECT_TRUE(has_target(target)) << "closing the input alone closed the socket";
  client.out.write_bytes("still open");
  client.out.flush();
  EXPECT_EQ(arrives(server.in, 10), "still open");
  client.out.close();
  EXPECT_FALSE(has_target(target)) << "both ports are closed, the socket is not";
  EXPECT_TRUE(at_eof(server.in));
  server.close();
  rkt::unix_socket_close_listener(l);
}

// --- The listener as an event -----------------------------------------------

TEST_F(UnixSocketTest, TheListenerIsReadyWithItselfOnlyWhileAConnectionWaits) {
  temp_dir dir;
  rkt::unix_socket_listener l = rkt::unix_socket_listen(dir.file("s"));
  EXPECT_EQ(rkt::sync_timeout(absl::ZeroDuration(), l), std::nullopt);
  EXPECT_EQ(rkt::sync_timeout(absl::Milliseconds(5), l), std::nullopt);
  side client = connect_to(dir.file("s"));
  rkt::unix_socket_listener got = sync_within(l);
  EXPECT_TRUE(got == l) << "the result is the listener itself";
  EXPECT_TRUE(ready_now(l)) << "syncing on the listener accepts nothing";
  EXPECT_TRUE(ready_now(l));
  side server = accept_bounded(l);
  EXPECT_FALSE(ready_now(l)) << "nothing left to accept";
  client.out.write_bytes("x");
  client.out.flush();
  EXPECT_EQ(arrives(server.in, 1), "x");
  client.close();
  server.close();
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketTest, AThreadParkedOnTheListenerWakesWhenAClientConnects) {
  temp_dir dir;
  rkt::unix_socket_listener l = rkt::unix_socket_listen(dir.file("s"));
  std::optional<rkt::unix_socket_listener> got;
  rkt::semaphore ready;
  rkt::thread waiter = spawn_parked(ready, [&] { got.emplace(sync_within(l)); });
  EXPECT_FALSE(got.has_value());
  side client = connect_to(dir.file("s"));
  await(waiter);
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(*got == l);
  side server = accept_bounded(l);
  client.close();
  server.close();
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketTest, AClosedListenerIsAlwaysReadyAndAcceptRaises) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  rkt::unix_socket_close_listener(l);
  rkt::unix_socket_close_listener(l);  // a no-op
  std::optional<rkt::unix_socket_listener> r = rkt::sync_timeout(absl::ZeroDuration(), l);
  ASSERT_TRUE(r.has_value()) << "a closed listener is ready";
  EXPECT_TRUE(*r == l);
  EXPECT_TRUE(ready_now(l)) << "and stays ready";

  // Racket 8.7: plain exn:fail, no errno (the listener's state, not a
  // system call, is at fault).
  std::optional<std::string> e = raised_plain_fail([&] { accept_bounded(l); });
  ASSERT_TRUE(e);
  EXPECT_EQ(*e, "unix_socket_accept: unix socket listener is closed");
  std::optional<std::string> ee =
      raised_plain_fail([&] { sync_within(rkt::unix_socket_accept_evt(l)); });
  ASSERT_TRUE(ee) << "the accept evt is ready, and its sync raises";
  EXPECT_EQ(*ee, "unix_socket_accept_evt: unix socket listener is closed");
  EXPECT_TRUE(is_socket_file(p)) << "the socket file stays";
  auto refused = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_connect(p); });
  ASSERT_TRUE(refused) << "the closed listener still took a connection";
  EXPECT_EQ(refused->error_number(), ECONNREFUSED);
}

// Parks one thread in unix_socket_accept on a fresh listener and another on
// the listener as an event, runs `close_listener` on it, and checks that
// both wake: accept with the closed-listener error, the event with the
// listener.
void expect_closing_wakes_parked_threads(
    const std::function<void(const rkt::unix_socket_listener&)>& close_listener) {
  temp_dir dir;
  rkt::unix_socket_listener l = rkt::unix_socket_listen(dir.file("s"));
  std::string error;
  rkt::semaphore ready;
  rkt::thread acceptor = spawn_parked(ready, [&] {
    error = raised_plain_fail([&] { rkt::unix_socket_accept(l); }).value_or("");
  });
  std::optional<rkt::unix_socket_listener> woke;
  rkt::thread waiter = spawn_parked(ready, [&] { woke.emplace(sync_within(l)); });
  close_listener(l);
  await(acceptor);
  await(waiter);
  EXPECT_EQ(error, "unix_socket_accept: unix socket listener is closed");
  ASSERT_TRUE(woke.has_value()) << "a thread parked on the listener event woke too";
  EXPECT_TRUE(*woke == l);
}

TEST_F(UnixSocketTest, ClosingAListenerWakesAThreadParkedInAccept) {
  expect_closing_wakes_parked_threads(
      [](const rkt::unix_socket_listener& l) { rkt::unix_socket_close_listener(l); });
}

TEST_F(UnixSocketTest, ClosingAListenerFromAnotherOsThreadWakesAParkedAccept) {
  std::optional<rkt::unix_socket_listener> closed;
  std::jthread os;
  expect_closing_wakes_parked_threads([&](const rkt::unix_socket_listener& l) {
    closed.emplace(l);
    os = start_os_thread([l] { rkt::unix_socket_close_listener(l); });
  });
  os.join();
  ASSERT_TRUE(closed.has_value());
  EXPECT_TRUE(ready_now(*closed));
}

// --- unix_socket_accept_evt -----------------------------------------------------

TEST_F(UnixSocketTest, AcceptEvtIsReadyOnlyWhenAConnectionWaitsAndTakesIt) {
  temp_dir dir;
  rkt::unix_socket_listener l = rkt::unix_socket_listen(dir.file("s"));
  rkt::evt<port_pair> e = rkt::unix_socket_accept_evt(l);
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), e).has_value());
  EXPECT_FALSE(rkt::sync_timeout(absl::Milliseconds(5), e).has_value());
  // The syncs that gave up accept nothing later.
  side client = connect_to(dir.file("s"));
  client.out.write_bytes("first");
  client.out.flush();
  EXPECT_TRUE(ready_now(l)) << "the connection is still waiting";
  // A thread parked on the event gets the next one.
  std::optional<side> second;
  rkt::semaphore ready;
  side first = accept_bounded(l);
  EXPECT_EQ(arrives(first.in, 5), "first");
  rkt::thread waiter = spawn_parked(ready, [&] { second.emplace(sync_within(e)); });
  side client2 = connect_to(dir.file("s"));
  await(waiter);
  ASSERT_TRUE(second.has_value());
  client2.out.write_bytes("second");
  client2.out.flush();
  EXPECT_EQ(arrives(second->in, 6), "second");
  EXPECT_FALSE(ready_now(l));
  for (const side* s : {&client, &client2, &first, &*second}) s->close();
  rkt::unix_socket_close_listener(l);
}

// Both events ready: sync picks one at random. Whenever always_evt wins,
// the connection must still be waiting; whenever the accept wins, it must
// be the next client in order. Loops until always_evt has won 20 times.
TEST_F(UnixSocketTest, AnAcceptEvtThatLosesAChoiceAcceptsNothing) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  const auto choice = rkt::choice_evt(
      rkt::wrap_evt(rkt::unix_socket_accept_evt(l), [](port_pair ports) {
        return maybe_ports(std::move(ports));
      }),
      rkt::always_evt(maybe_ports()));
  int next_client = 0;
  int next_accepted = 0;
  std::optional<side> client;
  auto connect_next = [&] {
    client.emplace(rkt::unix_socket_connect(p));
    client->out.write_byte(static_cast<uint8_t>(next_client++));
    client->out.flush();
  };
  connect_next();
  int losses = 0;
  int wins = 0;
  for (int i = 0; i < 5000 && losses < 20; ++i) {
    maybe_ports r = sync_within(choice);
    if (!r.has_value()) {
      ++losses;
      ASSERT_TRUE(ready_now(l)) << "the losing accept evt took the connection";
      continue;
    }
    ++wins;
    side server(std::move(*r));
    ASSERT_EQ(arrives(server.in, 1), std::string(1, static_cast<char>(next_accepted++)));
    server.close();
    client->close();
    connect_next();
  }
  EXPECT_EQ(losses, 20);
  // The connection pending after the last loss is accepted later.
  side server = accept_bounded(l);
  EXPECT_EQ(arrives(server.in, 1), std::string(1, static_cast<char>(next_accepted++)));
  EXPECT_EQ(next_accepted, next_client) << "every connection was accepted exactly once";
  EXPECT_FALSE(ready_now(l));
  server.close();
  client->close();
  rkt::unix_socket_close_listener(l);
  RecordProperty("accept_wins", wins);
}

// A parked sync on accept_evt or a semaphore: a connection and a post
// arrive together. Exactly one of them is consumed.
TEST_F(UnixSocketTest, AParkedAcceptEvtThatLosesToAnotherEventAcceptsNothing) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  for (int i = 0; i < 20; ++i) {
    rkt::semaphore sema;
    std::optional<maybe_ports> got;
    rkt::semaphore ready;
    rkt::thread t = spawn_parked(ready, [&] {
      got.emplace(sync_within(rkt::choice_evt(
          rkt::wrap_evt(rkt::unix_socket_accept_evt(l),
                        [](port_pair ports) { return maybe_ports(std::move(ports)); }),
          rkt::wrap_evt(sema, [] { return maybe_ports(); }))));
    });
    side client = connect_to(p);
    client.out.write_byte(static_cast<uint8_t>(i));
    client.out.flush();
    sema.post();
    await(t);
    ASSERT_TRUE(got.has_value());
    if (got->has_value()) {
      side server(std::move(**got));
      EXPECT_TRUE(sema.try_wait()) << "the accept won, so the post is still there";
      EXPECT_FALSE(ready_now(l));
      EXPECT_EQ(arrives(server.in, 1), std::string(1, static_cast<char>(i)));
      server.close();
    } else {
      EXPECT_FALSE(sema.try_wait());
      ASSERT_TRUE(ready_now(l)) << "the semaphore won, but the connection was taken";
      side server = accept_bounded(l);
      EXPECT_EQ(arrives(server.in, 1), std::string(1, static_cast<char>(i)));
      server.close();
    }
    client.close();
  }
  rkt::unix_socket_close_listener(l);
}

// The same with the listener event as the other choice: one readiness
// report makes both ready. Whichever wins, one connection is accepted once.
TEST_F(UnixSocketTest, AParkedAcceptEvtThatLosesToTheListenerEventAcceptsNothing) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  for (int i = 0; i < 20; ++i) {
    std::optional<maybe_ports> got;
    rkt::semaphore ready;
    rkt::thread t = spawn_parked(ready, [&] {
      got.emplace(sync_within(rkt::choice_evt(
          rkt::wrap_evt(rkt::unix_socket_accept_evt(l),
                        [](port_pair ports) { return maybe_ports(std::move(ports)); }),
          rkt::wrap_evt(l, [](const rkt::unix_socket_listener&) { return maybe_ports(); }))));
    });
    side client = connect_to(p);
    client.out.write_byte(static_cast<uint8_t>(i));
    client.out.flush();
    await(t);
    ASSERT_TRUE(got.has_value());
    std::optional<side> server;
    if (got->has_value()) {
      server.emplace(std::move(**got));
      EXPECT_FALSE(ready_now(l));
    } else {
      ASSERT_TRUE(ready_now(l)) << "the listener event won, but the connection was taken";
      server.emplace(accept_bounded(l));
      EXPECT_FALSE(ready_now(l));
    }
    EXPECT_EQ(arrives(server->in, 1), std::string(1, static_cast<char>(i)));
    server->close();
    client.close();
  }
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketTest, AcceptEvtPortsGoToTheCustodianCurrentWhenTheEvtWasMade) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  rkt::custodian c1 = rkt::make_custodian();
  rkt::custodian c2 = rkt::make_custodian();
  std::optional<rkt::evt<port_pair>> e;
  {
    rkt::custodian_scope in(c1);
    e.emplace(rkt::unix_socket_accept_evt(l));
  }
  const std::size_t before = c1.managed_list().size();
  side client = connect_to(p);
  std::optional<side> server;
  {
    rkt::custodian_scope in(c2);
    server.emplace(sync_within(*e));
  }
  EXPECT_GT(c1.managed_list().size(), before) << "the accepted ports are not in c1";
  EXPECT_THAT(c2.managed_list(), IsEmpty()) << "the accepted ports went to the syncing custodian";
  server->out.write_bytes("managed");
  server->out.flush();
  EXPECT_EQ(arrives(client.in, 7), "managed");

  c1.shutdown_all();
  EXPECT_TRUE(server->in.closed());
  EXPECT_TRUE(server->out.closed());
  EXPECT_TRUE(at_eof(client.in)) << "the peer sees the shutdown";
  EXPECT_FALSE(ready_now(l)) << "the listener (root's) is not c1's";
  EXPECT_FALSE(c2.is_shut_down());
  client.close();
  c2.shutdown_all();
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketTest, UnixSocketAcceptPortsGoToTheCurrentCustodian) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  rkt::custodian c = rkt::make_custodian();
  side client = connect_to(p);
  std::optional<side> server;
  {
    rkt::custodian_scope in(c);
    server.emplace(accept_bounded(l));
  }
  EXPECT_FALSE(c.managed_list().empty());
  c.shutdown_all();
  EXPECT_TRUE(server->in.closed());
  EXPECT_TRUE(server->out.closed());
  EXPECT_TRUE(at_eof(client.in));
  client.close();
  rkt::unix_socket_close_listener(l);
}

// --- Custodians -------------------------------------------------------------------

TEST_F(UnixSocketTest, ShutdownClosesTheListenerAndThePortsButLeavesTheSocketFile) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::custodian c = rkt::make_custodian();
  std::optional<rkt::unix_socket_listener> l;
  std::optional<side> client;
  std::optional<side> server;
  {
    rkt::custodian_scope in(c);
    l.emplace(rkt::unix_socket_listen(p));
    EXPECT_EQ(c.managed_list().size(), 1u) << "the listener is managed";
    client.emplace(rkt::unix_socket_connect(p));
    server.emplace(accept_bounded(*l));
  }
  EXPECT_GE(c.managed_list().size(), 3u);
  client->out.write_bytes("before");
  client->out.flush();
  EXPECT_EQ(arrives(server->in, 6), "before");

  c.shutdown_all();
  EXPECT_THAT(c.managed_list(), IsEmpty());
  EXPECT_TRUE(ready_now(*l)) << "a closed listener is ready";
  std::optional<std::string> e = raised_plain_fail([&] { accept_bounded(*l); });
  ASSERT_TRUE(e);
  EXPECT_EQ(*e, "unix_socket_accept: unix socket listener is closed");
  EXPECT_TRUE(client->in.closed() && client->out.closed());
  EXPECT_TRUE(server->in.closed() && server->out.closed());
  EXPECT_TRUE(is_socket_file(p)) << "shutdown deleted the socket file";
  auto refused = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_connect(p); });
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->error_number(), ECONNREFUSED);
  rkt::unix_socket_close_listener(*l);  // still a no-op
}

TEST_F(UnixSocketTest, ShutdownClosesConnectedPortsAndThePeerReadsEof) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  rkt::custodian c = rkt::make_custodian();
  std::optional<side> client;
  {
    rkt::custodian_scope in(c);
    client.emplace(rkt::unix_socket_connect(p));  // managed by c
  }
  EXPECT_FALSE(c.managed_list().empty());
  side server = accept_bounded(l);
  // A reader of the connected port, outside c, parked when c shuts down.
  std::string error;
  rkt::semaphore ready;
  rkt::thread reader = spawn_parked(ready, [&] {
    try {
      client->in.read_bytes(1);
      ADD_FAILURE() << "the reader returned";
    } catch (const rkt::exn_fail& e) {
      error = e.what();
    }
  });
  c.shutdown_all();
  await(reader);
  EXPECT_THAT(error, HasSubstr("input port is closed"));
  EXPECT_TRUE(client->out.closed());
  EXPECT_TRUE(at_eof(server.in));
  EXPECT_FALSE(ready_now(l)) << "the listener is not c's";
  server.close();
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketTest, ShutdownWakesAnAcceptParkedOnTheCustodiansListener) {
  temp_dir dir;
  rkt::custodian c = rkt::make_custodian();
  std::optional<rkt::unix_socket_listener> l;
  {
    rkt::custodian_scope in(c);
    l.emplace(rkt::unix_socket_listen(dir.file("s")));
  }
  std::string error;
  rkt::semaphore ready;
  rkt::thread acceptor = spawn_parked(ready, [&] {  // not managed by c
    error = raised_plain_fail([&] { rkt::unix_socket_accept(*l); }).value_or("");
  });
  std::optional<rkt::unix_socket_listener> woke;
  rkt::thread waiter = spawn_parked(ready, [&] { woke.emplace(sync_within(*l)); });
  c.shutdown_all();
  await(acceptor);
  await(waiter);
  EXPECT_EQ(error, "unix_socket_accept: unix socket listener is closed");
  ASSERT_TRUE(woke.has_value()) << "a thread parked on the listener event woke too";
  EXPECT_TRUE(*woke == *l);
  EXPECT_TRUE(is_socket_file(dir.file("s")));
}

TEST_F(UnixSocketTest, AShutDownCustodianRefusesListenConnectAndAccept) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  rkt::custodian c = rkt::make_custodian();
  c.shutdown_all();
  {
    rkt::custodian_scope in(c);
    auto el = raised<rkt::exn_fail_contract>([&] { rkt::unix_socket_listen(dir.file("t")); });
    ASSERT_TRUE(el);
    EXPECT_THAT(el->what(), StartsWith("unix_socket_listen: the custodian has been shut down"));
    auto ea = raised<rkt::exn_fail_contract>(
        [&] { rkt::unix_socket_listen(abstract(unique_abstract("shut"))); });
    ASSERT_TRUE(ea);
    EXPECT_THAT(ea->what(), StartsWith("unix_socket_listen: the custodian has been shut down"));
    auto ec = raised<rkt::exn_fail_contract>([&] { rkt::unix_socket_connect(p); });
    ASSERT_TRUE(ec);
    EXPECT_THAT(ec->what(), StartsWith("unix_socket_connect: the custodian has been shut down"));
  }
  EXPECT_FALSE(ready_now(l)) << "the refused connect reached the listener";

  // Accepting with a shut-down current custodian (Racket: "<who>: the
  // custodian has been shut down").
  side client = connect_to(p);
  auto eacc = raised<rkt::exn_fail_contract>([&] {
    on_green_thread([&] {
      rkt::custodian_scope in(c);
      return rkt::unix_socket_accept(l);
    });
  });
  ASSERT_TRUE(eacc);
  EXPECT_THAT(eacc->what(), StartsWith("unix_socket_accept: the custodian has been shut down"));
  std::optional<rkt::evt<port_pair>> e;
  {
    rkt::custodian_scope in(c);
    e.emplace(rkt::unix_socket_accept_evt(l));
  }
  side client2 = connect_to(p);
  auto eevt = raised<rkt::exn_fail_contract>([&] { sync_within(*e); });
  ASSERT_TRUE(eevt);
  EXPECT_THAT(eevt->what(),
              StartsWith("unix_socket_accept_evt: the custodian has been shut down"));
  client.close();
  client2.close();
  rkt::unix_socket_close_listener(l);
}

// Racket's accept poller looks at the custodian before accept(2): accepting
// under a shut-down custodian raises at once, whether a connection waits
// or not, and a waiting connection stays queued for the next accepter
// (it is never accepted and then closed).
TEST_F(UnixSocketTest, AcceptingUnderAShutDownCustodianLeavesTheConnectionForAnotherAccepter) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  rkt::custodian dead = rkt::make_custodian();
  dead.shutdown_all();
  auto accept_under_dead = [&] {
    return on_green_thread([&] {
      rkt::custodian_scope in(dead);
      return rkt::unix_socket_accept(l);
    });
  };
  auto idle = raised<rkt::exn_fail_contract>(accept_under_dead);
  ASSERT_TRUE(idle) << "with nothing waiting, the accept raises instead of parking";
  EXPECT_EQ(std::string(idle->what()),
            "unix_socket_accept: the custodian has been shut down\n  custodian: #<custodian>");

  side client = connect_to(p);
  ASSERT_TRUE(ready_now(l));
  auto blocking = raised<rkt::exn_fail_contract>(accept_under_dead);
  ASSERT_TRUE(blocking);
  EXPECT_EQ(std::string(blocking->what()),
            "unix_socket_accept: the custodian has been shut down\n  custodian: #<custodian>");
  std::optional<rkt::evt<port_pair>> e;
  {
    rkt::custodian_scope in(dead);
    e.emplace(rkt::unix_socket_accept_evt(l));
  }
  auto from_evt = raised<rkt::exn_fail_contract>([&] { sync_within(*e); });
  ASSERT_TRUE(from_evt);
  EXPECT_EQ(std::string(from_evt->what()),
            "unix_socket_accept_evt: the custodian has been shut down\n"
            "  custodian: #<custodian>");
  EXPECT_TRUE(ready_now(l)) << "the connection left the queue";

  side server = accept_bounded(l);  // under the live current custodian
  client.out.write_bytes("ping");
  client.out.flush();
  EXPECT_EQ(arrives(server.in, 4), "ping");
  server.out.write_bytes("pong");
  server.out.flush();
  EXPECT_EQ(arrives(client.in, 4), "pong");
  EXPECT_FALSE(ready_now(l));
  client.close();
  server.close();
  rkt::unix_socket_close_listener(l);
}

// --- Errors with errno --------------------------------------------------------------

TEST_F(UnixSocketTest, ConnectingToAMissingPathRaisesEnoentInRacketsShape) {
  temp_dir dir;
  const std::string p = dir.file("missing.sock");
  auto e = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_connect(p); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), ENOENT);
  EXPECT_EQ(std::string(e->what()),
            racket_message("unix_socket_connect: failed to connect socket", p, 2,
                           "No such file or directory"));
  const rkt::exn_fail& as_fail = *e;  // Racket raises exn:fail
  EXPECT_THAT(as_fail.what(), StartsWith("unix_socket_connect: "));
}

// Racket writes the path with ~e, as `write` does. Racket 8.7, run:
//   (unix-socket-connect "/tmp/nx_q\"b\\n\nend\t")   =>  path: "/tmp/nx_q\"b\\n\nend\t"
// i.e. the quote, the backslash and control characters are escaped.
TEST_F(UnixSocketTest, FilesystemPathsInMessagesAreWrittenAsRacketWritesStrings) {
  temp_dir dir;
  const std::string p = dir.file("q\"b\\n\nend\t");  // q"b\n<newline>end<tab>
  auto e = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_connect(p); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), ENOENT);
  const std::string written = "\"" + dir.path() + "/q\\\"b\\\\n\\nend\\t\"";
  EXPECT_EQ(std::string(e->what()),
            "unix_socket_connect: failed to connect socket\n  path: " + written +
                "\n  errno: 2\n  error: No such file or directory");
}

// Abstract names are byte strings: Racket 8.7 writes #"\0" + "123x" as
// #"\000123x" (a NUL before a digit takes three octal digits; "\01" would
// read back as byte 1) and a tab as \t.
TEST_F(UnixSocketTest, AbstractNamesInMessagesAreWrittenAsRacketWritesBytes) {
  const std::string rest = unique_abstract("w").substr(1);  // printable
  const std::string name = "\0"s + "123x" + rest + "\t";
  auto e = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_connect(abstract(name)); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), ECONNREFUSED);
  EXPECT_EQ(std::string(e->what()),
            "unix_socket_connect: failed to connect socket\n  path: #\"\\000123x" + rest +
                "\\t\"\n  errno: 111\n  error: Connection refused");
  // A NUL before a letter is \0, as Racket writes it.
  const std::string plain = unique_abstract("plain");
  auto e2 = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_connect(abstract(plain)); });
  ASSERT_TRUE(e2);
  EXPECT_THAT(e2->what(), HasSubstr("\n  path: #\"\\0" + plain.substr(1) + "\"\n"));
}

TEST_F(UnixSocketTest, ConnectingToASocketFileNobodyListensOnRaisesEconnrefused) {
  temp_dir dir;
  const std::string p = dir.file("stale.sock");
  rkt::unix_socket_close_listener(rkt::unix_socket_listen(p));
  ASSERT_TRUE(is_socket_file(p));
  auto e = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_connect(p); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), ECONNREFUSED);
  EXPECT_EQ(std::string(e->what()),
            racket_message("unix_socket_connect: failed to connect socket", p, 111,
                           "Connection refused"));
}

TEST_F(UnixSocketTest, ConnectingToARegularFileRaisesEconnrefused) {
  temp_dir dir;
  const std::string p = dir.file("regular");
  {
    std::ofstream f(p);
    f << "not a socket";
  }
  auto e = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_connect(p); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), ECONNREFUSED);
  EXPECT_EQ(std::string(e->what()),
            racket_message("unix_socket_connect: failed to connect socket", p, 111,
                           "Connection refused"));
}

TEST_F(UnixSocketTest, ConnectingToAnUnboundAbstractNameRaisesEconnrefused) {
  auto e = raised<rkt::exn_fail_network>(
      [&] { rkt::unix_socket_connect(abstract(unique_abstract("unbound"))); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), ECONNREFUSED);
  EXPECT_THAT(e->what(), StartsWith("unix_socket_connect: failed to connect socket\n  path: "));
  EXPECT_THAT(e->what(), HasSubstr("unbound"));
  EXPECT_THAT(e->what(), HasSubstr("\n  errno: 111\n  error: Connection refused"));
}

TEST_F(UnixSocketTest, ConnectingWithoutPermissionRaisesEacces) {
  if (geteuid() == 0) GTEST_SKIP() << "root bypasses permission checks";
  temp_dir dir;
  const std::string sub = dir.file("locked");
  ASSERT_EQ(mkdir(sub.c_str(), 0700), 0) << std::strerror(errno);
  const std::string p = sub + "/s";
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  ASSERT_EQ(chmod(sub.c_str(), 0), 0) << std::strerror(errno);
  auto e = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_connect(p); });
  EXPECT_EQ(chmod(sub.c_str(), 0700), 0) << std::strerror(errno);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), EACCES);
  EXPECT_EQ(std::string(e->what()),
            racket_message("unix_socket_connect: failed to connect socket", p, EACCES,
                           "Permission denied"));
  EXPECT_FALSE(ready_now(l));
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketTest, ListeningOnAPathInUseRaisesEaddrinuse) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  const std::string expected = racket_message("unix_socket_listen: failed to bind socket", p, 98,
                                               "Address already in use");
  auto live = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_listen(p); });
  ASSERT_TRUE(live);
  EXPECT_EQ(live->error_number(), EADDRINUSE);
  EXPECT_EQ(std::string(live->what()), expected);
  EXPECT_FALSE(ready_now(l)) << "the first listener is untouched";

  // A stale socket file after close: still in use (it must be deleted).
  rkt::unix_socket_close_listener(l);
  auto stale = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_listen(p); });
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->error_number(), EADDRINUSE);
  EXPECT_EQ(std::string(stale->what()), expected);
  std::filesystem::remove(p);
  rkt::unix_socket_close_listener(rkt::unix_socket_listen(p));

  // An abstract name in use.
  const std::string name = unique_abstract("inuse");
  rkt::unix_socket_listener la = rkt::unix_socket_listen(abstract(name));
  auto ab = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_listen(abstract(name)); });
  ASSERT_TRUE(ab);
  EXPECT_EQ(ab->error_number(), EADDRINUSE);
  EXPECT_THAT(ab->what(), StartsWith("unix_socket_listen: failed to bind socket\n  path: "));
  EXPECT_THAT(ab->what(), HasSubstr("\n  errno: 98\n  error: Address already in use"));
  rkt::unix_socket_close_listener(la);
}

TEST_F(UnixSocketTest, ListeningInAMissingDirectoryRaisesEnoent) {
  temp_dir dir;
  const std::string p = dir.file("no/such/dir.sock");
  auto e = raised<rkt::exn_fail_network>([&] { rkt::unix_socket_listen(p); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), ENOENT);
  EXPECT_EQ(std::string(e->what()), racket_message("unix_socket_listen: failed to bind socket", p,
                                                   2, "No such file or directory"));
}

TEST_F(UnixSocketTest, BacklogMustBeNonNegative) {
  temp_dir dir;
  auto e = raised<rkt::exn_fail_contract>([&] { rkt::unix_socket_listen(dir.file("s"), -1); });
  ASSERT_TRUE(e);
  // The first lines of Racket 8.7's (unix-socket-listen path -1).
  EXPECT_EQ(std::string(e->what()),
            "unix_socket_listen: contract violation\n  expected: natural?\n  given: -1");
  EXPECT_FALSE(std::filesystem::exists(dir.file("s")));
  rkt::unix_socket_listener l = rkt::unix_socket_listen(dir.file("zero"), 0);
  side client = connect_to(dir.file("zero"));
  side server = accept_bounded(l);
  client.close();
  EXPECT_TRUE(at_eof(server.in));
  server.close();
  rkt::unix_socket_close_listener(l);
}

// --- Descriptors ----------------------------------------------------------------

TEST_F(UnixSocketTest, ListenerConnectedAndAcceptedDescriptorsAreCloseOnExec) {
  temp_dir dir;
  const std::map<int, std::string> before = socket_fds();
  rkt::unix_socket_listener l = rkt::unix_socket_listen(dir.file("s"));
  side client = connect_to(dir.file("s"));
  side server = accept_bounded(l);
  const std::string name = unique_abstract("cloexec");
  rkt::unix_socket_listener la = rkt::unix_socket_listen(abstract(name));
  side aclient = connect_to(abstract(name));
  side aserver = accept_bounded(la);
  const std::map<int, std::string> after = socket_fds();
  int fresh = 0;
  for (const auto& [fd, target] : after) {
    const int flags = fcntl(fd, F_GETFD);
    ASSERT_NE(flags, -1) << "fd " << fd << ": " << std::strerror(errno);
    EXPECT_TRUE(flags & FD_CLOEXEC) << "socket fd " << fd << " (" << target
                                    << ") is not close-on-exec";
    auto it = before.find(fd);
    if (it == before.end() || it->second != target) ++fresh;
  }
  EXPECT_EQ(fresh, 6) << "two listeners, two connected and two accepted sockets";
  for (int fd : {rkt::fd_port_descriptor(client.in), rkt::fd_port_descriptor(server.out)}) {
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  }
  for (const side* s : {&client, &server, &aclient, &aserver}) s->close();
  rkt::unix_socket_close_listener(l);
  rkt::unix_socket_close_listener(la);
}

// Raises the soft descriptor limit to at least `n`; false if the hard limit
// forbids it.
bool ensure_fd_limit(rlim_t n) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return false;
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur >= n) return true;
  if (lim.rlim_cur == RLIM_INFINITY) return true;
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < n) return false;
  lim.rlim_cur = n;
  return setrlimit(RLIMIT_NOFILE, &lim) == 0;
}

TEST_F(UnixSocketTest, AThousandConcurrentConnectionsEachEchoedByItsOwnGreenThread) {
  constexpr int kClients = 1000;
  if (!ensure_fd_limit(2 * kClients + 512)) {
    GTEST_SKIP() << "RLIMIT_NOFILE cannot be raised to " << 2 * kClients + 512;
  }
  temp_dir dir;
  const std::string p = dir.file("echo");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p, 16);

  int echoing = 0;
  int peak_echoing = 0;
  int verified = 0;
  rkt::semaphore connected;
  rkt::semaphore go;
  std::vector<std::unique_ptr<scoped_thread>> echoers;
  std::vector<std::unique_ptr<scoped_thread>> clients;

  scoped_thread server([&] {
    for (int i = 0; i < kClients; ++i) {
      try {
        side conn(rkt::unix_socket_accept(l));
        echoers.push_back(std::make_unique<scoped_thread>([conn, &echoing, &peak_echoing] {
          ++echoing;
          peak_echoing = std::max(peak_echoing, echoing);
          try {
            char buf[4096];
            while (rkt::or_eof<std::size_t> n =
                       sync_within(rkt::read_bytes_avail_evt(buf, conn.in))) {
              conn.out.write_bytes(std::string_view(buf, *n));
              conn.out.flush();
            }
            conn.out.close();
          } catch (const std::exception& e) {
            ADD_FAILURE() << "echo: " << e.what();
          }
          conn.close();
          --echoing;
        }));
      } catch (const std::exception& e) {
        ADD_FAILURE() << "accept " << i << ": " << e.what();
        return;
      }
    }
  });

  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<scoped_thread>([&, i] {
      try {
        side conn(rkt::unix_socket_connect(p));
        connected.post();
        sync_within(go);
        const std::string msg =
            pattern(1 + static_cast<std::size_t>(i) * 7919 % 6000, static_cast<uint32_t>(i));
        conn.out.write_bytes(msg);
        conn.out.close();
        const std::string back = read_to_eof(conn.in);
        conn.in.close();
        if (back == msg) {
          ++verified;
        } else {
          ADD_FAILURE() << "client " << i << ": sent " << msg.size() << " bytes, got "
                        << back.size() << " back, or different ones";
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << "client " << i << ": " << e.what();
      }
    }));
  }

  for (int i = 0; i < kClients; ++i) sync_within(connected);
  server.join();
  ASSERT_EQ(echoers.size(), static_cast<std::size_t>(kClients));
  rkt::yield();
  // Every connection is open and served by a live thread at once.
  for (const auto& t : echoers) EXPECT_TRUE(t->running());
  EXPECT_GE(socket_fds().size(), static_cast<std::size_t>(2 * kClients + 1));
  for (int i = 0; i < kClients; ++i) go.post();
  for (const auto& t : clients) t->join();
  for (const auto& t : echoers) t->join();
  EXPECT_EQ(verified, kClients);
  EXPECT_EQ(peak_echoing, kClients) << "the echo threads did not all run at once";
  EXPECT_EQ(echoing, 0);
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketTest, AClientOnAnotherOsThreadTalksToTheMainThreadsListener) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  constexpr int kLines = 100;
  std::jthread os = start_os_thread([p] {
    side conn(rkt::unix_socket_connect(p));
    for (int i = 0; i < kLines; ++i) {
      conn.out.write_bytes("ping " + std::to_string(i) + "\n");
      conn.out.flush();
      EXPECT_EQ(sync_within(rkt::read_line_evt(conn.in)), "pong " + std::to_string(i));
    }
    conn.out.close();
    EXPECT_EQ(read_to_eof(conn.in), "bye");
    conn.in.close();
  });
  side server(sync_within(rkt::unix_socket_accept_evt(l)));
  for (int i = 0; i < kLines; ++i) {
    EXPECT_EQ(sync_within(rkt::read_line_evt(server.in)), "ping " + std::to_string(i));
    server.out.write_bytes("pong " + std::to_string(i) + "\n");
    server.out.flush();
  }
  EXPECT_TRUE(at_eof(server.in)) << "the client's half-close";
  server.out.write_bytes("bye");
  server.out.close();
  os.join();
  server.in.close();
  rkt::unix_socket_close_listener(l);
}

// A listener made on the main thread, accepted from another OS thread
// while the main thread waits (bounded) for it.
TEST_F(UnixSocketTest, AnotherOsThreadAcceptsOnTheMainThreadsListener) {
  temp_dir dir;
  const std::string p = dir.file("s");
  rkt::unix_socket_listener l = rkt::unix_socket_listen(p);
  rkt::semaphore accepted;
  rkt::semaphore done;
  std::jthread os = start_os_thread([l, accepted, done] {
    {
      side conn(sync_within(rkt::unix_socket_accept_evt(l)));
      accepted.post();
      EXPECT_EQ(sync_within(rkt::read_line_evt(conn.in)), "to the other thread"s);
      conn.out.write_bytes("from the other thread");
      conn.out.close();
      EXPECT_TRUE(at_eof(conn.in));
      conn.in.close();
    }
    {
      side conn(rkt::unix_socket_accept(l));
      EXPECT_EQ(read_to_eof(conn.in), "second");
      conn.close();
    }
    done.post();
  });
  side client = connect_to(p);
  sync_within(accepted);
  client.out.write_bytes("to the other thread\n");
  client.out.flush();
  EXPECT_EQ(arrives(client.in, 21), "from the other thread");
  EXPECT_TRUE(at_eof(client.in));
  client.close();
  side client2 = connect_to(p);
  client2.out.write_bytes("second");
  client2.close();
  sync_within(done);
  os.join();
  rkt::unix_socket_close_listener(l);
}

TEST_F(UnixSocketTest, RepeatedCyclesLeakNoDescriptorAndLeaveNoCustodianBehind) {
  temp_dir dir;
  const std::string p = dir.file("cycle");
  rkt::test::fd_leak_check fds;
  for (int i = 0; i < 300; ++i) {
    rkt::custodian c = rkt::make_custodian();
    std::optional<rkt::unix_socket_listener> l;
    std::optional<side> client;
    std::optional<side> server;
    {
      rkt::custodian_scope in(c);
      if (i % 2 == 0) {
        l.emplace(rkt::unix_socket_listen(p));
        client.emplace(rkt::unix_socket_connect(p));
        server.emplace(accept_bounded(*l));
        client->out.write_byte(static_cast<uint8_t>(i));
        client->out.flush();
        ASSERT_EQ(arrives(server->in, 1), std::string(1, static_cast<char>(i))) << i;
        if (i % 4 == 0) {  // else the shutdown closes them
          client->close();
          server->close();
          rkt::unix_socket_close_listener(*l);
        }
      } else {
        rkt::unix_socket_listen(abstract(unique_abstract("c")));  // dropped at once
      }
    }
    c.shutdown_all();
    if (client) {
      ASSERT_TRUE(client->in.closed() && client->out.closed()) << i;
      ASSERT_TRUE(server->in.closed() && server->out.closed()) << i;
      ASSERT_TRUE(ready_now(*l)) << i;
    }
    std::filesystem::remove(p);
  }
  rkt::yield();
  EXPECT_THAT(fds.leaked(), IsEmpty()) << fds.describe(fds.leaked());
  EXPECT_TRUE(rkt::custodian::root().children().empty());
  EXPECT_EQ(dir.entries(), 0u);
}

// --- A listener whose OS thread has exited ----------------------------------

// That thread's station is gone with its reactor, but this thread has a
// station of its own (docs/MULTICORE.md): a connection already queued is
// accepted, an accept with nothing queued waits (it used to raise
// exn_fail_contract), and a connection made later is accepted here; close
// still closes the descriptor (ASan checks that nothing touches the exited
// thread's scheduler).
TEST_F(UnixSocketTest, AListenerWhoseOsThreadExitedKeepsAcceptingOnThisThread) {
  temp_dir dir;
  const std::string path = dir.file("s");
  std::optional<rkt::unix_socket_listener> l;
  std::jthread maker = start_os_thread([&] { l = rkt::unix_socket_listen(path); });
  maker.join();
  port_pair client = rkt::unix_socket_connect(path);
  EXPECT_TRUE(ready_now(*l));
  port_pair server = rkt::unix_socket_accept(*l);
  client.second.write_bytes("hi\n");
  client.second.flush();
  EXPECT_EQ(server.first.read_line(), "hi");
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), rkt::unix_socket_accept_evt(*l)).has_value());
  rkt::semaphore accepted;
  std::optional<port_pair> later;
  rkt::thread waiter([&] {
    later = rkt::unix_socket_accept(*l);
    accepted.post();
  });
  rkt::yield();  // the accept parks first
  port_pair client2 = rkt::unix_socket_connect(path);
  sync_within(accepted);
  await(waiter);
  ASSERT_TRUE(later.has_value());
  EXPECT_TRUE(rkt::fd_port_on_this_os_thread(later->first));
  rkt::unix_socket_close_listener(*l);
  for (auto* p : {&client, &server, &client2, &*later}) {
    p->first.close();
    p->second.close();
  }
}

}  // namespace
