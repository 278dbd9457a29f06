// Tests of the in-memory ports: pipes (ports/pipe.h), byte-string ports
// (ports/bytes_port.h) and copy_port (ports/copy_port.h), against the
// contract in ports/port.h and Racket 8.7's behaviour: every input operation
// (bytes, peeks with skips, the five read-line modes, also with a separator
// split across two writes), every output operation, limited pipes, the port
// events, closed-port errors and wake-ups, kills of parked threads, and the
// atomicity of the port events: an event that loses a choice, or whose sync
// times out, reads or writes nothing, and racing readers get contiguous,
// disjoint chunks. The last tests move data between OS threads.
//
// Blocking calls that could hang run on green threads that the test body
// waits for with a bound (sync_within), so a bug fails a test instead of
// hanging it. The short sync_timeouts here are the behaviour under test (a
// sync that must time out), never a wait for another thread.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "evt/alarm.h"
#include "evt/evt.h"
#include "evt/exn.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ports/bytes_port.h"
#include "ports/copy_port.h"
#include "ports/pipe.h"
#include "ports/port.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/sync_within.h"

namespace {

using namespace std::string_literals;
using ::rkt::line_mode;
using ::rkt::or_eof;
using ::rkt::test::await;
using ::rkt::test::fnv1a;
using ::rkt::test::kFnvOffset;
using ::rkt::test::ready_now;
using ::rkt::test::scoped_thread;
using ::rkt::test::spawn_parked;
using ::rkt::test::start_os_thread;
using ::rkt::test::sync_within;
using ::rkt::test::unwind_counter;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// ---------------------------------------------------------------------------
// Helpers.

struct pipe_ends {
  rkt::input_port in;
  rkt::output_port out;
};

pipe_ends new_pipe(std::optional<std::size_t> limit = std::nullopt,
                   std::string in_name = "pipe", std::string out_name = "pipe") {
  auto [in, out] = rkt::make_pipe(limit, std::move(in_name), std::move(out_name));
  return pipe_ends{in, out};
}

// One poll of `e` (a sync with a zero timeout).
template <class E>
auto poll_once(const E& e) {
  return rkt::sync_timeout(absl::ZeroDuration(), e);
}

// Syncs on `e` against an always-ready event, so that either may be chosen:
// e's result when e was, nullopt when the always-ready event was.
template <class T>
std::optional<T> race_always(const rkt::evt<T>& e) {
  return sync_within(
      rkt::choice_evt(rkt::wrap_evt(e, [](T v) { return std::optional<T>(std::move(v)); }),
                      rkt::always_evt(std::optional<T>())));
}
bool race_always_void(const rkt::evt<void>& e) {
  return sync_within(rkt::choice_evt(rkt::wrap_evt(e, [] { return true; }), rkt::always_evt(false)));
}

// A green thread's body that fails the test when an exception escapes it
// (the scheduler would only print it). A kill passes through.
std::function<void()> reporting(std::function<void()> body) {
  return [body = std::move(body)] {
    try {
      body();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "green thread: " << e.what();
    }
  };
}

// A green thread that is parked in `block` once the constructor returns (see
// spawn_parked) and is killed at scope exit if it is still running, so a
// failing test leaves nothing behind.
class parked_thread {
 public:
  explicit parked_thread(std::function<void()> block)
      : t_(spawn_parked(rkt::semaphore(), reporting(std::move(block)))) {}
  parked_thread(const parked_thread&) = delete;
  parked_thread& operator=(const parked_thread&) = delete;
  ~parked_thread() { t_.kill(); }

  void join() const { await(t_); }
  bool running() const { return t_.running(); }
  const rkt::thread& get() const { return t_; }

 private:
  rkt::thread t_;
};

// Runs a call that may block on a green thread and waits for it with a
// bound: a bug that leaves it blocked fails the test instead of hanging it.
template <class F>
auto bounded(F f) -> decltype(f()) {
  std::optional<decltype(f())> r;
  {
    scoped_thread t(reporting([&] { r.emplace(f()); }));
    t.join();
  }
  if (!r.has_value()) throw std::runtime_error("the bounded call raised");
  return std::move(*r);
}

// Closes a port at scope exit, so that a failing test releases the threads
// (also on other OS threads) parked on it before it joins them.
template <class Port>
class close_at_exit {
 public:
  explicit close_at_exit(Port p) : p_(std::move(p)) {}
  close_at_exit(const close_at_exit&) = delete;
  close_at_exit& operator=(const close_at_exit&) = delete;
  ~close_at_exit() {
    try {
      p_.close();
    } catch (...) {
    }
  }

