// The per-OS-thread scheduler of green threads, and each green thread's
// state (thread_state).
//
// Every OS thread that syncs gets a scheduler on first use; the context the
// OS thread was already running (its main, say) becomes the scheduler's root
// green thread. A green thread stays on the scheduler that spawned it.
// Switching is direct, fiber to fiber (Boost.Context fcontext): a thread
// that parks picks the next runnable thread itself and, when there is none,
// runs the idle loop (timers, reactor, cross-thread inbox) on its own stack.
//
// Parking protocol (park_state): a thread parks by moving running ->
// parked and switching away; unpark() moves it to notified and, if it was
// parked, makes it runnable. An unpark that arrives before the park leaves
// `notified`, and the next park returns at once. Callers therefore re-check
// their condition after park() returns (wakeups may be spurious).
//
// Invariants:
//   - run queue, timers, idle waiters, the all-threads list and every
//     thread_state field marked "owner" are used on the owning OS thread only.
//   - The inbox (threads made runnable from other OS threads) is under
//     inbox_lock_, a leaf lock.
//   - A thread_state is freed when its last reference goes: the scheduler
//     holds one from spawn until the dead thread's stack is reclaimed, each
//     rkt::thread handle holds one.
#ifndef RKT_EVT_INTERNAL_SCHEDULER_H_
#define RKT_EVT_INTERNAL_SCHEDULER_H_

#include <any>
#include <atomic>
#include <boost/context/detail/fcontext.hpp>
#include <exception>
#include <cstdint>
#include <deque>
#include <memory>
#include <memory_resource>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "evt/evt_impl.h"
#include "evt/internal/spinlock.h"
#include "evt/internal/stack_pool.h"
#include "evt/internal/timer_heap.h"
#include "evt/io_handle.h"
#include "evt/reactor.h"

namespace rkt::internal {

class scheduler;

class thread_state {
 public:
  enum class life : uint8_t { fresh, running, dead };
  static constexpr uint32_t kRunning = 0;
  static constexpr uint32_t kNotified = 1;
  static constexpr uint32_t kParked = 2;

  thread_state(scheduler* s, bool root) : sched(s), is_root(root) {}
  thread_state(const thread_state&) = delete;
  thread_state& operator=(const thread_state&) = delete;

  void add_ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  bool dead() const { return state.load(std::memory_order_acquire) == life::dead; }

  scheduler* const sched;
  const bool is_root;

  // Fiber (owner).
  void* ctx = nullptr;  // fcontext_t of a suspended thread
  fiber_stack stack;
  absl::AnyInvocable<void()> fn;
  // Sanitizer bookkeeping (owner).
  void* asan_fake_stack = nullptr;
  const void* asan_bottom = nullptr;
  std::size_t asan_size = 0;
  void* tsan_fiber = nullptr;
  // This thread's C++ exception-handling globals while it is switched out.
  void* eh_caught = nullptr;
  unsigned int eh_uncaught = 0;

  std::atomic<uint32_t> park_state{kRunning};
  std::atomic<bool> kill_requested{false};
  std::atomic<life> state{life::fresh};

  // Run-queue and all-threads links (owner); inbox link (inbox lock).
  thread_state* run_next = nullptr;
  thread_state* inbox_next = nullptr;
  thread_state* all_prev = nullptr;
  thread_state* all_next = nullptr;

  // Protects dead_waiters, the mailbox and custodian_entry. Leaf lock (only
  // claim/complete and wakeups run under it).
  spinlock mu;
  waiter_list dead_waiters;
  std::unique_ptr<std::deque<std::any>> mailbox;  // created by the first send
  waiter_list mailbox_waiters;

  // Per-thread slot for the current custodian (custodian/ owns its meaning;
  // the core only copies it from parent to child at spawn).
  std::shared_ptr<void> custodian;
  // What the managing custodians keep for this thread (custodian/ owns its
  // meaning); released when the thread dies. Guarded by mu.
  std::shared_ptr<void> custodian_entry;
  // thread_options::name; set before the thread first runs, then constant.
  std::string name;

 private:
  ~thread_state() = default;
  std::atomic<int32_t> refs_{1};
};

// The calling OS thread's scheduler, or nullptr before its first use.
extern constinit thread_local scheduler* tls_scheduler;

// What outlives a scheduler for those who hold on to it from other OS
// threads (io_handle): tasks for its OS thread go through here, and once
// that thread has exited they run on the caller instead.
struct scheduler_anchor {
  spinlock mu;
  scheduler* sched = nullptr;  // guarded by mu; null once the OS thread exited

