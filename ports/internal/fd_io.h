// fd_io: one read or write of a descriptor that never blocks the calling OS
// thread on a descriptor that can block, and never changes the descriptor's
// file status flags (O_NONBLOCK belongs to the open file description, which
// other processes may share: a shell's terminal, a pipe to `cat`). How each
// kind of descriptor is done, and what can still block, is in
// ports/fd_port.h.
//
// A write to a pipe or FIFO whose reader is gone raises SIGPIPE; fd_write
// keeps it from the process without touching the signal's disposition (see
// sigpipe_guard in fd_io.cc).
#ifndef RKT_PORTS_INTERNAL_FD_IO_H_
#define RKT_PORTS_INTERNAL_FD_IO_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace rkt::internal {

// How one direction of a descriptor is read or written.
enum class fd_way : uint8_t {
  plain,   // read(2)/write(2): O_NONBLOCK is rkt's own (a file it opened),
           // or the descriptor never blocks (regular files, devices epoll
           // refuses)
  socket,  // recv/send with MSG_DONTWAIT (send adds MSG_NOSIGNAL)
  nowait,  // preadv2/pwritev2 with RWF_NOWAIT (an OS pipe); becomes polled
           // when the kernel does not support it for this descriptor
  polled,  // poll(2) with a zero timeout first; a write takes at most
           // kPolledWriteMax bytes
};

// The most a polled write takes at once: a pipe that poll(2) reports
// writable has room for that many bytes (PIPE_BUF, one pipe buffer).
inline constexpr std::size_t kPolledWriteMax = 4096;

// Reads up to `len` bytes. Returns read(2)'s result: > 0 bytes, 0 at EOF,
// -1 with errno (EAGAIN: nothing now). EINTR is retried. May turn `way`
// from nowait into polled.
ssize_t fd_read(int fd, fd_way& way, char* p, std::size_t len);

// Writes up to `len` bytes, as fd_read. With `fifo` (a pipe or FIFO), a
// SIGPIPE the write raises is kept from the process.
ssize_t fd_write(int fd, fd_way& way, bool fifo, const char* p, std::size_t len);

// Whether poll(2) reports `events` (POLLIN/POLLOUT), or a hangup or error,
// on `fd` now.
bool fd_ready_now(int fd, short events);

}  // namespace rkt::internal

#endif  // RKT_PORTS_INTERNAL_FD_IO_H_
