// one_shot_evt: an event that becomes ready, for good, when post() is
// called; its result is void. The nack events of nack_guard_evt and a
// custodian's shutdown event are one_shot_evts.
#ifndef RKT_EVT_INTERNAL_ONE_SHOT_EVT_H_
#define RKT_EVT_INTERNAL_ONE_SHOT_EVT_H_

#include "evt/evt_impl.h"
#include "evt/internal/spinlock.h"

namespace rkt::internal {

class one_shot_evt final : public base_evt<void> {
 public:
  explicit one_shot_evt(const char* name) : name_(name) {}

  bool try_sync(self_ref& self) override {
    spinlock_guard g(mu_);
    return posted_ && self.commit<void>();
  }
  void arm(waiter& w) override {
    spinlock_guard g(mu_);
    if (posted_) {
      self_ref self(w);
      self.commit<void>();
      return;
    }
    waiters_.push_back(&w);
  }
  void disarm(waiter& w) noexcept override {
    spinlock_guard g(mu_);
    waiters_.remove(&w);
  }
  const char* name() const override { return name_; }

  // Makes the event ready and commits every sync waiting on it. Idempotent;
  // any OS thread.
  void post() noexcept {
    spinlock_guard g(mu_);
    if (posted_) return;
    posted_ = true;
    while (waiter* w = waiters_.pop_front()) {
      if (claim_waiter(*w)) complete_waiter_with<void>(*w);
    }
  }

 private:
  const char* const name_;
  spinlock mu_;
  bool posted_ = false;  // guarded by mu_
  waiter_list waiters_;  // guarded by mu_
};

}  // namespace rkt::internal

#endif  // RKT_EVT_INTERNAL_ONE_SHOT_EVT_H_
