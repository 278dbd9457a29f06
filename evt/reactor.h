// The reactor contract: how a scheduler waits for file-descriptor readiness.
//
// One reactor belongs to one scheduler (one OS thread). Backends live in
// evt/internal/reactor_<name>.cc, one per file: epoll (the default on Linux)
// and poll(2) (selected with `--define rkt_reactor=poll`, and always available
// through make_poll_reactor() so that tests can run against both).
//
// Reads are watched from add() on; writes from the first rearm(kWritable)
// on (a writer tries first and asks after EAGAIN, or asks when it waits
// without trying, as a connect in progress does). A backend may report
// writability earlier. The epoll backend leaves EPOLLOUT out until asked:
// with it, every read of the peer's (each response a client reads) would
// wake the reactor for a direction nobody waits on.
//
// Readiness is edge-triggered from the caller's point of view: after a
// direction has been reported, the backend is only obliged to report it again
// once the caller has said, through rearm(), that it consumed the readiness
// (a read or write returned EAGAIN). It may report it again earlier (epoll
// with EPOLLET does, on every new arrival), so callers treat a report as a
// hint and tolerate repeats. The poll(2) backend emulates edge triggering by
// polling only the directions in io_source::want.
//
// Shared-accept sources (io_mode::shared_accept): one listening socket
// registered with the reactors of several OS threads, each of which accepts
// for itself (docs/MULTICORE.md). The epoll backend adds such a source with
// EPOLLIN|EPOLLET|EPOLLEXCLUSIVE, so that one arrival wakes one blocked
// reactor instead of all of them; EPOLLRDHUP is left out (the kernel refuses
// it with EPOLLEXCLUSIVE) and rearm() never modifies the registration (the
// kernel refuses EPOLL_CTL_MOD of an exclusive one): a listener never waits
// to write, and rearm() ignores kWritable for such a source. Where the
// kernel refuses the flag at add (EINVAL, before Linux 4.5), the backend
// registers without it from then on, for the whole process: every reactor
// is woken (the thundering herd), which is correct, only wasteful. The
// poll(2) backend has no exclusive mode: every OS thread blocked in poll
// with the listener in its set wakes on each arrival, one accept(2) wins and
// the others see EAGAIN. reregister() and withdraw() let the owner rotate
// its place among the registrations and step out while it does not accept.
//
// The RKT_REACTOR environment variable (poll or epoll) overrides the build's
// default backend at run time.
//
// Invariants:
//   - add() is called once per descriptor, before any wait() may report it;
//     remove() is called before the descriptor is closed.
//   - A source removed while wait() is dispatching is never reported again,
//     not even from the batch already read from the kernel; its memory must
//     stay valid until that wait() returns (the scheduler defers the free).
//   - wait(), add(), remove(), reregister(), withdraw() run on the owning
//     OS thread only; wake() and
//     rearm() may be called from any OS thread.
#ifndef RKT_EVT_REACTOR_H_
#define RKT_EVT_REACTOR_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/functional/function_ref.h"

namespace rkt::internal {

// Readiness bits reported by wait().
enum io_events : uint32_t {
  kReadable = 1u << 0,
  kWritable = 1u << 1,
  kHangup = 1u << 2,  // peer closed, or EPOLLRDHUP/POLLHUP: reads will see EOF
  kError = 1u << 3,   // EPOLLERR/POLLERR/POLLNVAL: the next call reports it
};

// How a descriptor is registered (see the top of this file).
enum class io_mode : uint8_t {
  normal,         // one reactor watches it, for reading and writing
  shared_accept,  // a listening socket in several reactors, woken one at a time
};

// One watched descriptor. The scheduler embeds this in its per-fd state.
struct io_source {
  explicit io_source(int fd_in, io_mode mode_in = io_mode::normal) : fd(fd_in), mode(mode_in) {}
  io_source(const io_source&) = delete;
  io_source& operator=(const io_source&) = delete;

  const int fd;
  const io_mode mode;
  // Directions (kReadable|kWritable) the caller has not seen ready since its
  // last rearm(). Backends that are not edge-triggered poll only these.
  std::atomic<uint32_t> want{kReadable | kWritable};
  // Set by remove(); a removed source is never reported again.
  bool removed = false;
  // Backend-private slot (the poll backend keeps its table index here); -1
  // while not registered with the kernel (before add(), after remove(), and
  // while withdrawn).
  int backend_slot = -1;
  // Backend-private flags that rearm() may change from any OS thread (the
  // epoll backend: whether EPOLLOUT is in the registration).
  std::atomic<uint32_t> backend_flags{0};
};

class reactor {
 public:
  virtual ~reactor() = default;

  // "epoll" or "poll".
  virtual const char* name() const = 0;

  // Starts watching src->fd for read readiness (and write readiness once a
  // rearm() asks for it). Returns 0, or the errno of the failure (the
  // source is then not registered).
  virtual int add(io_source* src) = 0;

  // Stops watching; call before closing the descriptor. Idempotent.
  virtual void remove(io_source* src) = 0;

  // Registers an added source again, as a new add() would: the epoll
  // backend deletes the registration and adds it anew, which puts it last
  // among the registrations of the same file (the kernel wakes exclusive
  // ones in that order) and queues a report at once if the descriptor is
  // ready, so nothing pending is lost. Also ends a withdraw(). Returns 0,
  // or the errno of the new registration (the source is then withdrawn).
  virtual int reregister(io_source* src) = 0;

  // Stops watching an added source until reregister() (or remove()); the
  // source stays added. A report already read from the kernel may still be
  // delivered (reports are hints).
  virtual void withdraw(io_source* src) = 0;

  // Waits until a watched direction becomes ready, wake() is called, or
  // timeout_ns passes (negative: no timeout; zero: do not block), then calls
  // on_event(src, events) for each ready source. Returns the number of
  // on_event calls, or -errno on failure. EINTR returns 0.
  virtual int wait(int64_t timeout_ns,
                   absl::FunctionRef<void(io_source*, uint32_t)> on_event) = 0;

  // Makes the current or the next wait() return promptly. Any OS thread.
  virtual void wake() = 0;

  // The caller consumed the readiness of `dirs` (it saw EAGAIN), or waits
  // for them without having seen them: report those directions when they
  // become ready. Any OS thread, provided src stays registered (and its fd
  // open) until rearm returns; a backend that needs it wakes a wait() in
  // progress so that it sees the new interest.
  virtual void rearm(io_source* src, uint32_t dirs) = 0;
};

// For tests: makes the epoll backend behave, for the rest of the process, as
// on a kernel that refuses EPOLLEXCLUSIVE (shared-accept sources are then
// added without it).
void force_epoll_exclusive_refused();
// Whether shared-accept registrations of the epoll backend go without
// EPOLLEXCLUSIVE (refused by the kernel, or forced).
bool epoll_exclusive_refused();

// nullptr, with errno set, when the kernel refuses a descriptor.
std::unique_ptr<reactor> make_epoll_reactor();
std::unique_ptr<reactor> make_poll_reactor();
// The build's default backend: epoll unless built with --define rkt_reactor=poll.
std::unique_ptr<reactor> make_default_reactor();

}  // namespace rkt::internal

#endif  // RKT_EVT_REACTOR_H_
