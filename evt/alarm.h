// alarm_evt(t): an event that is ready at or after the absolute time t
// (Racket's alarm-evt); sleep() and sync_timeout use the same timers.
#ifndef RKT_EVT_ALARM_H_
#define RKT_EVT_ALARM_H_

#include <cstdint>

#include "absl/time/time.h"
#include "evt/evt.h"

namespace rkt {
namespace internal {

// The alarm as a base event; also usable on the stack (sleep).
class alarm_impl final : public base_evt<void> {
 public:
  explicit alarm_impl(int64_t deadline_ns) : deadline_ns_(deadline_ns) {}
  bool try_sync(self_ref& self) override;
  void arm(waiter& w) override;
  void disarm(waiter& w) noexcept override;
  const char* name() const override { return "alarm-evt"; }

 private:
  const int64_t deadline_ns_;
};

}  // namespace internal

// Ready once absl::Now() >= t; the result is void.
evt<void> alarm_evt(absl::Time t);

}  // namespace rkt

#endif  // RKT_EVT_ALARM_H_
