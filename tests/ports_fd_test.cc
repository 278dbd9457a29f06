// Tests of fd ports (ports/fd_port.h) over AF_UNIX socketpairs, OS pipes and
// files: reads, peeks, lines and writes in both directions; the output
// buffer modes as the peer sees them; half-close and the descriptor closing
// only with both ports; the non-blocking polls (read_bytes_avail_star,
// write_bytes_avail_star) seeing what the kernel holds; an 8 MiB write
// against a slow reader; EPIPE without SIGPIPE; closing a port under a
// parked reader; the port events; open_input_file / open_output_file with
// every exists_mode; custodian shutdown (also from another OS thread, and of
// a port with unflushed data to a peer that never reads); read events of a
// port closed under a parked sync, which keep waiting (Racket);
// file_stream_port_p and file_stream_buffer_mode; a killed thread whose
// guard closes a port to a peer that never reads; and thousands of
// make/close cycles that must not leak a descriptor.
//
// No test sleeps to wait for another thread: waits are sync_within / await.
// The few bounded sync_timeouts on an event that must NOT fire (a reader
// that must still be waiting) only weaken a check when the machine is slow.
#include "ports/fd_port.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "evt/alarm.h"
#include "evt/exn.h"
#include "evt/channel.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ports/bytes_port.h"
#include "ports/pipe.h"
#include "ports/port.h"
#include "tests/testing/fd_leak_check.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/sync_within.h"

namespace {

using namespace std::string_literals;

using ::rkt::test::arrives;
using ::rkt::test::await;
using ::rkt::test::expect_nothing_arrives;
using ::rkt::test::fd_open;
using ::rkt::test::fnv1a;
using ::rkt::test::pattern;
using ::rkt::test::raised;
using ::rkt::test::scoped_thread;
using ::rkt::test::spawn_parked;
using ::rkt::test::start_os_thread;
using ::rkt::test::sync_within;
using ::rkt::test::temp_dir;
using ::rkt::test::unwind_counter;
using ::rkt::test::write_to_slow_reader;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// One end of a connection: the two ports of one descriptor.
using side = ::rkt::test::conn;

std::array<int, 2> raw_socketpair() {
  int s[2] = {-1, -1};
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0) << std::strerror(errno);
  return {s[0], s[1]};
}

std::array<int, 2> raw_pipe() {
  int p[2] = {-1, -1};
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0) << std::strerror(errno);
  return {p[0], p[1]};
}

side make_side(int fd) {
  auto ports = rkt::make_fd_ports(fd, "socketpair");
  return side{ports.first, ports.second};
}

// Both ends of a fresh socketpair, as ports.
std::pair<side, side> connected() {
  std::array<int, 2> s = raw_socketpair();
  return {make_side(s[0]), make_side(s[1])};
}

// Lets this OS thread's scheduler run (a close handed to it from another OS
// thread completes there), then reports whether `fd` got closed; gives up
// after a bound only a bug reaches.
bool fd_closed_soon(int fd) {
  rkt::yield();
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (fd_open(fd) && absl::Now() < deadline) {
    rkt::sync_timeout(absl::Milliseconds(2), rkt::never_evt());
  }
  return !fd_open(fd);
}

bool sigpipe_pending() {
  sigset_t set;
  sigemptyset(&set);
  EXPECT_EQ(sigpending(&set), 0);
  return sigismember(&set, SIGPIPE) == 1;
}

// How long a check waits for bytes that must not come (see
// expect_nothing_arrives).
constexpr absl::Duration kQuiet = absl::Milliseconds(20);

// Writes through `out` without blocking until the socket takes no more;
// returns how many bytes went. `out` must have nothing buffered.
std::size_t fill_socket(const rkt::output_port& out) {
  const std::string chunk(65536, 'f');
  std::size_t total = 0;
  for (;;) {
    std::optional<std::size_t> n = out.write_bytes_avail_star(chunk);
    if (!n.has_value()) {
      ADD_FAILURE() << "write_bytes_avail_star could not flush an empty buffer";
      return total;
    }
    if (*n == 0) return total;
    total += *n;
  }
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  ASSERT_TRUE(f.good()) << path;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.is_open()) << path;
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

ino_t inode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st.st_ino;
}

// The fixture lets the scheduler run once before the descriptor check, in
// case a close was handed to it.
class FdPortTest : public rkt::test::clean_test {
 protected:
  void TearDown() override {
    rkt::yield();
    clean_test::TearDown();
  }
};

// --- Basics -----------------------------------------------------------------

TEST_F(FdPortTest, ReadsPeeksAndLinesAcrossASocketpairInBothDirections) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  EXPECT_EQ(a.in.name(), "socketpair");
  EXPECT_EQ(a.out.name(), "socketpair");
  EXPECT_FALSE(b.in.byte_ready());

  EXPECT_EQ(a.out.write_bytes("hello\nworld!"), 12u);
  a.out.flush();
  EXPECT_EQ(b.in.read_line(), "hello"s);
  EXPECT_TRUE(b.in.byte_ready());
  EXPECT_EQ(b.in.peek_byte(), uint8_t{'w'});
  EXPECT_EQ(b.in.peek_byte(2), uint8_t{'r'});
  EXPECT_EQ(b.in.peek_bytes(3), "wor"s);
  EXPECT_EQ(b.in.peek_bytes(2, 3), "ld"s);
  EXPECT_EQ(b.in.read_byte(), uint8_t{'w'});
  char buf[16];
  EXPECT_EQ(b.in.read_bytes_into(std::span<char>(buf, 2)), 2u);
  EXPECT_EQ(std::string(buf, 2), "or");
  EXPECT_EQ(b.in.read_bytes(3), "ld!"s);
  EXPECT_EQ(b.in.read_bytes_avail_star(buf), 0u) << "nothing is left";

  // The other way.
  b.out.write_byte('x');
  b.out.write_bytes("yz");
  b.out.flush();
  EXPECT_EQ(a.in.peek_bytes_avail(buf), 3u);
  EXPECT_EQ(std::string(buf, 3), "xyz");
  EXPECT_EQ(a.in.read_bytes_avail(buf), 3u);
  EXPECT_EQ(std::string(buf, 3), "xyz");
  EXPECT_EQ(a.in.read_bytes_avail(std::span<char>()), 0u);
  EXPECT_EQ(a.in.read_bytes(0), ""s);

  // CRLF lines, written unbuffered by write_bytes_avail.
  b.out.write_bytes("one\r\ntwo");
  EXPECT_EQ(b.out.write_bytes_avail("\r\n"), 2u) << "flushes, then writes what fits";
  EXPECT_EQ(a.in.read_line(rkt::line_mode::return_linefeed), "one"s);
  EXPECT_EQ(a.in.read_line(rkt::line_mode::any), "two"s);
}

TEST_F(FdPortTest, ClosingTheWriterGivesEofAfterTheBytes) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  a.out.write_bytes("abc");
  a.out.close();
  EXPECT_EQ(b.in.read_bytes(10), "abc"s) << "fewer bytes only because EOF came";
  EXPECT_EQ(b.in.read_bytes(10), rkt::eof);
  EXPECT_EQ(b.in.read_byte(), rkt::eof);
  EXPECT_EQ(b.in.read_line(), rkt::eof);
  char buf[4];
  EXPECT_EQ(b.in.read_bytes_avail(buf), rkt::eof);
  EXPECT_EQ(b.in.read_bytes_avail_star(buf), rkt::eof);
  EXPECT_TRUE(b.in.byte_ready()) << "EOF is ready";
}

