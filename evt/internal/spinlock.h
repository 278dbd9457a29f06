// A small test-and-test-and-set lock for the short critical sections of the
// evt core (channel queues, semaphore counts, waiter lists).
//
// Holders never park a green thread, never call user code and never take
// another spinlock of the same kind unless a lock order is documented at the
// call site, so a waiter spins only while another OS thread runs a few
// instructions. After a bounded spin it yields the OS thread, so a holder
// that was preempted gets the core back.
#ifndef RKT_EVT_INTERNAL_SPINLOCK_H_
#define RKT_EVT_INTERNAL_SPINLOCK_H_

#include <sched.h>

#include <atomic>

namespace rkt::internal {

// Not named cpu_relax: Boost.Fiber defines a macro of that name.
inline void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins a few times, then gives the OS thread up; call in a retry loop.
class backoff {
 public:
  void pause() {
    if (spins_ < 64) {
      ++spins_;
      spin_pause();
    } else {
      sched_yield();
    }
  }

 private:
  int spins_ = 0;
};

class spinlock {
 public:
  void lock() {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    backoff b;
    do {
      while (locked_.load(std::memory_order_relaxed)) b.pause();
    } while (locked_.exchange(true, std::memory_order_acquire));
  }
  bool try_lock() { return !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

class spinlock_guard {
 public:
  explicit spinlock_guard(spinlock& l) : l_(l) { l_.lock(); }
  ~spinlock_guard() { l_.unlock(); }
  spinlock_guard(const spinlock_guard&) = delete;
  spinlock_guard& operator=(const spinlock_guard&) = delete;

 private:
  spinlock& l_;
};

}  // namespace rkt::internal

#endif  // RKT_EVT_INTERNAL_SPINLOCK_H_
