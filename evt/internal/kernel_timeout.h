// The one place that turns a reactor timeout (nanoseconds; negative means
// none) into what the kernel's waits take.
#ifndef RKT_EVT_INTERNAL_KERNEL_TIMEOUT_H_
#define RKT_EVT_INTERNAL_KERNEL_TIMEOUT_H_

#include <time.h>

#include <cstdint>

namespace rkt::internal {

// For ppoll and epoll_pwait2: points at `storage`, or is nullptr (wait
// without a timeout) when timeout_ns is negative.
inline const timespec* to_timespec(int64_t timeout_ns, timespec& storage) {
  if (timeout_ns < 0) return nullptr;
  storage.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
  storage.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
  return &storage;
}

}  // namespace rkt::internal

#endif  // RKT_EVT_INTERNAL_KERNEL_TIMEOUT_H_
