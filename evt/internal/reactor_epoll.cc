// The epoll(7) reactor backend: make_epoll_reactor(), the default on Linux.
//
// The contract is in evt/reactor.h. Each descriptor is registered once,
// edge-triggered, for EPOLLIN|EPOLLRDHUP with the io_source pointer as its
// epoll data; EPOLLOUT joins the registration (one EPOLL_CTL_MOD) the first
// time a writer waits, and stays. Registering EPOLLOUT from the start would
// wake the reactor each time a peer reads what was sent (a server's every
// response), for a direction nobody waits on: on a keep-alive HTTP load
// that was most of the reactor's wake-ups. Cross-thread wake-ups go through
// an eventfd(2) watched by the same epoll instance. Shared-accept sources
// (reactor.h) are added with EPOLLIN|EPOLLET|EPOLLEXCLUSIVE and never
// modified: EPOLLOUT never joins them.
//
// Invariants:
//   - src->backend_slot is 0 while src is registered with epfd_, -1 otherwise
//     (not added, removed, or withdrawn).
//   - kWatchingOut in src->backend_flags: EPOLLOUT is in the registration, or
//     the rearm() that adds it is under way.
//   - Wakes follow wake_fd's protocol (internal/wake_fd.h).
#include <errno.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <memory>
#include <new>

#include "evt/internal/kernel_timeout.h"
#include "evt/internal/wake_fd.h"
#include "evt/reactor.h"

namespace rkt::internal {
namespace {

// Events read per wait(). When more are ready, the next epoll_wait() goes on
// round robin through the ready set (epoll_wait(2)), so none starves.
constexpr int kMaxEvents = 256;

// io_source::backend_flags bit.
constexpr uint32_t kWatchingOut = 1;

// Set once the kernel refused EPOLLEXCLUSIVE (or a test forced it): from
// then on shared-accept sources are added without it.
std::atomic<bool> exclusive_refused{false};

// The registration mask of a source: what add() and reregister() ask for.
uint32_t mask_for(const io_source* src) {
  if (src->mode == io_mode::shared_accept) {
    uint32_t m = EPOLLIN | EPOLLET;
    if (!exclusive_refused.load(std::memory_order_relaxed)) m |= EPOLLEXCLUSIVE;
    return m;
  }
  uint32_t m = EPOLLIN | EPOLLRDHUP | EPOLLET;
  if ((src->backend_flags.load(std::memory_order_acquire) & kWatchingOut) != 0) m |= EPOLLOUT;
  return m;
}

// Readiness bits for an epoll event mask. EPOLLERR wakes both directions so
// that whoever is parked retries its call and sees the error; EPOLLHUP wakes
// writers too, since a write after the peer is gone fails (EPIPE) instead of
// blocking.
uint32_t to_io_events(uint32_t ev) {
  uint32_t out = 0;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) out |= kReadable;
  if (ev & (EPOLLRDHUP | EPOLLHUP)) out |= kHangup;
  if (ev & (EPOLLOUT | EPOLLHUP)) out |= kWritable;
  if (ev & EPOLLERR) out |= kError | kReadable | kWritable;
  return out;
}

class epoll_reactor final : public reactor {
 public:
  epoll_reactor(int epfd, int wake) : epfd_(epfd), waker_(wake) {}
  ~epoll_reactor() override { close(epfd_); }

  const char* name() const override { return "epoll"; }

  int add(io_source* src) override {
    if (src->backend_slot >= 0) return EEXIST;
    src->backend_flags.store(0, std::memory_order_relaxed);
    const int rc = ctl_add(src);
    if (rc != 0) return rc;
    src->removed = false;
    return 0;
  }

  int reregister(io_source* src) override {
    if (src->removed) return EBADF;
    withdraw(src);
    return ctl_add(src);
  }

  void withdraw(io_source* src) override {
    if (src->backend_slot < 0) return;
    src->backend_slot = -1;
    epoll_event unused{};
    epoll_ctl(epfd_, EPOLL_CTL_DEL, src->fd, &unused);
  }

  void remove(io_source* src) override {
    src->removed = true;
    if (src->backend_slot < 0) return;
    src->backend_slot = -1;
    // close() alone would not do: the registration belongs to the open file
    // description and outlives the fd while a dup() or a forked child holds
    // it (epoll(7), Q6), so events naming src could keep coming. EBADF and
    // ENOENT mean the caller closed the fd first; with no other reference
    // the kernel has already dropped the registration.
    epoll_event unused{};  // non-null for kernels before 2.6.9 (epoll_ctl(2), BUGS)
    epoll_ctl(epfd_, EPOLL_CTL_DEL, src->fd, &unused);
  }

