// wake_fd: the eventfd(2) through which other OS threads wake a reactor
// that may be blocked in epoll_wait or poll. Both backends watch fd() and
// call drain() when it is reported.
//
// Invariants: pending_ is true from the wake() that wrote the eventfd until
// the drain() that read it; while it is true no other wake() writes.
#ifndef RKT_EVT_INTERNAL_WAKE_FD_H_
#define RKT_EVT_INTERNAL_WAKE_FD_H_

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace rkt::internal {

class wake_fd {
 public:
  // -1, with errno set, when the kernel refuses.
  static int open() { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

  // Takes ownership of an fd from open().
  explicit wake_fd(int fd) : fd_(fd) {}
  wake_fd(const wake_fd&) = delete;
  wake_fd& operator=(const wake_fd&) = delete;
  ~wake_fd() { close(fd_); }

  int fd() const { return fd_; }

  // Any OS thread. An RMW, not a load: a load could read a stale `true`
  // after the owner has drained the eventfd, and the wake would be lost.
  // Release pairs with the acquire in drain(), so what the caller published
  // before wake() is visible once the reactor's wait returns, even when
  // this call writes nothing.
  void wake() {
    if (pending_.exchange(true, std::memory_order_acq_rel)) return;
    const uint64_t one = 1;
    while (write(fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }

  // The owner, when fd() is reported readable. Reads before clearing:
  // clearing first would let a wake() that lands between the two be
  // swallowed by the read while the flag stays set, and no later wake()
  // would write again.
  void drain() {
    uint64_t value;
    while (read(fd_, &value, sizeof value) < 0 && errno == EINTR) {
    }
    pending_.exchange(false, std::memory_order_acq_rel);
  }

 private:
  const int fd_;
  std::atomic<bool> pending_{false};
};

}  // namespace rkt::internal

#endif  // RKT_EVT_INTERNAL_WAKE_FD_H_
