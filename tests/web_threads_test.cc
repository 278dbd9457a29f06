// rkt::web::serve with options.threads = 2, over a Unix socket and TCP:
// every connection is served on the OS thread whose accept loop took it,
// max_concurrent holds across the threads, a drain lets the requests in
// flight on both threads finish, stop() from a third OS thread ends
// everything, finished_evt() says the server's OS threads are gone, and a
// server thread that cannot start makes serve() raise. The suites of
// web_serve_test, web_limits_test and web_lifecycle_test run with 2
// threads too. Which thread accepts a given connection is up to the kernel
// and the listener, so no test asserts that both threads accepted; the
// counts are printed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "evt/semaphore.h"
#include "evt/sync.h"
#include "ports/port.h"
#include "tests/testing/http_helpers.h"
#include "web/server.h"

namespace {

using rkt::test::conn;
using rkt::test::http_response;
using rkt::test::read_response;
using rkt::test::transport_kind;
using rkt::test::web_setup;
using rkt::web::request;
using rkt::web::response;
using ::testing::IsEmpty;

constexpr std::size_t kThreads = 2;

// Which OS thread each server thread started on, and which OS thread ran
// each request's handler; filled from several OS threads.
struct thread_record {
  std::mutex mu;
  std::vector<std::thread::id> started{kThreads};
  std::vector<std::pair<std::size_t, std::thread::id>> handled;

  std::vector<std::size_t> per_thread() {
    std::lock_guard<std::mutex> g(mu);
    std::vector<std::size_t> n(kThreads);
    for (const auto& h : handled) ++n.at(h.first);
    return n;
  }
};

std::string counts_line(const std::vector<std::size_t>& n) {
  std::string s;
  for (std::size_t i = 0; i < n.size(); ++i) {
    s += " thread " + std::to_string(i) + ": " + std::to_string(n[i]);
  }
  return s;
}

// Posts `s` when destroyed: the handler that holds it was unwound.
struct post_on_unwind {
  rkt::semaphore s;
  ~post_on_unwind() { s.post(); }
};

class WebThreads : public rkt::test::web_test {
 protected:
  // Records every server thread's start and every request; /wait parks
  // (after posting entered_) until release_ is posted, counting the
  // handlers in flight.
  void start_recording(const std::function<void(rkt::web::options&)>& adjust = nullptr) {
    start(
        [rec = rec_, entered = entered_, release = release_, in_flight = in_flight_,
         most = most_in_flight_, unwound = unwound_](request& req) {
          {
            std::lock_guard<std::mutex> g(rec->mu);
            rec->handled.emplace_back(req.server_thread(), std::this_thread::get_id());
          }
          if (req.path() == "/wait") {
            const int now = in_flight->fetch_add(1) + 1;
            int seen = most->load();
            while (now > seen && !most->compare_exchange_weak(seen, now)) {
            }
            post_on_unwind on_unwind{*unwound};
            entered->post();
            release->wait();
            in_flight->fetch_sub(1);
          }
          return response::text(std::to_string(req.server_thread()));
        },
        [&](rkt::web::options& o) {
          o.on_thread_start = [rec = rec_](std::size_t i) {
            std::lock_guard<std::mutex> g(rec->mu);
            rec->started.at(i) = std::this_thread::get_id();
          };
          if (adjust) adjust(o);
        });
  }

  conn send_get(const std::string& path, const std::string& extra = "") {
    conn c = connect();
    send(c, "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n");
    return c;
  }

