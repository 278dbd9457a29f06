// io_handle: readiness bits with a report sequence, and the fd events.
#include "evt/io_handle.h"

#include <cerrno>
#include <utility>

#include "evt/internal/scheduler.h"

namespace rkt {

// An fd event for one direction; keeps the handle alive.
class io_handle::dir_evt final : public base_evt<void> {
 public:
  dir_evt(io_handle* h, uint32_t dir) : h_(h), dir_(dir) {}

  bool try_sync(self_ref& self) override { return ready() && self.commit<void>(); }
  void arm(waiter& w) override {
    internal::spinlock_guard g(h_->mu_);
    if (ready()) {
      self_ref self(w);
      self.commit<void>();
      return;
    }
    list().push_back(&w);
    // A writer may wait without having seen EAGAIN (a connect in progress):
    // the reactor must watch the direction from now on.
    if (dir_ == internal::kWritable) h_->rearm_locked(internal::kWritable);
  }
  void disarm(waiter& w) noexcept override {
    internal::spinlock_guard g(h_->mu_);
    list().remove(&w);
  }
  const char* name() const override {
    return dir_ == internal::kReadable ? "fd-readable-evt" : "fd-writable-evt";
  }

 private:
  bool ready() const {
    return (bits(h_->readiness()) & (dir_ | internal::kError | kClosed)) != 0;
  }
  waiter_list& list() { return dir_ == internal::kReadable ? h_->readers_ : h_->writers_; }

  const node_ref<io_handle> h_;
  const uint32_t dir_;
};

io_handle::io_handle(int fd, io_mode mode)
    : internal::io_source(fd, mode),
      sched_(&internal::scheduler::current()),
      anchor_(sched_->anchor()) {
  error_ = sched_->add_io(this);
  if (error_ != 0) {
    state_.store(kClosed, std::memory_order_relaxed);
  } else {
    sched_->track(this);
  }
}

node_ref<io_handle> io_handle::create(int fd, io_mode mode) {
  return node_ref<io_handle>(new io_handle(fd, mode));
}

// An exited owner's scheduler is freed and its address may be reused by a
// later thread's: owner_exited() is set before that.
bool io_handle::on_owner_thread() const {
  return !owner_exited() && internal::scheduler::current_if_any() == sched_;
}

int io_handle::reregister() {
  if (error_ != 0 || closed()) return EBADF;
  return sched_->io().reregister(this);
}

void io_handle::withdraw() {
  if (error_ == 0 && !closed()) sched_->io().withdraw(this);
}

io_handle::~io_handle() { close(); }

void io_handle::consume(uint64_t seen, uint32_t dirs) {
  uint64_t cur = state_.load(std::memory_order_acquire);
  for (;;) {
    if ((cur >> 8) != (seen >> 8)) return;  // a newer report: keep it
    uint64_t next = cur & ~static_cast<uint64_t>(dirs);
    if (state_.compare_exchange_weak(cur, next, std::memory_order_acq_rel)) break;
  }
  internal::spinlock_guard g(mu_);
  rearm_locked(dirs);
}

void io_handle::rearm_locked(uint32_t dirs) {
  // A closed handle is no longer registered (and its owner may be gone).
  // Under mu_ the check holds until rearm returns: close() sets kClosed and
  // then takes mu_ (in wake()) before it removes the registration, and the
  // fd is closed only after that.
  if (error_ == 0 && !closed()) sched_->io().rearm(this, dirs);
}

void io_handle::on_ready_bits(uint32_t events) {
  uint64_t cur = state_.load(std::memory_order_relaxed);
  uint64_t next;
  do {
    next = (((cur >> 8) + 1) << 8) | ((cur | events) & 0xff);
  } while (!state_.compare_exchange_weak(cur, next, std::memory_order_acq_rel));
}

void io_handle::on_ready(uint32_t events) {
  on_ready_bits(events);
  wake(events);
  if (listener_ != nullptr) listener_->on_io(events);
}

void io_handle::wake(uint32_t events) {
  const bool all = (events & (internal::kError | kClosed)) != 0;
  internal::spinlock_guard g(mu_);
  if (all || (events & (internal::kReadable | internal::kHangup)) != 0) {
    while (waiter* w = readers_.pop_front()) {
      if (claim_waiter(*w)) complete_waiter_with<void>(*w);
    }
  }
  if (all || (events & internal::kWritable) != 0) {
    while (waiter* w = writers_.pop_front()) {
      if (claim_waiter(*w)) complete_waiter_with<void>(*w);
    }
  }
}

void io_handle::close() {
  if (closed()) return;
  on_ready(kClosed);
  if (error_ == 0) {
    sched_->remove_io(this);
    sched_->untrack(this);
  }
  cancel_report();  // last: it may drop the final reference
}

void io_handle::close_for_owner_exit() {
  owner_exited_.store(true, std::memory_order_release);
  close();
}

void io_handle::close_from_any_thread(absl::AnyInvocable<void()> then) {
  node_ref<io_handle> self(this);
  anchor_->run_on_owner([self, then = std::move(then)]() mutable {
    self->set_listener(nullptr);
    self->close();
    if (then) then();
  });
}

void io_handle::report_after(absl::Duration delay, uint32_t dirs) {
  const int64_t deadline = internal::scheduler::now_ns() + absl::ToInt64Nanoseconds(delay);
  if (internal::scheduler::current_if_any() == sched_) {
    schedule_report(deadline, dirs);
    return;
  }
  // Through the anchor: once the owner has exited the handle is closed and
  // this does nothing.
  node_ref<io_handle> self(this);
  anchor_->run_on_owner(
      [self = std::move(self), deadline, dirs] { self->schedule_report(deadline, dirs); });
}

// Owner thread.
void io_handle::schedule_report(int64_t deadline_ns, uint32_t dirs) {
  if (closed()) return;
  report_dirs_ |= dirs;
  report_timer_.fire = &io_handle::fire_report;
  report_timer_.context = this;
  if (report_timer_.queued()) {
    if (report_timer_.deadline_ns <= deadline_ns) return;
    // Out and back in: the push reuses the slot just freed, so cannot throw.
    sched_->remove_timer(&report_timer_);
    report_timer_.deadline_ns = deadline_ns;
    sched_->add_timer(&report_timer_);
    return;
  }
  report_timer_.deadline_ns = deadline_ns;
  sched_->add_timer(&report_timer_);  // may throw std::bad_alloc: no reference taken yet
  add_ref();  // the pending timer's, dropped when it fires or is cancelled
}

// Owner thread.
void io_handle::cancel_report() {
  if (!report_timer_.queued()) return;
  sched_->remove_timer(&report_timer_);
  report_dirs_ = 0;
  release();
}

// Owner thread, from the timer heap (the node is already out of it).
void io_handle::fire_report(internal::timer_node* n) {
  auto* h = static_cast<io_handle*>(n->context);
  const uint32_t dirs = std::exchange(h->report_dirs_, 0);
  // The listener may ask for the next report from here: it finds no timer
  // pending and queues a fresh one.
  if (!h->closed()) h->on_ready(dirs);
  h->release();
}

evt<void> io_handle::readable_evt() {
  return evt<void>(make_node<dir_evt>(this, internal::kReadable));
}
evt<void> io_handle::writable_evt() {
  return evt<void>(make_node<dir_evt>(this, internal::kWritable));
}

namespace internal {

void on_io_ready(io_source* src, uint32_t events) {
  static_cast<io_handle*>(src)->on_ready(events);
}

}  // namespace internal
}  // namespace rkt