  int wait(int64_t timeout_ns,
           absl::FunctionRef<void(io_source*, uint32_t)> on_event) override {
    int n = epoll_wait_ns(timeout_ns);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    int delivered = 0;
    for (int i = 0; i < n; ++i) {
      auto* src = static_cast<io_source*>(events_[i].data.ptr);
      if (src == nullptr) {
        waker_.drain();
        continue;
      }
      // Checked per event, not per batch: on_event may remove a source whose
      // event is later in this batch (reactor.h, Invariants).
      if (src->removed) continue;
      on_event(src, to_io_events(events_[i].events));
      ++delivered;
    }
    return delivered;
  }

  void wake() override { waker_.wake(); }

  // EPOLLET reports every new readiness transition (epoll(7), "Level-triggered
  // and edge-triggered"). The caller rearms only after EAGAIN, that is after
  // the kernel saw the direction become not ready, so the next transition is
  // reported without any call here. io_source::want is not consulted: in
  // practice each wake-up of the file's wait queue (each pipe write, a peer's
  // read) reports the whole current mask again, also before any rearm(), and
  // dropping those reports by want would lose the ones a rearm() needs.
  // The one thing to do is to add EPOLLOUT the first time a writer waits:
  // EPOLL_CTL_MOD checks readiness at once and queues an event if the fd is
  // writable already, so a transition before the MOD is not lost.
  // A shared-accept source is never modified (the kernel refuses MOD of an
  // exclusive registration, and a listener does not wait to write).
  void rearm(io_source* src, uint32_t dirs) override {
    if ((dirs & kWritable) == 0 || src->mode == io_mode::shared_accept) return;
    if ((src->backend_flags.fetch_or(kWatchingOut, std::memory_order_acq_rel) &
         kWatchingOut) != 0) {
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = src;
    // ENOENT/EBADF: the source was removed meanwhile; nothing to watch.
    epoll_ctl(epfd_, EPOLL_CTL_MOD, src->fd, &ev);
  }

 private:
  // EPOLL_CTL_ADD with the source's mask; on EINVAL for EPOLLEXCLUSIVE (a
  // kernel before 4.5) once more without it, remembered for the process.
  int ctl_add(io_source* src) {
    epoll_event ev{};
    ev.events = mask_for(src);
    ev.data.ptr = src;
    int rc = epoll_ctl(epfd_, EPOLL_CTL_ADD, src->fd, &ev);
    if (rc != 0 && errno == EINVAL && (ev.events & EPOLLEXCLUSIVE) != 0) {
      exclusive_refused.store(true, std::memory_order_relaxed);
      ev.events = mask_for(src);
      rc = epoll_ctl(epfd_, EPOLL_CTL_ADD, src->fd, &ev);
    }
    if (rc != 0) return errno;
    src->backend_slot = 0;
    return 0;
  }

  // epoll_pwait2 (Linux 5.11, glibc 2.35) takes a timespec; epoll_wait takes
  // milliseconds, rounded up so that a wait never ends before its deadline.
  int epoll_wait_ns(int64_t timeout_ns) {
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 35)
    if (have_pwait2_) {
      timespec ts;
      int n = epoll_pwait2(epfd_, events_, kMaxEvents, to_timespec(timeout_ns, ts), nullptr);
      if (n >= 0 || errno != ENOSYS) return n;
      have_pwait2_ = false;
    }
#endif
    int timeout_ms = -1;
    if (timeout_ns >= 0) {
      int64_t ms = timeout_ns / 1'000'000 + (timeout_ns % 1'000'000 != 0);
      timeout_ms = ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
    }
    return epoll_wait(epfd_, events_, kMaxEvents, timeout_ms);
  }

  const int epfd_;
  wake_fd waker_;
  bool have_pwait2_ = true;  // cleared on ENOSYS (kernel before 5.11)
  epoll_event events_[kMaxEvents];
};

}  // namespace

void force_epoll_exclusive_refused() { exclusive_refused.store(true, std::memory_order_relaxed); }
bool epoll_exclusive_refused() { return exclusive_refused.load(std::memory_order_relaxed); }

// Returns nullptr, with errno set, if a descriptor or the memory is refused.
std::unique_ptr<reactor> make_epoll_reactor() {
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return nullptr;
  int wfd = wake_fd::open();
  if (wfd < 0) {
    int err = errno;
    close(epfd);
    errno = err;
    return nullptr;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // no io_source is null: marks the eventfd
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, wfd, &ev) != 0) {
    int err = errno;
    close(wfd);
    close(epfd);
    errno = err;
    return nullptr;
  }
  auto* r = new (std::nothrow) epoll_reactor(epfd, wfd);
  if (r == nullptr) {
    close(wfd);
    close(epfd);
    errno = ENOMEM;
  }
  return std::unique_ptr<reactor>(r);
}

}  // namespace rkt::internal
