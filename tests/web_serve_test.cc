// rkt::web::serve speaking HTTP/1.1, over a Unix socket and over TCP port 0:
// requests and responses of every shape, keep-alive, pipelining, a client
// that sends one byte at a time, Expect: 100-continue, Connection: close
// both ways, HTTP/1.0, streamed bodies both ways.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "ports/port.h"
#include "tests/testing/http_helpers.h"
#include "web/server.h"

namespace {

using rkt::test::conn;
using rkt::test::http_response;
using rkt::test::read_response;
using rkt::test::transport_kind;
using rkt::web::request;
using rkt::web::response;
using ::testing::IsEmpty;

// Answers with the request's method, path, query and body, and echoes the
// X-Echo fields.
response describe(request& req) {
  std::string body = std::string(req.method()) + " " + std::string(req.path()) + " ?" +
                     std::string(req.query()) + " " + std::to_string(req.version_major()) +
                     "." + std::to_string(req.version_minor()) + " [" + req.read_body() + "]";
  response r = response::text(body);
  for (std::string_view v : req.header_values("x-echo")) r.headers.emplace_back("X-Echo", v);
  return r;
}

class WebServe : public rkt::test::web_test {};

TEST_P(WebServe, GetAnswersWithLengthDateAndServer) {
  start(describe);
  conn c = connect();
  send(c, "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
  http_response r = read_response(c.in);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.reason, "OK");
  EXPECT_EQ(r.body, "GET /a/b ?x=1 1.1 []");
  EXPECT_EQ(r.header("Content-Length"), std::to_string(r.body.size()));
  EXPECT_EQ(r.header("Server"), "rkt");
  ASSERT_TRUE(r.header("Date").has_value());
  EXPECT_THAT(*r.header("Date"), ::testing::EndsWith(" GMT"));
  EXPECT_EQ(r.header("Connection"), std::nullopt);
  c.close();
  EXPECT_THAT(log(), IsEmpty());
}

TEST_P(WebServe, HeadSendsHeadersOnly) {
  start(describe);
  conn c = connect();
  send(c, "HEAD /x HTTP/1.1\r\nHost: h\r\n\r\nGET /y HTTP/1.1\r\nHost: h\r\n\r\n");
  http_response r = read_response(c.in, /*head_request=*/true);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Length"), std::to_string(std::string("HEAD /x ? 1.1 []").size()));
  // The next response follows at once: no body was sent for HEAD.
  EXPECT_EQ(read_response(c.in).body, "GET /y ? 1.1 []");
  c.close();
}

TEST_P(WebServe, PostWithContentLength) {
  start(describe);
  conn c = connect();
  send(c, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(read_response(c.in).body, "POST /p ? 1.1 [hello]");
  c.close();
}

TEST_P(WebServe, ChunkedUploadIsDecoded) {
  start(describe);
  conn c = connect();
  send(c,
       "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
       "5\r\nhello\r\n1;ext=1\r\n,\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
  EXPECT_EQ(read_response(c.in).body, "POST /c ? 1.1 [hello, world]");
  // The connection stays usable.
  send(c, "GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(read_response(c.in).body, "GET /after ? 1.1 []");
  c.close();
}

TEST_P(WebServe, LargeBodyStreamsAndIsReadWhole) {
  start(describe);
  conn c = connect();
  const std::string body = rkt::test::pattern(300 * 1024);
  rkt::test::scoped_thread sender([&] {
    c.out.write_bytes("PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n\r\n");
    c.out.write_bytes(body);
    c.out.flush();
  });
  EXPECT_EQ(read_response(c.in).body, "PUT /big ? 1.1 [" + body + "]");
  sender.join();
  c.close();
}

TEST_P(WebServe, UnreadBodyIsSkipped) {
  // The handler ignores a streamed body; the next request still parses.
  start([](request&) { return response::text("ignored"); });
  conn c = connect();
  const std::string body = rkt::test::pattern(200 * 1024);
  rkt::test::scoped_thread sender([&] {
    c.out.write_bytes("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.out.write_bytes("32000\r\n" + body + "\r\n0\r\n\r\n");
    c.out.write_bytes("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    c.out.flush();
  });
  EXPECT_EQ(read_response(c.in).body, "ignored");
  EXPECT_EQ(read_response(c.in).body, "ignored");
  sender.join();
  c.close();
}

TEST_P(WebServe, KeepAliveServesManyRequestsOnOneConnection) {
  start(describe);
  conn c = connect();
  for (int i = 0; i < 5; ++i) {
    send(c, "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(read_response(c.in).body, "GET /" + std::to_string(i) + " ? 1.1 []");
  }
  c.close();
}

TEST_P(WebServe, TwoPipelinedRequestsInOneSegmentAnsweredInOrder) {
  start(describe);
  conn c = connect();
  send(c,
       "POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
       "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(read_response(c.in).body, "POST /1 ? 1.1 [abc]");
  EXPECT_EQ(read_response(c.in).body, "GET /2 ? 1.1 []");
  c.close();
}

TEST_P(WebServe, ByteAtATimeClient) {
  start(describe);
  conn c = connect();
  const std::string req =
      "POST /slow?q HTTP/1.1\r\nHost: h\r\nX-Echo: one\r\nContent-Length: 4\r\n\r\nbody"
      "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  for (char ch : req) {
    send(c, std::string(1, ch));
    rkt::yield();
  }
  http_response r = read_response(c.in);
  EXPECT_EQ(r.body, "POST /slow ?q 1.1 [body]");
  EXPECT_EQ(r.header("X-Echo"), "one");
  EXPECT_EQ(read_response(c.in).body, "GET /next ? 1.1 []");
  c.close();
}

TEST_P(WebServe, HeadersAreCaseInsensitiveAndRepeatedFieldsKept) {
  start([](request& req) {
    std::string out;
    for (std::string_view v : req.header_values("X-MULTI")) out += std::string(v) + ";";
    out += std::string(req.header("host").value_or("-"));
    out += "|" + std::to_string(req.header_count());
    out += "|" + std::string(req.header_at(1).first);
    return response::text(out);
  });
  conn c = connect();
  send(c, "GET / HTTP/1.1\r\nHost: example\r\nx-multi: a\r\nX-Multi:  b \r\n\r\n");
  EXPECT_EQ(read_response(c.in).body, "a;b;example|3|x-multi");
  c.close();
}

TEST_P(WebServe, ClientAddressComesFromTheUnit) {
  start([](request& req) { return response::text(req.client_ip()); });
  conn c = connect();
  send(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(read_response(c.in).body, "127.0.0.1");
  c.close();
}

TEST_P(WebServe, ExpectContinueGetsA100BeforeTheBody) {
  start(describe);
  conn c = connect();
  send(c, "POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  http_response interim = read_response(c.in);
  EXPECT_EQ(interim.status, 100);
  send(c, "data");
  EXPECT_EQ(read_response(c.in).body, "POST /e ? 1.1 [data]");
  c.close();
}

TEST_P(WebServe, ExpectContinueOverTheLimitGets413WithoutReading) {
  start(describe, [](rkt::web::options& o) { o.limits.body = 10; });
  conn c = connect();
  send(c, "POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
  http_response r = read_response(c.in);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.header("Connection"), "close");
  c.out.close();
  EXPECT_TRUE(rkt::test::at_eof(c.in));
  c.close();
}

TEST_P(WebServe, ClientConnectionCloseIsHonoured) {
  start(describe);
  conn c = connect();
  send(c, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  http_response r = read_response(c.in);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(rkt::test::at_eof(c.in));
  c.close();
}

TEST_P(WebServe, HandlerConnectionCloseIsHonoured) {
  start([](request&) {
    response r = response::text("bye");
    r.headers.emplace_back("Connection", "close");
    return r;
  });
  conn c = connect();
  send(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  http_response r = read_response(c.in);
  EXPECT_EQ(r.body, "bye");
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(rkt::test::at_eof(c.in));
  c.close();
}

TEST_P(WebServe, Http10ClosesUnlessKeepAliveAsked) {
  start(describe);
  {
    conn c = connect();
    send(c, "GET /old HTTP/1.0\r\n\r\n");
    http_response r = read_response(c.in);
    EXPECT_EQ(r.body, "GET /old ? 1.0 []");
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_TRUE(rkt::test::at_eof(c.in));
    c.close();
  }
  {
    conn c = connect();
    send(c, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    http_response r = read_response(c.in);
    EXPECT_EQ(r.body, "GET /ka ? 1.0 []");
    EXPECT_EQ(r.header("Connection"), "keep-alive");
    send(c, "GET /again HTTP/1.0\r\n\r\n");
    EXPECT_EQ(read_response(c.in).body, "GET /again ? 1.0 []");
    EXPECT_TRUE(rkt::test::at_eof(c.in));
    c.close();
  }
}

response streamed(request&) {
  response r;
  r.headers.emplace_back("Content-Type", "text/plain");
  r.writer = [](const rkt::output_port& out) {
    for (int i = 0; i < 3; ++i) {
      out.write_bytes("part" + std::to_string(i) + "\n");
      out.flush();
    }
    out.write_bytes(rkt::test::pattern(100 * 1024));
  };
  return r;
}

TEST_P(WebServe, StreamedResponseIsChunkedFor11) {
  start(streamed);
  conn c = connect();
  send(c, "GET /s HTTP/1.1\r\nHost: h\r\n\r\n");
  http_response r = read_response(c.in);
  EXPECT_EQ(r.header("Transfer-Encoding"), "chunked");
  EXPECT_EQ(r.header("Content-Length"), std::nullopt);
  EXPECT_EQ(r.body, "part0\npart1\npart2\n" + rkt::test::pattern(100 * 1024));
  // Keep-alive goes on after a chunked response.
  send(c, "HEAD /s HTTP/1.1\r\nHost: h\r\n\r\n");
  http_response h = read_response(c.in, /*head_request=*/true);
  EXPECT_EQ(h.status, 200);
  c.close();
}

TEST_P(WebServe, StreamedResponseIsCloseDelimitedFor10) {
  start(streamed);
  conn c = connect();
  send(c, "GET /s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  http_response r = read_response(c.in);
  EXPECT_EQ(r.header("Transfer-Encoding"), std::nullopt);
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_EQ(r.body, "part0\npart1\npart2\n" + rkt::test::pattern(100 * 1024));
  c.close();
}

TEST_P(WebServe, StreamedResponseWithContentLength) {
  start([](request&) {
    response r;
    r.headers.emplace_back("Content-Length", "6");
    r.writer = [](const rkt::output_port& out) { out.write_bytes("abcdef"); };
    return r;
  });
  conn c = connect();
  send(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(read_response(c.in).body, "abcdef");
  EXPECT_EQ(read_response(c.in).body, "abcdef");
  c.close();
}

TEST_P(WebServe, UpgradeIsIgnoredAndConnectRefused) {
  start(describe);
  conn c = connect();
  send(c,
       "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
       "GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(read_response(c.in).body, "GET /ws ? 1.1 []");
  EXPECT_EQ(read_response(c.in).body, "GET /after ? 1.1 []");
  c.close();
  conn d = connect();
  send(d, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  EXPECT_EQ(read_response(d.in).status, 405);
  d.close();
}

TEST_P(WebServe, Http2PrefaceIsClosed) {
  start(describe);
  conn c = connect();
  send(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  EXPECT_TRUE(read_response(c.in).eof);
  c.close();
}

INSTANTIATE_TEST_SUITE_P(TransportsAndThreads, WebServe,
                         rkt::test::all_web_setups(),
                         rkt::test::web_setup_name);

}  // namespace
