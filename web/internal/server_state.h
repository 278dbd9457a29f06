// The state of one running server (web/server.h): what its threads share
// (options, handler, custodian, listener, the count of open connections,
// the drain signals) in server_state, and what each server thread keeps for
// itself (its accept loop's and manager's state, the deadline lists of the
// connections it accepted) in a worker_state.
//
// Threads: a server has options.threads server threads. Server thread 0 is
// the OS thread that called serve(); the others are OS threads the server
// starts (run_worker) and that a reaper thread joins once they end. Each
// server thread runs its own accept loop and manager as green threads, and
// every connection its accept loop takes is served there for its whole life
// (green threads never change OS thread).
//
// Locking: a worker_state is touched only by green threads of its own OS
// thread, which switch only at syncs, so it needs no lock. server_state's
// shared fields are constant after start(), atomic, semaphores (safe
// across OS threads), or under log_mu_. The server handle, which any OS
// thread may use, touches only the custodian, the atomics and the
// semaphores.
#ifndef RKT_WEB_INTERNAL_SERVER_STATE_H_
#define RKT_WEB_INTERNAL_SERVER_STATE_H_

#include <atomic>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "evt/semaphore.h"
#include "socket/tcp_unit.h"
#include "web/internal/timer_list.h"
#include "web/server.h"

namespace rkt::web::internal {

class server_state;

// One server thread's accept loop, manager and deadline lists.
class worker_state {
 public:
  worker_state(server_state& server, std::size_t index) : server(server), index(index) {}
  worker_state(const worker_state&) = delete;
  worker_state& operator=(const worker_state&) = delete;

  server_state& server;
  const std::size_t index;  // 0 for the OS thread that called serve()

  // Connections of this thread awaiting or reading a request
  // (request_timeout), and those whose request is read (response_timeout).
  timer_list reading_;
  timer_list responding_;

  // Sets c's deadline on `list`, now plus the list's timeout.
  void set_deadline(connection& c, timer_list& list);

  // Spawns this thread's accept loop and manager under the server's
  // custodian, on the calling OS thread.
  void spawn_green_threads(const std::shared_ptr<server_state>& self);

 private:
  void accept_loop(const std::shared_ptr<server_state>& self);
  void manage();
  void expire(absl::Time now);
  void begin_drain();

  bool drain_done_ = false;  // this thread's manager has carried out the drain
  // Posted when a deadline earlier than manager_wakes_at_ (what the manager
  // sleeps until) is set.
  const semaphore timer_wake_;
  absl::Time manager_wakes_at_ = absl::InfiniteFuture();
};

class server_state : public std::enable_shared_from_this<server_state> {
 public:
  server_state(handler h, options opts, custodian cust);
  ~server_state();

  // Listens (raising what listen raises), starts server thread 0's green
  // threads on the caller and the other server threads' OS threads; returns
  // once every server thread has started, or raises why one could not.
  void start();

  // One call of options.log at a time, from any OS thread.
  void log(std::string_view line) const;

  // Waits for the reaper OS thread to exit, if it was started and not yet
  // joined. Call only once finished_ has been posted (the reaper's last
  // act), so the wait is for the end of that post at most.
  void join_reaper();

  const handler handler_;
  const options opts_;
  const custodian cust_;
  std::shared_ptr<tcp_unit> unit_;
  std::optional<tcp_unit_listener> listener_;
  std::string local_ip_;
  uint16_t local_port_ = 0;
  std::vector<std::unique_ptr<worker_state>> workers_;  // one per server thread

  // Set by server::drain before it posts drain_request_; read by every
  // connection (close after the response) and accept loop.
  std::atomic<bool> draining_{false};
  // Cross-thread: a drain request (posted by server::drain, peeked by every
  // manager), the signal that no connection is left once draining (posted,
  // peeked), and the end of every worker OS thread (posted once, peeked).
  const semaphore drain_request_;
  const semaphore drained_;
  const semaphore finished_;
  // The OS thread that joins the worker threads and then posts finished_.
  // Joined by join_reaper() (from finished_evt()'s wrapper) so that once
  // finished_evt() is ready no OS thread of the server runs, not even the
  // tail of that post; detached by ~server_state if nobody joined it
  // (the last owner may be a worker thread the reaper is joining).
  // Guarded by reaper_mu_.
  std::mutex reaper_mu_;
  std::thread reaper_;

  // One of max_concurrent's slots, given back when destroyed. An accept
  // loop takes one before it syncs on the accept (so the limit holds
  // exactly across threads) and moves it into the connection it accepts,
  // whose green thread's function holds it until the thread is gone.
  class slot {
   public:
    explicit slot(std::shared_ptr<server_state> s) : s_(std::move(s)) {}
    slot(slot&& o) noexcept = default;
    slot& operator=(slot&&) = delete;
    ~slot() {
      if (s_) s_->give_slot();
    }

   private:
    std::shared_ptr<server_state> s_;
  };
  std::optional<slot> take_slot();
  // An accept loop that found no slot waits for one to be given back (or
  // for a drain).
  void wait_for_slot();
  bool no_slot_taken() const { return slots_taken_.load() == 0; }

  // Closes the listener; idempotent, any thread.
  void close_listener();
  // close_listener() was called (by a drain or an accept loop that ended).
  bool listener_closed() const { return listener_closed_.load(); }

 private:
  void run_worker(std::size_t index);
  void start_worker_threads();
  void give_slot();

  std::atomic<std::size_t> slots_taken_{0};
  std::atomic<std::size_t> loops_waiting_{0};
  const semaphore slot_freed_;  // posted when a slot is given back while a loop waits
  std::atomic<bool> listener_closed_{false};

  // Worker startup: each posts started_ once, after storing its failure if
  // it had one.
  const semaphore started_;
  std::mutex start_mu_;
  std::exception_ptr start_error_;  // guarded by start_mu_

  mutable std::mutex log_mu_;
};

}  // namespace rkt::web::internal

#endif  // RKT_WEB_INTERNAL_SERVER_STATE_H_
