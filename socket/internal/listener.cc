// listener_state and its per-OS-thread stations: readiness, accept(2) and
// its retries when descriptors run out, rotation and withdrawal of the
// shared registrations, the accept event, and close (listener.h).
#include "socket/internal/listener.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <new>

#include "absl/time/time.h"
#include "evt/exn.h"
#include "evt/sync.h"
#include "ports/fd_port.h"

namespace rkt::internal {
namespace {

// The backoff of a starved accept (listener.h).
constexpr absl::Duration kFirstRetryDelay = absl::Milliseconds(1);
constexpr absl::Duration kMaxRetryDelay = absl::Milliseconds(100);

// Accepts between two registrations of a station (listener.h, Rotation);
// 0 turns rotation off (set_accept_rotation).
std::atomic<uint32_t> rotate_every{16};

// What attempt_locked did.
enum class attempt { done, none, starved };

// Closes the listening fd when the last station's handle is closed.
struct fd_closer {
  explicit fd_closer(int fd_in) : fd(fd_in) {}
  fd_closer(const fd_closer&) = delete;
  fd_closer& operator=(const fd_closer&) = delete;
  ~fd_closer() { ::close(fd); }
  const int fd;
};

}  // namespace

const listener_kind unix_socket_listener_kind{
    .describe = "unix socket listener",
    .closed_text = "unix socket listener is closed",
    .closed_is_contract = false,  // Racket raises it with `error`: plain exn:fail
    .port_name = "unix-socket",
    .unix_domain = true,
};

// Racket 8.7's racket/tcp raises exn:fail:contract for a closed listener
// (its documentation says exn:fail:network), naming the listener.
const listener_kind tcp_listener_kind{
    .describe = "tcp listener",
    .closed_text = "listener is closed\n  listener: #<tcp-listener>",
    .closed_is_contract = true,
    .port_name = "tcp",
};

std::exception_ptr closed_listener_error(const listener_kind& k, const char* who) {
  const std::string m = std::string(who) + ": " + k.closed_text;
  if (k.closed_is_contract) return std::make_exception_ptr(exn_fail_contract(m));
  return std::make_exception_ptr(exn_fail(m));
}

void raise_closed_listener(const listener_kind& k, const char* who) {
  std::rethrow_exception(closed_listener_error(k, who));
}

// --- listener_station ------------------------------------------------------

listener_station::listener_station(std::weak_ptr<listener_state> st, int fd,
                                   const listener_kind& kind, node_ref<io_handle> io)
    : st_(std::move(st)), fd_(fd), kind_(kind), io_(std::move(io)),
      retry_delay_(kFirstRetryDelay) {}

bool listener_station::ready_locked() {
  // After the owner's exit nothing will report a connection: ready, so that
  // a poll from elsewhere does not wait on a dead station.
  if (closed_ || io_->owner_exited()) return true;
  const uint64_t seen = io_->readiness();
  pollfd p{fd_, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR);
  if (r > 0) return true;
  io_->consume(seen, kReadable);  // no connection: have the reactor watch again
  return false;
}

void listener_station::attend_locked() {
  unattended_ = false;
  if (!withdrawn_ || closed_) return;
  withdrawn_ = false;
  // Registers again; a connection already queued is reported at once. If the
  // reactor refuses (ENOMEM), the station stays withdrawn and the parked sync
  // is served by nudges and retries only; the next arm tries again.
  if (io_->reregister() != 0) withdrawn_ = true;
}

int listener_station::accept_locked() {
  for (;;) {
    const uint64_t seen = io_->readiness();
    const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return fd;
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      io_->consume(seen, kReadable);
      errno = EAGAIN;
    }
    return -1;
  }
}