 private:
  Port p_;
};

// `op` raises Racket's closed-port error: exn_fail whose message starts
// "<who>: <direction> port is closed" and shows the port on a later line as
// "#<<direction>-port:<name>>".
void expect_closed_error(const std::function<void()>& op, const std::string& who,
                         const std::string& direction, const std::string& name) {
  try {
    op();
    ADD_FAILURE() << who << " on a closed " << direction << " port raised nothing";
  } catch (const rkt::exn_fail& e) {
    EXPECT_THAT(e.what(), StartsWith(who + ": " + direction + " port is closed"));
    EXPECT_THAT(e.what(), HasSubstr("#<" + direction + "-port:" + name + ">"));
  }
}

// A sync on a port event of a closed port raises the closed-port error.
void expect_evt_closed_error(const std::function<void()>& sync_op, const std::string& what,
                             const std::string& direction) {
  try {
    sync_op();
    ADD_FAILURE() << what << " on a closed " << direction << " port raised nothing";
  } catch (const rkt::exn_fail& e) {
    EXPECT_THAT(e.what(), HasSubstr(direction + " port is closed")) << what;
  }
}

// n records of 8 bytes, "[000000]" to "[n-1]": a stream in which a chunk of
// 8 bytes that is not one whole record shows.
constexpr std::size_t kRecordSize = 8;
std::string records(int n) {
  std::string s;
  char rec[16];
  for (int i = 0; i < n; ++i) {
    std::snprintf(rec, sizeof rec, "[%06d]", i);
    s += rec;
  }
  return s;
}
// The index of a whole record, or -1.
int record_index(std::string_view chunk) {
  if (chunk.size() != kRecordSize || chunk.front() != '[' || chunk.back() != ']') return -1;
  int v = 0;
  for (char c : chunk.substr(1, 6)) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

// Chunks read by several readers: each must be one whole record, each
// reader's in stream order, and together every record exactly once.
void expect_disjoint_whole_records(const std::vector<std::vector<std::string>>& got, int n) {
  std::vector<int> seen(n, 0);
  for (std::size_t r = 0; r < got.size(); ++r) {
    int last = -1;
    for (const std::string& chunk : got[r]) {
      const int j = record_index(chunk);
      ASSERT_GE(j, 0) << "reader " << r << " got a chunk that is not one record: " << chunk;
      ASSERT_LT(j, n);
      EXPECT_GT(j, last) << "reader " << r << " got records out of stream order";
      last = j;
      ++seen[j];
    }
  }
  for (int j = 0; j < n; ++j) EXPECT_EQ(seen[j], 1) << "record " << j;
}

// Writes `stream` to `out` in pieces of varying size, yielding now and then
// so that readers run between the pieces.
void write_in_pieces(const rkt::output_port& out, std::string_view stream) {
  std::size_t pos = 0;
  for (std::size_t i = 0; pos < stream.size(); ++i) {
    const std::size_t n = std::min(stream.size() - pos, 1 + (i * 7) % 19);
    out.write_bytes(stream.substr(pos, n));
    pos += n;
    if (i % 3 == 0) rkt::yield();
  }
}

std::string mode_name(line_mode m) {
  switch (m) {
    case line_mode::linefeed:
      return "linefeed";
    case line_mode::return_:
      return "return";
    case line_mode::return_linefeed:
      return "return-linefeed";
    case line_mode::any:
      return "any";
    case line_mode::any_one:
      return "any-one";
  }
  return "?";
}

std::string escaped(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// n pseudo-random bytes (xorshift), every byte value included.
std::string noise(std::size_t n) {
  std::string s(n, '\0');
  uint64_t x = 88172645463325252ull;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x & 0xff);
  }
  return s;
}

// ---------------------------------------------------------------------------
// Input operations, on a byte-string port and on a pipe whose output end was
// closed after the content was written: both hold the content, then EOF.

enum class source { bytes, pipe };

rkt::input_port input_holding(source s, std::string_view content, std::string name) {
  if (s == source::bytes) return rkt::open_input_bytes(content, std::move(name));
  pipe_ends p = new_pipe(std::nullopt, std::move(name));
  p.out.write_bytes(content);
  p.out.close();
  return p.in;
}

std::string source_name(const ::testing::TestParamInfo<source>& info) {
  return info.param == source::bytes ? "Bytes" : "Pipe";
}

class InputTest : public rkt::test::clean_test, public ::testing::WithParamInterface<source> {
 protected:
  rkt::input_port holding(std::string_view content, std::string name = "src") const {
    return input_holding(GetParam(), content, std::move(name));
  }
};

INSTANTIATE_TEST_SUITE_P(Ports, InputTest, ::testing::Values(source::bytes, source::pipe),
                         source_name);

TEST_P(InputTest, ReadByteReturnsEachByteThenEofForever) {
  rkt::input_port in = holding("a\xff");
  EXPECT_EQ(in.read_byte(), uint8_t{'a'});
  EXPECT_EQ(in.read_byte(), uint8_t{0xff});
  EXPECT_EQ(in.read_byte(), rkt::eof);
  EXPECT_EQ(in.read_byte(), rkt::eof);
}

TEST_P(InputTest, PeekByteLooksPastSkipWithoutConsuming) {
  rkt::input_port in = holding("abc");
  EXPECT_EQ(in.peek_byte(), uint8_t{'a'});
  EXPECT_EQ(in.peek_byte(2), uint8_t{'c'});
  // Racket: (peek-byte in 5) on "abc" is eof.
  EXPECT_EQ(in.peek_byte(3), rkt::eof);
  EXPECT_EQ(in.peek_byte(5), rkt::eof);
  EXPECT_EQ(in.read_byte(), uint8_t{'a'});
  EXPECT_EQ(in.peek_byte(1), uint8_t{'c'});
}

// Racket: read-bytes 5 on "abc" gives "abc", then eof; read-bytes 0 gives ""
// even at EOF.
TEST_P(InputTest, ReadBytesIsShortOnlyAtEofAndLeavesTheEofForTheNextRead) {
  rkt::input_port in = holding("abcde");
  EXPECT_EQ(in.read_bytes(0), "");
  EXPECT_EQ(in.read_bytes(2), "ab");
  EXPECT_EQ(in.read_bytes(2), "cd");
  EXPECT_EQ(in.read_bytes(5), "e");
  EXPECT_EQ(in.read_bytes(5), rkt::eof);
  EXPECT_EQ(in.read_bytes(0), "");
  EXPECT_EQ(in.read_bytes(1), rkt::eof);
}

TEST_P(InputTest, ReadBytesIntoCountsTheBytesItRead) {
  rkt::input_port in = holding("abcdef");
  char buf[4];
  EXPECT_EQ(in.read_bytes_into(buf), 4u);
  EXPECT_EQ(std::string_view(buf, 4), "abcd");
  EXPECT_EQ(in.read_bytes_into(buf), 2u);
  EXPECT_EQ(std::string_view(buf, 2), "ef");
  EXPECT_EQ(in.read_bytes_into(buf), rkt::eof);
  EXPECT_EQ(in.read_bytes_into(std::span<char>()), 0u);
}

// Racket: peek-bytes 5 skip 1 on "abc" gives "bc".
TEST_P(InputTest, PeekBytesSkipsAndLeavesTheBytes) {
  rkt::input_port in = holding("abc");
  EXPECT_EQ(in.peek_bytes(5, 1), "bc");
  EXPECT_EQ(in.peek_bytes(2), "ab");
  EXPECT_EQ(in.peek_bytes(1, 3), rkt::eof);
  EXPECT_EQ(in.read_bytes(3), "abc");
  EXPECT_EQ(in.peek_bytes(1), rkt::eof);
}

// Racket: read-bytes-avail!* with an empty buffer returns 0.
TEST_P(InputTest, ReadBytesAvailAndAvailStarTakeWhatIsThere) {
  char buf[4];
  rkt::input_port in = holding("abcdef");
  EXPECT_EQ(in.read_bytes_avail(std::span<char>()), 0u);
  EXPECT_EQ(in.read_bytes_avail(buf), 4u);
  EXPECT_EQ(std::string_view(buf, 4), "abcd");
  EXPECT_EQ(in.read_bytes_avail(buf), 2u);
  EXPECT_EQ(std::string_view(buf, 2), "ef");
  EXPECT_EQ(in.read_bytes_avail(buf), rkt::eof);

  rkt::input_port star = holding("ghijkl");
  EXPECT_EQ(star.read_bytes_avail_star(std::span<char>()), 0u);
  EXPECT_EQ(star.read_bytes_avail_star(buf), 4u);
  EXPECT_EQ(std::string_view(buf, 4), "ghij");
  EXPECT_EQ(star.read_bytes_avail_star(buf), 2u);
  EXPECT_EQ(std::string_view(buf, 2), "kl");
  EXPECT_EQ(star.read_bytes_avail_star(buf), rkt::eof);
}

TEST_P(InputTest, PeekBytesAvailSkipsAndLeavesTheBytes) {
  char buf[3];
  rkt::input_port in = holding("abcdef");
  EXPECT_EQ(in.peek_bytes_avail(buf, 2), 3u);
  EXPECT_EQ(std::string_view(buf, 3), "cde");
  EXPECT_EQ(in.peek_bytes_avail_star(buf, 5), 1u);
  EXPECT_EQ(buf[0], 'f');
  EXPECT_EQ(in.peek_bytes_avail_star(buf), 3u);
  EXPECT_EQ(std::string_view(buf, 3), "abc");
  EXPECT_EQ(in.peek_bytes_avail(buf, 6), rkt::eof);
  EXPECT_EQ(in.peek_bytes_avail_star(buf, 9), rkt::eof);
  EXPECT_EQ(in.peek_bytes_avail(std::span<char>(), 1), 0u);
  EXPECT_EQ(in.read_bytes(6), "abcdef");
}

// byte-ready? is true while a byte or EOF is next.
TEST_P(InputTest, ByteReadyWhileAByteOrEofIsNext) {
  rkt::input_port in = holding("a");
  EXPECT_TRUE(in.byte_ready());
  EXPECT_EQ(in.read_byte(), uint8_t{'a'});
  EXPECT_TRUE(in.byte_ready());
  EXPECT_EQ(in.read_byte(), rkt::eof);
}

struct line_case {
  line_mode mode;
  std::string input;
  std::vector<std::string> lines;  // then EOF
};

// Racket 8.7's read-line on whole inputs.
const std::vector<line_case>& line_cases() {
  static const auto* cases = new std::vector<line_case>{
      {line_mode::linefeed, "a\nb\r\nc", {"a", "b\r", "c"}},
      {line_mode::linefeed, "\n\nx\n", {"", "", "x"}},
      {line_mode::linefeed, "abc", {"abc"}},
      {line_mode::linefeed, "", {}},
      {line_mode::return_, "a\rb\r\nc\n", {"a", "b", "\nc\n"}},
      {line_mode::return_linefeed, "a\rb\nc\r\nd", {"a\rb\nc", "d"}},
      {line_mode::return_linefeed, "a\r\r\nb\r", {"a\r", "b\r"}},
      {line_mode::any, "x\r\ny\nz", {"x", "y", "z"}},
      {line_mode::any, "a\r\rb\n\rc", {"a", "", "b", "", "c"}},
      {line_mode::any, "a\r", {"a"}},
      {line_mode::any_one, "x\r\ny\nz", {"x", "", "y", "z"}},
      {line_mode::any_one, "a\r", {"a"}},
  };
  return *cases;
}

TEST_P(InputTest, ReadLineSplitsLinesInEveryMode) {
  for (const line_case& c : line_cases()) {
    SCOPED_TRACE(mode_name(c.mode) + " on \"" + escaped(c.input) + "\"");
    rkt::input_port in = holding(c.input);
    for (const std::string& line : c.lines) EXPECT_EQ(in.read_line(c.mode), line);
    EXPECT_EQ(in.read_line(c.mode), rkt::eof);
  }
}

TEST_P(InputTest, ReadLineEvtReadsTheSameLines) {
  for (const line_case& c : line_cases()) {
    SCOPED_TRACE(mode_name(c.mode) + " on \"" + escaped(c.input) + "\"");
    rkt::input_port in = holding(c.input);
    for (const std::string& line : c.lines) EXPECT_EQ(sync_within(rkt::read_line_evt(in, c.mode)), line);
    EXPECT_EQ(sync_within(rkt::read_line_evt(in, c.mode)), rkt::eof);
  }
}

TEST_P(InputTest, ReadLineDefaultsToLinefeed) {
  rkt::input_port in = holding("a\r\nb\rc");
  EXPECT_EQ(in.read_line(), "a\r");
  EXPECT_EQ(sync_within(rkt::read_line_evt(in)), "b\rc");
  EXPECT_EQ(in.read_line(), rkt::eof);
}

// Longer than any internal buffer is likely to be: lines and reads come
// back whole.
TEST_P(InputTest, LongLinesAndLargeReadsComeBackWhole) {
  const std::string big = noise(200000);
  std::string line(150000, 'x');
  rkt::input_port in = holding(line + "\n" + big);
  EXPECT_EQ(in.read_line(), line);
  EXPECT_EQ(in.read_bytes(big.size() + 10), big);
  EXPECT_EQ(in.read_bytes(1), rkt::eof);
}

TEST_P(InputTest, PortAsAnEventIsReadyWithItselfAndConsumesNothing) {
  rkt::input_port in = holding("a");
  std::optional<rkt::input_port> r = poll_once(in);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(*r == in);
  EXPECT_EQ(in.read_byte(), uint8_t{'a'});
  // At EOF too.
  r = poll_once(in);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(*r == in);
}

TEST_P(InputTest, ReadEventsCommitWhatTheirFunctionsRead) {
  rkt::input_port in = holding("abcdefgh");
  EXPECT_EQ(sync_within(rkt::read_bytes_evt(0, in)), "");
  EXPECT_EQ(sync_within(rkt::peek_bytes_evt(3, 1, in)), "bcd");
  EXPECT_EQ(sync_within(rkt::read_bytes_evt(2, in)), "ab");
  char buf[4];
  EXPECT_EQ(sync_within(rkt::read_bytes_avail_evt(buf, in)), 4u);
  EXPECT_EQ(std::string_view(buf, 4), "cdef");
  EXPECT_EQ(sync_within(rkt::peek_bytes_evt(5, 1, in)), "h");
  EXPECT_EQ(sync_within(rkt::peek_bytes_evt(1, 2, in)), rkt::eof);
  EXPECT_EQ(sync_within(rkt::read_bytes_evt(5, in)), "gh");
  EXPECT_EQ(sync_within(rkt::read_bytes_evt(5, in)), rkt::eof);
  EXPECT_EQ(sync_within(rkt::read_bytes_avail_evt(buf, in)), rkt::eof);
  EXPECT_EQ(sync_within(rkt::read_bytes_evt(0, in)), "");
}

TEST_P(InputTest, EofEvtIsReadyOnlyWhenEofIsNext) {
  rkt::input_port in = holding("ab");
  EXPECT_FALSE(poll_once(rkt::eof_evt(in)));
  EXPECT_EQ(in.read_bytes(2), "ab");
  EXPECT_TRUE(poll_once(rkt::eof_evt(in)));
  EXPECT_EQ(in.read_byte(), rkt::eof);
}

// A read_bytes_evt that loses a choice to an always-ready event takes no
// byte: the chunks of the rounds it won are the whole stream, in order.
TEST_P(InputTest, ReadBytesEvtThatLosesAChoiceConsumesNothing) {
  const std::string stream = records(40);  // 320 bytes, 64 chunks of 5
  rkt::input_port in = holding(stream);
  std::string got;
  int wins = 0;
  int losses = 0;
  for (int round = 0; round < 100000; ++round) {
    std::optional<or_eof<std::string>> r = race_always(rkt::read_bytes_evt(5, in));
    if (!r.has_value()) {
      ++losses;
      continue;
    }
    if (*r == rkt::eof) break;
    ++wins;
    got += **r;
  }
  EXPECT_EQ(got, stream);
  EXPECT_EQ(wins, 64);
  EXPECT_GT(losses, 0) << "the always-ready event never won: the test proved nothing";
}

TEST_P(InputTest, ReadLineEvtThatLosesAChoiceConsumesNothing) {
  std::string stream;
  std::vector<std::string> lines;
  for (int i = 0; i < 60; ++i) {
    lines.push_back("line " + std::to_string(i));
    stream += lines.back() + "\r\n";
  }
  rkt::input_port in = holding(stream);
  std::vector<std::string> got;
  int losses = 0;
  for (int round = 0; round < 100000; ++round) {
    std::optional<or_eof<std::string>> r = race_always(rkt::read_line_evt(in, line_mode::any));
    if (!r.has_value()) {
      ++losses;
      continue;
    }
    if (*r == rkt::eof) break;
    got.push_back(**r);
  }
  EXPECT_EQ(got, lines);
  EXPECT_GT(losses, 0) << "the always-ready event never won: the test proved nothing";
}

TEST_P(InputTest, ReadBytesAvailEvtThatLosesAChoiceConsumesNothing) {
  const std::string stream = records(40);
  rkt::input_port in = holding(stream);
  std::string got;
  int losses = 0;
  char buf[7];
  for (int round = 0; round < 100000; ++round) {
    std::optional<or_eof<std::size_t>> r = race_always(rkt::read_bytes_avail_evt(buf, in));
    if (!r.has_value()) {
      ++losses;
      continue;
    }
    if (*r == rkt::eof) break;
    ASSERT_GE(**r, 1u);
    ASSERT_LE(**r, sizeof buf);
    got.append(buf, **r);
  }
  EXPECT_EQ(got, stream);
  EXPECT_GT(losses, 0) << "the always-ready event never won: the test proved nothing";
}

// An eof_evt is never chosen while bytes remain, and one that loses leaves
// the port at EOF.
TEST_P(InputTest, EofEvtThatLosesAChoiceLeavesThePortAsItWas) {
  rkt::input_port in = holding("abc");
  for (int round = 0; round < 20; ++round) EXPECT_FALSE(race_always_void(rkt::eof_evt(in)));
  EXPECT_EQ(in.read_bytes(3), "abc");
  int wins = 0;
  int losses = 0;
  for (int round = 0; round < 200; ++round) {
    (race_always_void(rkt::eof_evt(in)) ? wins : losses)++;
    EXPECT_TRUE(in.byte_ready());
  }
  EXPECT_EQ(in.read_byte(), rkt::eof);
  EXPECT_GT(wins, 0);
  EXPECT_GT(losses, 0);
}

// Two read events on one port in one sync: only the chosen one reads.
TEST_P(InputTest, TwoReadEventsOnOnePortInOneSyncCommitOnlyOne) {
  const std::string stream = records(40);
  rkt::input_port in = holding(stream);
  std::string got;
  int twos = 0;
  int threes = 0;
  for (int round = 0; round < 100000; ++round) {
    or_eof<std::string> r =
        sync_within(rkt::choice_evt(rkt::read_bytes_evt(2, in), rkt::read_bytes_evt(3, in)));
    if (!r.has_value()) break;
    if (r->size() == 2) ++twos;
    if (r->size() == 3) ++threes;
    got += *r;
  }
  EXPECT_EQ(got, stream);
  EXPECT_GT(twos, 0);
  EXPECT_GT(threes, 0);
}

TEST_P(InputTest, ClosedInputRaisesFromEveryOperation) {
  rkt::input_port in = holding("abc", "shut");
  EXPECT_FALSE(in.closed());
  in.close();
  EXPECT_TRUE(in.closed());
  in.close();  // idempotent
  EXPECT_TRUE(in.closed());
  char buf[2];
  const std::vector<std::pair<std::string, std::function<void()>>> ops = {
      {"read-byte", [&] { in.read_byte(); }},
      {"peek-byte", [&] { in.peek_byte(1); }},
      {"read-bytes", [&] { in.read_bytes(2); }},
      {"read-bytes!", [&] { in.read_bytes_into(buf); }},
      {"peek-bytes", [&] { in.peek_bytes(2); }},
      {"read-bytes-avail!", [&] { in.read_bytes_avail(buf); }},
      {"read-bytes-avail!*", [&] { in.read_bytes_avail_star(buf); }},
      {"peek-bytes-avail!", [&] { in.peek_bytes_avail(buf); }},
      {"peek-bytes-avail!*", [&] { in.peek_bytes_avail_star(buf); }},
      {"read-line", [&] { in.read_line(); }},
      {"byte-ready?", [&] { in.byte_ready(); }},
  };
  for (const auto& [who, op] : ops) {
    SCOPED_TRACE(who);
    expect_closed_error(op, who, "input", "shut");
  }
}

// Racket: sync on a closed input port is ready with the port, and
// port-closed-evt is ready; the read events are never ready, except a read
// of zero bytes, which is ready with "" (or 0).
TEST_P(InputTest, OnAClosedInputThePortAndPortClosedEvtAreReadyAndReadEventsNever) {
  rkt::input_port in = holding("abc", "shut");
  EXPECT_FALSE(ready_now(rkt::port_closed_evt(in)));
  in.close();
  std::optional<rkt::input_port> r = poll_once(in);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(*r == in);
  EXPECT_TRUE(ready_now(rkt::port_closed_evt(in)));
  char buf[2];
  EXPECT_FALSE(poll_once(rkt::read_bytes_evt(1, in)).has_value());
  EXPECT_FALSE(poll_once(rkt::peek_bytes_evt(1, 0, in)).has_value());
  EXPECT_FALSE(poll_once(rkt::read_bytes_avail_evt(buf, in)).has_value());
  EXPECT_FALSE(poll_once(rkt::read_line_evt(in)).has_value());
  EXPECT_FALSE(poll_once(rkt::eof_evt(in)));
  EXPECT_EQ(poll_once(rkt::read_bytes_evt(0, in)), std::optional<or_eof<std::string>>(""));
  EXPECT_EQ(poll_once(rkt::peek_bytes_evt(0, 3, in)), std::optional<or_eof<std::string>>(""));
  EXPECT_EQ(poll_once(rkt::read_bytes_avail_evt(std::span<char>(), in)),
            std::optional<or_eof<std::size_t>>(0));
}

// A choice of a closed port's read event and an alarm returns the alarm.
TEST_P(InputTest, AChoiceOfAClosedPortsReadEventAndAnAlarmReturnsTheAlarm) {
  rkt::input_port in = holding("abc", "shut");
  in.close();
  const auto alarm = [] {
    return rkt::wrap_evt(rkt::alarm_evt(absl::Now() + absl::Milliseconds(5)),
                         [] { return std::string("alarm"); });
  };
  const auto read = [](auto e) {
    return rkt::wrap_evt(e, [](auto&&...) { return std::string("read"); });
  };
  char buf[2];
  EXPECT_EQ(sync_within(rkt::choice_evt(read(rkt::read_line_evt(in)), alarm())), "alarm");
  EXPECT_EQ(sync_within(rkt::choice_evt(read(rkt::read_bytes_evt(2, in)), alarm())), "alarm");
  EXPECT_EQ(sync_within(rkt::choice_evt(read(rkt::peek_bytes_evt(2, 0, in)), alarm())), "alarm");
  EXPECT_EQ(sync_within(rkt::choice_evt(read(rkt::read_bytes_avail_evt(buf, in)), alarm())),
            "alarm");
  EXPECT_EQ(sync_within(rkt::choice_evt(read(rkt::eof_evt(in)), alarm())), "alarm");
}

// Racket: a read of zero bytes returns at once, also on a closed port.
TEST_P(InputTest, ReadsOfZeroBytesReturnOnAClosedPort) {
  rkt::input_port in = holding("abc", "shut");
  in.close();
  EXPECT_EQ(in.read_bytes(0), "");
  EXPECT_EQ(in.peek_bytes(0, 2), "");
  EXPECT_EQ(in.read_bytes_into(std::span<char>()), 0u);
  EXPECT_EQ(in.read_bytes_avail(std::span<char>()), 0u);
  EXPECT_EQ(in.read_bytes_avail_star(std::span<char>()), 0u);
  EXPECT_EQ(in.peek_bytes_avail(std::span<char>()), 0u);
  EXPECT_EQ(in.peek_bytes_avail_star(std::span<char>()), 0u);
}

// Memory ports have no buffer mode.
TEST_P(InputTest, HasNoBufferMode) {
  rkt::input_port in = holding("abc");
  EXPECT_EQ(in.get_buffer_mode(), std::nullopt);
  EXPECT_THROW(in.set_buffer_mode(rkt::buffer_mode::block), rkt::exn_fail_contract);
  EXPECT_THROW(in.set_buffer_mode(rkt::buffer_mode::none), rkt::exn_fail_contract);
}

TEST_P(InputTest, NameIsTheGivenName) {
  EXPECT_EQ(holding("abc", "my input").name(), "my input");
}

// ---------------------------------------------------------------------------
// Output operations, on a byte-string port and on an unlimited pipe.

class OutputTest : public rkt::test::clean_test, public ::testing::WithParamInterface<source> {
 protected:
  // A new output port of the kind under test.
  rkt::output_port open(std::string name = "sink") {
    if (GetParam() == source::bytes) return rkt::open_output_bytes(std::move(name));
    pipe_ends p = new_pipe(std::nullopt, "pipe", std::move(name));
    reader_.emplace(p.in);
    return p.out;
  }
  // What was written to `out` and not yet taken.
  std::string take(const rkt::output_port& out) {
    if (GetParam() == source::bytes) return rkt::get_output_bytes(out, /*reset=*/true);
    std::string s;
    char buf[64];
    for (;;) {
      or_eof<std::size_t> n = reader_->read_bytes_avail_star(buf);
      if (!n.has_value() || *n == 0) return s;
      s.append(buf, *n);
    }
  }

