// Racket 8.7's own web server as the peer of make_unix_socket_tcp_unit:
// a child process runs tests/racket_web_server.rkt, which serves
// `serve #:tcp@ (make-unix-socket-tcp@ path)` on a socket file in a scratch
// directory; rkt connects through the unit's connect and sends two
// HTTP/1.1 requests on one connection (keep-alive), checking each status
// line, Content-Length and body, then half-closes and reads Racket's close.
//
// Racket takes a second or more to start (more on a loaded machine), and
// "the child listens now" has no event to wait on: the test retries the
// connect, pausing on an alarm, until a deadline, and stops early if the
// child has exited. The child is stopped with SIGTERM (the script then
// removes its socket file) and reaped; on any failure the child is killed
// and the scratch directory removed at scope exit. Skipped when racket is
// not installed.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "evt/alarm.h"
#include "evt/exn.h"
#include "evt/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ports/port.h"
#include "socket/tcp_unit.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/port_helpers.h"
#include "tests/testing/spawned_child.h"
#include "tests/testing/sync_within.h"

namespace {

using ::rkt::test::conn;
using ::rkt::test::on_green_thread;
using ::rkt::test::spawned_child;
using ::rkt::test::sync_within;
using ::rkt::test::temp_dir;

// How long Racket may take to answer its first connect: about 1.2 s on an
// idle machine, 5 s under load; only a broken setup reaches this.
constexpr absl::Duration kStartBound = absl::Seconds(60);

// The executable `name` on PATH (or in /usr/bin), or nullopt.
std::optional<std::string> find_program(const std::string& name) {
  const char* env = std::getenv("PATH");
  const std::string path = (env != nullptr ? std::string(env) + ":" : std::string()) + "/usr/bin";
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    const std::string candidate = path.substr(start, end - start) + "/" + name;
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

// The script, a data dependency, in the test's runfiles.
std::string script_path() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr || workspace == nullptr) return "tests/racket_web_server.rkt";
  return std::string(srcdir) + "/" + workspace + "/tests/racket_web_server.rkt";
}

// Connects through the unit once the child listens; nullopt (with a test
// failure) if it exits first or the bound passes.
std::optional<conn> connect_when_listening(rkt::tcp_unit& unit, spawned_child& child) {
  const absl::Time deadline = absl::Now() + kStartBound;
  int last_errno = 0;
  while (absl::Now() < deadline) {
    try {
      return conn(on_green_thread([&] { return unit.connect("localhost", 80); }));
    } catch (const rkt::exn_fail_network& e) {
      // ENOENT: no socket file yet; ECONNREFUSED: bound, not listening.
      last_errno = e.error_number();
      if (last_errno != ENOENT && last_errno != ECONNREFUSED) {
        ADD_FAILURE() << e.what();
        return std::nullopt;
      }
    }
    if (child.exited()) {
      ADD_FAILURE() << "racket exited before listening: "
                    << rkt::test::describe_status(child.wait());
      return std::nullopt;
    }
    const absl::Time next = absl::Now() + absl::Milliseconds(50);
    rkt::sync(rkt::alarm_evt(next));
  }
  ADD_FAILURE() << "racket did not listen within " << kStartBound << " (last errno "
                << last_errno << ")";
  return std::nullopt;
}

struct response {
  std::string status_line;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Reads one response with a Content-Length body, each read bounded.
std::optional<response> read_response(const rkt::input_port& in) {
  auto line = [&] { return sync_within(rkt::read_line_evt(in, rkt::line_mode::return_linefeed)); };
  response r;
  rkt::or_eof<std::string> status = line();
  if (!status.has_value()) {
    ADD_FAILURE() << "EOF instead of a status line";
    return std::nullopt;
  }
  r.status_line = *status;
  for (;;) {
    rkt::or_eof<std::string> h = line();
    if (!h.has_value()) {
      ADD_FAILURE() << "EOF inside the headers";
      return std::nullopt;
    }
    if (h->empty()) break;
    const std::size_t colon = h->find(':');
    if (colon == std::string::npos) {
      ADD_FAILURE() << "not a header: " << *h;
      return std::nullopt;
    }
    std::string value = h->substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    r.headers[lower(h->substr(0, colon))] = value;
  }
  auto length = r.headers.find("content-length");
  if (length == r.headers.end()) {
    ADD_FAILURE() << "no Content-Length";
    return std::nullopt;
  }
  const std::size_t n = std::stoul(length->second);
  r.body = rkt::test::arrives(in, n);
  return r;
}

class TcpUnitRacketPeerTest : public rkt::test::clean_test {};

TEST_F(TcpUnitRacketPeerTest, RacketsWebServerAnswersTwoRequestsOnOneConnection) {
  const std::optional<std::string> racket = find_program("racket");
  if (!racket) GTEST_SKIP() << "racket is not installed";
  temp_dir dir("rkt_rws");
  const std::string path = dir.file("racket.sock");
  std::shared_ptr<rkt::tcp_unit> unit = rkt::make_unix_socket_tcp_unit(path);
  // Declared after `dir`: killed and reaped before the directory goes.
  spawned_child child({.argv = {*racket, script_path(), path}, .fds = {}, .env = {}});
  ASSERT_TRUE(child.started());

  std::optional<conn> c = connect_when_listening(*unit, child);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(unit->addresses(c->in).remote_host, "127.0.0.1");

  c->out.write_bytes("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
  c->out.flush();
  std::optional<response> first = read_response(c->in);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(first->headers["content-type"], "text/plain");
  EXPECT_EQ(first->headers["server"], "Racket");
  EXPECT_EQ(first->body, "GET /hello\n");

  // The same connection: Racket kept it alive.
  c->out.write_bytes("POST /missing?x=1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n");
  c->out.flush();
  std::optional<response> second = read_response(c->in);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->status_line, "HTTP/1.1 404 Not Found");
  EXPECT_EQ(second->body, "POST /missing?x=1\n");

  // Our EOF ends the connection: Racket closes its side.
  c->out.close();
  EXPECT_EQ(rkt::test::arrives(c->in, 1), "<EOF>");
  c->in.close();

  child.send_signal(SIGTERM);
  const std::optional<int> status = child.wait();
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(rkt::test::is_socket_file(path)) << "racket removes its socket file on SIGTERM";
}

}  // namespace