TEST_F(FdPortTest, OsPipePortsCarryBytesAndEof) {
  std::array<int, 2> fds = raw_pipe();
  rkt::input_port in = rkt::make_fd_input_port(fds[0], "os-pipe");
  rkt::output_port out = rkt::make_fd_output_port(fds[1], "os-pipe");
  EXPECT_EQ(in.name(), "os-pipe");
  EXPECT_EQ(out.get_buffer_mode(), rkt::buffer_mode::block);
  out.write_bytes("line one\nline two\n");
  char buf[8];
  EXPECT_EQ(in.read_bytes_avail_star(buf), 0u) << "still in the output buffer";
  out.flush();
  EXPECT_EQ(in.read_line(), "line one"s);
  out.write_bytes("tail");
  out.close();
  EXPECT_EQ(in.read_line(), "line two"s);
  EXPECT_EQ(in.read_line(), "tail"s);
  EXPECT_EQ(in.read_line(), rkt::eof);
  in.close();
  EXPECT_TRUE(in.closed());
  EXPECT_TRUE(out.closed());
}

TEST_F(FdPortTest, OperationsOnClosedPortsRaiseNamingThePortKind) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  a.in.close();
  a.in.close();  // idempotent
  a.out.close();
  auto r = raised<rkt::exn_fail>([&] { a.in.read_byte(); });
  ASSERT_TRUE(r);
  EXPECT_THAT(r->what(), HasSubstr("input port is closed"));
  auto w = raised<rkt::exn_fail>([&] { a.out.write_bytes("x"); });
  ASSERT_TRUE(w);
  EXPECT_THAT(w->what(), HasSubstr("output port is closed"));
}

// --- Buffer modes -------------------------------------------------------------

TEST_F(FdPortTest, BlockModeHoldsSmallWritesUntilFlush) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  EXPECT_EQ(a.out.get_buffer_mode(), rkt::buffer_mode::block);
  a.out.write_bytes("abc\n");
  a.out.write_byte('d');
  char buf[8];
  EXPECT_EQ(b.in.read_bytes_avail_star(buf), 0u) << "block mode sent bytes before a flush";
  expect_nothing_arrives(b.in, kQuiet);
  a.out.flush();
  EXPECT_EQ(arrives(b.in, 5), "abc\nd");
}

TEST_F(FdPortTest, BlockModeSendsOnceTheBufferIsFull) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  const std::string data = pattern(3 * 4096 + 100);
  a.out.write_bytes(data);
  // A 4096-byte buffer holds at most that much of it.
  const std::size_t sent = data.size() - 4096;
  EXPECT_TRUE(arrives(b.in, sent) == data.substr(0, sent));
  a.out.flush();
  EXPECT_TRUE(arrives(b.in, 4096) == data.substr(sent));
}

TEST_F(FdPortTest, LineModeFlushesAtNewline) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  a.out.set_buffer_mode(rkt::buffer_mode::line);
  EXPECT_EQ(a.out.get_buffer_mode(), rkt::buffer_mode::line);
  a.out.write_bytes("ab");
  expect_nothing_arrives(b.in, kQuiet);
  a.out.write_bytes("c\nd");
  EXPECT_EQ(arrives(b.in, 4), "abc\n");
  a.out.flush();
  EXPECT_EQ(arrives(b.in, 1), "d");
  a.out.write_byte('e');
  expect_nothing_arrives(b.in, kQuiet);
  a.out.write_byte('\n');
  EXPECT_EQ(arrives(b.in, 2), "e\n");
}

TEST_F(FdPortTest, NoneModeWritesThroughAtOnce) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  a.out.write_bytes("held");
  a.out.set_buffer_mode(rkt::buffer_mode::none);
  EXPECT_EQ(a.out.get_buffer_mode(), rkt::buffer_mode::none);
  a.out.flush();
  EXPECT_EQ(arrives(b.in, 4), "held");
  a.out.write_bytes("x");
  EXPECT_EQ(arrives(b.in, 1), "x");
  a.out.write_byte('y');
  EXPECT_EQ(arrives(b.in, 1), "y");
}

// read_bytes_avail_star is a poll of the descriptor: bytes already in the
// socket are available, whether or not the reactor has reported them yet.
TEST_F(FdPortTest, ReadBytesAvailStarSeesBytesAlreadyInTheSocket) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  a.out.set_buffer_mode(rkt::buffer_mode::none);
  char buf[16];
  EXPECT_EQ(b.in.read_bytes_avail_star(buf), 0u);
  EXPECT_FALSE(b.in.byte_ready());
  a.out.write_bytes("x");  // in b's receive queue when write_bytes returns
  EXPECT_TRUE(b.in.byte_ready());
  EXPECT_EQ(b.in.read_bytes_avail_star(buf), 1u);
  a.out.write_bytes("yz");
  EXPECT_TRUE(rkt::sync_timeout(absl::ZeroDuration(), b.in).has_value());
  EXPECT_EQ(b.in.read_bytes_avail_star(buf), 2u);
  EXPECT_EQ(arrives(b.in, 0), "");
}

// Likewise write_bytes_avail_star: room the peer made is room now.
TEST_F(FdPortTest, WriteBytesAvailStarSeesRoomThePeerMade) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  const std::size_t total = fill_socket(a.out);
  ASSERT_GT(total, 0u);
  rkt::or_eof<std::string> drained = b.in.read_bytes(total);
  ASSERT_TRUE(drained.has_value());
  ASSERT_EQ(drained->size(), total);
  EXPECT_EQ(a.out.write_bytes_avail_star("z"), std::optional<std::size_t>(1));
  EXPECT_TRUE(rkt::sync_timeout(absl::ZeroDuration(), a.out).has_value());
}

TEST_F(FdPortTest, InputPortsAcceptNoneAndBlockButNotLine) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  EXPECT_EQ(a.in.get_buffer_mode(), rkt::buffer_mode::block);
  a.in.set_buffer_mode(rkt::buffer_mode::none);
  EXPECT_EQ(a.in.get_buffer_mode(), rkt::buffer_mode::none);
  a.in.set_buffer_mode(rkt::buffer_mode::block);
  EXPECT_EQ(a.in.get_buffer_mode(), rkt::buffer_mode::block);
  EXPECT_TRUE(raised<rkt::exn_fail_contract>(
      [&] { a.in.set_buffer_mode(rkt::buffer_mode::line); }));
  EXPECT_EQ(a.in.get_buffer_mode(), rkt::buffer_mode::block);
  // Still works.
  b.out.write_bytes("ok");
  b.out.flush();
  EXPECT_EQ(a.in.read_bytes(2), "ok"s);
}

// --- Half-close and the descriptor's lifetime ----------------------------------

TEST_F(FdPortTest, ClosingOurOutputGivesThePeerEofWhileThePeerCanStillWrite) {
  std::array<int, 2> s = raw_socketpair();
  side a = make_side(s[0]);
  side b = make_side(s[1]);
  a.out.write_bytes("bye");
  a.out.close();
  EXPECT_TRUE(a.out.closed());
  EXPECT_FALSE(a.in.closed());
  EXPECT_TRUE(fd_open(s[0])) << "the input port still uses the descriptor";
  EXPECT_EQ(b.in.read_bytes(3), "bye"s);
  EXPECT_EQ(b.in.read_byte(), rkt::eof);
  b.out.write_bytes("still here");
  b.out.flush();
  EXPECT_EQ(a.in.read_bytes(10), "still here"s);
  b.out.close();
  EXPECT_EQ(a.in.read_byte(), rkt::eof);
}

