// The life of an rkt::web server, over a Unix socket and TCP: stop() (a
// custodian shutdown: every connection and the listener close at once, the
// socket file stays), drain(deadline), accepting paused at max_concurrent,
// listen errors raised by serve().
#include <errno.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "custodian/custodian.h"
#include "evt/semaphore.h"
#include "evt/thread.h"
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

class WebLifecycle : public rkt::test::web_test {
 protected:
  // A handler that parks on /wait until `release` is posted, after posting
  // `entered`.
  rkt::web::handler gated() {
    return [entered = entered_, release = release_](request& req) {
      if (req.path() == "/wait") {
        entered->post();
        release->wait();
      }
      return response::text("done " + std::string(req.path()));
    };
  }

  // The server closed `c`: EOF. With more than one server thread, the
  // partial request may not have been read yet on the other OS thread when
  // stop() closed its connection, and a close with unread input is a reset.
  void expect_closed(const conn& c) {
    try {
      EXPECT_EQ(rkt::test::read_to_eof(c.in), "");
    } catch (const rkt::exn_fail_network& e) {
      EXPECT_GT(threads(), 1u) << e.what();
      EXPECT_EQ(e.error_number(), ECONNRESET) << e.what();
    }
  }

  // No new client gets in once the listener is closed. With one server
  // thread the listener's descriptor is closed when stop() or the drain's
  // close returns, so a connect is refused. With more, the last close of it
  // may be handed to another OS thread and come a moment later: a connect
  // may still land in the backlog then, but it is never served (EOF or a
  // reset once the descriptor closes).
  void expect_connect_refused() {
    const uint16_t port = server_->local_port();
    if (threads() == 1) {
      EXPECT_THROW(rkt::test::on_green_thread([&] { return unit_->connect("127.0.0.1", port); }),
                   rkt::exn_fail_network);
      return;
    }
    std::optional<conn> c;
    try {
      c.emplace(rkt::test::on_green_thread([&] { return unit_->connect("127.0.0.1", port); }));
    } catch (const rkt::exn_fail_network&) {
      return;
    }
    try {
      send(*c, "GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
      EXPECT_TRUE(read_response(c->in).eof) << "a connection made after the close was served";
    } catch (const rkt::exn_fail_network&) {
      // Reset: not served.
    }
    c->close();
  }

  std::shared_ptr<rkt::semaphore> entered_ = std::make_shared<rkt::semaphore>();
  std::shared_ptr<rkt::semaphore> release_ = std::make_shared<rkt::semaphore>();
};

TEST_P(WebLifecycle, StopClosesEveryConnectionAndTheListener) {
  start(gated());
  conn idle = connect();
  send(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(idle.in).body, "done /");
  conn partial = connect();
  send(partial, "GET / HTTP/1.1\r\nHo");
  conn busy = connect();
  send(busy, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  rkt::test::sync_within(*entered_);
  EXPECT_FALSE(server_->stopped());

  server_->stop();
  EXPECT_TRUE(server_->stopped());
  EXPECT_TRUE(rkt::test::ready_now(server_->stopped_evt()));
  for (const conn* c : {&idle, &partial, &busy}) {
    expect_closed(*c);
    c->close();
  }
  expect_connect_refused();
  if (transport() == transport_kind::unix_socket) {
    EXPECT_TRUE(rkt::test::is_socket_file(socket_path())) << "Racket leaves the file";
  }
  EXPECT_THAT(log(), IsEmpty());
}

TEST_P(WebLifecycle, ShutdownOfAnEnclosingCustodianStopsTheServer) {
  rkt::custodian outer = rkt::make_custodian();
  {
    rkt::custodian_scope under(outer);
    start(gated());
  }
  conn c = connect();
  send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(c.in).body, "done /");
  outer.shutdown_all();
  EXPECT_TRUE(server_->stopped());
  EXPECT_TRUE(read_response(c.in).eof);
  c.close();
}

TEST_P(WebLifecycle, DrainFinishesBusyRequestsAndClosesIdleOnes) {
  start(gated());
  conn idle = connect();
  send(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(read_response(idle.in).body, "done /");
  conn busy = connect();
  send(busy, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
  rkt::test::sync_within(*entered_);

  rkt::web::server s = *server_;
  rkt::test::scoped_thread drainer([s] { s.drain(absl::Now() + rkt::test::kHangBound); });
  // The idle connection closes at once; nobody new gets in.
  EXPECT_TRUE(read_response(idle.in).eof);
  idle.close();
  expect_connect_refused();
  EXPECT_FALSE(server_->stopped());

  release_->post();
  http_response r = read_response(busy.in);
  EXPECT_EQ(r.body, "done /wait");
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(read_response(busy.in).eof) << "the pipelined request is not served";
  busy.close();
  drainer.join();
  EXPECT_TRUE(server_->stopped());
  EXPECT_THAT(log(), IsEmpty());
}

TEST_P(WebLifecycle, DrainStopsAtItsDeadline) {
  start(gated());
  conn busy = connect();
  send(busy, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  rkt::test::sync_within(*entered_);
  server_->drain(absl::Now() + absl::Milliseconds(100));
  EXPECT_TRUE(server_->stopped());
  EXPECT_TRUE(read_response(busy.in).eof);
  busy.close();
}

TEST_P(WebLifecycle, DrainWithNoConnectionReturnsAtOnce) {
  start(gated());
  server_->drain(absl::Now() + rkt::test::kHangBound);
  EXPECT_TRUE(server_->stopped());
}

TEST_P(WebLifecycle, AcceptingPausesAtMaxConcurrent) {
  start(gated(), [](rkt::web::options& o) { o.max_concurrent = 2; });
  conn a = connect();
  conn b = connect();
  for (const conn* c : {&a, &b}) {
    send(*c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(read_response(c->in).body, "done /");
  }
  // The third waits in the backlog: connected, but not served.
  conn third = connect();
  send(third, "GET /third HTTP/1.1\r\nHost: x\r\n\r\n");
  rkt::test::expect_nothing_arrives(third.in, absl::Milliseconds(100));
  a.close();
  EXPECT_EQ(read_response(third.in).body, "done /third");
  b.close();
  third.close();
}

TEST_P(WebLifecycle, ListenErrorsAreRaisedByServe) {
  start(gated());
  rkt::web::options o;
  o.transport = unit_;
  o.port = server_->local_port();
  o.listen_ip = "127.0.0.1";
  EXPECT_THROW(rkt::web::serve(gated(), o), rkt::exn_fail_network);
}

INSTANTIATE_TEST_SUITE_P(TransportsAndThreads, WebLifecycle,
                         rkt::test::all_web_setups(),
                         rkt::test::web_setup_name);

}  // namespace
