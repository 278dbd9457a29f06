// rkt::thread and the operations on green threads: waiting, killing, the
// dead event, switch points, mailboxes and the system-idle event.
#include "evt/thread.h"

#include <string>

#include "evt/alarm.h"
#include "evt/channel.h"
#include "evt/exn.h"
#include "evt/internal/scheduler.h"
#include "evt/sync.h"
#include "evt/thread_custody.h"

namespace rkt {
namespace internal {
namespace {

// Ready once the thread is dead. Dead waiters are committed by
// scheduler::exit_running under the thread's lock.
class thread_dead_evt final : public base_evt<void> {
 public:
  explicit thread_dead_evt(thread_state* t) : t_(t) { t_->add_ref(); }
  ~thread_dead_evt() override { t_->release(); }

  bool try_sync(self_ref& self) override { return t_->dead() && self.commit<void>(); }
  void arm(waiter& w) override {
    spinlock_guard g(t_->mu);
    if (t_->dead()) {
      self_ref self(w);
      self.commit<void>();
      return;
    }
    t_->dead_waiters.push_back(&w);
  }
  void disarm(waiter& w) noexcept override {
    spinlock_guard g(t_->mu);
    t_->dead_waiters.remove(&w);
  }
  const char* name() const override { return "thread-dead-evt"; }

