// fd_io: reads and writes that do not block, per fd_way, and the SIGPIPE
// guard of pipe writes.
#include "ports/internal/fd_io.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <optional>

namespace rkt::internal {
namespace {

// What preadv2/pwritev2 answer when they cannot do RWF_NOWAIT on this
// descriptor: EOPNOTSUPP (named FIFOs, kernels before pipes supported it),
// EINVAL (kernels before 4.14 know no RWF_NOWAIT), ENOSYS (before 4.6).
bool nowait_unsupported(int error) {
  return error == EOPNOTSUPP || error == EINVAL || error == ENOSYS;
}

// Keeps the SIGPIPE that one write to a pipe may raise from the process,
// without changing the signal's disposition (which a child process would
// inherit): SIGPIPE is blocked in this OS thread for the write, so the
// kernel leaves it pending on the thread; after an EPIPE, take_raised()
// removes that one signal; the destructor restores the mask.
//
// A SIGPIPE pending before the write can exist only if the thread already
// had it blocked (an unblocked one is delivered before any later system
// call returns). SIGPIPE does not queue, so the write's would merge into
// it: that one is left alone. sigtimedwait takes a thread-directed signal
// before a process-directed one, so a kill(2) that lands meanwhile stays
// pending and is delivered once the mask is restored.
class sigpipe_guard {
 public:
  sigpipe_guard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    blocked_before_ = sigismember(&old_, SIGPIPE) == 1;
    if (blocked_before_) {
      sigset_t pending;
      pending_before_ = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    }
  }
  ~sigpipe_guard() {
    if (!blocked_before_) {
      const int saved = errno;
      pthread_sigmask(SIG_SETMASK, &old_, nullptr);
      errno = saved;
    }
  }
  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

  // The write failed with EPIPE: the kernel sent this thread a SIGPIPE.
  void take_raised() {
    if (pending_before_) return;
    const int saved = errno;
    const timespec zero{};
    while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
    }
    errno = saved;
  }

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool blocked_before_ = false;
  bool pending_before_ = false;
};

}  // namespace

bool fd_ready_now(int fd, short events) {
  struct pollfd p {fd, events, 0};
  int r;
  do {
    r = ::poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

ssize_t fd_read(int fd, fd_way& way, char* p, std::size_t len) {
  for (;;) {
    ssize_t r = -1;
    switch (way) {
      case fd_way::plain:
        r = ::read(fd, p, len);
        break;
      case fd_way::socket:
        r = ::recv(fd, p, len, MSG_DONTWAIT);
        break;
      case fd_way::nowait: {
        struct iovec v {p, len};
        r = ::preadv2(fd, &v, 1, -1, RWF_NOWAIT);
        if (r < 0 && nowait_unsupported(errno)) {
          way = fd_way::polled;
          continue;
        }
        break;
      }
      case fd_way::polled:
        if (!fd_ready_now(fd, POLLIN)) {
          errno = EAGAIN;
          return -1;
        }
        r = ::read(fd, p, len);
        break;
    }
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

ssize_t fd_write(int fd, fd_way& way, bool fifo, const char* p, std::size_t len) {
  if (way == fd_way::socket) {
    ssize_t r;
    do {
      r = ::send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    return r;
  }
  std::optional<sigpipe_guard> guard;
  if (fifo) guard.emplace();
  for (;;) {
    ssize_t r = -1;
    switch (way) {
      case fd_way::plain:
        r = ::write(fd, p, len);
        break;
      case fd_way::nowait: {
        struct iovec v {const_cast<char*>(p), len};
        r = ::pwritev2(fd, &v, 1, -1, RWF_NOWAIT);
        if (r < 0 && nowait_unsupported(errno)) {
          way = fd_way::polled;
          continue;
        }
        break;
      }
      case fd_way::polled:
        if (!fd_ready_now(fd, POLLOUT)) {
          errno = EAGAIN;
          return -1;
        }
        r = ::write(fd, p, std::min(len, kPolledWriteMax));
        break;
      case fd_way::socket:
        break;  // handled above
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EPIPE && guard) guard->take_raised();
    return r;
  }
}

}  // namespace rkt::internal
