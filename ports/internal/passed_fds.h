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

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

namespace rkt::internal {

// The most descriptors one message carries (Linux's SCM_MAX_FD); a read
// has room for that many.
inline constexpr std::size_t kMaxPassedFds = 253;

// What one recv_with_fds brought besides bytes. `fds` points into storage
// of the calling OS thread, valid until its next recv_with_fds.
struct passed_arrival {
  std::span<const int> fds;
  bool truncated = false;  // MSG_CTRUNC: some did not fit (or could not be installed)
};

// One recvmsg(MSG_DONTWAIT | MSG_CMSG_CLOEXEC) of up to `len` bytes into
// `p`, with room for kMaxPassedFds descriptors. Returns as recv(2); EINTR is
// retried.
ssize_t recv_with_fds(int fd, char* p, std::size_t len, passed_arrival& got);

class passed_fds {
 public:
  passed_fds() = default;
  passed_fds(const passed_fds&) = delete;
  passed_fds& operator=(const passed_fds&) = delete;
  ~passed_fds() { close_all(); }

  // A read starting at stream position `pos` brought `got`. Truncated
  // arrivals are closed at once and recorded as lost at `pos`.
  void arrived(uint64_t pos, const passed_arrival& got);

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