void listener_station::accepted_locked() {
  retry_delay_ = kFirstRetryDelay;
  ++accepts_;
  const uint32_t every = rotate_every.load(std::memory_order_relaxed);
  if (every == 0 || ++since_rotation_ < every) return;
  since_rotation_ = 0;
  // Last among the registrations from now on (owner thread: accepts run on
  // the station's thread). A failure leaves it withdrawn until the next arm.
  if (!withdrawn_ && io_->reregister() != 0) withdrawn_ = true;
}

void listener_station::starved_locked() {
  try {
    io_->report_after(retry_delay_, kReadable);
  } catch (const std::bad_alloc&) {
    // No memory for the timer: the next connection's report retries.
  }
  retry_delay_ = std::min(retry_delay_ * 2, kMaxRetryDelay);
}

void listener_station::nudge() {
  try {
    io_->report_after(absl::ZeroDuration(), kReadable);
  } catch (const std::bad_alloc&) {
    // The station's own next report serves it.
  }
}

void listener_station::on_io(uint32_t events) noexcept {
  {
    std::lock_guard<std::mutex> g(mu_);
    ++reports_;
    const bool attended = !ready_waiters_.empty() || !accept_waiters_.empty();
    serve_locked();
    if (attended || closed_ || (events & io_handle::kClosed) != 0) return;
  }
  // Nothing was parked here: a connection may be waiting that this thread
  // will not take (listener.h, Unattended stations). Only when another
  // station can take it is this one marked, and then withdrawn: a lone
  // station keeps its registration whatever its thread does.
  const std::shared_ptr<listener_state> st = st_.lock();
  if (st == nullptr || !st->nudge_other_than(this)) return;
  std::lock_guard<std::mutex> g(mu_);
  if (closed_ || !ready_waiters_.empty() || !accept_waiters_.empty()) return;  // attended since
  if (!unattended_) {
    unattended_ = true;
  } else if (!withdrawn_) {
    withdrawn_ = true;
    io_->withdraw();  // owner thread: reports run there
  }
}

// accept_evt: accepts only when chosen; the ports go to `owner`. Armed and
// polled on the syncing OS thread, against that thread's station.
class listener_state::accept_node final : public base_evt<port_pair> {
 public:
  accept_node(std::shared_ptr<listener_state> st, custodian owner, const char* who)
      : st_(std::move(st)), owner_(std::move(owner)), who_(who) {}

  // One accept through `c` on station `s`: done (committed, or committed
  // elsewhere), none (no connection) or starved (no descriptor to take it
  // with); the claim is given back unless done. Requires s's mu.
  attempt attempt_locked(listener_station& s, commit_target& c) {
    if (!c.claim()) return attempt::done;  // committed elsewhere: done with it
    if (s.closed_locked()) {
      c.slot().set_exception(closed_listener_error(s.kind(), who_));
      c.publish();
      return attempt::done;
    }
    if (owner_.is_shut_down()) {
      // Before accept(2): the connection stays queued for another accepter.
      try {
        owner_.check_not_shut_down(who_);
      } catch (...) {
        c.slot().set_exception(std::current_exception());
      }
      c.publish();
      return attempt::done;
    }
    const int fd = s.accept_locked();
    if (fd < 0) {
      const int error = errno;
      if (error == EAGAIN || error == EMFILE || error == ENFILE) {
        c.unclaim();
        return error == EAGAIN ? attempt::none : attempt::starved;
      }
      c.slot().set_exception(std::make_exception_ptr(exn_fail_network(
          errno_message(std::string(who_) + ": failed to accept socket", error), error)));
      c.publish();
      return attempt::done;
    }
    s.accepted_locked();
    try {
      custodian_scope in(owner_);
      c.slot().emplace<port_pair>(make_nonblocking_socket_ports(fd, s.kind().port_name, who_,
                                                                  s.kind().unix_domain));
    } catch (...) {
      c.slot().set_exception(std::current_exception());
    }
    c.publish();
    return attempt::done;
  }