 private:
  std::optional<rkt::input_port> reader_;
};

INSTANTIATE_TEST_SUITE_P(Ports, OutputTest, ::testing::Values(source::bytes, source::pipe),
                         source_name);

TEST_P(OutputTest, WritesArriveWholeAndInOrder) {
  rkt::output_port out = open();
  out.write_byte('h');
  out.write_byte(0xff);
  EXPECT_EQ(out.write_bytes("el"), 2u);
  EXPECT_EQ(out.write_bytes(""), 0u);
  // Neither port ever blocks, so the avail writes take every byte.
  EXPECT_EQ(out.write_bytes_avail("lo "), 3u);
  EXPECT_EQ(out.write_bytes_avail_star("wor"), 3u);
  EXPECT_EQ(out.write_bytes_avail(""), 0u);
  EXPECT_EQ(out.write_bytes_avail_star(""), 0u);
  out.flush();
  EXPECT_EQ(take(out), "h\xff" "ello wor");
  EXPECT_EQ(take(out), "");
}

TEST_P(OutputTest, PortAsAnEventIsReadyWithItself) {
  rkt::output_port out = open();
  std::optional<rkt::output_port> r = poll_once(out);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(*r == out);
  EXPECT_EQ(take(out), "");
}

// write_bytes_avail_evt writes a prefix of its bytes, copied when the event
// is made, at each sync.
TEST_P(OutputTest, WriteBytesAvailEvtWritesAPrefixOfItsBytesEachTimeItIsChosen) {
  rkt::output_port out = open();
  std::string bytes = "xyz";
  rkt::evt<std::size_t> e = rkt::write_bytes_avail_evt(bytes, out);
  bytes = "QQQ";
  const std::size_t n = sync_within(e);
  EXPECT_GE(n, 1u);
  EXPECT_LE(n, 3u);
  EXPECT_EQ(take(out), std::string("xyz").substr(0, n));
  const std::size_t m = sync_within(e);
  EXPECT_GE(m, 1u);
  EXPECT_EQ(take(out), std::string("xyz").substr(0, m));
  EXPECT_EQ(sync_within(rkt::write_bytes_avail_evt("", out)), 0u);
  EXPECT_EQ(take(out), "");
}

TEST_P(OutputTest, ClosedOutputRaisesFromEveryOperation) {
  rkt::output_port out = open("shut");
  EXPECT_FALSE(out.closed());
  out.close();
  EXPECT_TRUE(out.closed());
  out.close();  // idempotent
  EXPECT_TRUE(out.closed());
  const std::vector<std::pair<std::string, std::function<void()>>> ops = {
      {"write-byte", [&] { out.write_byte('a'); }},
      {"write-bytes", [&] { out.write_bytes("ab"); }},
      {"write-bytes-avail", [&] { out.write_bytes_avail("ab"); }},
      {"write-bytes-avail*", [&] { out.write_bytes_avail_star("ab"); }},
      {"flush-output", [&] { out.flush(); }},
  };
  for (const auto& [who, op] : ops) {
    SCOPED_TRACE(who);
    expect_closed_error(op, who, "output", "shut");
  }
  EXPECT_EQ(out.write_bytes(""), 0u) << "Racket writes zero bytes to a closed port";
}

TEST_P(OutputTest, OnAClosedOutputThePortAndPortClosedEvtAreReadyAndTheWriteEventRaises) {
  rkt::output_port out = open("shut");
  EXPECT_FALSE(ready_now(rkt::port_closed_evt(out)));
  out.close();
  std::optional<rkt::output_port> r = poll_once(out);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(*r == out);
  EXPECT_TRUE(ready_now(rkt::port_closed_evt(out)));
  expect_evt_closed_error([&] { poll_once(rkt::write_bytes_avail_evt("ab", out)); },
                          "write_bytes_avail_evt", "output");
}

TEST_P(OutputTest, HasNoBufferMode) {
  rkt::output_port out = open();
  EXPECT_EQ(out.get_buffer_mode(), std::nullopt);
  EXPECT_THROW(out.set_buffer_mode(rkt::buffer_mode::block), rkt::exn_fail_contract);
  EXPECT_THROW(out.set_buffer_mode(rkt::buffer_mode::line), rkt::exn_fail_contract);
  EXPECT_THROW(out.set_buffer_mode(rkt::buffer_mode::none), rkt::exn_fail_contract);
}

TEST_P(OutputTest, NameIsTheGivenName) { EXPECT_EQ(open("my output").name(), "my output"); }

// ---------------------------------------------------------------------------
// Pipes.

class PipeTest : public rkt::test::clean_test {};

TEST_F(PipeTest, EndsAreNamedPipeByDefault) {
  pipe_ends p = new_pipe();
  EXPECT_EQ(p.in.name(), "pipe");
  EXPECT_EQ(p.out.name(), "pipe");
  pipe_ends q = new_pipe(std::nullopt, "reading end", "writing end");
  EXPECT_EQ(q.in.name(), "reading end");
  EXPECT_EQ(q.out.name(), "writing end");
}

TEST_F(PipeTest, AnEmptyOpenPipeHasNothingToRead) {
  pipe_ends p = new_pipe();
  char buf[4];
  EXPECT_FALSE(p.in.byte_ready());
  EXPECT_EQ(p.in.read_bytes_avail_star(buf), 0u);
  EXPECT_EQ(p.in.peek_bytes_avail_star(buf), 0u);
  EXPECT_EQ(p.in.read_bytes_avail(std::span<char>()), 0u);  // does not block
  EXPECT_EQ(p.in.read_bytes(0), "");                         // nor this
  EXPECT_FALSE(poll_once(p.in).has_value());
  EXPECT_FALSE(poll_once(rkt::read_bytes_evt(1, p.in)).has_value());
  EXPECT_FALSE(poll_once(rkt::read_line_evt(p.in)).has_value());
  EXPECT_FALSE(poll_once(rkt::eof_evt(p.in)));
  std::optional<or_eof<std::string>> zero = poll_once(rkt::read_bytes_evt(0, p.in));
  ASSERT_TRUE(zero.has_value());
  EXPECT_EQ(*zero, "");
  EXPECT_EQ(rkt::pipe_content_length(p.in), 0u);
  p.out.write_bytes("ab");
  EXPECT_TRUE(p.in.byte_ready());
  EXPECT_EQ(rkt::pipe_content_length(p.in), 2u);
  EXPECT_EQ(rkt::pipe_content_length(p.out), 2u);
}

TEST_F(PipeTest, ReadByteParksUntilAByteArrivesOrTheOutputCloses) {
  pipe_ends p = new_pipe();
  std::vector<or_eof<uint8_t>> got;
  parked_thread reader([&] {
    got.push_back(p.in.read_byte());
    got.push_back(p.in.read_byte());
  });
  EXPECT_TRUE(got.empty());
  p.out.write_byte('x');
  rkt::yield();  // the reader takes it and parks again
  EXPECT_EQ(got.size(), 1u);
  p.out.close();
  reader.join();
  EXPECT_EQ(got, (std::vector<or_eof<uint8_t>>{uint8_t{'x'}, rkt::eof}));
}

TEST_F(PipeTest, ReadBytesAvailReturnsAsSoonAsSomeBytesArrive) {
  pipe_ends p = new_pipe();
  char buf[10];
  or_eof<std::size_t> n;
  parked_thread reader([&] { n = p.in.read_bytes_avail(buf); });
  p.out.write_bytes("ab");
  reader.join();
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(std::string_view(buf, 2), "ab");
}

TEST_F(PipeTest, ReadBytesParksUntilItHasEveryByte) {
  pipe_ends p = new_pipe();
  or_eof<std::string> got;
  bool done = false;
  parked_thread reader([&] {
    got = p.in.read_bytes(5);
    done = true;
  });
  p.out.write_bytes("ab");
  rkt::yield();
  EXPECT_FALSE(done);
  p.out.write_bytes("cd");
  rkt::yield();
  EXPECT_FALSE(done);
  p.out.write_bytes("efg");
  reader.join();
  EXPECT_EQ(got, "abcde");
  EXPECT_EQ(bounded([&] { return p.in.read_bytes(2); }), "fg");
}

struct split_case {
  line_mode mode;
  std::string first;       // written first
  std::string second;      // written once the reader has seen `first`
  bool line_after_first;   // whether read_line can return on `first` alone
  std::vector<std::string> lines;  // then EOF (the writer closes)
};

// A reader parked in read_line while another green thread writes a
// separator in two pieces: the line ends where Racket's would. 'any waits
// after "\r" to see whether "\n" follows; 'any-one and 'return do not.
TEST_F(PipeTest, ReadLineWaitsOutASeparatorSplitAcrossTwoWrites) {
  const std::vector<split_case> cases = {
      {line_mode::linefeed, "ab", "c\nd", false, {"abc", "d"}},
      {line_mode::linefeed, "ab\r", "\n", false, {"ab\r"}},
      {line_mode::return_, "ab", "\rc", false, {"ab", "c"}},
      {line_mode::return_, "ab\r", "\n", true, {"ab", "\n"}},
      {line_mode::return_linefeed, "ab\r", "\ncd", false, {"ab", "cd"}},
      {line_mode::return_linefeed, "a\r", "b\r\n", false, {"a\rb"}},
      {line_mode::any, "ab\r", "\ncd", false, {"ab", "cd"}},
      {line_mode::any, "ab\r", "cd", false, {"ab", "cd"}},
      {line_mode::any, "ab\n", "\rcd", true, {"ab", "", "cd"}},
      {line_mode::any_one, "ab\r", "\ncd", true, {"ab", "", "cd"}},
  };
  for (const split_case& c : cases) {
    SCOPED_TRACE(mode_name(c.mode) + " on \"" + escaped(c.first) + "\" then \"" +
                 escaped(c.second) + "\"");
    pipe_ends p = new_pipe();
    std::vector<std::string> lines;
    rkt::semaphore first_line;   // the reader has returned its first line
    rkt::semaphore wrote_first;  // the writer has written `first`
    rkt::semaphore go_on;        // the writer may write `second`
    scoped_thread reader(reporting([&] {
      while (or_eof<std::string> line = p.in.read_line(c.mode)) {
        lines.push_back(*line);
        if (lines.size() == 1) first_line.post();
      }
    }));
    scoped_thread writer(reporting([&] {
      p.out.write_bytes(c.first);
      wrote_first.post();
      sync_within(go_on);
      p.out.write_bytes(c.second);
      p.out.close();
    }));
    sync_within(wrote_first);
    if (c.line_after_first) {
      sync_within(first_line.peek_evt());
    } else {
      for (int i = 0; i < 3; ++i) rkt::yield();  // the woken reader runs
      EXPECT_FALSE(ready_now(first_line.peek_evt()))
          << "read_line returned before it could know where the line ends";
    }
    go_on.post();
    reader.join();
    writer.join();
    EXPECT_EQ(lines, c.lines);
  }
}

// Racket: with limit 3, write-bytes-avail* of "abcdef" writes 3; after a
// peek of 2, "defgh" writes 2 (peeked bytes extend the capacity), and the
// content length is 5.
TEST_F(PipeTest, PeekedBytesExtendALimitedPipesCapacity) {
  pipe_ends p = new_pipe(3);
  EXPECT_EQ(p.out.write_bytes_avail_star("abcdef"), 3u);
  EXPECT_EQ(p.out.write_bytes_avail_star("x"), 0u);  // full; nothing was buffered
  EXPECT_EQ(p.in.peek_bytes(2), "ab");
  EXPECT_EQ(p.out.write_bytes_avail_star("defgh"), 2u);
  EXPECT_EQ(p.out.write_bytes_avail_star("x"), 0u);
  EXPECT_EQ(rkt::pipe_content_length(p.in), 5u);
  EXPECT_EQ(rkt::pipe_content_length(p.out), 5u);
  char buf[8];
  or_eof<std::size_t> n = p.in.read_bytes_avail_star(buf);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(std::string_view(buf, *n), "abcde");
  EXPECT_EQ(rkt::pipe_content_length(p.in), 0u);
  EXPECT_EQ(p.out.write_bytes_avail_star("wxyz"), 3u);
}

// write_bytes_avail writes what fits, and parks only while nothing fits.
TEST_F(PipeTest, WriteBytesAvailWritesWhatFitsAndParksOnlyWhileNothingFits) {
  pipe_ends p = new_pipe(3);
  EXPECT_EQ(bounded([&] { return p.out.write_bytes_avail("abcdef"); }), 3u);
  std::optional<std::size_t> n;
  parked_thread writer([&] { n = p.out.write_bytes_avail("xyz"); });
  EXPECT_EQ(n, std::nullopt);
  EXPECT_EQ(bounded([&] { return p.in.read_byte(); }), uint8_t{'a'});  // room for one
  writer.join();
  EXPECT_EQ(n, 1u);
  char buf[8];
  EXPECT_EQ(p.in.read_bytes_avail_star(buf), 3u);
  EXPECT_EQ(std::string_view(buf, 3), "bcx");
}

TEST_F(PipeTest, AWriterParksOnAFullPipeUntilAReaderDrainsIt) {
  pipe_ends p = new_pipe(4);
  std::optional<std::size_t> wrote;
  parked_thread writer([&] { wrote = p.out.write_bytes("abcdefghij"); });
  EXPECT_TRUE(writer.running());
  EXPECT_EQ(rkt::pipe_content_length(p.in), 4u);
  EXPECT_EQ(bounded([&] { return p.in.read_bytes(3); }), "abc");
  rkt::yield();  // the writer fills the room again
  EXPECT_TRUE(writer.running());
  EXPECT_EQ(rkt::pipe_content_length(p.in), 4u);
  EXPECT_EQ(sync_within(rkt::read_bytes_evt(7, p.in)), "defghij");
  writer.join();
  EXPECT_EQ(wrote, 10u);
  EXPECT_EQ(rkt::pipe_content_length(p.in), 0u);
}

// The output end as an event: ready while a byte would fit; a sync parked on
// it wakes when a reader makes room, and writes nothing.
TEST_F(PipeTest, OutputPortEventIsReadyOnlyWhileThereIsRoom) {
  pipe_ends p = new_pipe(2);
  std::optional<rkt::output_port> r = poll_once(p.out);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(*r == p.out);
  EXPECT_EQ(bounded([&] { return p.out.write_bytes("ab"); }), 2u);
  EXPECT_FALSE(poll_once(p.out).has_value());
  std::optional<rkt::output_port> woke;
  parked_thread waiter([&] { woke = sync_within(p.out); });
  EXPECT_EQ(bounded([&] { return p.in.read_byte(); }), uint8_t{'a'});
  waiter.join();
  ASSERT_TRUE(woke.has_value());
  EXPECT_TRUE(*woke == p.out);
  EXPECT_EQ(rkt::pipe_content_length(p.in), 1u);
}

TEST_F(PipeTest, WriteBytesAvailEvtWritesOnlyWhatFits) {
  pipe_ends p = new_pipe(3);
  EXPECT_EQ(bounded([&] { return p.out.write_bytes("ab"); }), 2u);
  EXPECT_EQ(sync_within(rkt::write_bytes_avail_evt("xyz", p.out)), 1u);
  EXPECT_FALSE(poll_once(rkt::write_bytes_avail_evt("q", p.out)).has_value());
  EXPECT_EQ(rkt::pipe_content_length(p.in), 3u);
  // A sync parked on it writes once there is room, no more than fits.
  std::optional<std::size_t> n;
  parked_thread writer([&] { n = sync_within(rkt::write_bytes_avail_evt("QRS", p.out)); });
  EXPECT_EQ(bounded([&] { return p.in.read_byte(); }), uint8_t{'a'});
  writer.join();
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(bounded([&] { return p.in.read_bytes(3); }), "bxQ");
}

// Racket: bytes written after the input end is closed are dropped, and the
// write does not block even past the limit.
TEST_F(PipeTest, WritesAfterTheInputIsClosedAreDropped) {
  pipe_ends p = new_pipe(2);
  p.in.close();
  std::optional<std::size_t> n;
  scoped_thread writer(reporting([&] {
    p.out.write_byte('a');
    n = p.out.write_bytes("bcdefg");
  }));
  writer.join();
  EXPECT_EQ(n, 6u);
  EXPECT_EQ(rkt::pipe_content_length(p.out), 0u);
  EXPECT_FALSE(p.out.closed());
}

TEST_F(PipeTest, AWriterParkedOnAFullPipeCompletesWhenTheInputIsClosed) {
  pipe_ends p = new_pipe(2);
  std::optional<std::size_t> n;
  parked_thread writer([&] { n = p.out.write_bytes("abcdef"); });
  EXPECT_EQ(n, std::nullopt);
  p.in.close();
  writer.join();
  EXPECT_EQ(n, 6u);
}

TEST_F(PipeTest, AWriterParkedOnAFullPipeRaisesWhenItsOutputIsClosed) {
  pipe_ends p = new_pipe(2, "pipe", "writing end");
  std::string error;
  parked_thread writer([&] {
    try {
      p.out.write_bytes("abcdef");
      ADD_FAILURE() << "write_bytes returned on a closed port";
    } catch (const rkt::exn_fail& e) {
      error = e.what();
    }
  });
  p.out.close();
  writer.join();
  EXPECT_THAT(error, StartsWith("write-bytes: output port is closed"));
  EXPECT_THAT(error, HasSubstr("#<output-port:writing end>"));
  // What went in before the close is still there, then EOF.
  EXPECT_EQ(bounded([&] { return p.in.read_bytes(5); }), "ab");
  EXPECT_EQ(bounded([&] { return p.in.read_byte(); }), rkt::eof);
}

// Threads parked in each kind of read on a pipe wake with the closed-port
// error of their operation when another thread closes the input end; a sync
// on the port itself wakes ready with the port; a sync on a read event
// keeps waiting for its other event.
TEST_F(PipeTest, ReadersParkedOnAPipeWakeWithAnErrorWhenItsInputIsClosed) {
  pipe_ends p = new_pipe(std::nullopt, "reading end");
  const std::vector<std::pair<std::string, std::function<void()>>> ops = {
      {"read-byte", [&] { p.in.read_byte(); }},
      {"peek-byte", [&] { p.in.peek_byte(); }},
      {"read-bytes", [&] { p.in.read_bytes(3); }},
      {"read-bytes!",
       [&] {
         char buf[3];
         p.in.read_bytes_into(buf);
       }},
      {"peek-bytes", [&] { p.in.peek_bytes(3, 1); }},
      {"read-bytes-avail!",
       [&] {
         char buf[3];
         p.in.read_bytes_avail(buf);
       }},
      {"peek-bytes-avail!",
       [&] {
         char buf[3];
         p.in.peek_bytes_avail(buf);
       }},
      {"read-line", [&] { p.in.read_line(line_mode::any); }},
  };
  std::vector<std::string> errors(ops.size());
  std::vector<std::unique_ptr<parked_thread>> readers;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    readers.push_back(std::make_unique<parked_thread>([&, i] {
      try {
        ops[i].second();
        ADD_FAILURE() << ops[i].first << " returned on a closed port";
      } catch (const rkt::exn_fail& e) {
        errors[i] = e.what();
      }
    }));
  }
  // A parked read event is never ready once the port is closed: its sync
  // keeps waiting, and the semaphore posted after the close wins it.
  rkt::semaphore after_close;
  std::optional<std::string> evt_result;
  parked_thread evt_reader([&] {
    evt_result = rkt::sync(
        rkt::wrap_evt(rkt::read_bytes_evt(3, p.in), [](or_eof<std::string>) { return "read"s; }),
        rkt::wrap_evt(after_close, [] { return "semaphore"s; }));
  });
  std::optional<rkt::input_port> port_result;
  parked_thread port_waiter([&] { port_result = rkt::sync(p.in); });