TEST_F(FdPortTest, ClosingOurInputLeavesOurOutputWorking) {
  std::array<int, 2> s = raw_socketpair();
  side a = make_side(s[0]);
  side b = make_side(s[1]);
  a.in.close();
  EXPECT_TRUE(a.in.closed());
  EXPECT_FALSE(a.out.closed());
  EXPECT_TRUE(fd_open(s[0]));
  a.out.write_bytes("out");
  a.out.flush();
  EXPECT_EQ(b.in.read_bytes(3), "out"s);
  a.out.close();
  EXPECT_EQ(b.in.read_byte(), rkt::eof);
}

TEST_F(FdPortTest, TheDescriptorClosesOnlyWhenBothPortsAreClosed) {
  std::array<int, 2> s = raw_socketpair();
  side a = make_side(s[0]);
  side b = make_side(s[1]);
  a.in.close();
  rkt::yield();
  EXPECT_TRUE(fd_open(s[0]));
  a.out.close();
  EXPECT_TRUE(fd_closed_soon(s[0])) << "both ports are closed";
  // The other order.
  b.out.close();
  rkt::yield();
  EXPECT_TRUE(fd_open(s[1]));
  b.in.close();
  EXPECT_TRUE(fd_closed_soon(s[1]));
}

TEST_F(FdPortTest, SingleDirectionPortsCloseTheirDescriptor) {
  std::array<int, 2> fds = raw_pipe();
  rkt::input_port in = rkt::make_fd_input_port(fds[0], "r");
  rkt::output_port out = rkt::make_fd_output_port(fds[1], "w");
  out.close();
  EXPECT_TRUE(fd_closed_soon(fds[1]));
  EXPECT_TRUE(fd_open(fds[0]));
  EXPECT_EQ(in.read_byte(), rkt::eof);
  in.close();
  EXPECT_TRUE(fd_closed_soon(fds[0]));
}

TEST_F(FdPortTest, DroppingTheHandlesClosesTheDescriptorAfterOneFlush) {
  std::array<int, 2> s = raw_socketpair();
  side b = make_side(s[1]);
  {
    side a = make_side(s[0]);
    a.out.write_bytes("unflushed");
  }
  EXPECT_TRUE(fd_closed_soon(s[0]));
  EXPECT_EQ(b.in.read_bytes(9), "unflushed"s) << "a dropped fd port tries one flush";
  EXPECT_EQ(b.in.read_byte(), rkt::eof);
}

TEST_F(FdPortTest, DroppingOnlyTheOutputPortShutsWritingDown) {
  std::array<int, 2> s = raw_socketpair();
  side b = make_side(s[1]);
  auto ports = rkt::make_fd_ports(s[0], "socketpair");
  std::optional<rkt::input_port> in(std::move(ports.first));
  {
    rkt::output_port out = std::move(ports.second);
    out.write_bytes("last");
  }
  EXPECT_EQ(b.in.read_bytes(4), "last"s);
  EXPECT_EQ(b.in.read_byte(), rkt::eof);
  EXPECT_TRUE(fd_open(s[0])) << "the input port still holds the descriptor";
  b.out.write_bytes("back");
  b.out.flush();
  EXPECT_EQ(in->read_bytes(4), "back"s);
  in.reset();
  EXPECT_TRUE(fd_closed_soon(s[0]));
}

// --- Large writes -------------------------------------------------------------

TEST_F(FdPortTest, AnEightMebibyteWriteCompletesWhileAReaderDrainsSlowly) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  const std::string data = pattern(8u << 20);
  const rkt::test::slow_transfer t = write_to_slow_reader(a.out, b.in, data);
  EXPECT_EQ(t.written, data.size());
  EXPECT_GE(t.reads, data.size() / rkt::test::kSlowReadSize);
  ASSERT_EQ(t.got.size(), data.size());
  EXPECT_EQ(fnv1a(t.got), fnv1a(data));
  EXPECT_TRUE(t.got == data) << "the bytes arrived out of order";
}

// --- EPIPE without SIGPIPE ----------------------------------------------------

TEST_F(FdPortTest, WritingToASocketWhosePeerIsGoneRaisesEpipeNotSigpipe) {
  {
    std::array<int, 2> s = raw_socketpair();
    side a = make_side(s[0]);
    a.out.set_buffer_mode(rkt::buffer_mode::none);
    ASSERT_EQ(::close(s[1]), 0);
    auto w = raised<rkt::exn_fail_network>([&] { a.out.write_bytes("y"); });
    ASSERT_TRUE(w);
    EXPECT_EQ(w->error_number(), EPIPE);
    EXPECT_THAT(w->what(), HasSubstr("writ"));
  }
  {
    std::array<int, 2> s = raw_socketpair();
    side a = make_side(s[0]);
    ASSERT_EQ(::close(s[1]), 0);
    a.out.write_bytes("x");  // buffered
    auto f = raised<rkt::exn_fail_network>([&] { a.out.flush(); });
    ASSERT_TRUE(f);
    EXPECT_EQ(f->error_number(), EPIPE);
    EXPECT_THAT(f->what(), AnyOf(HasSubstr("flush"), HasSubstr("writ")));
    // Whatever the failed flush left in the buffer may fail again here.
    try {
      a.out.close();
    } catch (const rkt::exn_fail_network& e) {
      EXPECT_EQ(e.error_number(), EPIPE);
    }
    EXPECT_TRUE(a.out.closed());
  }
  EXPECT_FALSE(sigpipe_pending());
}

TEST_F(FdPortTest, CloseRaisesTheFlushErrorButClosesAnyway) {
  std::array<int, 2> s = raw_socketpair();
  side a = make_side(s[0]);
  ASSERT_EQ(::close(s[1]), 0);
  a.out.write_bytes("pending");
  auto c = raised<rkt::exn_fail_network>([&] { a.out.close(); });
  ASSERT_TRUE(c);
  EXPECT_EQ(c->error_number(), EPIPE);
  EXPECT_TRUE(a.out.closed());
  a.out.close();  // idempotent, nothing left to flush
  a.in.close();
  EXPECT_TRUE(fd_closed_soon(s[0]));
  EXPECT_FALSE(sigpipe_pending());
}

TEST_F(FdPortTest, WritingToAnOsPipeWithoutReaderRaisesFilesystemEpipe) {
  std::array<int, 2> fds = raw_pipe();
  rkt::output_port out = rkt::make_fd_output_port(fds[1], "os-pipe");
  ASSERT_EQ(::close(fds[0]), 0);
  out.set_buffer_mode(rkt::buffer_mode::none);
  auto w = raised<rkt::exn_fail_filesystem>([&] { out.write_bytes("data"); });
  ASSERT_TRUE(w);
  EXPECT_EQ(w->error_number(), EPIPE);
  EXPECT_THAT(w->what(), HasSubstr("writ"));

  out.set_buffer_mode(rkt::buffer_mode::block);
  out.write_bytes("more");
  auto f = raised<rkt::exn_fail_filesystem>([&] { out.flush(); });
  ASSERT_TRUE(f);
  EXPECT_EQ(f->error_number(), EPIPE);
  EXPECT_THAT(f->what(), AnyOf(HasSubstr("flush"), HasSubstr("writ")));
  try {
    out.close();
  } catch (const rkt::exn_fail_filesystem& e) {
    EXPECT_EQ(e.error_number(), EPIPE);
  }
  EXPECT_TRUE(out.closed());
  EXPECT_FALSE(sigpipe_pending());
}