  bool try_sync(self_ref& self) override {
    const std::shared_ptr<listener_station> s = station_or_raise();
    if (s == nullptr) return closed_now(self);
    std::lock_guard<std::mutex> g(s->mu());
    self_commit c(self);
    // A poll's claim cannot fail. A starved poll asks for no retry: nobody
    // waits yet (arm will).
    return attempt_locked(*s, c) == attempt::done;
  }
  void arm(waiter& w) override {
    const std::shared_ptr<listener_station> s = station_or_raise();
    if (s == nullptr) {
      self_ref self(w);
      closed_now(self);
      return;
    }
    std::lock_guard<std::mutex> g(s->mu());
    s->attend_locked();
    self_ref self(w);
    self_commit c(self);
    const attempt a = attempt_locked(*s, c);
    if (a == attempt::done) return;
    w.data = this;
    s->accept_waiters().push_back(&w);
    s->count_parked_locked();
    if (a == attempt::starved) s->starved_locked();
  }
  // On the syncing OS thread, whose station the waiter parked on.
  void disarm(waiter& w) noexcept override {
    const std::shared_ptr<listener_station> s = st_->existing_station_here();
    if (s == nullptr) return;
    std::lock_guard<std::mutex> g(s->mu());
    s->accept_waiters().remove(&w);
    s->count_parked_locked();
  }
  const char* name() const override { return who_; }

 private:
  std::shared_ptr<listener_station> station_or_raise() const {
    return listener_state::station_here(st_, who_);
  }
  // The listener was closed before this thread had a station.
  bool closed_now(self_ref& self) {
    self_commit c(self);
    if (!c.claim()) return false;
    c.slot().set_exception(closed_listener_error(st_->kind_, who_));
    c.publish();
    return true;
  }

  const std::shared_ptr<listener_state> st_;
  const custodian owner_;
  const char* const who_;
};

// Reports are hints (a retry's report may find the connection gone): the
// listener event's waiters commit only if a connection waits.
void listener_station::serve_locked() {
  if (!ready_waiters_.empty() && ready_locked()) {
    while (waiter* w = ready_waiters_.pop_front()) {
      if (claim_waiter(*w)) {
        const auto* r = static_cast<const listener_state::ready_request*>(w->data);
        complete_waiter(*w, [r](result_slot& slot) { r->deliver(slot); });
      }
    }
  }
  while (waiter* w = accept_waiters_.front()) {
    waiter_commit c(*w, accept_waiters_);
    const attempt a = static_cast<listener_state::accept_node*>(w->data)->attempt_locked(*this, c);
    if (a == attempt::done) continue;
    if (a == attempt::starved) starved_locked();
    break;
  }
  count_parked_locked();
}

void listener_station::close_and_serve() {
  std::lock_guard<std::mutex> g(mu_);
  closed_ = true;
  serve_locked();  // every parked sync sees the close
}

listener_station::stats listener_station::snapshot() {
  std::lock_guard<std::mutex> g(mu_);
  return stats{owner_, reports_, accepts_, withdrawn_,
               !ready_waiters_.empty() || !accept_waiters_.empty()};
}

// --- listener_state --------------------------------------------------------

listener_state::listener_state(int fd, const listener_kind& kind, std::string where)
    : fd_(fd), kind_(kind), where_(std::move(where)) {}

listener_state::~listener_state() { close(); }

std::shared_ptr<listener_state> listener_state::open(int fd, const listener_kind& kind,
                                                     std::string where, const char* who,
                                                     int& error) {
  std::shared_ptr<listener_state> st;
  try {
    st = std::make_shared<listener_state>(fd, kind, std::move(where));
  } catch (...) {
    ::close(fd);
    throw;
  }
  // From here the state owns fd: dropping it closes fd.
  node_ref<io_handle> io = io_handle::create(fd, io_mode::shared_accept);
  if (io->error() != 0) {
    error = io->error();
    return nullptr;
  }
  {
    std::lock_guard<std::mutex> g(st->mu_);
    auto s = std::make_shared<listener_station>(st, fd, kind, std::move(io));
    s->io().set_listener(s.get());
    st->stations_.push_back(std::move(s));
  }
  current_custodian().manage(st, who);  // if it refuses, st's destructor closes fd
  return st;
}

