// The poll(2) reactor backend: make_poll_reactor(). Used by the tests (and by
// `--define rkt_reactor=poll` builds) to show that nothing above the reactor
// depends on epoll.
//
// The contract is in evt/reactor.h. poll(2) is level-triggered; edge
// semantics are emulated through io_source::want: a wait() polls a source
// only for the directions in its want, clears each direction it reports, and
// rearm() sets them again. Cross-thread wake-ups go through an eventfd(2).
// A shared-accept source (reactor.h) is polled for reading only; poll(2)
// has no exclusive mode, so every OS thread polling a shared listener wakes
// on each arrival. reregister() is a table update; withdraw() takes the
// source out of the table until then.
//
// Invariants:
//   - sources_[i]->backend_slot == i for every registered source; a source
//     that is not registered has backend_slot == -1.
//   - pfds_[0] is the eventfd; pfds_[i] (i >= 1) is polled_[i - 1]. Both are
//     scratch of the current wait() and may name sources removed since.
//   - pfds_ and polled_ have capacity for every registered source plus the
//     eventfd, so wait() never allocates.
//   - waiting_ is true while wait() reads want and sleeps in ppoll(); a
//     rearm() that adds a direction during that window calls wake().
//   - Wakes follow wake_fd's protocol (internal/wake_fd.h).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "evt/internal/kernel_timeout.h"
#include "evt/internal/wake_fd.h"
#include "evt/reactor.h"

namespace rkt::internal {
namespace {

constexpr uint32_t kDirections = kReadable | kWritable;

// The directions a source can be polled for: a listener never writes.
uint32_t directions_of(const io_source* src) {
  return src->mode == io_mode::shared_accept ? kReadable : kDirections;
}

short to_poll_events(uint32_t want) {
  short ev = 0;
  if (want & kReadable) {
    ev |= POLLIN;
#ifdef POLLRDHUP
    ev |= POLLRDHUP;  // a peer's shutdown(SHUT_WR) reports kHangup, as with epoll
#endif
  }
  if (want & kWritable) ev |= POLLOUT;
  return ev;
}

// The same mapping as reactor_epoll.cc's. POLLHUP, POLLERR and POLLNVAL come
// back even when not requested (poll(2), "revents"), which is why a source
// whose want is empty is left out of the poll set instead of polled for 0.
uint32_t to_io_events(short re) {
  uint32_t out = 0;
#ifdef POLLRDHUP
  constexpr short kRdHup = POLLRDHUP;
#else
  constexpr short kRdHup = 0;
#endif
  if (re & (POLLIN | kRdHup | POLLHUP)) out |= kReadable;
  if (re & (kRdHup | POLLHUP)) out |= kHangup;
  if (re & (POLLOUT | POLLHUP)) out |= kWritable;
  if (re & (POLLERR | POLLNVAL)) out |= kError | kReadable | kWritable;
  return out;
}

class poll_reactor final : public reactor {
 public:
  explicit poll_reactor(int wake) : waker_(wake) {}

  // Room for the eventfd's pollfd; false when out of memory.
  bool init() noexcept {
    try {
      pfds_.reserve(1);
    } catch (const std::bad_alloc&) {
      return false;
    }
    return true;
  }

  const char* name() const override { return "poll"; }

  int add(io_source* src) override {
    if (src->backend_slot >= 0) return EEXIST;
    // poll(2) would take a bad fd and report POLLNVAL later; fail now instead,
    // as epoll_ctl(2) does.
    if (fcntl(src->fd, F_GETFD) < 0) return errno;
    const int rc = insert(src);
    if (rc == 0) src->removed = false;
    return rc;
  }

  void remove(io_source* src) override {
    src->removed = true;
    if (src->backend_slot >= 0) erase(src);
  }

  int reregister(io_source* src) override {
    if (src->removed) return EBADF;
    if (src->backend_slot >= 0) {
      // Owner thread, so not inside ppoll(): the next wait() polls it.
      src->want.store(directions_of(src), std::memory_order_seq_cst);
      return 0;
    }
    return insert(src);
  }

  void withdraw(io_source* src) override {
    if (src->backend_slot >= 0) erase(src);
  }