  p.in.close();
  for (const auto& t : readers) t->join();
  port_waiter.join();
  EXPECT_TRUE(evt_reader.running()) << "the read event's sync returned on a closed port";
  after_close.post();
  evt_reader.join();
  for (std::size_t i = 0; i < ops.size(); ++i) {
    SCOPED_TRACE(ops[i].first);
    EXPECT_THAT(errors[i], StartsWith(ops[i].first + ": input port is closed"));
    EXPECT_THAT(errors[i], HasSubstr("#<input-port:reading end>"));
  }
  EXPECT_EQ(evt_result, "semaphore");
  ASSERT_TRUE(port_result.has_value());
  EXPECT_TRUE(*port_result == p.in);
}

// The input end as an event: a sync parked on it wakes when a byte arrives
// (consuming nothing) and when the output closes.
TEST_F(PipeTest, InputPortEventWakesAParkedSyncWithoutConsuming) {
  pipe_ends p = new_pipe();
  std::optional<rkt::input_port> woke;
  {
    parked_thread waiter([&] { woke = sync_within(p.in); });
    p.out.write_bytes("z");
    waiter.join();
  }
  ASSERT_TRUE(woke.has_value());
  EXPECT_TRUE(*woke == p.in);
  EXPECT_EQ(bounded([&] { return p.in.read_byte(); }), uint8_t{'z'});
  woke.reset();
  {
    parked_thread waiter([&] { woke = sync_within(p.in); });
    p.out.close();
    waiter.join();
  }
  ASSERT_TRUE(woke.has_value());
  EXPECT_EQ(bounded([&] { return p.in.read_byte(); }), rkt::eof);
}