// --- Closing under a parked reader ----------------------------------------------

TEST_F(FdPortTest, ClosingAnInputPortWakesAThreadParkedReadingIt) {
  struct op {
    const char* name;
    std::function<void(const rkt::input_port&)> read;
  };
  const std::vector<op> ops = {
      {"read_bytes", [](const rkt::input_port& in) { in.read_bytes(10); }},
      {"read_byte", [](const rkt::input_port& in) { in.read_byte(); }},
      {"read_line", [](const rkt::input_port& in) { in.read_line(); }},
      {"peek_bytes", [](const rkt::input_port& in) { in.peek_bytes(4); }},
      {"read_bytes_avail",
       [](const rkt::input_port& in) {
         char buf[8];
         in.read_bytes_avail(buf);
       }},
  };
  for (const op& o : ops) {
    SCOPED_TRACE(o.name);
    std::pair<side, side> p = connected();
    const side& a = p.first;
    std::string error;
    bool returned = false;
    rkt::semaphore ready;
    rkt::thread t = spawn_parked(ready, [&] {
      try {
        o.read(a.in);
        returned = true;
      } catch (const rkt::exn_fail& e) {
        error = e.what();
      }
    });
    EXPECT_TRUE(t.running());
    a.in.close();
    await(t);
    EXPECT_FALSE(returned);
    EXPECT_THAT(error, HasSubstr("input port is closed"));
  }
}

// Racket: a port event on a closed port is never ready, so a sync parked on
// a read event of a port that gets closed keeps waiting for its other
// events (here a semaphore posted after the close), on a socket and on an
// OS pipe.
TEST_F(FdPortTest, ASyncParkedOnAReadEventKeepsWaitingWhenThePortIsClosed) {
  struct op {
    const char* name;
    std::function<rkt::evt<std::string>(const rkt::input_port&)> make;
  };
  auto as_read = [](auto e) {
    return rkt::wrap_evt(std::move(e), [](auto&&...) { return std::string("read"); });
  };
  const std::vector<op> ops = {
      {"read_line_evt", [&](const rkt::input_port& in) { return as_read(rkt::read_line_evt(in)); }},
      {"read_bytes_evt",
       [&](const rkt::input_port& in) { return as_read(rkt::read_bytes_evt(10, in)); }},
      {"peek_bytes_evt",
       [&](const rkt::input_port& in) { return as_read(rkt::peek_bytes_evt(2, 1, in)); }},
      {"eof_evt", [&](const rkt::input_port& in) { return as_read(rkt::eof_evt(in)); }},
  };
  for (const op& o : ops) {
    for (bool pipe : {false, true}) {
      SCOPED_TRACE(std::string(o.name) + (pipe ? " on an OS pipe" : " on a socket"));
      std::optional<rkt::input_port> in;
      std::optional<rkt::output_port> out;
      if (pipe) {
        std::array<int, 2> fds = raw_pipe();
        in.emplace(rkt::make_fd_input_port(fds[0], "os-pipe"));
        out.emplace(rkt::make_fd_output_port(fds[1], "os-pipe"));
      } else {
        std::array<int, 2> s = raw_socketpair();
        in.emplace(rkt::make_fd_ports(s[0], "socketpair").first);
        out.emplace(rkt::make_fd_ports(s[1], "socketpair").second);
      }
      out->write_bytes("x");  // a line, or 10 bytes, or EOF never comes
      out->flush();
      rkt::semaphore other;
      std::string got;
      rkt::semaphore ready;
      rkt::thread t = spawn_parked(ready, [&] {
        got = rkt::sync(o.make(*in), rkt::wrap_evt(other, [] { return std::string("other"); }));
      });
      in->close();
      rkt::yield();
      EXPECT_TRUE(t.running()) << "the sync returned when the port closed";
      other.post();
      await(t);
      EXPECT_EQ(got, "other");
      // The blocking read still raises.
      auto e = raised<rkt::exn_fail>([&] { in->read_line(); });
      ASSERT_TRUE(e);
      EXPECT_THAT(e->what(), StartsWith("read-line: input port is closed"));
      out->close();
    }
  }
}

// A choice of a closed fd port's read event and an alarm returns the alarm.
TEST_F(FdPortTest, AChoiceOfAClosedPortsEventAndAnAlarmReturnsTheAlarm) {
  std::pair<side, side> p = connected();
  p.first.in.close();
  const std::optional<std::string> r = rkt::sync_timeout(
      rkt::test::kHangBound,
      rkt::wrap_evt(rkt::read_line_evt(p.first.in), [](auto&&) { return std::string("read"); }),
      rkt::wrap_evt(rkt::alarm_evt(absl::Now() + absl::Milliseconds(5)),
                    [] { return std::string("alarm"); }));
  EXPECT_EQ(r, "alarm");
}

TEST_F(FdPortTest, ClosingAnInputPortWakesAReaderWithPartialData) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  b.out.write_bytes("part");
  b.out.flush();
  std::string error;
  rkt::semaphore ready;
  rkt::thread t = spawn_parked(ready, [&] {
    try {
      a.in.read_bytes(100);
    } catch (const rkt::exn_fail& e) {
      error = e.what();
    }
  });
  a.in.close();
  await(t);
  EXPECT_THAT(error, HasSubstr("input port is closed"));
}

// --- Port events -----------------------------------------------------------------

TEST_F(FdPortTest, AReadEvtThatIsNotReadyLosesToAlwaysAndConsumesNothing) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  b.out.write_bytes("abcdef");
  b.out.flush();
  EXPECT_EQ(a.in.peek_bytes(6), "abcdef"s);  // all six are at the port
  rkt::or_eof<std::string> r = rkt::sync(
      rkt::choice_evt(rkt::read_bytes_evt(10, a.in), rkt::always_evt(rkt::or_eof<std::string>("always"))));
  EXPECT_EQ(r, "always"s);
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), rkt::read_bytes_evt(10, a.in)).has_value());
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), rkt::read_line_evt(a.in)).has_value());
  EXPECT_EQ(a.in.read_bytes(6), "abcdef"s);
}

TEST_F(FdPortTest, AReadEvtConsumesExactlyWhenChosen) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  const std::string data = pattern(600);
  b.out.write_bytes(data);
  b.out.flush();
  std::size_t pos = 0;
  int chosen = 0;
  for (int i = 0; i < 200; ++i) {
    rkt::or_eof<std::string> r = rkt::sync(rkt::choice_evt(
        rkt::read_bytes_evt(3, a.in), rkt::always_evt(rkt::or_eof<std::string>("skip"))));
    ASSERT_TRUE(r.has_value());
    if (*r == "skip") continue;
    ASSERT_EQ(*r, data.substr(pos, 3)) << "at " << pos;
    pos += 3;
    ++chosen;
  }
  EXPECT_GT(chosen, 0);
  EXPECT_LT(chosen, 200);
  EXPECT_EQ(a.in.read_bytes(data.size() - pos), data.substr(pos));
}

TEST_F(FdPortTest, ReadLineEvtWaitsAcrossPartialWrites) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  rkt::or_eof<std::string> line;
  rkt::semaphore ready;
  rkt::thread t = spawn_parked(ready, [&] { line = sync_within(rkt::read_line_evt(a.in)); });
  b.out.write_bytes("hel");
  b.out.flush();
  EXPECT_FALSE(rkt::sync_timeout(absl::Milliseconds(20), t.dead_evt()))
      << "read_line_evt was ready without a newline";
  b.out.write_bytes("lo");
  b.out.flush();
  EXPECT_FALSE(rkt::sync_timeout(absl::Milliseconds(20), t.dead_evt()));
  b.out.write_bytes("\nrest");
  b.out.flush();
  await(t);
  EXPECT_EQ(line, "hello"s);
  EXPECT_EQ(a.in.read_bytes(4), "rest"s);
}