  std::shared_ptr<thread_record> rec_ = std::make_shared<thread_record>();
  std::shared_ptr<rkt::semaphore> entered_ = std::make_shared<rkt::semaphore>();
  std::shared_ptr<rkt::semaphore> release_ = std::make_shared<rkt::semaphore>();
  std::shared_ptr<rkt::semaphore> unwound_ = std::make_shared<rkt::semaphore>();
  std::shared_ptr<std::atomic<int>> in_flight_ = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> most_in_flight_ = std::make_shared<std::atomic<int>>(0);
};

TEST_P(WebThreads, EachConnectionIsServedOnTheThreadThatAcceptedIt) {
  start_recording();
  std::vector<std::thread::id> started;
  {
    std::lock_guard<std::mutex> g(rec_->mu);
    started = rec_->started;
  }
  // serve() returns once every server thread has started; thread 0 is the
  // caller.
  EXPECT_EQ(started[0], std::this_thread::get_id());
  EXPECT_NE(started[1], std::thread::id());
  EXPECT_NE(started[1], started[0]);

  // 40 connections open at once, two keep-alive requests on each; the
  // answer is the server thread that served it.
  std::vector<conn> conns;
  for (int i = 0; i < 40; ++i) conns.push_back(send_get("/first"));
  for (const conn& c : conns) {
    http_response first = read_response(c.in);
    EXPECT_EQ(first.status, 200);
    send(c, "GET /second HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(read_response(c.in).body, first.body) << "a connection changed thread";
    c.close();
  }
  std::lock_guard<std::mutex> g(rec_->mu);
  ASSERT_EQ(rec_->handled.size(), 80u);
  for (const auto& [index, os_thread] : rec_->handled) {
    ASSERT_LT(index, kThreads);
    // The accept loop of server thread `index` runs on started[index].
    EXPECT_EQ(os_thread, started[index]) << "server thread " << index;
  }
  std::vector<std::size_t> n(kThreads);
  for (const auto& h : rec_->handled) ++n[h.first];
  std::printf("requests served per server thread (2 per connection):%s\n",
              counts_line(n).c_str());
  EXPECT_THAT(log(), IsEmpty());
}

TEST_P(WebThreads, MaxConcurrentHoldsAcrossThreads) {
  // The limit is exact (a loop takes its slot before accepting), which is
  // within the n - 1 the design allows.
  constexpr int kMax = 3;
  constexpr int kClients = 8;
  start_recording([](rkt::web::options& o) { o.max_concurrent = kMax; });
  std::vector<conn> conns;
  for (int i = 0; i < kClients; ++i) conns.push_back(send_get("/wait", "Connection: close\r\n"));
  for (int i = 0; i < kMax; ++i) rkt::test::sync_within(*entered_);
  // With kMax connections open nobody else is accepted.
  EXPECT_FALSE(rkt::sync_timeout(absl::Milliseconds(100), *entered_))
      << "a connection past max_concurrent was served";
  EXPECT_EQ(in_flight_->load(), kMax);
  // Each answered connection closes and lets the next one in.
  for (int i = 0; i < kClients; ++i) release_->post();
  for (const conn& c : conns) {
    http_response r = read_response(c.in);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("Connection"), "close");
    c.close();
  }
  EXPECT_LE(most_in_flight_->load(), kMax);
  std::printf("requests served per server thread:%s\n", counts_line(rec_->per_thread()).c_str());
  EXPECT_THAT(log(), IsEmpty());
}

TEST_P(WebThreads, DrainLetsInFlightRequestsFinishOnEveryThread) {
  constexpr int kBusy = 6;
  start_recording();
  conn idle = send_get("/");
  EXPECT_EQ(read_response(idle.in).status, 200);
  std::vector<conn> busy;
  for (int i = 0; i < kBusy; ++i) busy.push_back(send_get("/wait"));
  for (int i = 0; i < kBusy; ++i) rkt::test::sync_within(*entered_);
  std::printf("busy requests per server thread when the drain began:%s (idle one included)\n",
              counts_line(rec_->per_thread()).c_str());

  rkt::web::server s = *server_;
  rkt::test::scoped_thread drainer([s] { s.drain(absl::Now() + rkt::test::kHangBound); });
  // The idle connection closes at once (the drain has begun on its thread,
  // and every connection sees it).
  EXPECT_TRUE(read_response(idle.in).eof);
  idle.close();
  EXPECT_FALSE(server_->stopped());
  for (int i = 0; i < kBusy; ++i) release_->post();
  for (const conn& c : busy) {
    http_response r = read_response(c.in);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_TRUE(read_response(c.in).eof);
    c.close();
  }
  drainer.join();
  EXPECT_TRUE(server_->stopped());
  rkt::test::sync_within(server_->finished_evt());
  EXPECT_THAT(log(), IsEmpty());
}

TEST_P(WebThreads, StopFromAThirdOsThreadEndsEverythingOnEveryThread) {
  constexpr int kBusy = 4;
  start_recording();
  std::vector<conn> idle;
  for (int i = 0; i < 2; ++i) {
    idle.push_back(send_get("/"));
    EXPECT_EQ(read_response(idle.back().in).status, 200);
  }
  std::vector<conn> busy;
  for (int i = 0; i < kBusy; ++i) busy.push_back(send_get("/wait"));
  for (int i = 0; i < kBusy; ++i) rkt::test::sync_within(*entered_);
  EXPECT_FALSE(rkt::test::ready_now(server_->finished_evt()));

  rkt::web::server s = *server_;
  std::jthread stopper = rkt::test::start_os_thread([s] { s.stop(); });
  rkt::test::sync_within(server_->finished_evt());
  stopper.join();
  EXPECT_TRUE(server_->stopped());
  // Every handler in flight was killed (unwound), on both threads.
  for (int i = 0; i < kBusy; ++i) rkt::test::sync_within(*unwound_);
  for (std::vector<conn>* group : {&idle, &busy}) {
    for (const conn& c : *group) {
      EXPECT_TRUE(read_response(c.in).eof);
      c.close();
    }
  }
  EXPECT_THAT(log(), IsEmpty());
}

TEST_P(WebThreads, FinishedOnlyAfterStop) {
  start_recording();
  conn c = send_get("/");
  EXPECT_EQ(read_response(c.in).status, 200);
  EXPECT_FALSE(rkt::test::ready_now(server_->finished_evt()));
  server_->stop();
  rkt::test::sync_within(server_->finished_evt());
  EXPECT_TRUE(read_response(c.in).eof);
  c.close();
}

TEST_P(WebThreads, AServerThreadThatCannotStartMakesServeRaise) {
  EXPECT_THROW(start(
                   [](request&) { return response::text("x"); },
                   [](rkt::web::options& o) {
                     o.on_thread_start = [](std::size_t i) {
                       if (i == 1) throw std::runtime_error("no thread 1 today");
                     };
                   }),
               std::runtime_error);
  EXPECT_FALSE(server_.has_value());
  // The fixture checks that nothing was left open or running.
}

TEST_P(WebThreads, ZeroThreadsIsAContractError) {
  EXPECT_THROW(start([](request&) { return response::text("x"); },
                     [](rkt::web::options& o) { o.threads = 0; }),
               rkt::exn_fail_contract);
}

INSTANTIATE_TEST_SUITE_P(TwoThreads, WebThreads,
                         ::testing::Values(web_setup{transport_kind::unix_socket, kThreads},
                                           web_setup{transport_kind::tcp, kThreads}),
                         rkt::test::web_setup_name);

}  // namespace
