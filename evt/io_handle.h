// io_handle: the scheduler-side state of one file descriptor (Go's
// pollDesc): registered with the reactor of the scheduler that created it
// (once; a shared-accept listener's handle may register again, see
// reregister()), it remembers which directions the kernel reported ready and keeps the
// waiters of the fd events (readable_evt, writable_evt). Ports and sockets
// are built on it.
//
// Readiness protocol, for a reader (a writer is the same with kWritable):
//   uint64_t seen = h.readiness();
//   ssize_t n = read(h.fd, ...);
//   if (n < 0 && errno == EAGAIN) { h.consume(seen, kReadable); sync(h.readable_evt()); }
// consume() clears the bit only if no readiness report arrived since
// `seen`, so an edge that lands between the read and the clear is not lost
// (tokio's readiness tick). A writer tries before it looks at readiness():
// writability is reported only once a writer has waited for it (consume()
// with kWritable, or a parked writable_evt()), so that the reactor is not
// woken each time the peer reads.
//
// Invariants:
//   - state_ = (report sequence << 8) | ready bits; bits only grow between
//     two consume() calls.
//   - close() and the reactor registration run on the owning OS thread;
//     readiness, consume, report_after, close_from_any_thread and the
//     events work from any OS thread.
//   - At most one report_after timer is pending; while it is, it holds a
//     reference on the handle. close() cancels it.
//   - Each fd event holds a reference on the handle.
//   - After close(), every event of the handle is ready (callers then see
//     the closed resource and report it); the fd itself belongs to the caller.
//   - When the owning OS thread exits, its scheduler closes every handle it
//     still has and marks it owner_exited() before it goes: a handle never
//     refers to a freed scheduler, and waiters on it wake.
#ifndef RKT_EVT_IO_HANDLE_H_
#define RKT_EVT_IO_HANDLE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "evt/evt.h"
#include "evt/internal/spinlock.h"
#include "evt/internal/timer_heap.h"
#include "evt/reactor.h"

namespace rkt {
namespace internal {
class scheduler;
struct scheduler_anchor;
}  // namespace internal

// Told of every readiness report of a handle, on the owning OS thread, after
// the handle's own waiters were woken. Ports use it to serve the reads and
// writes parked on them.
class io_listener {
 public:
  virtual void on_io(uint32_t events) noexcept = 0;

 protected:
  ~io_listener() = default;
};

// How a handle's fd is registered: io_mode::normal, or
// io_mode::shared_accept for a listening socket that several OS threads'
// reactors watch at once, each through its own handle, and accept from
// (evt/reactor.h says what the backends do with it).
using io_mode = internal::io_mode;

class io_handle final : public internal::io_source {
 public:
  static constexpr uint32_t kClosed = 1u << 4;

  // Registers `fd` (already non-blocking) with the calling OS thread's
  // reactor. Check error(): 0, or the errno of the registration.
  static node_ref<io_handle> create(int fd, io_mode mode = io_mode::normal);
  io_handle(const io_handle&) = delete;
  io_handle& operator=(const io_handle&) = delete;

