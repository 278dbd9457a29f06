// listener_state: a listening socket of any family (Unix, TCP) on the
// reactors of the OS threads that accept from it, with its two events: the
// listener itself (ready when a connection waits, or once closed) and
// accept_evt (accepts when chosen). unix_socket.h and tcp.h wrap it in their
// own listener types. docs/MULTICORE.md has the design.
//
// Stations. Each OS thread that syncs on the listener has a station of its
// own: an io_handle over the listening fd in io_mode::shared_accept mode,
// registered with that thread's reactor, and the syncs parked on that
// thread. listen() makes the calling thread's station; any other thread gets
// its station the first time it arms or polls one of the two events there.
// A sync parks on its own thread's station, and only that station's reports
// serve it, so accept(2) and the accepted connection's ports are made on the
// thread that synced: the ports are registered with that thread's reactor,
// and the connection is served where it was accepted. With epoll one
// arrival wakes one idle thread (EPOLLEXCLUSIVE); with poll(2) every thread
// polling the listener wakes and all but one see EAGAIN.
//
// Locking: the state's mu guards closed_ and the station list; each
// station's mu guards its parked syncs, its retry delay and its rotation
// and withdrawal counters. Order: the state's mu before a station's; a
// station's report never takes the state's mu while holding its own.
//
// A report serves its station: every listener-event waiter commits if a
// connection waits (nothing is consumed), then accept_evt waiters accept one
// connection each until accept(2) says EAGAIN. An accept_evt claims its sync
// before accept(2), so a losing event accepts nothing; when accept(2) then
// finds no connection, the claim is given back and the waiter stays parked.
//
// Rotation. The kernel wakes the reactor that registered first among the
// idle ones, so without help one thread would take nearly every connection
// whenever it is idle. After every kRotateEvery accepted connections a
// station registers again (io_handle::reregister), which puts it last.
//
// Unattended stations. A report that finds a station with nothing parked
// (its thread stopped accepting, or does slow work between accepts) nudges
// one other station that has syncs parked (a report_after(0) on its
// handle), so that the connection does not sit in the queue, and marks this
// one unattended; a second such report while still unattended withdraws the
// station's registration, so that the kernel wakes the others instead. When
// no other station has anything parked, nothing is marked: a lone station
// (one accepting thread) is never withdrawn. The next arm on that thread
// clears the mark and registers again.
//
// Descriptor exhaustion (EMFILE, ENFILE) leaves the connection pending, and
// no readiness report will say when descriptors are free again (epoll is
// edge-triggered; the poll backend stops polling a direction until it is
// rearmed, which only EAGAIN does, so it does not spin either). The waiter
// stays parked as for EAGAIN, and the station asks its io_handle for a
// report of its own after a delay that doubles from 1 ms up to 100 ms while
// accepts keep failing; a successful accept resets it. Each station backs
// off on its own, so a starved process costs at most about ten accept(2)
// calls a second per accepting thread, and each parked accept recovers
// within 100 ms of descriptors being freed.
//
// An accept_evt whose custodian has been shut down is ready at once and
// raises "<who>: the custodian has been shut down" without calling
// accept(2), as Racket's accept poller does: a pending connection stays in
// the queue for another accepter.
//
// OS thread exit. When a thread exits, its scheduler closes its station's
// handle (waiters there wake and see nothing; a thread's syncs die with it
// anyway). The station stays in the list, dead, until the listener goes.
// Other threads keep accepting through their own stations, so the exit of
// the thread that made the listener changes nothing for them.
//
// Close, from any thread: marks the state and every station closed, serves
// every station's parked syncs (they see the close), then closes each
// station's handle on its owner thread (io_handle::close_from_any_thread);
// the fd is closed once, after the last station's registration is gone, so
// that no reactor can report a closed or reused descriptor.
#ifndef RKT_SOCKET_INTERNAL_LISTENER_H_
#define RKT_SOCKET_INTERNAL_LISTENER_H_

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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
  bool unix_domain = false;  // AF_UNIX: accepted ports keep passed descriptors
};

