// passed_fds: the descriptors that came, with SCM_RIGHTS, with the bytes an
// fd input port read from a Unix-domain stream socket, kept by the port
// until a receiver takes them (ports/fd_port.h, "Descriptors passed over a
// Unix-domain socket").
//
// Positions count the bytes the port has read from the socket since it was
// made. A set of descriptors is attached to the position of the first byte
// of the recvmsg that brought it: the kernel ends such a read within the
// message the descriptors were sent with, and may put bytes sent before it
// in front of them, without saying where the message starts. A set whose
// position is before the port's read position (its bytes were read
// through the port) is pending: it stays attached to the read position.
//
// Not thread-safe: the port's mutex guards it. Every descriptor held is
// closed by close_all() or the destructor.
#ifndef RKT_PORTS_INTERNAL_PASSED_FDS_H_
#define RKT_PORTS_INTERNAL_PASSED_FDS_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace rkt::internal {

// The most descriptors one message carries (Linux's SCM_MAX_FD); a read
// has room for that many.
inline constexpr std::size_t kMaxPassedFds = 253;

// Room for kMaxPassedFds descriptors, per OS thread: not on the stack,
// where it would deepen what a parked green thread's stack has touched
// (idle connections, issue 12). Used within one call, which does not
// switch green threads.
inline constexpr std::size_t kPassedControlBytes = CMSG_SPACE(sizeof(int) * kMaxPassedFds);
alignas(cmsghdr) inline thread_local char passed_control[kPassedControlBytes];

// One recvmsg(MSG_DONTWAIT | MSG_CMSG_CLOEXEC) of up to `len` bytes into
// `p`, with passed_control for descriptors. Returns as recv(2); EINTR is
// retried. Inline: it is a socket port's every read.
inline ssize_t recv_with_fds(int fd, char* p, std::size_t len, msghdr& msg) {
  iovec iov{p, len};
  msg.msg_name = nullptr;
  msg.msg_namelen = 0;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t r;
  do {
    msg.msg_control = passed_control;
    msg.msg_controllen = kPassedControlBytes;
    msg.msg_flags = 0;
    r = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (r < 0 && errno == EINTR);
  msg.msg_iov = nullptr;  // iov's life ends here
  return r;
}

// Whether a recv_with_fds that read bytes brought descriptors, or lost
// some (MSG_CTRUNC: no room, or no free descriptor number).
inline bool brought_fds(const msghdr& msg) {
  return msg.msg_controllen != 0 || (msg.msg_flags & MSG_CTRUNC) != 0;
}

class passed_fds {
 public:
  passed_fds() = default;
  passed_fds(const passed_fds&) = delete;
  passed_fds& operator=(const passed_fds&) = delete;
  ~passed_fds() { close_all(); }

  // A recv_with_fds starting at stream position `pos` brought `msg`'s
  // descriptors (brought_fds). A truncated one's are closed at once and
  // the set is recorded as lost at `pos`.
  void arrived(uint64_t pos, msghdr& msg);

  // What a receive at read position `head`, with `buffered` bytes buffered
  // from there, takes: `bytes` to consume, the descriptors (now the
  // caller's), or `lost` (a set that was lost, now forgotten; nothing is
  // consumed). See ports/fd_port.h for the rule.
  struct take_result {
    std::size_t bytes = 0;
    std::vector<int> fds;
    bool lost = false;
    std::size_t lost_count = 0;  // how many of the lost set had arrived (and were closed)
  };
  take_result take(uint64_t head, std::size_t buffered, std::size_t max_bytes,
                   std::size_t max_fds);

  // Descriptors held whose bytes the port has read or holds.
  std::size_t held() const { return held_; }
  // Whether a set is attached at or before `head` (pending at the read
  // position).
  bool pending_at(uint64_t head) const { return !sets_.empty() && sets_.front().pos <= head; }

  void close_all() noexcept;

 private:
  struct set {
    uint64_t pos;
    std::vector<int> fds;
    bool lost = false;
    std::size_t lost_count = 0;
  };
  std::deque<set> sets_;  // in stream order; positions do not decrease
  std::size_t held_ = 0;  // descriptors in sets_
};

}  // namespace rkt::internal

#endif  // RKT_PORTS_INTERNAL_PASSED_FDS_H_