  // Reference counting for node_ref<io_handle>. The last reference closes
  // the handle (not the fd) and must be dropped on the owning OS thread
  // unless close() ran there first.
  void add_ref() const { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() const {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  int error() const { return error_; }

  uint64_t readiness() const { return state_.load(std::memory_order_acquire); }
  static uint32_t bits(uint64_t readiness) { return static_cast<uint32_t>(readiness & 0xff); }

  // The caller saw EAGAIN for `dirs` after reading readiness() == seen.
  void consume(uint64_t seen, uint32_t dirs);

  // Ready when the fd is readable (or at EOF, in error, or the handle is
  // closed); the result is void.
  evt<void> readable_evt();
  // Ready when the fd is writable (or in error, or the handle is closed).
  evt<void> writable_evt();

  // Sets (or, with nullptr, clears) the listener. Requires: the owning OS
  // thread, or no report can arrive yet (before the first sync).
  void set_listener(io_listener* l) { listener_ = l; }

  // Records `dirs` as ready without a report from the kernel, so that the
  // first read or write is attempted instead of waiting for one.
  void assume_ready(uint32_t dirs) { on_ready_bits(dirs); }

  // Reports `dirs` ready once more after `delay`, on the owning OS thread's
  // timers, as if the kernel had: the bits are set, the fd events' waiters
  // wake and the listener runs. For a caller that found a direction ready
  // but could not act on it for a reason no readiness report will announce
  // the end of: accept(2) failing with EMFILE leaves the connection pending,
  // and the kernel says nothing more until another one arrives. One report
  // is pending at a time; a request while one is pending adds its
  // directions and keeps the earlier deadline. Nothing is reported once the
  // handle is closed. Any OS thread (from another one the request is posted
  // to the owner, so the report waits for the owner's scheduler to run).
  // Throws only std::bad_alloc (the timer heap or the post could not grow).
  void report_after(absl::Duration delay, uint32_t dirs);

  // The scheduler whose reactor owns the handle.
  internal::scheduler& owner() const { return *sched_; }
  // True when called on the OS thread whose reactor owns the handle.
  bool on_owner_thread() const;

  // Registers the fd with the reactor again (reactor::reregister): for a
  // shared-accept handle this puts it last among the reactors watching the
  // same listener, and ends a withdraw(). A report follows at once if the
  // fd is ready. Returns 0, or the errno of the registration (the handle
  // then stays withdrawn). Requires: the owning OS thread.
  int reregister();
  // Stops the reactor watching the fd until reregister(); readiness and the
  // waiters are kept. Requires: the owning OS thread.
  void withdraw();

  // Wakes every waiter and unregisters the fd. Idempotent. Requires: the
  // owning OS thread.
  void close();
  bool closed() const { return (bits(readiness()) & kClosed) != 0; }

  // From any OS thread: clears the listener and closes the handle on the
  // owning OS thread, then runs `then` there (closing the fd, say). Runs at
  // once when called on that thread, and also when that thread has exited
  // (the handle was closed by its exit); otherwise soon after, from the
  // owner's idle loop.
  void close_from_any_thread(absl::AnyInvocable<void()> then);

  // True once the owning OS thread has exited: the handle is closed, no
  // readiness will ever be reported again, and a caller that would wait
  // for one must fail instead.
  bool owner_exited() const { return owner_exited_.load(std::memory_order_acquire); }

  // Called by the owning scheduler as its OS thread exits.
  void close_for_owner_exit();

  // Called by the reactor dispatch on the owning OS thread.
  void on_ready(uint32_t events);

  // The per-direction event; public for the event class only.
  class dir_evt;

 private:
  io_handle(int fd, io_mode mode);
  ~io_handle();
  void wake(uint32_t dirs);
  void on_ready_bits(uint32_t events);
  void schedule_report(int64_t deadline_ns, uint32_t dirs);
  void cancel_report();
  static void fire_report(internal::timer_node* n);

  mutable std::atomic<uint32_t> refs_{0};
  internal::scheduler* const sched_;
  // Keeps posting to the owner safe after its exit (scheduler.h).
  const std::shared_ptr<internal::scheduler_anchor> anchor_;
  std::atomic<bool> owner_exited_{false};
  // The owner's list of open handles (owner thread only).
  io_handle* owner_prev_ = nullptr;
  io_handle* owner_next_ = nullptr;
  friend class internal::scheduler;
  io_listener* listener_ = nullptr;    // owner thread
  internal::timer_node report_timer_;  // owner thread: the pending report_after
  uint32_t report_dirs_ = 0;           // owner thread: the directions it reports
  int error_ = 0;
  std::atomic<uint64_t> state_{0};
  // Tells the reactor to report `dirs` again (reactor::rearm). Requires mu_.
  void rearm_locked(uint32_t dirs);

  internal::spinlock mu_;
  waiter_list readers_;  // guarded by mu_
  waiter_list writers_;  // guarded by mu_
};

}  // namespace rkt

#endif  // RKT_EVT_IO_HANDLE_H_
