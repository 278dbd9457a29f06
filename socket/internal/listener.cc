// listener_state: readiness, accept(2) and its retries when descriptors
// run out, the accept event, and close.
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

// What attempt_locked did.
enum class attempt { done, none, starved };

}  // namespace

std::exception_ptr closed_listener_error(const listener_kind& k, const char* who) {
  const std::string m = std::string(who) + ": " + k.closed_text;
  if (k.closed_is_contract) return std::make_exception_ptr(exn_fail_contract(m));
  return std::make_exception_ptr(exn_fail(m));
}

void raise_closed_listener(const listener_kind& k, const char* who) {
  std::rethrow_exception(closed_listener_error(k, who));
}

class listener_state::io_bridge final : public io_listener {
 public:
  explicit io_bridge(listener_state* st) : st_(st) {}
  void on_io(uint32_t events) noexcept override {
    std::lock_guard<std::mutex> g(mu_);
    if (st_ != nullptr) st_->on_io(events);
  }
  // The state is going: reports from now on find nothing.
  void detach() {
    std::lock_guard<std::mutex> g(mu_);
    st_ = nullptr;
  }

 private:
  std::mutex mu_;  // taken before the state's mu_
  listener_state* st_;  // guarded by mu_
};

listener_state::listener_state(int fd, node_ref<io_handle> io, const listener_kind& kind,
                               std::string where)
    : fd_(fd),
      io_(std::move(io)),
      bridge_(std::make_shared<io_bridge>(this)),
      kind_(kind),
      where_(std::move(where)),
      retry_delay_(kFirstRetryDelay) {
  io_->set_listener(bridge_.get());
}

listener_state::~listener_state() {
  close();
  bridge_->detach();
}

std::shared_ptr<listener_state> listener_state::open(int fd, const listener_kind& kind,
                                                     std::string where, const char* who,
                                                     int& error) {
  node_ref<io_handle> io = io_handle::create(fd);
  if (io->error() != 0) {
    error = io->error();
    ::close(fd);
    return nullptr;
  }
  auto st = std::make_shared<listener_state>(fd, std::move(io), kind, std::move(where));
  current_custodian().manage(st, who);  // if it refuses, st's destructor closes fd
  return st;
}

bool listener_state::closed() const {
  std::lock_guard<std::mutex> g(mu_);
  return closed_;
}

bool listener_state::ready_locked() {
  // After the owner's exit nothing will report a connection: ready, so that
  // the accept that follows takes one or raises.
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

void listener_state::park_ready_locked(waiter& w, const ready_request& r) {
  w.data = const_cast<ready_request*>(&r);
  ready_waiters_.push_back(&w);
}

// The fd of one accepted connection, or -1 with errno (EAGAIN: none now).
int listener_state::accept_locked() {
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

// accept_evt: accepts only when chosen; the ports go to `owner`.
class listener_state::accept_node final : public base_evt<port_pair> {
 public:
  accept_node(std::shared_ptr<listener_state> st, custodian owner, const char* who)
      : st_(std::move(st)), owner_(std::move(owner)), who_(who) {}

  // One accept through `c`: done (committed, or committed elsewhere), none
  // (no connection) or starved (no descriptor to take it with); the claim
  // is given back unless done. Requires the state's mu.
  attempt attempt_locked(commit_target& c) {
    if (!c.claim()) return attempt::done;  // committed elsewhere: done with it
    if (st_->closed_) {
      c.slot().set_exception(closed_listener_error(st_->kind_, who_));
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
    const int fd = st_->accept_locked();
    if (fd < 0) {
      const int error = errno;
      if (st_->io_->owner_exited() && (error == EAGAIN || error == EMFILE || error == ENFILE)) {
        c.slot().set_exception(std::make_exception_ptr(exn_fail_contract(
            std::string(who_) +
            ": the OS thread that made the listener has exited, so it cannot wait")));
        c.publish();
        return attempt::done;
      }
      if (error == EAGAIN || error == EMFILE || error == ENFILE) {
        c.unclaim();
        return error == EAGAIN ? attempt::none : attempt::starved;
      }
      c.slot().set_exception(std::make_exception_ptr(exn_fail_network(
          errno_message(std::string(who_) + ": failed to accept socket", error), error)));
      c.publish();
      return attempt::done;
    }
    st_->retry_delay_ = kFirstRetryDelay;
    try {
      custodian_scope in(owner_);
      c.slot().emplace<port_pair>(make_nonblocking_socket_ports(fd, st_->kind_.port_name, who_));
    } catch (...) {
      c.slot().set_exception(std::current_exception());
    }
    c.publish();
    return attempt::done;
  }

  bool try_sync(self_ref& self) override {
    std::lock_guard<std::mutex> g(st_->mu_);
    self_commit c(self);
    // A poll's claim cannot fail. A starved poll asks for no retry: nobody
    // waits yet (arm will).
    return attempt_locked(c) == attempt::done;
  }
  void arm(waiter& w) override {
    std::lock_guard<std::mutex> g(st_->mu_);
    self_ref self(w);
    self_commit c(self);
    const attempt a = attempt_locked(c);
    if (a == attempt::done) return;
    w.data = this;
    st_->accept_waiters_.push_back(&w);
    if (a == attempt::starved) st_->starved_locked();
  }
  void disarm(waiter& w) noexcept override {
    std::lock_guard<std::mutex> g(st_->mu_);
    st_->accept_waiters_.remove(&w);
  }
  const char* name() const override { return who_; }

 private:
  const std::shared_ptr<listener_state> st_;
  const custodian owner_;
  const char* const who_;
};

// Reports are hints (a retry's report may find the connection gone): the
// listener event's waiters commit only if a connection waits.
void listener_state::serve_locked() {
  if (!ready_waiters_.empty() && ready_locked()) {
    while (waiter* w = ready_waiters_.pop_front()) {
      if (claim_waiter(*w)) {
        const auto* r = static_cast<const ready_request*>(w->data);
        complete_waiter(*w, [r](result_slot& slot) { r->deliver(slot); });
      }
    }
  }
  while (waiter* w = accept_waiters_.front()) {
    waiter_commit c(*w, accept_waiters_);
    const attempt a = static_cast<accept_node*>(w->data)->attempt_locked(c);
    if (a == attempt::done) continue;
    if (a == attempt::starved) starved_locked();
    return;
  }
}

// An accept found no descriptor and its waiter stays parked: ask for a
// report after the current delay, and back off (see listener.h).
void listener_state::starved_locked() {
  try {
    io_->report_after(retry_delay_, kReadable);
  } catch (const std::bad_alloc&) {
    // No memory for the timer: the next connection's report retries.
  }
  retry_delay_ = std::min(retry_delay_ * 2, kMaxRetryDelay);
}

void listener_state::on_io(uint32_t /*events*/) noexcept {
  std::lock_guard<std::mutex> g(mu_);
  serve_locked();
}

void listener_state::close() noexcept {
  std::function<void()> hook;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (closed_) return;
    closed_ = true;
    serve_locked();  // every parked sync sees the close
    hook = std::move(close_hook_);
  }
  if (hook) hook();
  // The handle closes on its owner thread, then the fd; the bridge lives
  // until the handle no longer names it.
  io_->close_from_any_thread([bridge = bridge_, fd = fd_] { ::close(fd); });
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
