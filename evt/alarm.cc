// alarm_evt: a timer in the syncing thread's scheduler per armed waiter.
#include "evt/alarm.h"

#include "evt/internal/scheduler.h"

namespace rkt {
namespace internal {
namespace {

void fire_alarm(timer_node* n) {
  auto* w = static_cast<waiter*>(n->context);
  if (claim_waiter(*w)) complete_waiter_with<void>(*w);
}

}  // namespace

bool alarm_impl::try_sync(self_ref& self) {
  return scheduler::now_ns() >= deadline_ns_ && self.commit<void>();
}

// The timer lives in the waiter and in the scheduler of the syncing thread,
// which is also the thread that disarms it: no lock is needed.
void alarm_impl::arm(waiter& w) {
  scheduler& s = scheduler::current();
  w.data = &s;
  w.timer.deadline_ns = deadline_ns_;
  w.timer.fire = &fire_alarm;
  w.timer.context = &w;
  s.add_timer(&w.timer);
}

void alarm_impl::disarm(waiter& w) noexcept {
  static_cast<scheduler*>(w.data)->remove_timer(&w.timer);
}

}  // namespace internal

evt<void> alarm_evt(absl::Time t) {
  return evt<void>(make_node<internal::alarm_impl>(absl::ToUnixNanos(t)));
}

}  // namespace rkt