  // Runs `task` on the scheduler's OS thread (scheduler::post), or at once
  // on the caller when that thread has exited.
  void run_on_owner(absl::AnyInvocable<void()> task);
};

class scheduler {
 public:
  // The calling OS thread's scheduler, created on first use. Creating it
  // raises exn_fail_filesystem (with the errno, EMFILE when descriptors ran
  // out) when its reactor cannot be made; the next call tries again.
  static scheduler& current() {
    scheduler* s = tls_scheduler;
    if (s != nullptr) [[likely]] {
      return *s;
    }
    return create_for_this_thread();
  }
  // nullptr when the calling OS thread has none yet.
  static scheduler* current_if_any() { return tls_scheduler; }

  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  thread_state* running() const { return running_; }
  reactor& io() { return *reactor_; }

  // Creates a runnable green thread. Returns a new reference for the handle.
  // Throws std::bad_alloc (or std::system_error) when no stack can be had.
  thread_state* spawn(absl::AnyInvocable<void()> fn, std::size_t stack_size = 0);

  // Makes a parked thread of this scheduler runnable. Any OS thread.
  void make_runnable(thread_state* t) {
    if (tls_scheduler == this) [[likely]] {
      run_push(t);
    } else {
      make_runnable_remote(t);
    }
  }

  // Runs `task` on this scheduler's OS thread: at once when called there,
  // otherwise from its idle loop soon after (the scheduler is woken). A task
  // must not park. Tasks still queued when the OS thread exits run during
  // its teardown. Used to close fd resources on the reactor's owner.
  void post(absl::AnyInvocable<void()> task);

  // Requires: called by the running thread. Parks it (see the protocol).
  // Inline, like the rest of the switch path: every frame between the
  // caller and the stack switch costs a mispredicted return afterwards.
  void park() {
    thread_state* self = running_;
    uint32_t s = thread_state::kRunning;
    if (!self->park_state.compare_exchange_strong(s, thread_state::kParked,
                                                  std::memory_order_acq_rel)) {
      // An unpark came first; consume it.
      self->park_state.store(thread_state::kRunning, std::memory_order_relaxed);
      return;
    }
    switch_to(pick_next());
  }
  // Requires: called by the running thread. Lets the others run first.
  void yield() {
    run_push(running_);
    switch_to(pick_next());
  }

  const std::shared_ptr<scheduler_anchor>& anchor() const { return anchor_; }

  // The open io_handles, closed when the OS thread exits (owner).
  void track(io_handle* h);
  void untrack(io_handle* h);

  void add_timer(timer_node* n) { timers_.push(n); }
  void remove_timer(timer_node* n) {
    if (n->queued()) timers_.remove(n);
  }

  // system_idle_evt's waiters (owner).
  void add_idle_waiter(waiter* w) { idle_waiters_.push_back(w); }
  void remove_idle_waiter(waiter* w) { idle_waiters_.remove(w); }

  // Registers an fd source with the reactor; dispatch goes to
  // on_io_ready(). Returns 0 or errno.
  int add_io(io_source* src);
  void remove_io(io_source* src);

  // Where large syncs get their arena blocks: a pool that keeps them
  // between syncs instead of returning them to malloc (whose trimming would
  // hand the pages back to the kernel every time). Owner only.
  std::pmr::memory_resource& sync_memory() { return sync_memory_; }

  // Number of live (not yet dead) green threads, root excluded.
  std::size_t live_threads() const { return live_; }

  static int64_t now_ns();

 private:
  friend void fiber_entry(void* from_ctx, thread_state* from);
  explicit scheduler(std::unique_ptr<reactor> r);
  ~scheduler();
  friend struct scheduler_owner;
  static scheduler& create_for_this_thread();

  // The next thread to run: the head of the run queue, except every
  // kFairnessTicks picks and when the queue is empty, when the slow path
  // also looks at timers, the reactor and the inbox (and may block).
  static constexpr uint32_t kFairnessTicks = 64;
  thread_state* pick_next() {
    ++tick_;
    if (run_head_ != nullptr && tick_ % kFairnessTicks != 0 &&
        !inbox_nonempty_.load(std::memory_order_relaxed)) [[likely]] {
      return run_pop();
    }
    return pick_next_slow();
  }
  thread_state* pick_next_slow();
  inline void switch_to(thread_state* next);
  [[noreturn]] void exit_running();
  inline void on_arrival(void* from_ctx, thread_state* from);
  void reclaim(thread_state* dead, void* final_sp);
  void mark_dead(thread_state* t);
  void make_runnable_remote(thread_state* t);
  void run_push(thread_state* t) {
    t->run_next = nullptr;
    if (run_tail_ != nullptr) {
      run_tail_->run_next = t;
    } else {
      run_head_ = t;
    }
    run_tail_ = t;
  }
  thread_state* run_pop() {
    thread_state* t = run_head_;
    if (t != nullptr) {
      run_head_ = t->run_next;
      if (run_head_ == nullptr) run_tail_ = nullptr;
      t->run_next = nullptr;
    }
    return t;
  }
  void drain_inbox();
  void wake_from_remote();  // requires inbox_lock_ (see the definition)
  bool fire_due_timers();
  void fire_idle_waiters();
  int poll_io(int64_t timeout_ns);
  void shut_down_threads();
  void close_io_for_exit();