TEST_F(PipeTest, PortClosedEvtWakesAWaiterWhenItsOwnEndCloses) {
  pipe_ends p = new_pipe();
  EXPECT_FALSE(ready_now(rkt::port_closed_evt(p.in)));
  EXPECT_FALSE(ready_now(rkt::port_closed_evt(p.out)));
  parked_thread waiter([&] { sync_within(rkt::port_closed_evt(p.in)); });
  p.out.close();  // the other end
  EXPECT_TRUE(ready_now(rkt::port_closed_evt(p.out)));
  rkt::yield();
  EXPECT_TRUE(waiter.running());
  EXPECT_FALSE(ready_now(rkt::port_closed_evt(p.in)));
  p.in.close();
  waiter.join();
  EXPECT_TRUE(ready_now(rkt::port_closed_evt(p.in)));
}

// Dropping the last handle of an end closes it: of the output, the reader
// gets EOF after the bytes; of the input, later writes are dropped.
TEST_F(PipeTest, DroppingTheLastHandleOfAnEndClosesIt) {
  std::optional<rkt::input_port> in;
  std::optional<rkt::output_port> out;
  {
    auto [i, o] = rkt::make_pipe();
    in.emplace(i);
    out.emplace(o);
  }
  out->write_bytes("xy");
  out.reset();
  EXPECT_EQ(bounded([&] { return in->read_bytes(5); }), "xy");
  EXPECT_EQ(bounded([&] { return in->read_byte(); }), rkt::eof);

  {
    auto [i, o] = rkt::make_pipe(2);
    in.emplace(i);
    out.emplace(o);
  }
  in.reset();
  std::optional<std::size_t> n;
  scoped_thread writer(reporting([&] { n = out->write_bytes("abcdef"); }));
  writer.join();
  EXPECT_EQ(n, 6u);
  EXPECT_EQ(rkt::pipe_content_length(*out), 0u);
}