// The error of using a closed listener of kind `k` in `who`.
// The two kinds, shared by every way of making such a listener (listen,
// and a listener a service manager passed): Racket's unix-socket listener,
// whose close error is plain exn:fail, and racket/tcp's, whose close error
// is exn:fail:contract naming the listener.
extern const listener_kind unix_socket_listener_kind;
extern const listener_kind tcp_listener_kind;

std::exception_ptr closed_listener_error(const listener_kind& k, const char* who);
[[noreturn]] void raise_closed_listener(const listener_kind& k, const char* who);

class listener_state;

// One OS thread's part of a listener (see the top of this file). Made and
// served on its owner thread; close and nudges come from any thread.
class listener_station final : public io_listener {
 public:
  listener_station(std::weak_ptr<listener_state> st, int fd, const listener_kind& kind,
                   node_ref<io_handle> io);
  listener_station(const listener_station&) = delete;
  listener_station& operator=(const listener_station&) = delete;

  // A readiness report (or a retry's, or a nudge's) reached the handle.
  // Owner thread.
  void on_io(uint32_t events) noexcept override;

  // For the two events' nodes (requires mu()).
  std::mutex& mu() { return mu_; }
  bool closed_locked() const { return closed_; }
  // True if a connection waits or the listener is closed; otherwise has the
  // reactor watch again.
  bool ready_locked();
  // An arm on the owner thread: the station is attended again, and
  // registered again if it was withdrawn.
  void attend_locked();
  // The fd of one accepted connection, or -1 with errno (EAGAIN: none now).
  int accept_locked();
  // An accept succeeded: resets the backoff and counts toward rotation.
  void accepted_locked();
  // An accept found no descriptor and its waiter stays parked: asks for a
  // report after the current delay, and backs off.
  void starved_locked();
  waiter_list& ready_waiters() { return ready_waiters_; }
  waiter_list& accept_waiters() { return accept_waiters_; }
  // After a change to either list.
  void count_parked_locked() {
    parked_.store(ready_waiters_.empty() && accept_waiters_.empty() ? 0 : 1,
                  std::memory_order_relaxed);
  }
  const listener_kind& kind() const { return kind_; }
  io_handle& io() const { return *io_; }

  // Any thread: whether syncs are parked here (a hint, for nudges).
  bool has_waiters() const { return parked_.load(std::memory_order_relaxed) != 0; }
  // Any thread: a report on the owner thread soon (a nudge).
  void nudge();
  // Marks the station closed and serves its syncs, which see the close.
  void close_and_serve();

  // For listener_threads.h.
  struct stats {
    std::thread::id owner;  // the OS thread it serves
    uint64_t reports;       // reports its handle received
    uint64_t accepts;       // connections it accepted
    bool withdrawn;         // its registration is withdrawn now
    bool parked;            // syncs are parked on it now
  };
  stats snapshot();

 private:
  void serve_locked();
  friend class listener_state;

  const std::weak_ptr<listener_state> st_;
  const int fd_;
  const listener_kind& kind_;
  const node_ref<io_handle> io_;
  const std::thread::id owner_ = std::this_thread::get_id();
  std::mutex mu_;
  bool closed_ = false;            // guarded by mu_
  absl::Duration retry_delay_;     // guarded by mu_: the next starved retry's
  uint32_t since_rotation_ = 0;    // guarded by mu_: accepts since the last registration
  bool unattended_ = false;        // guarded by mu_
  bool withdrawn_ = false;         // guarded by mu_
  uint64_t reports_ = 0;           // guarded by mu_
  uint64_t accepts_ = 0;           // guarded by mu_
  waiter_list ready_waiters_;      // guarded by mu_
  waiter_list accept_waiters_;     // guarded by mu_
  std::atomic<int> parked_{0};     // 1 while either list is non-empty
};

