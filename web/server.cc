// rkt::web::serve and the server handle.
#include "web/server.h"

#include <utility>

#include "evt/sync.h"
#include "web/internal/server_state.h"

namespace rkt::web {

server::server(std::shared_ptr<internal::server_state> st) : st_(std::move(st)) {}

void server::stop() const { st_->cust_.shutdown_all(); }

void server::drain(absl::Time deadline) const {
  if (!st_->cust_.is_shut_down()) {
    // Connections see the flag at once; every server thread's manager
    // carries the drain out when it sees the request.
    st_->draining_.store(true);
    st_->drain_request_.post();
    (void)sync_deadline(deadline, st_->drained_.peek_evt(), st_->cust_.shutdown_evt());
  }
  stop();
}

evt<void> server::stopped_evt() const { return st_->cust_.shutdown_evt(); }
bool server::stopped() const { return st_->cust_.is_shut_down(); }
evt<void> server::finished_evt() const {
  if (st_->opts_.threads <= 1) return stopped_evt();
  // The reaper's post makes the peek ready while the post is still
  // running on the reaper; joining it (briefly blocking this OS thread)
  // makes "ready" mean that no OS thread of the server runs any more.
  return wrap_evt(st_->finished_.peek_evt(), [st = st_] { st->join_reaper(); });
}
const std::string& server::local_ip() const { return st_->local_ip_; }
uint16_t server::local_port() const { return st_->local_port_; }
const custodian& server::server_custodian() const { return st_->cust_; }

server serve(handler h, options opts) {
  custodian cust = make_custodian(current_custodian());
  auto st = std::make_shared<internal::server_state>(std::move(h), std::move(opts), cust);
  try {
    st->start();
  } catch (...) {
    cust.shutdown_all();
    throw;
  }
  return server(std::move(st));
}

}  // namespace rkt::web