TEST_F(PipeTest, PipeContentLengthRejectsOtherPorts) {
  EXPECT_THROW(rkt::pipe_content_length(rkt::open_input_bytes("abc")), rkt::exn_fail_contract);
  EXPECT_THROW(rkt::pipe_content_length(rkt::open_output_bytes()), rkt::exn_fail_contract);
}

// Killing threads parked in a pipe read (plain or through an event) or in a
// write to a full pipe unwinds their stacks, and the dead take nothing:
// bytes written afterwards all reach the next reader, and a killed writer
// writes no more.
TEST_F(PipeTest, KillingThreadsParkedInPortReadsAndWritesUnwindsThem) {
  pipe_ends p = new_pipe();
  pipe_ends full = new_pipe(2);
  std::atomic<int> unwound{0};
  parked_thread r1([&] {
    unwind_counter u(unwound);
    p.in.read_bytes(5);
    ADD_FAILURE() << "read_bytes returned";
  });
  parked_thread r2([&] {
    unwind_counter u(unwound);
    rkt::sync(rkt::read_bytes_evt(5, p.in));
    ADD_FAILURE() << "read_bytes_evt was chosen";
  });
  parked_thread r3([&] {
    unwind_counter u(unwound);
    p.in.read_line();
    ADD_FAILURE() << "read_line returned";
  });
  parked_thread w([&] {
    unwind_counter u(unwound);
    full.out.write_bytes("abcdef");
    ADD_FAILURE() << "write_bytes returned";
  });
  rkt::thread killer([&] {
    r1.get().kill();
    r2.get().kill();
    r3.get().kill();
    w.get().kill();
  });
  await(killer);
  EXPECT_FALSE(r1.running());
  EXPECT_FALSE(r2.running());
  EXPECT_FALSE(r3.running());
  EXPECT_FALSE(w.running());
  EXPECT_EQ(unwound.load(), 4);

  p.out.write_bytes("hello\n");
  EXPECT_EQ(sync_within(rkt::read_bytes_evt(6, p.in)), "hello\n");
  char buf[8];
  EXPECT_EQ(full.in.read_bytes_avail_star(buf), 2u);
  EXPECT_EQ(std::string_view(buf, 2), "ab");
  rkt::yield();
  EXPECT_EQ(full.in.read_bytes_avail_star(buf), 0u);
  EXPECT_EQ(rkt::pipe_content_length(full.in), 0u);
}