TEST_F(FdPortTest, OtherPortEventsOnASocket) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), rkt::eof_evt(a.in)));
  EXPECT_EQ(sync_within(rkt::write_bytes_avail_evt("xy", b.out)), 2u);
  EXPECT_EQ(sync_within(rkt::peek_bytes_evt(1, 1, a.in)), "y"s);
  char buf[8];
  EXPECT_EQ(sync_within(rkt::read_bytes_avail_evt(buf, a.in)), 2u);
  EXPECT_EQ(std::string(buf, 2), "xy");
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), a.in).has_value()) << "nothing to read";
  b.out.write_byte('z');
  b.out.close();
  EXPECT_EQ(sync_within(a.in), a.in);
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), rkt::eof_evt(a.in))) << "'z' comes first";
  EXPECT_EQ(a.in.read_byte(), uint8_t{'z'});
  sync_within(rkt::eof_evt(a.in));
  EXPECT_EQ(sync_within(a.in), a.in) << "the port as an event is ready at EOF";
  sync_within(rkt::port_closed_evt(b.out));
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), rkt::port_closed_evt(a.in)));
  a.in.close();
  sync_within(rkt::port_closed_evt(a.in));
}

TEST_F(FdPortTest, TheOutputPortIsReadyWhenTheSocketHasRoom) {
  std::pair<side, side> p = connected();
  const side& a = p.first;
  const side& b = p.second;
  a.out.set_buffer_mode(rkt::buffer_mode::none);
  EXPECT_TRUE(rkt::sync_timeout(absl::ZeroDuration(), a.out).has_value());
  const std::size_t total = fill_socket(a.out);
  EXPECT_GT(total, 0u);
  EXPECT_FALSE(rkt::sync_timeout(absl::ZeroDuration(), a.out).has_value())
      << "ready with a full socket";
  EXPECT_FALSE(
      rkt::sync_timeout(absl::ZeroDuration(), rkt::write_bytes_avail_evt("z", a.out)).has_value());
  std::optional<rkt::output_port> woke;
  rkt::semaphore ready;
  rkt::thread t = spawn_parked(ready, [&] { woke = sync_within(a.out); });
  rkt::or_eof<std::string> drained = b.in.read_bytes(total);
  ASSERT_TRUE(drained.has_value());
  EXPECT_EQ(drained->size(), total);
  await(t);
  EXPECT_EQ(woke, a.out);
  EXPECT_EQ(sync_within(rkt::write_bytes_avail_evt("z", a.out)), 1u);
  EXPECT_EQ(b.in.read_bytes(1), "z"s);
}

// --- Files ---------------------------------------------------------------------

TEST_F(FdPortTest, AFileWrittenThenReadBack) {
  temp_dir dir;
  const std::string path = dir.file("data.txt");
  rkt::output_port out = rkt::open_output_file(path);
  EXPECT_EQ(out.get_buffer_mode(), rkt::buffer_mode::block);
  out.write_bytes("hello\nfile");
  EXPECT_EQ(read_file(path), "") << "a block-mode file port wrote before a flush";
  out.flush();
  EXPECT_EQ(read_file(path), "hello\nfile");
  out.close();

  const mode_t mask = umask(0);
  umask(mask);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask);

  rkt::input_port in = rkt::open_input_file(path);
  EXPECT_EQ(in.read_line(), "hello"s);
  EXPECT_EQ(in.peek_bytes(2), "fi"s);
  EXPECT_EQ(in.read_bytes(100), "file"s);
  EXPECT_EQ(in.read_byte(), rkt::eof);
  in.close();
}

// Opens `path` with `exists`, writes `bytes` and closes.
void write_with(const std::string& path, rkt::exists_mode exists, std::string_view bytes) {
  rkt::output_port out = rkt::open_output_file(path, exists);
  out.write_bytes(bytes);
  out.close();
}

TEST_F(FdPortTest, ExistsErrorRefusesAnExistingFile) {
  temp_dir dir;
  const std::string path = dir.file("exists");
  write_file(path, "keep");
  auto e = raised<rkt::exn_fail_filesystem>([&] { rkt::open_output_file(path); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), EEXIST);
  EXPECT_THAT(e->what(), HasSubstr(path));
  EXPECT_EQ(read_file(path), "keep");
  auto e2 = raised<rkt::exn_fail_filesystem>(
      [&] { rkt::open_output_file(path, rkt::exists_mode::error); });
  ASSERT_TRUE(e2);
  EXPECT_EQ(e2->error_number(), EEXIST);
}

TEST_F(FdPortTest, ExistsAppendWritesAtTheEnd) {
  temp_dir dir;
  const std::string path = dir.file("log");
  write_file(path, "abc");
  write_with(path, rkt::exists_mode::append, "def");
  EXPECT_EQ(read_file(path), "abcdef");
  // Missing: created.
  const std::string fresh = dir.file("fresh");
  write_with(fresh, rkt::exists_mode::append, "x");
  EXPECT_EQ(read_file(fresh), "x");
}

TEST_F(FdPortTest, ExistsTruncateEmptiesTheSameFile) {
  temp_dir dir;
  const std::string path = dir.file("t");
  const std::string link = dir.file("t-link");
  write_file(path, "abcdef");
  ASSERT_EQ(::link(path.c_str(), link.c_str()), 0) << std::strerror(errno);
  write_with(path, rkt::exists_mode::truncate, "x");
  EXPECT_EQ(read_file(path), "x");
  EXPECT_EQ(read_file(link), "x") << "truncate keeps the file";
  EXPECT_EQ(inode_of(path), inode_of(link));
}

TEST_F(FdPortTest, ExistsReplaceMakesANewFile) {
  temp_dir dir;
  const std::string path = dir.file("r");
  const std::string link = dir.file("r-link");
  write_file(path, "abcdef");
  ASSERT_EQ(::link(path.c_str(), link.c_str()), 0) << std::strerror(errno);
  write_with(path, rkt::exists_mode::replace, "x");
  EXPECT_EQ(read_file(path), "x");
  EXPECT_EQ(read_file(link), "abcdef") << "replace must not write into the old file";
  EXPECT_NE(inode_of(path), inode_of(link));
}

TEST_F(FdPortTest, ExistsUpdateOverwritesFromTheStartAndRequiresTheFile) {
  temp_dir dir;
  const std::string path = dir.file("u");
  write_file(path, "abcdef");
  write_with(path, rkt::exists_mode::update, "XY");
  EXPECT_EQ(read_file(path), "XYcdef");

  const std::string missing = dir.file("missing");
  auto e = raised<rkt::exn_fail_filesystem>(
      [&] { rkt::open_output_file(missing, rkt::exists_mode::update); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), ENOENT);
  EXPECT_THAT(e->what(), HasSubstr(missing));
  EXPECT_FALSE(std::filesystem::exists(missing));
}

TEST_F(FdPortTest, ExistsCanUpdateCreatesOrOverwrites) {
  temp_dir dir;
  const std::string path = dir.file("cu");
  write_file(path, "abcdef");
  write_with(path, rkt::exists_mode::can_update, "XY");
  EXPECT_EQ(read_file(path), "XYcdef");

  const std::string fresh = dir.file("cu-new");
  write_with(fresh, rkt::exists_mode::can_update, "new");
  EXPECT_EQ(read_file(fresh), "new");
}

