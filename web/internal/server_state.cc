// The server's threads: each server thread's accept loop and manager
// (deadlines and drain), after Racket's dispatch-server listener thread and
// timer manager, and the start and end of the worker OS threads.
#include "web/internal/server_state.h"

#include <pthread.h>

#include <cstdio>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "evt/alarm.h"
#include "evt/exn.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "web/internal/connection.h"

namespace rkt::web::internal {

server_state::server_state(handler h, options opts, custodian cust)
    : handler_(std::move(h)), opts_(std::move(opts)), cust_(std::move(cust)) {}

server_state::~server_state() {
  std::lock_guard<std::mutex> g(reaper_mu_);
  if (reaper_.joinable()) reaper_.detach();
}

void server_state::join_reaper() {
  std::lock_guard<std::mutex> g(reaper_mu_);
  if (reaper_.joinable()) reaper_.join();
}

void server_state::log(std::string_view line) const {
  std::lock_guard<std::mutex> g(log_mu_);
  if (opts_.log) {
    opts_.log(line);
  } else {
    std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
  }
}

void server_state::start() {
  if (opts_.threads == 0) {
    throw exn_fail_contract("serve: options.threads must be at least 1\n  given: 0");
  }
  unit_ = opts_.transport ? opts_.transport : tcp_unit_tcp();
  custodian_scope under(cust_);
  listener_.emplace(unit_->listen(opts_.port, opts_.max_waiting, true, opts_.listen_ip));
  const tcp_address_info a = unit_->addresses(*listener_);
  local_ip_ = a.local_host;
  local_port_ = a.local_port;
  for (std::size_t i = 0; i < opts_.threads; ++i) {
    workers_.push_back(std::make_unique<worker_state>(*this, i));
  }
  if (opts_.on_thread_start) opts_.on_thread_start(0);
  workers_[0]->spawn_green_threads(shared_from_this());
  if (opts_.threads > 1) start_worker_threads();
}

// Starts server threads 1 .. threads-1 and waits until each has spawned its
// green threads or failed; the reaper joins them once they end and posts
// finished_. On any failure (a thread or the reaper not started, a server
// thread's failure, the caller killed while it waits) the server is
// stopped, every started thread joined (each ends once it sees the
// shutdown), and the failure raised.
void server_state::start_worker_threads() {
  auto threads = std::make_shared<std::vector<std::thread>>();
  std::shared_ptr<server_state> self = shared_from_this();
  auto stop_and_join = [&] {
    try {
      cust_.shutdown_all();
    } catch (...) {
      // The caller is being killed: the shutdown is done all the same.
    }
    for (std::thread& t : *threads) t.join();
  };
  try {
    for (std::size_t i = 1; i < opts_.threads; ++i) {
      threads->emplace_back([self, i] { self->run_worker(i); });
    }
    for (std::size_t i = 1; i < opts_.threads; ++i) started_.wait();
    std::exception_ptr error;
    {
      std::lock_guard<std::mutex> g(start_mu_);
      error = start_error_;
    }
    if (error) std::rethrow_exception(error);
    // Owns nothing of the server but the threads and the semaphore, so it
    // never keeps the server's state alive.
    std::lock_guard<std::mutex> g(reaper_mu_);
    reaper_ = std::thread([threads, finished = finished_] {
      (void)pthread_setname_np(pthread_self(), "web reaper");
      for (std::thread& t : *threads) t.join();
      threads->clear();
      finished.post();
    });
  } catch (const std::system_error& e) {
    stop_and_join();
    throw exn_fail(std::string("serve: cannot start a server thread: ") + e.what());
  } catch (...) {
    stop_and_join();
    throw;
  }
}

// The body of worker OS thread `index`: its accept loop and manager run
// under the server's custodian until it is shut down. Returning ends the OS
// thread, whose teardown kills what is left of its green threads (they are
// dying already) and closes its ports and reactor.
void server_state::run_worker(std::size_t index) {
  // "web thread 1", ... in top -H, ps -L and /proc/PID/task/*/comm (at most
  // 15 bytes; a failure only costs the name).
  const std::string name = "web thread " + std::to_string(index);
  (void)pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  try {
    if (opts_.on_thread_start) opts_.on_thread_start(index);
    custodian_scope under(cust_);
    workers_[index]->spawn_green_threads(shared_from_this());
  } catch (...) {
    {
      std::lock_guard<std::mutex> g(start_mu_);
      if (!start_error_) start_error_ = std::current_exception();
    }
    started_.post();
    return;
  }
  started_.post();
  sync(cust_.shutdown_evt());
}

std::optional<server_state::slot> server_state::take_slot() {
  std::size_t n = slots_taken_.load();
  while (n < opts_.max_concurrent) {
    if (slots_taken_.compare_exchange_weak(n, n + 1)) return slot(shared_from_this());
  }
  return std::nullopt;
}

void server_state::give_slot() {
  // seq_cst, paired with wait_for_slot and server::drain: a loop that
  // registered as waiting is seen here, or it sees this slot; a drain
  // that began is seen here, or begin_drain sees the count.
  if (slots_taken_.fetch_sub(1) == 1 && draining_.load()) drained_.post();
  if (loops_waiting_.load() > 0) slot_freed_.post();
}

void server_state::wait_for_slot() {
  loops_waiting_.fetch_add(1);
  // Racket replaces the listener event by never-evt at the limit: the
  // kernel's backlog holds the next connections meanwhile. A post that
  // comes when no loop needs it only costs a loop one more look.
  if (slots_taken_.load() >= opts_.max_concurrent && !draining_.load()) {
    sync(slot_freed_, drain_request_.peek_evt());
  }
  loops_waiting_.fetch_sub(1);
}

void server_state::close_listener() {
  if (listener_closed_.exchange(true)) return;
  try {
    unit_->close(*listener_);
  } catch (const exn_fail&) {
  }
}

void worker_state::spawn_green_threads(const std::shared_ptr<server_state>& self) {
  rkt::thread([self, this] { accept_loop(self); }, thread_options{.name = "http accept"});
  rkt::thread([self, this] { manage(); }, thread_options{.name = "http timers"});
}

void worker_state::set_deadline(connection& c, timer_list& list) {
  const absl::Duration timeout =
      &list == &responding_ ? server.opts_.response_timeout : server.opts_.request_timeout;
  const absl::Time deadline = absl::Now() + timeout;
  list.push_back(c.timer(), deadline);
  // The manager sleeps until manager_wakes_at_: wake it only for an earlier
  // deadline (rare: the lists' fronts are the earliest already).
  if (deadline < manager_wakes_at_) {
    manager_wakes_at_ = deadline;
    timer_wake_.post();
  }
}

void worker_state::accept_loop(const std::shared_ptr<server_state>& self) {
  server_state& s = server;
  while (!s.draining_.load()) {
    std::optional<server_state::slot> held = s.take_slot();
    if (!held) {
      s.wait_for_slot();
      continue;
    }
    const custodian conn_cust = make_custodian(s.cust_);
    std::optional<std::pair<input_port, output_port>> ports;
    try {
      evt<std::pair<input_port, output_port>> accept = [&] {
        custodian_scope under(conn_cust);
        return s.unit_->accept_evt(*s.listener_);
      }();
      ports = sync(accept);
    } catch (const exn_fail_network& e) {
      conn_cust.shutdown_all();
      if (s.cust_.is_shut_down()) break;
      s.log(std::string("Connection error: ") + e.what());
      continue;
    } catch (const exn_fail& e) {
      // A closed listener (drain, a stop() from another OS thread that has
      // not killed this loop yet, another thread's loop that ended), or
      // anything else: the loop ends, as Racket's listener thread does.
      // Only the first loop to end says why.
      conn_cust.shutdown_all();
      if (!s.draining_.load() && !s.cust_.is_shut_down() && !s.listener_closed()) {
        s.log(std::string("web: accept loop ended: ") + e.what());
      }
      break;
    }
    try {
      custodian_scope under(conn_cust);
      rkt::thread(
          [self, worker = this, conn_cust, in = ports->first, out = ports->second,
           slot = std::move(*held)] {
            {
              connection c(self, *worker, conn_cust, in, out);
              c.serve();
            }
            // Also closes what the handler made under the connection's
            // custodian; kills this thread last.
            conn_cust.shutdown_all();
          },
          thread_options{.name = "http connection"});
    } catch (const exn_fail& e) {
      // A stop() from another OS thread may have shut the custodians down
      // since the accept: then this loop is about to die, and says nothing.
      conn_cust.shutdown_all();
      if (s.cust_.is_shut_down()) break;
      s.log(std::string("web: cannot start a connection: ") + e.what());
    }
  }
  s.close_listener();
}

void worker_state::manage() {
  for (;;) {
    absl::Time next = absl::InfiniteFuture();
    if (!reading_.empty()) next = std::min(next, reading_.front()->deadline);
    if (!responding_.empty()) next = std::min(next, responding_.front()->deadline);
    manager_wakes_at_ = next;
    evt<int> timer = next == absl::InfiniteFuture()
                         ? never_evt_of<int>()
                         : wrap_evt(alarm_evt(next), [] { return 0; });
    evt<int> drain = drain_done_ ? never_evt_of<int>()
                                 : wrap_evt(server.drain_request_.peek_evt(), [] { return 2; });
    const int what = sync(timer, wrap_evt(timer_wake_, [] { return 1; }), drain);
    if (what == 2) begin_drain();
    expire(absl::Now());
  }
}

void worker_state::expire(absl::Time now) {
  while (!responding_.empty() && responding_.front()->deadline <= now) {
    timer_node& n = *responding_.front();
    timer_list::unlink(n);
    // The connection's thread is dead when this returns (same OS thread).
    custodian c = n.owner->cust();
    c.shutdown_all();
  }
  while (!reading_.empty() && reading_.front()->deadline <= now) {
    timer_node& n = *reading_.front();
    timer_list::unlink(n);
    n.owner->on_read_deadline();
  }
}

// Carries out a drain on this server thread: the listener closes (every
// accept loop ends), this thread's idle connections close now, the others
// after their response (they see draining_).
void worker_state::begin_drain() {
  drain_done_ = true;
  server.close_listener();
  std::vector<custodian> idle;
  for (timer_node* n = reading_.front(); n != nullptr; n = n->next) {
    if (n->owner->idle()) idle.push_back(n->owner->cust());
  }
  for (const custodian& c : idle) c.shutdown_all();
  if (server.no_slot_taken()) server.drained_.post();
}

}  // namespace rkt::web::internal
