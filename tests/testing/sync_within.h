// sync_within(e, d): sync on `e`, but fail the current test instead of
// hanging when nothing commits within `d`. Every test waits through this (or
// sync_timeout) so that a bug shows up as a failure, never as a hang.
#ifndef RKT_TESTS_TESTING_SYNC_WITHIN_H_
#define RKT_TESTS_TESTING_SYNC_WITHIN_H_

#include <gtest/gtest.h>

#include <optional>
#include <type_traits>

#include "absl/time/time.h"
#include "absl/time/clock.h"
#include "evt/alarm.h"
#include "evt/sync.h"

namespace rkt::test {

// A bound that only a bug reaches, also under sanitizers on a loaded
// machine.
inline constexpr absl::Duration kHangBound = absl::Seconds(20);

// Returns e's result. On timeout, records a fatal failure and throws
// std::runtime_error so that the test body stops (gtest reports the
// failure).
template <class E>
evt_result_t<E> sync_within(const E& e, absl::Duration d = kHangBound) {
  using T = evt_result_t<E>;
  auto r = sync_timeout(d, e);
  if constexpr (std::is_void_v<T>) {
    if (!r) {
      ADD_FAILURE() << "sync_within: nothing committed within " << d;
      throw std::runtime_error("sync_within timed out");
    }
  } else {
    if (!r.has_value()) {
      ADD_FAILURE() << "sync_within: nothing committed within " << d;
      throw std::runtime_error("sync_within timed out");
    }
    return std::move(*r);
  }
}

// An event for a plain blocking rkt::sync: it commits with `sentinel` and
// fails the test when nothing else committed within kHangBound.
template <class T>
rkt::evt<T> hang_guard(T sentinel) {
  return rkt::wrap_evt(rkt::alarm_evt(absl::Now() + kHangBound), [sentinel] {
    ADD_FAILURE() << "rkt::sync blocked for " << kHangBound;
    return sentinel;
  });
}

}  // namespace rkt::test

#endif  // RKT_TESTS_TESTING_SYNC_WITHIN_H_