// ---------------------------------------------------------------------------
// Port events on pipes: atomicity under contention and timeouts.

class PortEvtTest : public rkt::test::clean_test {};

// A sync on a port event that times out (or a poll that finds it not ready)
// consumes nothing; the same events later read from the first byte.
TEST_F(PortEvtTest, AnEventWhoseSyncTimesOutConsumesNothing) {
  const absl::Duration kShort = absl::Milliseconds(20);
  pipe_ends p = new_pipe();
  p.out.write_bytes("abc");
  char buf[4];
  EXPECT_EQ(rkt::sync_timeout(kShort, rkt::read_bytes_evt(5, p.in)), std::nullopt);
  EXPECT_EQ(rkt::sync_timeout(kShort, rkt::read_line_evt(p.in)), std::nullopt);
  EXPECT_EQ(rkt::sync_timeout(kShort, rkt::peek_bytes_evt(3, 1, p.in)), std::nullopt);
  EXPECT_FALSE(rkt::sync_timeout(kShort, rkt::eof_evt(p.in)));
  EXPECT_EQ(poll_once(rkt::read_bytes_evt(4, p.in)), std::nullopt);
  EXPECT_EQ(rkt::pipe_content_length(p.in), 3u);
  EXPECT_EQ(bounded([&] { return p.in.peek_bytes(3); }), "abc");

  pipe_ends empty = new_pipe();
  EXPECT_EQ(rkt::sync_timeout(kShort, rkt::read_bytes_avail_evt(buf, empty.in)), std::nullopt);

  pipe_ends full = new_pipe(1);
  full.out.write_byte('x');
  EXPECT_EQ(rkt::sync_timeout(kShort, rkt::write_bytes_avail_evt("yz", full.out)), std::nullopt);
  EXPECT_EQ(rkt::pipe_content_length(full.in), 1u);

  p.out.write_bytes("de\nf");
  EXPECT_EQ(sync_within(rkt::read_line_evt(p.in)), "abcde");
  EXPECT_EQ(sync_within(rkt::read_bytes_evt(1, p.in)), "f");
}

// A sync parked on read_bytes_evt(5) takes nothing while fewer than 5 bytes
// are there, and gets all 5 once another thread's writes supply them.
TEST_F(PortEvtTest, AReadBytesEvtParkedForFiveBytesCompletesAcrossSeveralWrites) {
  pipe_ends p = new_pipe();
  or_eof<std::string> got;
  bool done = false;
  parked_thread reader([&] {
    got = sync_within(rkt::read_bytes_evt(5, p.in));
    done = true;
  });
  rkt::semaphore step;
  rkt::semaphore wrote;
  scoped_thread writer(reporting([&] {
    for (std::string_view piece : {"ab", "c", "def"}) {
      sync_within(step);
      p.out.write_bytes(piece);
      wrote.post();
    }
  }));
  step.post();
  sync_within(wrote);
  rkt::yield();
  EXPECT_FALSE(done);
  EXPECT_EQ(rkt::pipe_content_length(p.in), 2u);
  step.post();
  sync_within(wrote);
  rkt::yield();
  EXPECT_FALSE(done);
  EXPECT_EQ(rkt::pipe_content_length(p.in), 3u);
  step.post();
  sync_within(wrote);
  reader.join();
  writer.join();
  EXPECT_EQ(got, "abcde");
  EXPECT_EQ(rkt::pipe_content_length(p.in), 1u);
  EXPECT_EQ(bounded([&] { return p.in.read_bytes(1); }), "f");
}

// On a limited pipe, a write_bytes_avail_evt that loses a choice writes
// nothing; on a full pipe it is never chosen.
TEST_F(PortEvtTest, WriteBytesAvailEvtThatLosesAChoiceWritesNothing) {
  pipe_ends p = new_pipe(4);
  p.out.write_bytes("full");
  for (int round = 0; round < 20; ++round) {
    EXPECT_EQ(race_always(rkt::write_bytes_avail_evt("no", p.out)), std::nullopt);
  }
  EXPECT_EQ(bounded([&] { return p.in.read_bytes(4); }), "full");

  std::string expected;
  std::string received;
  int wins = 0;
  int losses = 0;
  char buf[8];
  for (int round = 0; round < 200; ++round) {
    const std::string piece = std::to_string(round % 10) + "x";
    std::optional<std::size_t> r = race_always(rkt::write_bytes_avail_evt(piece, p.out));
    if (r.has_value()) {
      ++wins;
      ASSERT_GE(*r, 1u);
      ASSERT_LE(*r, piece.size());
      expected += piece.substr(0, *r);
    } else {
      ++losses;
    }
    EXPECT_EQ(rkt::pipe_content_length(p.in), r.value_or(0));
    or_eof<std::size_t> n = p.in.read_bytes_avail_star(buf);
    ASSERT_TRUE(n.has_value());
    received.append(buf, *n);
  }
  EXPECT_EQ(received, expected);
  EXPECT_GT(wins, 0);
  EXPECT_GT(losses, 0);
}

// Two green threads race read_bytes_evt(8) on one limited pipe that a third
// fills in pieces of other sizes: every chunk is one whole 8-byte record,
// contiguous in the stream, and together they are the stream, once.
TEST_F(PortEvtTest, RacingReadBytesEvtReadersGetContiguousDisjointChunks) {
  constexpr int kRecords = 1500;
  const std::string stream = records(kRecords);
  pipe_ends p = new_pipe(13);
  std::vector<std::vector<std::string>> got(2);
  auto read_all = [&](std::size_t id) {
    return reporting([&, id] {
      while (or_eof<std::string> chunk = sync_within(rkt::read_bytes_evt(kRecordSize, p.in))) {
        got[id].push_back(*chunk);
      }
    });
  };
  scoped_thread r0(read_all(0));
  scoped_thread r1(read_all(1));
  scoped_thread writer(reporting([&] {
    write_in_pieces(p.out, stream);
    p.out.close();
  }));
  r0.join();
  r1.join();
  writer.join();
  expect_disjoint_whole_records(got, kRecords);
}