  int wait(int64_t timeout_ns,
           absl::FunctionRef<void(io_source*, uint32_t)> on_event) override {
    // seq_cst here and in rearm(): either this loop reads a rearm()'s new bit,
    // or that rearm() reads waiting_ == true and wakes the ppoll() below.
    waiting_.store(true, std::memory_order_seq_cst);
    pfds_.clear();
    polled_.clear();
    pfds_.push_back(pollfd{waker_.fd(), POLLIN, 0});
    for (io_source* src : sources_) {
      const uint32_t want = src->want.load(std::memory_order_seq_cst) & kDirections;
      if (want == 0) continue;
      pfds_.push_back(pollfd{src->fd, to_poll_events(want), 0});
      polled_.push_back(polled{src, want});
    }

    timespec ts;
    const int n = ppoll(pfds_.data(), pfds_.size(), to_timespec(timeout_ns, ts), nullptr);
    const int err = errno;
    waiting_.store(false, std::memory_order_seq_cst);
    if (n < 0) return err == EINTR ? 0 : -err;
    if (n == 0) return 0;

    if (pfds_[0].revents != 0) waker_.drain();
    int delivered = 0;
    for (size_t i = 1; i < pfds_.size(); ++i) {
      if (pfds_[i].revents == 0) continue;
      const polled p = polled_[i - 1];  // a copy: on_event may add() and grow polled_
      // Checked per event: on_event may remove a source later in this batch.
      if (p.src->removed) continue;
      // Only the directions that were polled: reporting one the caller has
      // not rearmed would break the edge semantics of reactor.h.
      uint32_t events = to_io_events(pfds_[i].revents);
      events &= p.want | kHangup | kError;
      const uint32_t dirs = events & kDirections;
      if (dirs != 0) p.src->want.fetch_and(~dirs, std::memory_order_acq_rel);
      on_event(p.src, events);
      ++delivered;
    }
    return delivered;
  }

  void wake() override { waker_.wake(); }

  void rearm(io_source* src, uint32_t dirs) override {
    dirs &= directions_of(src);
    if (dirs == 0) return;
    const uint32_t old = src->want.fetch_or(dirs, std::memory_order_seq_cst);
    // Directions already set are in the current poll set, or the rearm()
    // that set them did the check below.
    if ((old & dirs) == dirs) return;
    // Not in wait(): the next wait() builds its poll set from want. On the
    // owning thread this is always the case, so it costs no system call.
    if (waiting_.load(std::memory_order_seq_cst)) wake();
  }

 private:
  // Puts src in the table, to be polled for all its directions (as
  // EPOLL_CTL_ADD reports current readiness). Returns 0 or ENOMEM.
  int insert(io_source* src) {
    try {
      sources_.push_back(src);
      pfds_.reserve(sources_.capacity() + 1);
      polled_.reserve(sources_.capacity());
    } catch (const std::bad_alloc&) {
      if (!sources_.empty() && sources_.back() == src) sources_.pop_back();
      return ENOMEM;
    }
    src->backend_slot = static_cast<int>(sources_.size()) - 1;
    src->want.store(directions_of(src), std::memory_order_seq_cst);
    return 0;
  }

  // Takes src, which is in the table, out of it.
  void erase(io_source* src) {
    const int slot = src->backend_slot;
    io_source* last = sources_.back();
    sources_[slot] = last;
    last->backend_slot = slot;
    sources_.pop_back();
    src->backend_slot = -1;
  }

  struct polled {
    io_source* src;
    uint32_t want;  // the directions polled for src in this wait()
  };

  wake_fd waker_;
  std::atomic<bool> waiting_{false};
  std::vector<io_source*> sources_;
  std::vector<pollfd> pfds_;
  std::vector<polled> polled_;
};

}  // namespace

// Returns nullptr, with errno set, if a descriptor or the memory is refused.
std::unique_ptr<reactor> make_poll_reactor() {
  int wfd = wake_fd::open();
  if (wfd < 0) return nullptr;
  std::unique_ptr<poll_reactor> r(new (std::nothrow) poll_reactor(wfd));
  if (r == nullptr) {
    close(wfd);
    errno = ENOMEM;
    return nullptr;
  }
  if (!r->init()) {
    errno = ENOMEM;
    return nullptr;  // ~poll_reactor closes wfd
  }
  return r;
}

}  // namespace rkt::internal
