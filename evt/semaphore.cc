// semaphore: the count, the FIFO of waiting syncs, and the peek waiters.
//
// Invariants (under mu_):
//   - count_ > 0 implies waiters_ holds no sync that could still commit
//     (post hands a unit to the oldest live waiter before counting it).
//   - peekers_ are committed whenever count_ becomes positive.
#include "evt/semaphore.h"

#include <string>

#include "evt/exn.h"
#include "evt/sync.h"

namespace rkt {
namespace internal {

class semaphore_state final : public base_evt<void> {
 public:
  explicit semaphore_state(uint64_t init) : count_(init) {}

  bool try_sync(self_ref& self) override {
    spinlock_guard g(mu_);
    return take(self);
  }
  void arm(waiter& w) override {
    spinlock_guard g(mu_);
    self_ref self(w);
    if (!take(self) && count_ == 0) waiters_.push_back(&w);
  }
  void disarm(waiter& w) noexcept override {
    spinlock_guard g(mu_);
    waiters_.remove(&w);
  }
  const char* name() const override { return "semaphore"; }

  void post() {
    spinlock_guard g(mu_);
    while (waiter* w = waiters_.pop_front()) {
      if (claim_waiter(*w)) {
        complete_waiter_with<void>(*w);
        return;
      }
    }
    if (count_ == semaphore::kMaxCount) {
      throw exn_fail("semaphore-post: the semaphore's count is already at its maximum");
    }
    ++count_;
    while (waiter* w = peekers_.pop_front()) {
      if (claim_waiter(*w)) complete_waiter_with<void>(*w);
    }
  }

  // The peek event's side.
  bool try_peek(self_ref& self) {
    spinlock_guard g(mu_);
    return count_ > 0 && self.commit<void>();
  }
  void arm_peek(waiter& w) {
    spinlock_guard g(mu_);
    if (count_ > 0) {
      self_ref self(w);
      self.commit<void>();
      return;
    }
    peekers_.push_back(&w);
  }
  void disarm_peek(waiter& w) noexcept {
    spinlock_guard g(mu_);
    peekers_.remove(&w);
  }

 private:
  // Requires: mu_ held.
  bool take(self_ref& self) {
    if (count_ == 0 || !self.claim()) return false;
    --count_;
    self.complete<void>();
    return true;
  }

  spinlock mu_;
  uint64_t count_;        // guarded by mu_
  waiter_list waiters_;   // guarded by mu_
  waiter_list peekers_;   // guarded by mu_
};

class semaphore_peek_evt final : public base_evt<void> {
 public:
  explicit semaphore_peek_evt(node_ref<semaphore_state> s) : s_(std::move(s)) {}
  bool try_sync(self_ref& self) override { return s_->try_peek(self); }
  void arm(waiter& w) override { s_->arm_peek(w); }
  void disarm(waiter& w) noexcept override { s_->disarm_peek(w); }
  const char* name() const override { return "semaphore-peek-evt"; }

 private:
  const node_ref<semaphore_state> s_;
};

}  // namespace internal

semaphore::semaphore(uint64_t init) {
  if (init > kMaxCount) {
    throw exn_fail("make-semaphore: initial count " + std::to_string(init) +
                            " is larger than the maximum " + std::to_string(kMaxCount));
  }
  st_ = make_node<internal::semaphore_state>(init);
}

internal::semaphore_state& semaphore::state() const {
  return *static_cast<internal::semaphore_state*>(st_.get());
}

void semaphore::post() const { state().post(); }

void semaphore::wait() const { sync(*this); }

bool semaphore::try_wait() const { return sync_timeout(absl::ZeroDuration(), *this); }

evt<void> semaphore::peek_evt() const {
  return evt<void>(make_node<internal::semaphore_peek_evt>(&state()));
}

semaphore::operator evt<void>() const { return evt<void>(st_); }

}  // namespace rkt
