// Green threads: rkt::thread runs a function on a stackful fiber of the
// calling OS thread's scheduler, with Racket's thread operations (wait,
// kill, thread-dead-evt, running?), the sleep/yield switch points, the
// thread mailboxes (thread_send, thread_receive, ...), and system_idle_evt.
//
//   rkt::thread t([] { rkt::sleep(absl::Milliseconds(10)); });
//   t.wait();
//
// Green threads are cooperative: one runs at a time on each OS thread, and
// it keeps the OS thread until it syncs, sleeps or yields. Dropping the
// last handle neither kills nor detaches anything: the thread runs on.
//
// Killing. kill() and a shutdown of the custodians that manage a thread
// unwind its stack with thread_killed (destructors run), waking it at once
// if it is parked. From the request on, the thread runs no more of its own
// code except destructors (and handlers that catch thread_killed itself):
//   - a sync it was parked in raises thread_killed, even if an event
//     committed meanwhile (that result is lost with the thread, as in
//     Racket) or the commit was an error such as a port closed by the same
//     shutdown;
//   - a dying thread never parks, so kill() and process exit finish in
//     bounded time: a sync that would park raises thread_killed outside any
//     unwinding, and, inside a destructor run by the unwinding, fails at
//     once with exn_fail ("sync: cannot block in a thread that is being
//     killed"; a destructor that syncs should catch it); a poll still
//     works. Blocking port operations follow from this, and a port close in
//     a dying thread gives up its unflushed output, as a custodian shutdown
//     does;
//   - an exception that escapes a dying thread's function is not printed.
#ifndef RKT_EVT_THREAD_H_
#define RKT_EVT_THREAD_H_

#include <any>
#include <concepts>
#include <cstddef>
#include <new>
#include <optional>
#include <string>
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
  //
  // How many green threads can live at once (stack_guard_name()): on Linux
  // 6.13 and later the guards are guard pages (madvise MADV_GUARD_INSTALL),
  // which do not split the stacks' mapping, so only memory and address
  // space bound the count (100,000 parked threads fit in one mapping).
  // Where the kernel lacks them, each guard is an mprotect(PROT_NONE) range
  // and each stack costs two of the process's vm.max_map_count mappings:
  // about 32,700 green threads with the default 65530, more after
  // `sysctl -w vm.max_map_count=N` (about N / 2 threads). Spawning past the
  // limit raises std::system_error (ENOMEM).
  std::size_t stack_size = 0;
  // Shown in messages as Racket shows a named thread: #<thread:NAME>
  // (unnamed: #<thread>).
  std::string name{};

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
  // point (see "Killing" above). Returns once it is dead; a caller that is
  // itself being killed waits only for a thread of its own OS thread.
  // Killing the calling thread throws thread_killed at once. No-op on a
  // dead thread. Raises exn_fail_contract "kill-thread: the current
  // custodian does not solely manage the specified thread" when the
  // current custodian does not manage every custodian that manages it
  // (custodian/; the root custodian manages all).
  void kill() const;
  // Ready once the thread has terminated.
  evt<void> dead_evt() const;
  // True until the thread terminates.
  bool running() const;
  bool dead() const { return !running(); }
  // thread_options::name ("" when unnamed).
  const std::string& name() const;
  // "#<thread:NAME>", or "#<thread>" when unnamed.
  std::string describe() const;

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

// How many green threads of the calling OS thread are alive (not yet
// dead), its root thread excluded.
std::size_t live_thread_count();

// The reactor backend of the calling OS thread's scheduler: "epoll" or
// "poll" (evt/reactor.h says how it is chosen).
const char* reactor_name();

// How this process guards green-thread stacks (thread_options::stack_size):
// "guard-pages" (madvise MADV_GUARD_INSTALL) or "mprotect" (a kernel before
// Linux 6.13, or RKT_STACK_GUARD=mprotect in the environment, for tests).
// Decided once per process, by the first stack mapped or by this call.
const char* stack_guard_name();

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