 private:
  thread_state* const t_;
};

// Requires: t->mu held.
bool has_mail(const thread_state* t) { return t->mailbox != nullptr && !t->mailbox->empty(); }

// Ready when the syncing thread's mailbox is not empty.
class receive_evt final : public base_evt<void> {
 public:
  bool try_sync(self_ref& self) override {
    thread_state* t = scheduler::current().running();
    spinlock_guard g(t->mu);
    return has_mail(t) && self.commit<void>();
  }
  void arm(waiter& w) override {
    thread_state* t = scheduler::current().running();
    w.data = t;
    spinlock_guard g(t->mu);
    if (has_mail(t)) {
      self_ref self(w);
      self.commit<void>();
      return;
    }
    t->mailbox_waiters.push_back(&w);
  }
  void disarm(waiter& w) noexcept override {
    auto* t = static_cast<thread_state*>(w.data);
    spinlock_guard g(t->mu);
    t->mailbox_waiters.remove(&w);
  }
  const char* name() const override { return "thread-receive-evt"; }
};

// Ready when the scheduler finds every green thread blocked.
class idle_evt final : public base_evt<void> {
 public:
  bool try_sync(self_ref&) override { return false; }
  void arm(waiter& w) override {
    scheduler& s = scheduler::current();
    w.data = &s;
    s.add_idle_waiter(&w);
  }
  void disarm(waiter& w) noexcept override {
    static_cast<scheduler*>(w.data)->remove_idle_waiter(&w);
  }
  const char* name() const override { return "system-idle-evt"; }
};

}  // namespace

// The custodian layer's hooks (thread_custody.h).
std::atomic<void (*)(const thread&)> kill_check{nullptr};
std::atomic<void (*)(const thread&)> spawn_check{nullptr};

void run_spawn_check(thread_state* child) {
  child->add_ref();
  spawn_check.load(std::memory_order_acquire)(thread(child));
}

void await_death(thread_state* t) {
  if (t->dead()) return;
  scheduler& here = scheduler::current();
  if (!here.running()->kill_requested.load(std::memory_order_acquire)) {
    thread_dead_evt e(t);
    sync_on_stack<void>(e);
    return;
  }
  if (t->sched != &here) return;
  while (!t->dead()) here.yield();
}

}  // namespace internal

std::size_t thread_options::min_stack_size() { return internal::stack_pool::min_stack_size(); }

const char* stack_guard_name() {
  return internal::stack_guard_kind() == internal::guard_kind::guard_pages ? "guard-pages"
                                                                            : "mprotect";
}

thread::thread(absl::AnyInvocable<void()> fn, thread_options options)
    : ts_(internal::scheduler::current().spawn(std::move(fn), options.stack_size)) {
  // The thread has not run yet: it starts when the spawner next switches.
  ts_->name = std::move(options.name);
}

thread::thread(const thread& o) : ts_(o.ts_) {
  if (ts_ != nullptr) ts_->add_ref();
}

thread& thread::operator=(const thread& o) {
  if (o.ts_ != nullptr) o.ts_->add_ref();
  if (ts_ != nullptr) ts_->release();
  ts_ = o.ts_;
  return *this;
}

thread& thread::operator=(thread&& o) noexcept {
  if (this != &o) {
    if (ts_ != nullptr) ts_->release();
    ts_ = std::exchange(o.ts_, nullptr);
  }
  return *this;
}

thread::~thread() {
  if (ts_ != nullptr) ts_->release();
}

void thread::wait() const {
  internal::thread_dead_evt e(ts_);
  internal::sync_on_stack<void>(e);
}

void thread::kill() const {
  if (auto* check = internal::kill_check.load(std::memory_order_acquire)) check(*this);
  if (ts_->dead()) return;
  internal::scheduler* here = internal::scheduler::current_if_any();
  if (here != nullptr && here->running() == ts_) {
    ts_->kill_requested.store(true, std::memory_order_release);
    throw thread_killed{};
  }
  internal::request_kill(ts_);
  internal::await_death(ts_);
}

const std::string& thread::name() const { return ts_->name; }

std::string thread::describe() const { return internal::describe_thread(ts_); }

evt<void> thread::dead_evt() const {
  return evt<void>(make_node<internal::thread_dead_evt>(ts_));
}

bool thread::running() const { return !ts_->dead(); }

thread current_thread() {
  internal::thread_state* t = internal::scheduler::current().running();
  t->add_ref();
  return thread(t);
}

bool current_thread_killed() {
  internal::scheduler* s = internal::scheduler::current_if_any();
  return s != nullptr && s->running()->kill_requested.load(std::memory_order_acquire);
}

std::size_t live_thread_count() { return internal::scheduler::current().live_threads(); }

const char* reactor_name() { return internal::scheduler::current().io().name(); }

void yield() {
  internal::throw_if_killed();
  internal::scheduler::current().yield();
  internal::throw_if_killed();
}

void sleep(absl::Duration d) {
  if (d <= absl::ZeroDuration()) {
    yield();
    return;
  }
  internal::alarm_impl alarm(absl::ToUnixNanos(absl::Now() + d));
  internal::sync_on_stack<void>(alarm);
}

bool thread_send(const thread& t, std::any v, std::nothrow_t) {
  internal::thread_state* ts = t.state();
  internal::spinlock_guard g(ts->mu);
  if (ts->dead()) return false;
  if (ts->mailbox == nullptr) ts->mailbox = std::make_unique<std::deque<std::any>>();
  ts->mailbox->push_back(std::move(v));
  while (waiter* w = ts->mailbox_waiters.pop_front()) {
    if (claim_waiter(*w)) complete_waiter_with<void>(*w);
  }
  return true;
}

void thread_send(const thread& t, std::any v) {
  if (!thread_send(t, std::move(v), std::nothrow)) {
    throw exn_fail_contract("thread-send: target thread is not running");
  }
}

std::optional<std::any> thread_try_receive() {
  internal::thread_state* t = internal::scheduler::current().running();
  internal::spinlock_guard g(t->mu);
  if (!internal::has_mail(t)) return std::nullopt;
  std::any v = std::move(t->mailbox->front());
  t->mailbox->pop_front();
  return v;
}

std::any thread_receive() {
  for (;;) {
    if (std::optional<std::any> v = thread_try_receive()) return std::move(*v);
    sync(thread_receive_evt());
  }
}

evt<void> thread_receive_evt() {
  static const evt<void> e(make_node<internal::receive_evt>());
  return e;
}

void thread_rewind_receive(std::vector<std::any> messages) {
  internal::thread_state* t = internal::scheduler::current().running();
  internal::spinlock_guard g(t->mu);
  if (t->mailbox == nullptr) t->mailbox = std::make_unique<std::deque<std::any>>();
  for (std::any& m : messages) t->mailbox->push_front(std::move(m));
}

evt<void> system_idle_evt() {
  static const evt<void> e(make_node<internal::idle_evt>());
  return e;
}

namespace custody {

void install(const hooks& h) {
  internal::kill_check.store(h.check_kill, std::memory_order_release);
  internal::spawn_check.store(h.on_spawn, std::memory_order_release);
  internal::set_spawn_hook_for_custody(h.on_spawn == nullptr ? nullptr
                                                             : &internal::run_spawn_check);
}

std::shared_ptr<void>& current_slot() {
  return internal::scheduler::current().running()->custodian;
}

void set_entry(const thread& t, std::shared_ptr<void> entry) {
  internal::thread_state* ts = t.state();
  internal::spinlock_guard g(ts->mu);
  ts->custodian_entry.swap(entry);
  // The old entry, if any, is released after the lock.
}

std::shared_ptr<void> entry(const thread& t) {
  internal::thread_state* ts = t.state();
  internal::spinlock_guard g(ts->mu);
  return ts->custodian_entry;
}

const void* current_entry() {
  internal::thread_state* ts = internal::scheduler::current().running();
  internal::spinlock_guard g(ts->mu);
  return ts->custodian_entry.get();
}

void request_kill(const thread& t) { internal::request_kill(t.state()); }

void await_death_if_local(const thread& t) {
  internal::thread_state* ts = t.state();
  if (ts->sched == internal::scheduler::current_if_any()) internal::await_death(ts);
}

}  // namespace custody
}  // namespace rkt