  void* const eh_;  // this OS thread's C++ exception globals
  thread_state* root_;
  thread_state* running_;
  thread_state* run_head_ = nullptr;
  thread_state* run_tail_ = nullptr;
  thread_state* all_head_ = nullptr;
  std::size_t live_ = 0;
  bool tearing_down_ = false;
  uint32_t tick_ = 0;
  std::size_t io_sources_ = 0;
  io_handle* io_handles_ = nullptr;  // the tracked handles, linked (owner)
  const std::shared_ptr<scheduler_anchor> anchor_ = std::make_shared<scheduler_anchor>();

  spinlock inbox_lock_;
  thread_state* inbox_head_ = nullptr;  // guarded by inbox_lock_
  thread_state* inbox_tail_ = nullptr;  // guarded by inbox_lock_
  std::vector<absl::AnyInvocable<void()>> inbox_tasks_;  // guarded by inbox_lock_
  std::atomic<bool> inbox_nonempty_{false};
  std::atomic<bool> sleeping_{false};

  timer_heap timers_;
  std::pmr::unsynchronized_pool_resource sync_memory_;
  waiter_list idle_waiters_;
  stack_pool stacks_;
  std::unique_ptr<reactor> reactor_;
};

// Called by spawn with the new thread before it is queued; installed once
// through evt/thread_custody.h. May throw to refuse the spawn (the thread is
// then discarded).
void set_spawn_hook_for_custody(void (*hook)(thread_state* child));

// How messages print a thread: "#<thread:NAME>", or "#<thread>" unnamed.
std::string describe_thread(const thread_state* t);

// Wakes a thread parked by scheduler::park(). Any OS thread.
inline void unpark(thread_state* t) {
  uint32_t s = t->park_state.exchange(thread_state::kNotified, std::memory_order_acq_rel);
  if (s == thread_state::kParked) {
    t->park_state.store(thread_state::kRunning, std::memory_order_relaxed);
    t->sched->make_runnable(t);
  }
}

// Asks `t` to die: it unwinds from its next switch point with thread_killed.
// Any OS thread. Does not wait.
void request_kill(thread_state* t);

// Returns once `t` is dead. In a dying caller (which must not park), waits
// only for a thread of the caller's own scheduler, by letting it run (it
// dies the next time it runs), and returns at once for any other.
void await_death(thread_state* t);

[[noreturn]] void throw_thread_killed();

// Throws thread_killed if the running thread was asked to die and is not
// already unwinding (a destructor run by the kill may still sync).
inline void throw_if_killed() {
  scheduler* s = tls_scheduler;
  if (s != nullptr && s->running()->kill_requested.load(std::memory_order_acquire) &&
      std::uncaught_exceptions() == 0) [[unlikely]] {
    throw_thread_killed();
  }
}

// Called by the reactor dispatch for each ready source; defined with the fd
// events (io_handle.cc).
void on_io_ready(io_source* src, uint32_t events);

// The Itanium C++ ABI's per-thread exception globals. A green thread that
// switches out inside a catch block (or while unwinding) must find its own
// state again when it resumes, so each switch swaps them.
struct eh_globals {
  void* caught_exceptions;
  unsigned int uncaught_exceptions;
};

}  // namespace rkt::internal

// The switch path needs the sanitizer hooks, which need thread_state.
#include "evt/internal/fiber_switch.h"

namespace rkt::internal {

inline void scheduler::switch_to(thread_state* next) {
  thread_state* prev = running_;
  if (next == prev) return;
  running_ = next;
  auto* g = static_cast<eh_globals*>(eh_);
  prev->eh_caught = g->caught_exceptions;
  prev->eh_uncaught = g->uncaught_exceptions;
  g->caught_exceptions = next->eh_caught;
  g->uncaught_exceptions = next->eh_uncaught;
  before_switch(prev, next, /*dying=*/false);
  boost::context::detail::transfer_t t = boost::context::detail::jump_fcontext(next->ctx, prev);
  on_arrival(t.fctx, static_cast<thread_state*>(t.data));
}

// Runs on the thread that was just switched to.
inline void scheduler::on_arrival(void* from_ctx, thread_state* from) {
  after_switch(running_, from);
  if (from->dead() && !from->is_root) [[unlikely]] {
    reclaim(from, from_ctx);
  } else {
    from->ctx = from_ctx;
  }
}

}  // namespace rkt::internal

#endif  // RKT_EVT_INTERNAL_SCHEDULER_H_
