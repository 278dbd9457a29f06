// Green threads: rkt::thread runs a function on a stackful fiber of the
// calling OS thread's scheduler, with Racket's thread operations (wait,
// kill, thread-dead-evt, running?), the sleep/yield switch points, the
// thread mailboxes (thread_send, thread_receive, ...), and system_idle_evt.
//
//   rkt::thread t([] { rkt::sleep(absl::Milliseconds(10)); });
//   t.wait();
//
// Green threads are cooperative: one runs at a time on each OS thread, and
// it keeps the OS thread until it syncs, sleeps or yields. kill() unwinds
// the target's stack with thread_killed (destructors run), waking it at
// once if it is parked in sync, and returns once it is dead. Dropping the
// last handle neither kills nor detaches anything: the thread runs on.
#ifndef RKT_EVT_THREAD_H_
#define RKT_EVT_THREAD_H_

#include <any>
#include <concepts>
#include <cstddef>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "evt/evt.h"

namespace rkt {
namespace internal {
class thread_state;
}  // namespace internal

struct thread_options {
  // Usable stack size in bytes; 0 picks the default (256 KiB; 1 MiB under
  // ASan or TSan). A smaller request than min_stack_size() is rounded up to
  // it, and every size up to whole pages. Stacks are mapped lazily (only
  // touched pages cost memory), each with a 256 KiB guard region below it:
  // a stack overflow faults (SIGSEGV) and never writes into another green
  // thread's stack. Frames larger than the guard are caught too in code
  // built with -fstack-clash-protection, as rkt's own code is.
  std::size_t stack_size = 0;

  // The smallest usable stack a green thread gets: 64 KiB (256 KiB under
  // ASan or TSan). Enough for rkt's own paths (switching, a sync that
  // parks, throwing and catching, being killed) with room to spare, not
  // for deep recursion.
  static std::size_t min_stack_size();
};

class thread {
 public:
  // Spawns `fn` as a new green thread on the calling OS thread's scheduler.
  // The new thread starts after the caller next syncs, sleeps or yields.
  template <class F>
    requires(!std::same_as<std::decay_t<F>, thread> && std::invocable<F&>)
  explicit thread(F&& fn, thread_options options = {})
      : thread(absl::AnyInvocable<void()>(std::forward<F>(fn)), options) {}
  thread(absl::AnyInvocable<void()> fn, thread_options options);

  thread(const thread& o);
  thread& operator=(const thread& o);
  thread(thread&& o) noexcept : ts_(std::exchange(o.ts_, nullptr)) {}
  thread& operator=(thread&& o) noexcept;
  ~thread();

  // Blocks until the thread has terminated.
  void wait() const;
  // Terminates the thread: it unwinds from its current or next switch
  // point. Returns once it is dead. Killing the calling thread throws
  // thread_killed at once. No-op on a dead thread.
  void kill() const;
  // Ready once the thread has terminated.
  evt<void> dead_evt() const;
  // True until the thread terminates.
  bool running() const;
  bool dead() const { return !running(); }

  bool operator==(const thread& o) const { return ts_ == o.ts_; }

  internal::thread_state* state() const { return ts_; }
  // Adopts a reference the caller owns.
  explicit thread(internal::thread_state* adopted) : ts_(adopted) {}

 private:
  internal::thread_state* ts_;
};

// The calling green thread (on a plain OS thread, its root green thread).
thread current_thread();

// True once the calling green thread has been asked to die (kill(), or a
// shutdown of the custodians that manage it): it is unwinding with
// thread_killed, or will at its next switch point. Operations that would
// block check it so that a dying thread never parks (see kill()).
bool current_thread_killed();

// Lets the other runnable green threads of this OS thread run first.
void yield();

// Parks the calling green thread for at least `d`; zero or less yields.
void sleep(absl::Duration d);

// Queues `v` in t's mailbox without blocking. Raises exn_fail_contract when
// t has terminated (Racket's default failure).
void thread_send(const thread& t, std::any v);
// As above, but returns false instead of raising.
bool thread_send(const thread& t, std::any v, std::nothrow_t);

// Dequeues the oldest message for the calling thread, blocking until one
// arrives.
std::any thread_receive();
// The oldest message, or std::nullopt at once when there is none.
std::optional<std::any> thread_try_receive();
// Ready when the syncing thread has a message; does not dequeue it.
evt<void> thread_receive_evt();
// Pushes `messages` back on the front of the calling thread's mailbox, one
// by one, so that the last element becomes the first message.
void thread_rewind_receive(std::vector<std::any> messages);

// Ready when every other green thread of the syncing thread's scheduler is
// blocked (timers that have not expired count as blocked).
evt<void> system_idle_evt();

}  // namespace rkt

#endif  // RKT_EVT_THREAD_H_
