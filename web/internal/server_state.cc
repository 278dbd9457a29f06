// The server's accept loop and its manager (deadlines and drain), after
// Racket's dispatch-server listener thread and timer manager.
#include "web/internal/server_state.h"

#include <cstdio>
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

void server_state::log(std::string_view line) const {
  if (opts_.log) {
    opts_.log(line);
  } else {
    std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
  }
}

void server_state::start() {
  unit_ = opts_.transport ? opts_.transport : tcp_unit_tcp();
  custodian_scope under(cust_);
  listener_.emplace(unit_->listen(opts_.port, opts_.max_waiting, true, opts_.listen_ip));
  const tcp_address_info a = unit_->addresses(*listener_);
  local_ip_ = a.local_host;
  local_port_ = a.local_port;
  std::shared_ptr<server_state> self = shared_from_this();
  rkt::thread([self] { self->accept_loop(); }, thread_options{.name = "http accept"});
  rkt::thread([self] { self->manage(); }, thread_options{.name = "http timers"});
}

void server_state::set_deadline(connection& c, timer_list& list) {
  const absl::Duration timeout =
      &list == &responding_ ? opts_.response_timeout : opts_.request_timeout;
  const absl::Time deadline = absl::Now() + timeout;
  list.push_back(c.timer(), deadline);
  // The manager sleeps until manager_wakes_at_: wake it only for an earlier
  // deadline (rare: the lists' fronts are the earliest already).
  if (deadline < manager_wakes_at_) {
    manager_wakes_at_ = deadline;
    timer_wake_.post();
  }
}

void server_state::connection_ended() {
  --active_;
  if (accept_paused_) {
    accept_paused_ = false;
    slot_freed_.post();
  }
  if (draining_ && active_ == 0) drained_.post();
}

void server_state::accept_loop() {
  std::shared_ptr<server_state> self = shared_from_this();
  while (!draining_) {
    if (active_ >= opts_.max_concurrent) {
      // Racket replaces the listener event by never-evt at the limit: the
      // kernel's backlog holds the next connections meanwhile.
      accept_paused_ = true;
      slot_freed_.wait();
      continue;
    }
    const custodian conn_cust = make_custodian(cust_);
    std::optional<std::pair<input_port, output_port>> ports;
    try {
      evt<std::pair<input_port, output_port>> accept = [&] {
        custodian_scope under(conn_cust);
        return unit_->accept_evt(*listener_);
      }();
      ports = sync(accept);
    } catch (const exn_fail_network& e) {
      conn_cust.shutdown_all();
      log(std::string("Connection error: ") + e.what());
      continue;
    } catch (const exn_fail& e) {
      // A closed listener (drain), or anything else: the loop ends, as
      // Racket's listener thread does.
      conn_cust.shutdown_all();
      if (!draining_) log(std::string("web: accept loop ended: ") + e.what());
      break;
    }
    ++active_;
    try {
      custodian_scope under(conn_cust);
      rkt::thread(
          [self, conn_cust, in = ports->first, out = ports->second] {
            {
              connection c(self, conn_cust, in, out);
              c.serve();
            }
            // Also closes what the handler made under the connection's
            // custodian; kills this thread last.
            conn_cust.shutdown_all();
          },
          thread_options{.name = "http connection"});
    } catch (const exn_fail& e) {
      --active_;
      conn_cust.shutdown_all();
      log(std::string("web: cannot start a connection: ") + e.what());
    }
  }
  try {
    unit_->close(*listener_);
  } catch (const exn_fail&) {
  }
}

void server_state::manage() {
  for (;;) {
    absl::Time next = absl::InfiniteFuture();
    if (!reading_.empty()) next = std::min(next, reading_.front()->deadline);
    if (!responding_.empty()) next = std::min(next, responding_.front()->deadline);
    manager_wakes_at_ = next;
    evt<int> timer = next == absl::InfiniteFuture()
                         ? never_evt_of<int>()
                         : wrap_evt(alarm_evt(next), [] { return 0; });
    const int what = sync(timer, wrap_evt(timer_wake_, [] { return 1; }),
                          wrap_evt(drain_request_, [] { return 2; }));
    if (what == 2) begin_drain();
    expire(absl::Now());
  }
}

void server_state::expire(absl::Time now) {
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

void server_state::begin_drain() {
  if (draining_) return;
  draining_ = true;
  try {
    unit_->close(*listener_);
  } catch (const exn_fail&) {
  }
  if (accept_paused_) {
    accept_paused_ = false;
    slot_freed_.post();
  }
  // Idle connections close now; the others close after their response.
  std::vector<custodian> idle;
  for (timer_node* n = reading_.front(); n != nullptr; n = n->next) {
    if (n->owner->idle()) idle.push_back(n->owner->cust());
  }
  for (const custodian& c : idle) c.shutdown_all();
  if (active_ == 0) drained_.post();
}

}  // namespace rkt::web::internal
