// semaphore: Racket's counting semaphore. post() increments, wait()
// decrements or parks; the semaphore is an event (ready when wait would not
// block; committing decrements) and peek_evt() is ready when the count is
// positive without decrementing. Waiters are served in FIFO order: a post
// hands its unit straight to the oldest waiting sync. Works across OS
// threads.
#ifndef RKT_EVT_SEMAPHORE_H_
#define RKT_EVT_SEMAPHORE_H_

#include <cstdint>

#include "evt/evt.h"

namespace rkt {
namespace internal {
class semaphore_state;
}  // namespace internal

class semaphore {
 public:
  using result_type = void;

  // The largest count; post() beyond it raises exn_fail.
  static constexpr uint64_t kMaxCount = (uint64_t{1} << 62) - 1;

  // Raises exn_fail when init > kMaxCount.
  explicit semaphore(uint64_t init = 0);

  void post() const;
  void wait() const;
  // Decrements and returns true if the count is positive; never blocks.
  bool try_wait() const;
  // Ready while the count is positive; does not decrement.
  evt<void> peek_evt() const;

  operator evt<void>() const;  // NOLINT: a semaphore is an event
  const internal::any_node& node() const { return st_; }

  bool operator==(const semaphore& o) const { return st_.get() == o.st_.get(); }

 private:
  internal::semaphore_state& state() const;

  internal::any_node st_;  // a semaphore_state
};

}  // namespace rkt

#endif  // RKT_EVT_SEMAPHORE_H_