bool listener_state::closed() const {
  std::lock_guard<std::mutex> g(mu_);
  return closed_;
}

bool listener_state::ready_now() const {
  // Under mu_: while closed_ is false the fd is open (it is closed only
  // after close() has set closed_).
  std::lock_guard<std::mutex> g(mu_);
  if (closed_) return true;
  pollfd p{fd_, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

std::shared_ptr<listener_station> listener_state::existing_station_here() const {
  std::lock_guard<std::mutex> g(mu_);
  for (const auto& s : stations_) {
    if (s->io().on_owner_thread()) return s;
  }
  return nullptr;
}

std::shared_ptr<listener_station> listener_state::station_here(
    const std::shared_ptr<listener_state>& st, const char* who) {
  std::lock_guard<std::mutex> g(st->mu_);
  for (const auto& s : st->stations_) {
    if (s->io().on_owner_thread()) return s;
  }
  if (st->closed_) return nullptr;
  // First use on this OS thread: register the listener with its reactor.
  node_ref<io_handle> io = io_handle::create(st->fd_, io_mode::shared_accept);
  if (io->error() != 0) {
    const int error = io->error();
    throw exn_fail_network(
        errno_message(std::string(who) + ": failed to watch the listener on this OS thread", error),
        error);
  }
  auto s = std::make_shared<listener_station>(st, st->fd_, st->kind_, io);
  io->set_listener(s.get());  // before the first sync, so no report yet
  st->stations_.push_back(s);
  return s;
}

bool listener_state::nudge_other_than(const listener_station* from) {
  std::shared_ptr<listener_station> target;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (closed_) return false;
    for (const auto& s : stations_) {
      if (s.get() != from && s->has_waiters() && !s->io().owner_exited()) {
        target = s;
        break;
      }
    }
  }
  if (target == nullptr) return false;
  target->nudge();
  return true;
}

void listener_state::close() noexcept {
  std::vector<std::shared_ptr<listener_station>> stations;
  std::function<void()> hook;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (closed_) return;
    closed_ = true;
    stations = stations_;
    hook = std::move(close_hook_);
  }
  for (const auto& s : stations) s->close_and_serve();
  if (hook) hook();
  // Each handle closes on its owner thread; the fd closes after the last
  // one (the last reference to the closer). A station lives until its handle
  // no longer names it.
  auto closer = std::make_shared<fd_closer>(fd_);
  for (const auto& s : stations) {
    s->io().close_from_any_thread([s, closer]() mutable { closer.reset(); });
  }
}

std::vector<listener_station::stats> listener_state::station_stats() const {
  std::vector<std::shared_ptr<listener_station>> stations;
  {
    std::lock_guard<std::mutex> g(mu_);
    stations = stations_;
  }
  std::vector<listener_station::stats> out;
  for (const auto& s : stations) out.push_back(s->snapshot());
  return out;
}

uint32_t listener_state::set_rotate_every(uint32_t n) {
  return rotate_every.exchange(n, std::memory_order_relaxed);
}

void listener_state::set_close_hook(std::function<void()> hook) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!closed_) {
      close_hook_ = std::move(hook);
      return;
    }
  }
  hook();
}

evt<port_pair> listener_state::accept_evt(const std::shared_ptr<listener_state>& st,
                                          custodian owner, const char* who) {
  return evt<port_pair>(make_node<accept_node>(st, std::move(owner), who));
}

port_pair listener_state::accept(const std::shared_ptr<listener_state>& st, const char* who) {
  return sync(accept_evt(st, current_custodian(), who));
}

}  // namespace rkt::internal