TEST_F(FdPortTest, OpeningAMissingFileForInputRaisesEnoentNamingThePath) {
  temp_dir dir;
  const std::string path = dir.file("no-such-file");
  auto e = raised<rkt::exn_fail_filesystem>([&] { rkt::open_input_file(path); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error_number(), ENOENT);
  EXPECT_THAT(e->what(), HasSubstr(path));
  EXPECT_THAT(e->what(), HasSubstr(std::strerror(ENOENT)));
}

// --- Custodians ---------------------------------------------------------------

TEST_F(FdPortTest, PortsMadeUnderACustodianAreManagedAndClosedByShutdown) {
  rkt::custodian c = rkt::make_custodian();
  std::array<int, 2> s = raw_socketpair();
  std::optional<side> a;
  {
    rkt::custodian_scope in(c);
    a.emplace(make_side(s[0]));
  }
  side b = make_side(s[1]);
  std::vector<std::shared_ptr<rkt::managed_resource>> managed = c.managed_list();
  EXPECT_FALSE(managed.empty());
  for (const auto& r : managed) EXPECT_THAT(r->describe(), HasSubstr("port"));
  managed.clear();
  a->out.write_bytes("sent");
  a->out.flush();
  c.shutdown_all();
  EXPECT_TRUE(a->in.closed());
  EXPECT_TRUE(a->out.closed());
  EXPECT_TRUE(c.managed_list().empty());
  EXPECT_TRUE(fd_closed_soon(s[0]));
  EXPECT_EQ(b.in.read_bytes(4), "sent"s);
  EXPECT_EQ(b.in.read_byte(), rkt::eof);
  auto r = raised<rkt::exn_fail>([&] { a->in.read_byte(); });
  ASSERT_TRUE(r);
  EXPECT_THAT(r->what(), HasSubstr("input port is closed"));
}

TEST_F(FdPortTest, ACustodianDoesNotKeepDroppedPorts) {
  rkt::custodian c = rkt::make_custodian();
  std::array<int, 2> s = raw_socketpair();
  {
    rkt::custodian_scope in(c);
    side a = make_side(s[0]);
    side b = make_side(s[1]);
    EXPECT_FALSE(c.managed_list().empty());
  }
  EXPECT_TRUE(c.managed_list().empty());
  EXPECT_TRUE(fd_closed_soon(s[0]));
  EXPECT_TRUE(fd_closed_soon(s[1]));
}

TEST_F(FdPortTest, ShutdownWakesAReaderOutsideTheCustodianAndKillsOneInside) {
  rkt::custodian c = rkt::make_custodian();
  std::array<int, 2> s = raw_socketpair();
  std::optional<side> a;
  std::atomic<int> unwound{0};
  rkt::semaphore ready;
  std::optional<rkt::thread> inside;
  {
    rkt::custodian_scope in(c);
    a.emplace(make_side(s[0]));
    inside.emplace(spawn_parked(ready, [&] {
      unwind_counter u(unwound);
      try {
        a->in.peek_bytes(1);
        ADD_FAILURE() << "the managed reader returned";
      } catch (const rkt::exn_fail&) {
        // Woken by the close before the kill reached it: also allowed.
      }
    }));
  }
  side b = make_side(s[1]);
  std::string error;
  rkt::thread outside = spawn_parked(ready, [&] {
    try {
      a->in.read_bytes(1);
      ADD_FAILURE() << "the reader returned";
    } catch (const rkt::exn_fail& e) {
      error = e.what();
    }
  });
  c.shutdown_all();
  await(outside);
  await(*inside);
  EXPECT_THAT(error, HasSubstr("input port is closed"));
  EXPECT_EQ(unwound.load(), 1);
  EXPECT_TRUE(fd_closed_soon(s[0]));
}

TEST_F(FdPortTest, ShutdownDoesNotWaitToFlushToAPeerThatNeverReads) {
  rkt::custodian c = rkt::make_custodian();
  std::array<int, 2> s = raw_socketpair();
  std::optional<side> a;
  {
    rkt::custodian_scope in(c);
    a.emplace(make_side(s[0]));
  }
  side b = make_side(s[1]);
  const std::size_t total = fill_socket(a->out);
  ASSERT_GT(total, 0u);
  a->out.write_bytes(std::string(100, 'p'));  // buffered: nowhere to go
  EXPECT_FALSE(a->out.write_bytes_avail_star("").has_value()) << "the buffer cannot be flushed";
  // A writer parked on the full socket.
  std::string writer_error;
  rkt::semaphore ready;
  rkt::thread writer = spawn_parked(ready, [&] {
    try {
      a->out.write_bytes(std::string(64 * 1024, 'w'));
      a->out.flush();
      ADD_FAILURE() << "the writer returned";
    } catch (const rkt::exn_fail& e) {
      writer_error = e.what();
    }
  });
  // Shut down from a green thread, so that a shutdown that blocks fails the
  // test instead of hanging it.
  rkt::thread shutter([c] { c.shutdown_all(); });
  await(shutter);
  await(writer);
  EXPECT_THAT(writer_error, HasSubstr("output port is closed"));
  EXPECT_TRUE(a->out.closed());
  EXPECT_TRUE(a->in.closed());
  EXPECT_TRUE(fd_closed_soon(s[0]));
  // The peer gets what the socket held, then EOF: the buffer was dropped.
  rkt::or_eof<std::string> got = b.in.read_bytes(total);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->size(), total);
  EXPECT_EQ(got->find('p'), std::string::npos);
  EXPECT_EQ(b.in.read_byte(), rkt::eof);
}

TEST_F(FdPortTest, MakingFdPortsUnderAShutDownCustodianRaisesAndClosesTheFd) {
  rkt::custodian c = rkt::make_custodian();
  c.shutdown_all();
  rkt::custodian_scope in(c);
  {
    std::array<int, 2> s = raw_socketpair();
    auto e = raised<rkt::exn_fail_contract>([&] { rkt::make_fd_ports(s[0], "socketpair"); });
    ASSERT_TRUE(e);
    EXPECT_THAT(e->what(), StartsWith("make-fd-ports: the custodian has been shut down"));
    EXPECT_TRUE(fd_closed_soon(s[0]));
    auto e2 = raised<rkt::exn_fail_contract>(
        [&] { rkt::make_fd_ports(s[1], "socketpair", "tcp-connect"); });
    ASSERT_TRUE(e2);
    EXPECT_THAT(e2->what(), StartsWith("tcp-connect: the custodian has been shut down"));
    EXPECT_TRUE(fd_closed_soon(s[1]));
  }
  {
    std::array<int, 2> fds = raw_pipe();
    auto ei = raised<rkt::exn_fail_contract>([&] { rkt::make_fd_input_port(fds[0], "r"); });
    ASSERT_TRUE(ei);
    EXPECT_THAT(ei->what(), StartsWith("make-fd-input-port: the custodian has been shut down"));
    auto eo = raised<rkt::exn_fail_contract>([&] { rkt::make_fd_output_port(fds[1], "w"); });
    ASSERT_TRUE(eo);
    EXPECT_THAT(eo->what(), StartsWith("make-fd-output-port: the custodian has been shut down"));
    EXPECT_TRUE(fd_closed_soon(fds[0]));
    EXPECT_TRUE(fd_closed_soon(fds[1]));
  }
  {
    temp_dir dir;
    const std::string path = dir.file("f");
    write_file(path, "x");
    auto ei = raised<rkt::exn_fail_contract>([&] { rkt::open_input_file(path); });
    ASSERT_TRUE(ei);
    EXPECT_THAT(ei->what(), HasSubstr("the custodian has been shut down"));
    auto eo = raised<rkt::exn_fail_contract>(
        [&] { rkt::open_output_file(path, rkt::exists_mode::truncate); });
    ASSERT_TRUE(eo);
    EXPECT_THAT(eo->what(), HasSubstr("the custodian has been shut down"));
  }
}

