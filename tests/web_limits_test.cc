// rkt::web::serve's limits, timeouts and failures, over a Unix socket and
// TCP: each limit answered with its status (where Racket closes silently),
// idle and request timeouts, the response timeout, a throwing handler or
// writer, and a client that vanishes mid-response.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "custodian/custodian.h"
#include "evt/semaphore.h"
#include "ports/port.h"
#include "tests/testing/fd_leak_check.h"
#include "tests/testing/http_helpers.h"
#include "web/server.h"

namespace {

using rkt::test::conn;
using rkt::test::http_response;
using rkt::test::read_response;
using rkt::test::transport_kind;
using rkt::web::request;
using rkt::web::response;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

response ok(request& req) { return response::text("ok " + req.read_body()); }

class WebLimits : public rkt::test::web_test {
 protected:
  // Sends `bytes` on a fresh connection; expects `status` with Connection:
  // close, then EOF.
  void expect_answer_then_close(const std::string& bytes, int status) {
    conn c = connect();
    send(c, bytes);
    http_response r = read_response(c.in);
    EXPECT_EQ(r.status, status) << bytes.substr(0, 60);
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_TRUE(rkt::test::at_eof(c.in));
    c.close();
  }
};

TEST_P(WebLimits, MalformedRequestsGet400) {
  start(ok);
  expect_answer_then_close("GARBAGE\r\n\r\n", 400);
  expect_answer_then_close("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400);
  expect_answer_then_close("GET / HTTP/1.1\nHost: x\n\n", 400);
  expect_answer_then_close(
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      400);
  expect_answer_then_close("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                           400);
  EXPECT_THAT(log(), IsEmpty());
}

TEST_P(WebLimits, LongTargetGets414) {
  start(ok, [](rkt::web::options& o) { o.limits.request_line = 100; });
  expect_answer_then_close("GET /" + std::string(200, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", 414);
}

TEST_P(WebLimits, LargeHeaderGets431) {
  start(ok, [](rkt::web::options& o) { o.limits.header = 100; });
  expect_answer_then_close("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(200, 'v') +
                               "\r\n\r\n",
                           431);
  expect_answer_then_close(
      "GET / HTTP/1.1\r\nHost: x\r\nX-" + std::string(200, 'n') + ": v\r\n\r\n", 431);
}

TEST_P(WebLimits, DefaultHeaderLimitIs8KiB) {
  start(ok);
  expect_answer_then_close("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " +
                               std::string(9 * 1024, 'v') + "\r\n\r\n",
                           431);
  conn c = connect();
  send(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Fits: " + std::string(8000, 'v') + "\r\n\r\n");
  EXPECT_EQ(read_response(c.in).status, 200);
  c.close();
}

TEST_P(WebLimits, TooManyHeadersGet431) {
  start(ok, [](rkt::web::options& o) { o.limits.header_count = 5; });
  std::string req = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 6; ++i) req += "X-" + std::to_string(i) + ": v\r\n";
  expect_answer_then_close(req + "\r\n", 431);
  conn c = connect();
  send(c, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
  EXPECT_EQ(read_response(c.in).status, 200);
  c.close();
}

TEST_P(WebLimits, LargeBodyGets413) {
  start(ok, [](rkt::web::options& o) { o.limits.body = 10; });
  expect_answer_then_close("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", 413);
  expect_answer_then_close(
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n"
      "8\r\n12345678\r\n0\r\n\r\n",
      413);
  conn c = connect();
  send(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
  EXPECT_EQ(read_response(c.in).body, "ok 0123456789");
  c.close();
}

TEST_P(WebLimits, IncompleteRequestGets408) {
  start(ok, [](rkt::web::options& o) { o.request_timeout = absl::Milliseconds(200); });
  conn c = connect();
  send(c, "GET / HTTP/1.1\r\nHo");
  http_response r = read_response(c.in);
  EXPECT_EQ(r.status, 408);
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(rkt::test::at_eof(c.in));
  c.close();
  // A body that stops coming: 408 too.
  conn d = connect();
  send(d, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc");
  EXPECT_EQ(read_response(d.in).status, 408);
  d.close();
  EXPECT_THAT(log(), IsEmpty());
}

TEST_P(WebLimits, IdleConnectionJustCloses) {
  start(ok, [](rkt::web::options& o) { o.request_timeout = absl::Milliseconds(200); });
  conn c = connect();
  EXPECT_TRUE(read_response(c.in).eof);
  c.close();
  // After a request too: the keep-alive timeout closes without a word.
  conn d = connect();
  send(d, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(d.in).status, 200);
  EXPECT_TRUE(read_response(d.in).eof);
  d.close();
}

TEST_P(WebLimits, ResponseTimeoutShutsTheConnectionDown) {
  auto entered = std::make_shared<rkt::semaphore>();
  start(
      [entered](request& req) {
        if (req.path() == "/hang") {
          entered->post();
          rkt::sync(rkt::never_evt());
        }
        return response::text("fine");
      },
      [](rkt::web::options& o) { o.response_timeout = absl::Milliseconds(200); });
  conn c = connect();
  send(c, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n");
  rkt::test::sync_within(*entered);
  EXPECT_TRUE(read_response(c.in).eof);
  c.close();
  conn d = connect();
  send(d, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(d.in).body, "fine");
  d.close();
}

TEST_P(WebLimits, ThrowingHandlerGets500AndTheServerGoesOn) {
  start([](request& req) -> response {
    if (req.path() == "/boom") throw std::runtime_error("kaboom");
    return response::text("fine");
  });
  expect_answer_then_close("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n", 500);
  ASSERT_THAT(log(), SizeIs(1));
  EXPECT_THAT(log()[0], HasSubstr("kaboom"));
  EXPECT_THAT(log()[0], HasSubstr("/boom"));
  conn c = connect();
  send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(c.in).body, "fine");
  c.close();
}

TEST_P(WebLimits, BadResponseHeaderGets500) {
  start([](request&) {
    response r = response::text("x");
    r.headers.emplace_back("X-Split", "a\r\nInjected: 1");
    return r;
  });
  expect_answer_then_close("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 500);
  EXPECT_THAT(log(), SizeIs(1));
}

TEST_P(WebLimits, WriterThrowingBeforeAnyByteGets500) {
  start([](request&) {
    response r;
    r.writer = [](const rkt::output_port&) { throw std::runtime_error("no body today"); };
    return r;
  });
  expect_answer_then_close("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 500);
  ASSERT_THAT(log(), SizeIs(1));
  EXPECT_THAT(log()[0], HasSubstr("no body today"));
}

TEST_P(WebLimits, WriterThrowingAfterBytesClosesTheConnection) {
  start([](request&) {
    response r;
    r.writer = [](const rkt::output_port& out) {
      out.write_bytes("abc");
      out.flush();
      rkt::yield();
      throw std::runtime_error("half way");
    };
    return r;
  });
  conn c = connect();
  send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  // The head and the first chunk, then EOF without the last chunk.
  std::string got = rkt::test::read_to_eof(c.in);
  EXPECT_THAT(got, HasSubstr("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(got, ::testing::EndsWith("\r\n\r\n3\r\nabc\r\n"));
  c.close();
  ASSERT_THAT(log(), SizeIs(1));
  EXPECT_THAT(log()[0], HasSubstr("half way"));
}

TEST_P(WebLimits, ClientVanishingMidResponseCostsOnlyItsConnection) {
  // Each connection's custodian, seen from its handler: its shutdown is the
  // connection's last act.
  // Handlers may run on two OS threads: the vector is under a mutex.
  struct seen {
    std::mutex mu;
    std::vector<rkt::custodian> custodians;
  };
  auto custodians_seen = std::make_shared<seen>();
  start([custodians_seen](request& req) {
    {
      std::lock_guard<std::mutex> g(custodians_seen->mu);
      custodians_seen->custodians.push_back(rkt::current_custodian());
    }
    if (req.path() == "/big") {
      response r;
      r.writer = [](const rkt::output_port& out) {
        const std::string block(64 * 1024, 'x');
        for (int i = 0; i < 1000; ++i) out.write_bytes(block);
      };
      return r;
    }
    return response::text(std::string(4 * 1024 * 1024, 'y'));
  });
  rkt::test::fd_leak_check fds;
  for (const char* path : {"/big", "/bytes"}) {
    conn c = connect();
    send(c, std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(rkt::test::arrives(c.in, 9), "HTTP/1.1 ");
    c.close();  // unread bytes: the kernel resets the connection
  }
  std::vector<rkt::custodian> custodians;
  {
    std::lock_guard<std::mutex> g(custodians_seen->mu);
    custodians = custodians_seen->custodians;
  }
  ASSERT_THAT(custodians, SizeIs(2));
  for (const rkt::custodian& cust : custodians) rkt::test::sync_within(cust.shutdown_evt());
  EXPECT_THAT(fds.leaked(), IsEmpty()) << fds.describe(fds.leaked());
  EXPECT_THAT(log(), IsEmpty());
  conn d = connect();
  send(d, "GET /bytes HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(d.in).status, 200);
  d.close();
}

INSTANTIATE_TEST_SUITE_P(TransportsAndThreads, WebLimits,
                         rkt::test::all_web_setups(),
                         rkt::test::web_setup_name);

}  // namespace
