// listener_state: a listening socket of any family (Unix, TCP) on the
// reactor, with its two events: the listener itself (ready when a
// connection waits, or once closed) and accept_evt (accepts when chosen).
// unix_socket.h and tcp.h wrap it in their own listener types.
//
// Locking (mu): the fd's open state, the retry delay and the parked syncs
// of both events. A readiness report serves them: every listener-event
// waiter commits if a connection waits (nothing is consumed), then
// accept_evt waiters accept one connection each until accept(2) says
// EAGAIN. An accept_evt claims its sync before accept(2), so a losing event
// accepts nothing; when accept(2) then finds no connection, the claim is
// given back and the waiter stays parked.
//
// Descriptor exhaustion (EMFILE, ENFILE) leaves the connection pending, and
// no readiness report will say when descriptors are free again (epoll is
// edge-triggered; the poll backend stops polling a direction until it is
// rearmed, which only EAGAIN does, so it does not spin either). The waiter
// stays parked as for EAGAIN, and the listener asks its io_handle for a
// report of its own after a delay that doubles from 1 ms up to 100 ms while
// accepts keep failing; a successful accept resets it. So a parked accept
// recovers within 100 ms of descriptors being freed, and a starved listener
// costs at most about ten accept(2) calls a second.
//
// An accept_evt whose custodian has been shut down is ready at once and
// raises "<who>: the custodian has been shut down" without calling
// accept(2), as Racket's accept poller does: a pending connection stays in
// the queue for another accepter.
//
// Once the OS thread that made the listener has exited (its reactor and
// the listener's io_handle are gone), the listener event is always ready,
// a connection already queued is still accepted, and an accept that would
// have to wait raises exn_fail_contract instead.
#ifndef RKT_SOCKET_INTERNAL_LISTENER_H_
#define RKT_SOCKET_INTERNAL_LISTENER_H_

#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "custodian/managed.h"
#include "evt/evt.h"
#include "evt/io_handle.h"
#include "ports/port.h"

namespace rkt::internal {

using port_pair = std::pair<input_port, output_port>;

// What a kind of listener calls itself in messages and listings, and how
// it reports use after close (not a system call's failure, so no errno).
struct listener_kind {
  const char* describe;     // "unix socket listener"
  const char* closed_text;  // after "<who>: ": "unix socket listener is closed"
  bool closed_is_contract;  // exn_fail_contract (racket/tcp), else plain exn_fail
  const char* port_name;    // the name of accepted ports: "unix-socket"
};

// The error of using a closed listener of kind `k` in `who`.
std::exception_ptr closed_listener_error(const listener_kind& k, const char* who);
[[noreturn]] void raise_closed_listener(const listener_kind& k, const char* who);

class listener_state final : public managed_resource {
 public:
  // Takes the listening fd (non-blocking, registered as `io`).
  listener_state(int fd, node_ref<io_handle> io, const listener_kind& kind, std::string where);

  // The listener of a bound, listening, non-blocking `fd`: registered with
  // this OS thread's reactor and managed by the current custodian (`who`
  // names the caller if it refuses). On failure returns nullptr with
  // `error` set to the errno; fd is closed either way when not returned.
  static std::shared_ptr<listener_state> open(int fd, const listener_kind& kind,
                                              std::string where, const char* who, int& error);
  ~listener_state() override;

  int fd() const { return fd_; }
  // Closes the listener; idempotent. Parked syncs see the close.
  void close() noexcept;
  bool closed() const;
  // Runs `hook` once, after the close that closes the listener (whoever
  // closes it: a call, a custodian shutdown, the last handle's drop), with
  // mu released; at once if it is closed already. unix_socket.cc removes
  // the socket file with it (unlink_on_close). One hook per listener.
  void set_close_hook(std::function<void()> hook);

  void shut_down_by_custodian() noexcept override { close(); }
  std::string describe() const override { return std::string(kind_.describe) + " " + where_; }
  // A readiness report (or a retry's) reached the handle.
  void on_io(uint32_t events) noexcept;

  // A parked listener-event sync; the node delivers its typed result.
  class ready_request {
   public:
    virtual void deliver(result_slot& slot) const = 0;

   protected:
    ~ready_request() = default;
  };
  // For the listener event's node (requires mu()).
  bool ready_locked();
  void park_ready_locked(waiter& w, const ready_request& r);
  std::mutex& mu() { return mu_; }
  waiter_list& ready_waiters() { return ready_waiters_; }

  // accept_evt for this listener, whose ports go to `owner`; `who` names it
  // in errors.
  static evt<port_pair> accept_evt(const std::shared_ptr<listener_state>& st, custodian owner,
                                   const char* who);
  // Accepts, parking until a connection comes: a plain sync on accept_evt.
  static port_pair accept(const std::shared_ptr<listener_state>& st, const char* who);

  class accept_node;

 private:
  class io_bridge;
  int accept_locked();
  void serve_locked();
  void starved_locked();

  const int fd_;
  const node_ref<io_handle> io_;
  // The handle's listener: it outlives this state until the handle is
  // closed on its owner thread, so that a report racing with this state's
  // destruction on another OS thread finds nothing instead of freed memory.
  const std::shared_ptr<io_bridge> bridge_;
  const listener_kind& kind_;
  const std::string where_;
  mutable std::mutex mu_;
  bool closed_ = false;         // guarded by mu_
  absl::Duration retry_delay_;  // guarded by mu_: the next starved retry's
  waiter_list ready_waiters_;   // guarded by mu_
  waiter_list accept_waiters_;  // guarded by mu_
  std::function<void()> close_hook_;  // guarded by mu_; taken by close()
};

// The listener event of a listener handle type L (constructible from the
// state): ready when a connection waits or the listener is closed; the
// result is the listener.
template <class L>
class listener_ready_node final : public base_evt<L>, public listener_state::ready_request {
 public:
  explicit listener_ready_node(std::shared_ptr<listener_state> st) : st_(std::move(st)) {}
  bool try_sync(self_ref& self) override {
    std::lock_guard<std::mutex> g(st_->mu());
    return st_->ready_locked() && self.template commit<L>(st_);
  }
  void arm(waiter& w) override {
    std::lock_guard<std::mutex> g(st_->mu());
    if (st_->ready_locked()) {
      self_ref self(w);
      self.template commit<L>(st_);
      return;
    }
    st_->park_ready_locked(w, *this);
  }
  void disarm(waiter& w) noexcept override {
    std::lock_guard<std::mutex> g(st_->mu());
    st_->ready_waiters().remove(&w);
  }
  const char* name() const override { return "listener"; }
  void deliver(result_slot& slot) const override { slot.emplace<L>(st_); }

 private:
  const std::shared_ptr<listener_state> st_;
};

}  // namespace rkt::internal

#endif  // RKT_SOCKET_INTERNAL_LISTENER_H_