TEST_F(FdPortTest, FilePortsAreManagedToo) {
  temp_dir dir;
  rkt::custodian c = rkt::make_custodian();
  std::optional<rkt::output_port> out;
  std::optional<rkt::input_port> in;
  {
    rkt::custodian_scope scope(c);
    out.emplace(rkt::open_output_file(dir.file("m")));
    in.emplace(rkt::open_input_file(dir.file("m")));
  }
  EXPECT_GE(c.managed_list().size(), 2u);
  c.shutdown_all();
  EXPECT_TRUE(out->closed());
  EXPECT_TRUE(in->closed());
}

TEST_F(FdPortTest, ShutdownFromAnotherOsThreadWakesTheMainThreadsReader) {
  rkt::custodian c = rkt::make_custodian();
  std::array<int, 2> s = raw_socketpair();
  std::optional<side> a;
  {
    rkt::custodian_scope in(c);
    a.emplace(make_side(s[0]));
  }
  side b = make_side(s[1]);
  std::string error;
  rkt::semaphore ready;
  rkt::thread reader = spawn_parked(ready, [&] {
    try {
      a->in.read_bytes(1);
      ADD_FAILURE() << "the reader returned";
    } catch (const rkt::exn_fail& e) {
      error = e.what();
    }
  });
  std::jthread os = start_os_thread([c] { c.shutdown_all(); });
  await(reader);
  os.join();
  EXPECT_THAT(error, HasSubstr("input port is closed"));
  EXPECT_TRUE(a->in.closed());
  EXPECT_TRUE(a->out.closed());
  EXPECT_TRUE(fd_closed_soon(s[0])) << "the close handed to the main thread never ran";
  EXPECT_EQ(b.in.read_byte(), rkt::eof);
}

// --- file-stream-port? and file-stream-buffer-mode -----------------------------------

// Racket: file-stream-port? is #t for ports over files, OS pipes and
// devices (also once closed), #f for sockets' ports and in-memory ports.
TEST_F(FdPortTest, FileStreamPortPHoldsForFilesPipesAndDevicesNotSockets) {
  temp_dir dir;
  rkt::output_port file_out = rkt::open_output_file(dir.file("f"));
  rkt::input_port file_in = rkt::open_input_file(dir.file("f"));
  EXPECT_TRUE(rkt::file_stream_port_p(file_out));
  EXPECT_TRUE(rkt::file_stream_port_p(file_in));
  std::array<int, 2> fds = raw_pipe();
  rkt::input_port pipe_in = rkt::make_fd_input_port(fds[0], "os-pipe");
  rkt::output_port pipe_out = rkt::make_fd_output_port(fds[1], "os-pipe");
  EXPECT_TRUE(rkt::file_stream_port_p(pipe_in));
  EXPECT_TRUE(rkt::file_stream_port_p(pipe_out));
  rkt::output_port null_out = rkt::open_output_file("/dev/null", rkt::exists_mode::append);
  EXPECT_TRUE(rkt::file_stream_port_p(null_out));
  std::pair<side, side> s = connected();
  EXPECT_FALSE(rkt::file_stream_port_p(s.first.in));
  EXPECT_FALSE(rkt::file_stream_port_p(s.first.out));
  auto [mem_in, mem_out] = rkt::make_pipe();
  EXPECT_FALSE(rkt::file_stream_port_p(mem_in));
  EXPECT_FALSE(rkt::file_stream_port_p(mem_out));
  EXPECT_FALSE(rkt::file_stream_port_p(rkt::open_input_bytes("x")));
  EXPECT_FALSE(rkt::file_stream_port_p(rkt::open_output_bytes()));
  file_in.close();
  pipe_out.close();
  EXPECT_TRUE(rkt::file_stream_port_p(file_in)) << "still a file-stream port once closed";
  EXPECT_TRUE(rkt::file_stream_port_p(pipe_out));
  file_out.close();
  pipe_in.close();
  null_out.close();
}

// Racket's file-stream-buffer-mode, with its messages.
TEST_F(FdPortTest, FileStreamBufferModeGetsAndSetsAsRacketDoes) {
  temp_dir dir;
  rkt::output_port out = rkt::open_output_file(dir.file("f"));
  rkt::input_port in = rkt::open_input_file(dir.file("f"));
  EXPECT_EQ(rkt::file_stream_buffer_mode(out), rkt::buffer_mode::block);
  EXPECT_EQ(rkt::file_stream_buffer_mode(in), rkt::buffer_mode::block);
  rkt::file_stream_buffer_mode(out, rkt::buffer_mode::line);
  EXPECT_EQ(rkt::file_stream_buffer_mode(out), rkt::buffer_mode::line);
  rkt::file_stream_buffer_mode(in, rkt::buffer_mode::none);
  EXPECT_EQ(rkt::file_stream_buffer_mode(in), rkt::buffer_mode::none);
  out.write_bytes("a line\n");
  EXPECT_EQ(in.read_line(), "a line"s) << "line mode wrote the line out";

  auto line = raised<rkt::exn_fail_contract>(
      [&] { rkt::file_stream_buffer_mode(in, rkt::buffer_mode::line); });
  ASSERT_TRUE(line);
  EXPECT_EQ(std::string(line->what()),
            "file-stream-buffer-mode: 'line buffering not supported for an input port\n"
            "  port: #<input-port:" + dir.file("f") + ">");

  // Ports without a buffer: no mode, and setting one raises.
  auto [mem_in, mem_out] = rkt::make_pipe();
  EXPECT_EQ(rkt::file_stream_buffer_mode(mem_in), std::nullopt);
  EXPECT_EQ(rkt::file_stream_buffer_mode(mem_out), std::nullopt);
  auto no_in = raised<rkt::exn_fail_contract>(
      [&] { rkt::file_stream_buffer_mode(mem_in, rkt::buffer_mode::none); });
  ASSERT_TRUE(no_in);
  EXPECT_EQ(std::string(no_in->what()),
            "file-stream-buffer-mode: buffering not supported for input port\n  mode: 'none\n"
            "  input port: #<input-port:pipe>");
  auto no_out = raised<rkt::exn_fail_contract>(
      [&] { rkt::file_stream_buffer_mode(mem_out, rkt::buffer_mode::block); });
  ASSERT_TRUE(no_out);
  EXPECT_EQ(std::string(no_out->what()),
            "file-stream-buffer-mode: buffering not supported for output port\n  mode: 'block\n"
            "  output port: #<output-port:pipe>");

  // Closed ports: exn_fail naming the port.
  in.close();
  out.close();
  auto closed_get = raised<rkt::exn_fail>([&] { rkt::file_stream_buffer_mode(in); });
  ASSERT_TRUE(closed_get);
  EXPECT_THAT(closed_get->what(), StartsWith("file-stream-buffer-mode: input port is closed"));
  auto closed_set =
      raised<rkt::exn_fail>([&] { rkt::file_stream_buffer_mode(out, rkt::buffer_mode::none); });
  ASSERT_TRUE(closed_set);
  EXPECT_THAT(closed_set->what(), StartsWith("file-stream-buffer-mode: output port is closed"));
}