// The same race between a green thread of this OS thread and one of another.
TEST_F(PortEvtTest, ReadBytesEvtReadersOnTwoOsThreadsGetContiguousDisjointChunks) {
  constexpr int kRecords = 1500;
  const std::string stream = records(kRecords);
  pipe_ends p = new_pipe(29);
  std::vector<std::vector<std::string>> got(2);
  auto read_all = [&](std::size_t id) {
    return [&, id] {
      while (or_eof<std::string> chunk = sync_within(rkt::read_bytes_evt(kRecordSize, p.in))) {
        got[id].push_back(*chunk);
      }
    };
  };
  std::jthread other = start_os_thread(read_all(1));
  close_at_exit<rkt::output_port> release(p.out);  // before the join
  scoped_thread local(reporting(read_all(0)));
  scoped_thread writer(reporting([&] {
    write_in_pieces(p.out, stream);
    p.out.close();
  }));
  local.join();
  writer.join();
  other.join();
  expect_disjoint_whole_records(got, kRecords);
}

// ---------------------------------------------------------------------------
// Byte-string ports.

class BytesPortTest : public rkt::test::clean_test {};

TEST_F(BytesPortTest, NamesDefaultToString) {
  EXPECT_EQ(rkt::open_input_bytes("x").name(), "string");
  EXPECT_EQ(rkt::open_output_bytes().name(), "string");
}

TEST_F(BytesPortTest, OpenInputBytesReadsACopy) {
  std::string s = "abc";
  rkt::input_port in = rkt::open_input_bytes(s);
  s = "xyz";
  EXPECT_EQ(in.read_bytes(5), "abc");
}

// Racket: (get-output-bytes out #f 1 3) of "hello" is "el"; with reset the
// port starts over.
TEST_F(BytesPortTest, GetOutputBytesTakesARangeAndCanReset) {
  rkt::output_port out = rkt::open_output_bytes();
  out.write_bytes("hello");
  EXPECT_EQ(rkt::get_output_bytes(out, false, 1, 3), "el");
  EXPECT_EQ(rkt::get_output_bytes(out, false, 2), "llo");
  EXPECT_EQ(rkt::get_output_bytes(out, false, 5), "");
  EXPECT_EQ(rkt::get_output_bytes(out), "hello");
  EXPECT_EQ(rkt::get_output_bytes(out, true), "hello");
  EXPECT_EQ(rkt::get_output_bytes(out), "");
  out.write_bytes("x");
  EXPECT_EQ(rkt::get_output_bytes(out), "x");
}

TEST_F(BytesPortTest, GetOutputBytesWorksAfterClose) {
  rkt::output_port out = rkt::open_output_bytes();
  out.write_bytes("abc");
  out.close();
  EXPECT_EQ(rkt::get_output_bytes(out), "abc");
  EXPECT_EQ(rkt::get_output_bytes(out, true), "abc");
  EXPECT_EQ(rkt::get_output_bytes(out), "");
}

TEST_F(BytesPortTest, GetOutputBytesRejectsOtherPortsAndRangesOutside) {
  pipe_ends p = new_pipe();
  EXPECT_THROW(rkt::get_output_bytes(p.out), rkt::exn_fail_contract);
  rkt::output_port out = rkt::open_output_bytes();
  out.write_bytes("hello");
  EXPECT_THROW(rkt::get_output_bytes(out, false, 6), rkt::exn_fail_contract);
  EXPECT_THROW(rkt::get_output_bytes(out, false, 0, 6), rkt::exn_fail_contract);
  EXPECT_THROW(rkt::get_output_bytes(out, false, 3, 2), rkt::exn_fail_contract);
  EXPECT_EQ(rkt::get_output_bytes(out), "hello");
}

// Each write is atomic: writes from two OS threads to one port stay whole.
TEST_F(BytesPortTest, WritesFromTwoOsThreadsStayWhole) {
  constexpr int kEach = 2000;
  rkt::output_port out = rkt::open_output_bytes();
  auto writer = [&](char tag) {
    return [&, tag] {
      char rec[16];
      for (int i = 0; i < kEach; ++i) {
        std::snprintf(rec, sizeof rec, "%c%06d|", tag, i);
        out.write_bytes(std::string_view(rec, kRecordSize));
      }
    };
  };
  {
    std::jthread a = start_os_thread(writer('A'));
    writer('B')();
  }
  const std::string all = rkt::get_output_bytes(out);
  ASSERT_EQ(all.size(), 2 * kEach * kRecordSize);
  int next[2] = {0, 0};
  for (std::size_t pos = 0; pos < all.size(); pos += kRecordSize) {
    const std::string_view rec = std::string_view(all).substr(pos, kRecordSize);
    ASSERT_TRUE((rec[0] == 'A' || rec[0] == 'B') && rec[7] == '|') << "torn write at " << pos;
    const int who = rec[0] - 'A';
    char expected[16];
    std::snprintf(expected, sizeof expected, "%c%06d|", rec[0], next[who]);
    ASSERT_EQ(rec, std::string_view(expected, kRecordSize));
    ++next[who];
  }
  EXPECT_EQ(next[0], kEach);
  EXPECT_EQ(next[1], kEach);
}

// ---------------------------------------------------------------------------
// copy_port.

class CopyPortTest : public rkt::test::clean_test {};

TEST_F(CopyPortTest, CopiesAPipeIntoTwoByteStringPortsUntilEof) {
  const std::string stream = records(500);
  pipe_ends p = new_pipe(64);
  rkt::output_port a = rkt::open_output_bytes();
  rkt::output_port b = rkt::open_output_bytes();
  scoped_thread copier(reporting([&] { rkt::copy_port(p.in, {a, b}); }));
  scoped_thread writer(reporting([&] {
    write_in_pieces(p.out, stream);
    p.out.close();
  }));
  copier.join();
  writer.join();
  EXPECT_EQ(rkt::get_output_bytes(a), stream);
  EXPECT_EQ(rkt::get_output_bytes(b), stream);
  EXPECT_FALSE(a.closed());
  EXPECT_FALSE(b.closed());
}

// copy_port passes each chunk on as it arrives, without waiting for more,
// and leaves its output open at EOF.
TEST_F(CopyPortTest, PassesEachChunkOnAsItArrives) {
  pipe_ends src = new_pipe();
  pipe_ends dst = new_pipe();
  const std::vector<rkt::output_port> outs = {dst.out};
  scoped_thread copier(
      reporting([&] { rkt::copy_port(src.in, std::span<const rkt::output_port>(outs)); }));
  src.out.write_bytes("x");
  EXPECT_EQ(sync_within(rkt::read_bytes_evt(1, dst.in)), "x");
  src.out.write_bytes("yz");
  EXPECT_EQ(sync_within(rkt::read_bytes_evt(2, dst.in)), "yz");
  src.out.close();
  copier.join();
  EXPECT_FALSE(dst.out.closed());
  EXPECT_FALSE(poll_once(rkt::eof_evt(dst.in)));
}

// ---------------------------------------------------------------------------
// Across OS threads.

class CrossThreadTest : public rkt::test::clean_test {};

// A writer on another OS thread pushes 1 MiB through a 4 KiB pipe in writes
// of many sizes; a green thread here reads it with read_bytes_avail. What
// arrives is the stream, byte for byte.
TEST_F(CrossThreadTest, OneMebibyteCrossesALimitedPipeFromAnotherOsThread) {
  constexpr std::size_t kTotal = std::size_t{1} << 20;
  const std::string stream = noise(kTotal);
  const uint64_t expected = fnv1a(stream);
  pipe_ends p = new_pipe(4096);
  std::jthread writer = start_os_thread([&] {
    static constexpr std::size_t kSizes[] = {1, 7, 4096, 100, 5000, 3, 65536, 4095, 2, 999};
    std::size_t pos = 0;
    for (std::size_t i = 0; pos < kTotal; ++i) {
      const std::size_t n = std::min(kTotal - pos, kSizes[i % std::size(kSizes)]);
      if (n == 1) {
        p.out.write_byte(static_cast<uint8_t>(stream[pos]));
      } else {
        EXPECT_EQ(p.out.write_bytes(std::string_view(stream).substr(pos, n)), n);
      }
      pos += n;
    }
    p.out.close();
  });
  // On failure, closing the input releases the writer (its bytes are then
  // dropped), so the join cannot hang.
  close_at_exit<rkt::input_port> release(p.in);
  uint64_t h = kFnvOffset;
  std::size_t received = 0;
  scoped_thread reader(reporting([&] {
    char buf[1500];
    while (or_eof<std::size_t> n = p.in.read_bytes_avail(buf)) {
      h = fnv1a(std::string_view(buf, *n), h);
      received += *n;
    }
  }));
  reader.join();
  EXPECT_EQ(received, kTotal);
  EXPECT_EQ(h, expected);
}

}  // namespace