class listener_state final : public managed_resource {
 public:
  // Takes the listening fd (non-blocking); it has no station yet.
  listener_state(int fd, const listener_kind& kind, std::string where);

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

  // The calling OS thread's station, made (and registered with this
  // thread's reactor) if it has none. Raises exn_fail_network naming `who`
  // when the reactor refuses the registration. A closed listener makes no
  // station: then nullptr.
  static std::shared_ptr<listener_station> station_here(const std::shared_ptr<listener_state>& st,
                                                        const char* who);
  // The calling OS thread's station if it has one, else nullptr.
  std::shared_ptr<listener_station> existing_station_here() const;

  // A parked listener-event sync; the node delivers its typed result.
  class ready_request {
   public:
    virtual void deliver(result_slot& slot) const = 0;

   protected:
    ~ready_request() = default;
  };

  // accept_evt for this listener, whose ports go to `owner`; `who` names it
  // in errors.
  static evt<port_pair> accept_evt(const std::shared_ptr<listener_state>& st, custodian owner,
                                   const char* who);
  // Accepts, parking until a connection comes: a plain sync on accept_evt.
  static port_pair accept(const std::shared_ptr<listener_state>& st, const char* who);

  // A station found a report with nothing parked: have another station
  // with parked syncs try (its own report, on its own thread). False when
  // there is none.
  bool nudge_other_than(const listener_station* from);

  // Whether a connection waits, or the listener is closed (a poll that
  // needs no station).
  bool ready_now() const;

  // Every station's counters, in the order they were made
  // (listener_threads.h).
  std::vector<listener_station::stats> station_stats() const;
  // Sets the number of accepts between two registrations of a station (0:
  // never register again), process-wide; returns the previous value.
  static uint32_t set_rotate_every(uint32_t n);

  class accept_node;

 private:
  const int fd_;
  const listener_kind& kind_;
  const std::string where_;
  mutable std::mutex mu_;
  bool closed_ = false;                                     // guarded by mu_
  std::vector<std::shared_ptr<listener_station>> stations_;  // guarded by mu_
  std::function<void()> close_hook_;  // guarded by mu_; taken by close()
};

// The listener event of a listener handle type L (constructible from the
// state): ready when a connection waits or the listener is closed; the
// result is the listener. It parks on the syncing OS thread's station (and
// is disarmed on that thread, where its sync runs).
template <class L>
class listener_ready_node final : public base_evt<L>, public listener_state::ready_request {
 public:
  explicit listener_ready_node(std::shared_ptr<listener_state> st) : st_(std::move(st)) {}
  // A poll makes no station: polling a listener does not register it
  // with this thread's reactor.
  bool try_sync(self_ref& self) override {
    return st_->ready_now() && self.template commit<L>(st_);
  }
  void arm(waiter& w) override {
    const std::shared_ptr<listener_station> s = listener_state::station_here(st_, "sync");
    if (s == nullptr) {  // closed
      self_ref self(w);
      self.template commit<L>(st_);
      return;
    }
    std::lock_guard<std::mutex> g(s->mu());
    s->attend_locked();
    if (s->ready_locked()) {
      self_ref self(w);
      self.template commit<L>(st_);
      return;
    }
    w.data = static_cast<listener_state::ready_request*>(this);
    s->ready_waiters().push_back(&w);
    s->count_parked_locked();
  }
  void disarm(waiter& w) noexcept override {
    const std::shared_ptr<listener_station> s = st_->existing_station_here();
    if (s == nullptr) return;
    std::lock_guard<std::mutex> g(s->mu());
    s->ready_waiters().remove(&w);
    s->count_parked_locked();
  }
  const char* name() const override { return "listener"; }
  void deliver(result_slot& slot) const override { slot.emplace<L>(st_); }

 private:
  const std::shared_ptr<listener_state> st_;
};

}  // namespace rkt::internal

#endif  // RKT_SOCKET_INTERNAL_LISTENER_H_