// --- Closing in a thread that is being killed --------------------------------------

// An RAII guard that closes an fd output port, as server code writes one.
struct close_on_exit {
  rkt::output_port out;
  ~close_on_exit() { out.close(); }
};

// A green thread whose guard closes an fd output port holding unflushed
// bytes for a peer that never reads is killed: the close gives the bytes up
// (as a custodian shutdown does) instead of parking, so kill() returns and
// the port is closed. Killed while parked elsewhere, and while parked in
// the write itself.
TEST_F(FdPortTest, AKilledThreadsGuardClosesAPortToAPeerThatNeverReadsWithoutWaiting) {
  for (bool in_write : {false, true}) {
    SCOPED_TRACE(in_write ? "killed in write_bytes" : "killed in sync");
    std::array<int, 2> s = raw_socketpair();
    side a = make_side(s[0]);
    side b = make_side(s[1]);  // never reads
    const std::size_t total = fill_socket(a.out);
    ASSERT_GT(total, 0u);
    rkt::semaphore ready;
    rkt::thread t = spawn_parked(ready, [&, in_write] {
      close_on_exit guard{a.out};
      if (in_write) {
        a.out.write_bytes(std::string(256 * 1024, 'w'));  // parks: the socket is full
      } else {
        a.out.write_bytes(std::string(3000, 'p'));  // buffered: nowhere to go
        rkt::sync(rkt::never_evt());
      }
      ADD_FAILURE() << "the thread went on";
    });
    EXPECT_TRUE(t.running());
    // Killed from another green thread, so that a kill that never returns
    // fails the test instead of hanging it.
    rkt::thread killer([t] { t.kill(); });
    await(killer);
    EXPECT_FALSE(t.running());
    EXPECT_TRUE(a.out.closed());
    EXPECT_FALSE(a.in.closed());
    // The peer gets what the socket held, then EOF: the rest was given up.
    rkt::or_eof<std::string> got = sync_within(rkt::read_bytes_evt(total, b.in));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->size(), total);
    EXPECT_EQ(got->find_first_of("pw"), std::string::npos);
    EXPECT_TRUE(rkt::test::at_eof(b.in));
  }
}

// The same for a port the dying thread owns alone and drops without a
// close: the drop gives up its bytes, and the descriptor closes.
TEST_F(FdPortTest, AKilledThreadDroppingItsOnlyHandleClosesTheDescriptor) {
  std::array<int, 2> s = raw_socketpair();
  side b = make_side(s[1]);
  rkt::semaphore ready;
  rkt::thread t = spawn_parked(ready, [&] {
    rkt::output_port out = rkt::make_fd_output_port(s[0], "dying");
    fill_socket(out);
    out.write_bytes(std::string(3000, 'p'));
    rkt::sync(rkt::never_evt());
  });
  rkt::thread killer([t] { t.kill(); });
  await(killer);
  EXPECT_FALSE(t.running());
  EXPECT_TRUE(fd_closed_soon(s[0]));
  EXPECT_TRUE(rkt::test::read_to_eof(b.in).find('p') == std::string::npos);
}

// --- Descriptor leak cycles ---------------------------------------------------------

TEST_F(FdPortTest, ThousandsOfCustodianShutdownCyclesLeakNoDescriptor) {
  rkt::test::fd_leak_check fds;
  for (int i = 0; i < 2000; ++i) {
    rkt::custodian c = rkt::make_custodian();
    std::array<int, 2> s = raw_socketpair();
    std::optional<side> a;
    std::optional<side> b;
    {
      rkt::custodian_scope in(c);
      a.emplace(make_side(s[0]));
      b.emplace(make_side(s[1]));
    }
    a->out.write_byte(static_cast<uint8_t>(i));
    a->out.flush();
    ASSERT_EQ(b->in.read_byte(), static_cast<uint8_t>(i)) << "iteration " << i;
    c.shutdown_all();
    ASSERT_TRUE(a->in.closed() && b->out.closed()) << "iteration " << i;
  }
  rkt::yield();
  EXPECT_THAT(fds.leaked(), ::testing::IsEmpty()) << fds.describe(fds.leaked());
  EXPECT_TRUE(rkt::custodian::root().children().empty());
}

TEST_F(FdPortTest, ThousandsOfDroppedPortPairsLeakNoDescriptor) {
  rkt::test::fd_leak_check fds;
  for (int i = 0; i < 2000; ++i) {
    std::array<int, 2> s = raw_socketpair();
    side a = make_side(s[0]);
    side b = make_side(s[1]);
    a.out.write_byte(static_cast<uint8_t>(i));
    a.out.flush();
    ASSERT_EQ(b.in.read_byte(), static_cast<uint8_t>(i)) << "iteration " << i;
    // Dropped here without a close.
  }
  rkt::yield();
  EXPECT_THAT(fds.leaked(), ::testing::IsEmpty()) << fds.describe(fds.leaked());
}

// ---------------------------------------------------------------------------
// An fd port whose OS thread has exited (fd_port.h, "OS threads"): what
// needs no wait works, what would wait raises exn_fail_contract, and
// nothing touches the exited thread's scheduler (ASan checks that).

TEST_F(FdPortTest, APortWhoseOsThreadExitedWorksUntilItWouldWait) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  std::optional<std::pair<rkt::input_port, rkt::output_port>> ports;
  std::jthread maker = start_os_thread([&] { ports = rkt::make_fd_ports(fds[0], "orphan"); });
  maker.join();
  auto& [in, out] = *ports;

  out.write_bytes("hello\n");
  out.flush();
  char buf[16];
  ASSERT_EQ(::read(fds[1], buf, sizeof buf), 6);
  EXPECT_EQ(std::string(buf, 6), "hello\n");

  ASSERT_EQ(::write(fds[1], "abc\n", 4), 4);
  EXPECT_EQ(in.read_line(), "abc");

  std::optional<rkt::exn_fail_contract> e =
      raised<rkt::exn_fail_contract>([&] { in.read_line(); });
  ASSERT_TRUE(e.has_value());
  EXPECT_STREQ(e->what(),
               "read-line: the OS thread that made the port has exited, so it cannot wait\n"
               "  port: orphan");

  in.close();
  out.close();
  EXPECT_FALSE(fd_open(fds[0])) << "closing the ports did not close the descriptor";
  ::close(fds[1]);
}

TEST_F(FdPortTest, AReadParkedWhenThePortsOsThreadExitsRaises) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  rkt::channel<rkt::input_port> handed;
  rkt::semaphore go;
  std::jthread maker = start_os_thread([&] {
    auto [in, out] = rkt::make_fd_ports(fds[0], "orphan");
    handed.put(in);
    sync_within(go);
  });
  rkt::input_port in = sync_within(handed);
  std::string raised_text;
  rkt::semaphore ready;
  rkt::thread reader = spawn_parked(ready, [&] {
    try {
      in.read_line();
    } catch (const rkt::exn_fail_contract& e) {
      raised_text = e.what();
    }
  });
  go.post();
  maker.join();  // the maker's scheduler closes its handles as it goes
  await(reader);
  EXPECT_THAT(raised_text, HasSubstr("the OS thread that made the port has exited"));
  in.close();
  EXPECT_FALSE(fd_open(fds[0]));
  ::close(fds[1]);
}

}  // namespace
