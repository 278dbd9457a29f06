// The per-OS-thread scheduler: spawning, direct fiber switches, parking,
// the idle loop (timers, reactor, inbox, system-idle waiters) and teardown.
// See scheduler.h for the protocol and invariants.
#include "evt/internal/scheduler.h"

#include <cxxabi.h>

#include <boost/context/detail/fcontext.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <system_error>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "evt/exn.h"
#include "evt/internal/fiber_switch.h"

namespace rkt::internal {
namespace ctx = boost::context::detail;

constinit thread_local scheduler* tls_scheduler = nullptr;

namespace {
std::atomic<void (*)(thread_state*)> current_spawn_hook{nullptr};
}  // namespace

void set_spawn_hook_for_custody(void (*hook)(thread_state*)) {
  current_spawn_hook.store(hook, std::memory_order_release);
}

namespace {

// Per OS thread, so each scheduler looks it up once.
eh_globals* current_eh_globals() {
  return reinterpret_cast<eh_globals*>(abi::__cxa_get_globals());
}

}  // namespace

// Owns the OS thread's scheduler; destroyed at OS thread exit.
struct scheduler_owner {
  scheduler* s = nullptr;
  ~scheduler_owner() {
    if (s == nullptr) return;
    if (s->running_ != s->root_) {
      // The OS thread is exiting from inside a green thread (exit() called
      // on a fiber's stack): nothing can be unwound safely; leak it all.
      return;
    }
    s->shut_down_threads();
    delete s;
    tls_scheduler = nullptr;
  }
};

namespace {
thread_local scheduler_owner tls_owner;
}  // namespace

scheduler& scheduler::create_for_this_thread() {
  // The reactor first: it needs descriptors (an epoll instance, an
  // eventfd), which may have run out; nothing else is made until it exists,
  // so a later call on this OS thread tries again.
  std::unique_ptr<reactor> r = make_default_reactor();
  if (r == nullptr) {
    const int e = errno;
    throw exn_fail_filesystem(
        errno_message("rkt: cannot create this OS thread's scheduler: its reactor (an epoll or "
                      "poll set and an eventfd) could not be made",
                      e),
        e);
  }
  auto* s = new scheduler(std::move(r));
  tls_scheduler = s;
  tls_owner.s = s;
  return *s;
}

int64_t scheduler::now_ns() { return absl::ToUnixNanos(absl::Now()); }

// Pool blocks up to 1 MiB, so that a sync over thousands of events reuses
// its arena blocks too.
std::pmr::pool_options sync_memory_options() {
  std::pmr::pool_options o;
  o.largest_required_pool_block = std::size_t{1} << 20;
  return o;
}

scheduler::scheduler(std::unique_ptr<reactor> r)
    : eh_(current_eh_globals()), sync_memory_(sync_memory_options()), reactor_(std::move(r)) {
  anchor_->sched = this;
  root_ = new thread_state(this, /*root=*/true);
  root_->state.store(thread_state::life::running, std::memory_order_relaxed);
  on_fiber_created(root_);
  running_ = root_;
}

scheduler::~scheduler() {
  // Close what is still open on the reactor, then let tasks posted from
  // now on run on their callers, then run those posted before.
  close_io_for_exit();
  {
    spinlock_guard g(anchor_->mu);
    anchor_->sched = nullptr;
  }
  drain_inbox();
  // The root is dead too now: wake whoever waits for it.
  mark_dead(root_);
  root_->release();
  while (thread_state* t = run_pop()) (void)t;
}

void scheduler::shut_down_threads() {
  // Kill every live green thread at once, as a custodian shutdown does: a
  // thread that has not started never runs its function. Then park the root
  // until the last one has unwound (exit_running wakes it).
  tearing_down_ = true;
  for (thread_state* t = all_head_; t != nullptr; t = t->all_next) request_kill(t);
  while (live_ > 0) park();
}

// Marks `t` dead and commits the syncs waiting for its death.
void scheduler::mark_dead(thread_state* t) {
  spinlock_guard g(t->mu);
  t->state.store(thread_state::life::dead, std::memory_order_release);
  while (waiter* w = t->dead_waiters.pop_front()) {
    if (claim_waiter(*w)) complete_waiter_with<void>(*w);
  }
}

// ---------------------------------------------------------------------------
// Spawning and the fiber entry point.

void fiber_entry(void* from_ctx, thread_state* from) {
  scheduler* s = tls_scheduler;
  s->on_arrival(from_ctx, from);
  thread_state* self = s->running_;
  self->state.store(thread_state::life::running, std::memory_order_release);
  if (!self->kill_requested.load(std::memory_order_acquire)) {
    try {
      self->fn();
    } catch (const thread_killed&) {
      // The thread was killed; its stack has been unwound.
    } catch (const std::exception& e) {
      // A thread being killed leaves silently, however it leaves.
      if (!self->kill_requested.load(std::memory_order_acquire)) {
        std::fprintf(stderr, "rkt: uncaught exception in green thread %s: %s\n",
                     describe_thread(self).c_str(), e.what());
      }
    } catch (...) {
      if (!self->kill_requested.load(std::memory_order_acquire)) {
        std::fprintf(stderr, "rkt: uncaught non-standard exception in green thread %s\n",
                     describe_thread(self).c_str());
      }
    }
  }
  try {
    // The captures' destructors may themselves sync.
    self->fn = nullptr;
  } catch (...) {
  }
  // A dead thread leaves its custodians (the entry is destroyed outside
  // the lock: it holds a reference on this thread).
  std::shared_ptr<void> entry;
  {
    spinlock_guard g(self->mu);
    entry.swap(self->custodian_entry);
  }
  entry.reset();
  self->custodian.reset();
  s->exit_running();
}

namespace {
void fiber_main(ctx::transfer_t t) { fiber_entry(t.fctx, static_cast<thread_state*>(t.data)); }
}  // namespace

thread_state* scheduler::spawn(absl::AnyInvocable<void()> fn, std::size_t stack_size) {
  fiber_stack stack = stacks_.acquire(stack_size);
  if (stack.mapping == nullptr) {
    throw std::system_error(errno, std::generic_category(), "rkt::thread: cannot map a stack");
  }
  auto* t = new thread_state(this, /*root=*/false);
  t->custodian = running_->custodian;
  if (auto* hook = current_spawn_hook.load(std::memory_order_acquire)) {
    try {
      hook(t);
    } catch (...) {
      stacks_.release(stack, nullptr);
      t->release();
      throw;
    }
  }
  t->add_ref();  // the scheduler's reference, dropped in reclaim()
  t->stack = stack;
  t->fn = std::move(fn);
  t->ctx = ctx::make_fcontext(stack.top(), stack.usable_size(), &fiber_main);
  on_fiber_created(t);
  t->all_next = all_head_;
  if (all_head_ != nullptr) all_head_->all_prev = t;
  all_head_ = t;
  ++live_;
  run_push(t);
  return t;
}

// ---------------------------------------------------------------------------
// Switching.

void scheduler::exit_running() {
  thread_state* self = running_;
  // Unlink first, so teardown and idle accounting no longer see it.
  if (self->all_prev != nullptr) {
    self->all_prev->all_next = self->all_next;
  } else {
    all_head_ = self->all_next;
  }
  if (self->all_next != nullptr) self->all_next->all_prev = self->all_prev;
  --live_;
  mark_dead(self);
  if (tearing_down_ && live_ == 0) unpark(root_);
  thread_state* next = pick_next();
  running_ = next;
  auto* g = static_cast<eh_globals*>(eh_);
  g->caught_exceptions = next->eh_caught;
  g->uncaught_exceptions = next->eh_uncaught;
  before_switch(self, next, /*dying=*/true);
  ctx::jump_fcontext(next->ctx, self);
  __builtin_unreachable();
}

// `final_sp` is where the dead fiber's stack pointer was when it left.
void scheduler::reclaim(thread_state* dead, void* final_sp) {
  stacks_.release(dead->stack, final_sp);
  dead->stack = fiber_stack{};
  on_fiber_destroyed(dead);
  dead->release();
}

// ---------------------------------------------------------------------------
// Run queue, inbox, parking.

void scheduler::make_runnable_remote(thread_state* t) {
  {
    spinlock_guard g(inbox_lock_);
    t->inbox_next = nullptr;
    if (inbox_tail_ != nullptr) {
      inbox_tail_->inbox_next = t;
    } else {
      inbox_head_ = t;
    }
    inbox_tail_ = t;
    inbox_nonempty_.store(true, std::memory_order_seq_cst);
    wake_from_remote();
  }
}

void scheduler_anchor::run_on_owner(absl::AnyInvocable<void()> task) {
  {
    // Posted under the lock, so that the OS thread's exit cannot come
    // between the check and the post.
    spinlock_guard g(mu);
    if (sched != nullptr && tls_scheduler != sched) {
      sched->post(std::move(task));
      return;
    }
  }
  // On the owner itself, or after its exit: here, now.
  task();
}

void scheduler::track(io_handle* h) {
  h->owner_prev_ = nullptr;
  h->owner_next_ = io_handles_;
  if (io_handles_ != nullptr) io_handles_->owner_prev_ = h;
  io_handles_ = h;
}

void scheduler::untrack(io_handle* h) {
  if (h->owner_prev_ != nullptr) {
    h->owner_prev_->owner_next_ = h->owner_next_;
  } else if (io_handles_ == h) {
    io_handles_ = h->owner_next_;
  }
  if (h->owner_next_ != nullptr) h->owner_next_->owner_prev_ = h->owner_prev_;
  h->owner_prev_ = h->owner_next_ = nullptr;
}

void scheduler::close_io_for_exit() {
  while (io_handle* h = io_handles_) {
    node_ref<io_handle> keep(h);  // its listener may drop the last reference
    h->close_for_owner_exit();    // untracks it
  }
}

void scheduler::post(absl::AnyInvocable<void()> task) {
  if (tls_scheduler == this) {
    task();
    return;
  }
  {
    spinlock_guard g(inbox_lock_);
    inbox_tasks_.push_back(std::move(task));
    inbox_nonempty_.store(true, std::memory_order_seq_cst);
    wake_from_remote();
  }
}

void scheduler::wake_from_remote() {
  // Pairs with the store of sleeping_ before the reactor wait in pick_next:
  // either that wait sees the inbox non-empty, or we see it sleeping.
  // Called with inbox_lock_ held: once the owner has drained what we
  // posted, its OS thread may exit and delete this scheduler, but the
  // destructor's drain_inbox() takes inbox_lock_ first, so the scheduler
  // and its reactor outlive this call.
  if (sleeping_.load(std::memory_order_seq_cst)) reactor_->wake();
}

void scheduler::drain_inbox() {
  thread_state* head;
  std::vector<absl::AnyInvocable<void()>> tasks;
  {
    spinlock_guard g(inbox_lock_);
    head = inbox_head_;
    inbox_head_ = inbox_tail_ = nullptr;
    tasks.swap(inbox_tasks_);
    inbox_nonempty_.store(false, std::memory_order_relaxed);
  }
  for (auto& task : tasks) task();
  while (head != nullptr) {
    thread_state* next = head->inbox_next;
    head->inbox_next = nullptr;
    run_push(head);
    head = next;
  }
}

owner_wake prepare_owner_wake(thread_state* owner) {
  bool pinned = owner->sched != tls_scheduler;
  if (pinned) owner->add_ref();
  return owner_wake{owner, pinned};
}

void finish_owner_wake(owner_wake w) {
  unpark(w.owner);
  if (w.pinned) w.owner->release();
}

void request_kill(thread_state* t) {
  t->kill_requested.store(true, std::memory_order_release);
  unpark(t);
}

void throw_thread_killed() { throw thread_killed{}; }

std::string describe_thread(const thread_state* t) {
  return t->name.empty() ? std::string("#<thread>") : "#<thread:" + t->name + ">";
}

// ---------------------------------------------------------------------------
// The idle loop.

bool scheduler::fire_due_timers() {
  if (timers_.empty()) return false;
  int64_t now = now_ns();
  bool fired = false;
  while (timer_node* n = timers_.pop_due(now)) {
    n->fire(n);
    fired = true;
  }
  return fired;
}

void scheduler::fire_idle_waiters() {
  while (waiter* w = idle_waiters_.pop_front()) {
    if (claim_waiter(*w)) complete_waiter_with<void>(*w);
  }
}

int scheduler::poll_io(int64_t timeout_ns) {
  return reactor_->wait(timeout_ns, [](io_source* src, uint32_t events) {
    on_io_ready(src, events);
  });
}

int scheduler::add_io(io_source* src) {
  int rc = reactor_->add(src);
  if (rc == 0) ++io_sources_;
  return rc;
}

void scheduler::remove_io(io_source* src) {
  if (src->removed) return;
  reactor_->remove(src);
  --io_sources_;
}

thread_state* scheduler::pick_next_slow() {
  for (;;) {
    if (inbox_nonempty_.load(std::memory_order_acquire)) drain_inbox();
    if (run_head_ != nullptr) {
      if (tick_ % kFairnessTicks == 0) {
        fire_due_timers();
        if (io_sources_ != 0) poll_io(0);
      }
      return run_pop();
    }
    // Nothing runnable. Due timers first; then, only if a thread waits for
    // the system to be idle, a non-blocking look at the descriptors (ready
    // I/O means not idle). Otherwise the blocking poll below returns at
    // once for ready I/O, so a separate non-blocking poll would be a
    // wasted system call on every idle turn.
    fire_due_timers();
    if (inbox_nonempty_.load(std::memory_order_acquire)) drain_inbox();
    if (run_head_ != nullptr) return run_pop();
    if (!idle_waiters_.empty()) {
      if (io_sources_ != 0) poll_io(0);
      if (inbox_nonempty_.load(std::memory_order_acquire)) drain_inbox();
      if (run_head_ != nullptr) return run_pop();
      // Every green thread is blocked: the system is idle.
      fire_idle_waiters();
      if (run_head_ != nullptr) return run_pop();
    }
    int64_t timeout = -1;
    if (!timers_.empty()) {
      timeout = timers_.next_deadline() - now_ns();
      if (timeout < 0) timeout = 0;
    }
    sleeping_.store(true, std::memory_order_seq_cst);
    if (!inbox_nonempty_.load(std::memory_order_seq_cst)) poll_io(timeout);
    sleeping_.store(false, std::memory_order_relaxed);
  }
}

}  // namespace rkt::internal
