// Descriptor passing over a Unix-socket connection (SCM_RIGHTS), beyond
// Racket: send descriptors with some bytes through a connection's output
// port, and receive them as an event.
//
//   rkt::unix_socket_send_fds(out, "log", {pipe_write_end});
//   rkt::or_eof<rkt::unix_socket_message> m =
//       rkt::sync(rkt::unix_socket_receive_fds_evt(in));
//   std::vector<int> mine = m->fds.take();       // now the caller's to close
//
// Descriptors travel with bytes, and the port keeps them. A Unix-socket
// connection's input port fills its buffer with recvmsg, so a read of the
// port never loses descriptors: those that arrive are kept by the port,
// close-on-exec, attached to the stream position of the first byte of the
// read that brought them (the kernel ends that read within the message
// they were sent with; bytes sent before that message, without
// descriptors, may come in front of it, and the kernel does not say where
// the message starts: the same rule a recvmsg of its own would see). The
// port's close, or its custodian's shutdown, closes those still kept.
//
// A receive delivers the bytes from the port's read position, with the
// descriptors attached to the first of them, and stops before the next
// byte that has descriptors attached, so one receive never carries two
// messages' descriptors (nor does the kernel's own recvmsg). Descriptors
// whose bytes were taken by a plain read of the port (read_bytes,
// read_line, read_bytes_avail; a peek takes nothing) are pending: the next
// receive delivers them, one message's at a time, with the bytes that
// follow up to the next byte with descriptors (so with no bytes when there
// are none buffered, or when the next byte has descriptors of its own).
// A message with more descriptors than a receive's max_fds gives it
// max_fds of them, in order, and the rest stay pending for the next
// receive; a receive with max_fds 0 delivers bytes only and leaves every
// descriptor pending. So a protocol may read a header through the port and
// then receive the descriptors that came with it, or with what follows.
//
// Buffering, and the order of bytes:
//   - Receiving: a receive takes bytes (and descriptors) from the port's
//     buffer, up to max_bytes; with nothing buffered and nothing pending,
//     it waits until the port reads the socket (at most 4096 bytes at a
//     time). It reads no socket itself.
//   - Sending: unix_socket_send_fds flushes the output port first (parking
//     as flush does), so bytes written earlier through the port arrive
//     before `bytes`; then one sendmsg(2) carries `bytes` and the
//     descriptors. Whatever part of `bytes` the socket did not take at once
//     is written through the port and flushed before it returns.
//   - A read or write of the same port from another green thread while a
//     receive or send runs may interleave with it, as two writers of one
//     port may; the descriptors stay with their bytes.
//
// Ownership. Sending leaves the descriptors the caller's (the kernel sends
// copies). Received descriptors are close-on-exec (MSG_CMSG_CLOEXEC) and
// belong to a unix_socket_fds, managed by the custodian that was current
// when the receive event was made: its shutdown closes them, and so does
// dropping the last handle, until take() hands them to the caller.
//
// Errors follow socket/unix_socket.h: a port that is not over a Unix
// socket raises exn_fail_contract; a closed one exn_fail_network (EBADF);
// a failed system call exn_fail_network carrying its errno, naming the
// port (a failed read of the socket raises as the port's reads do). A
// read of the port that the kernel truncated (MSG_CTRUNC: more descriptors
// than fit, which cannot happen with room for unix_socket_max_fds, or no
// free descriptor number under RLIMIT_NOFILE) closes the descriptors that
// did arrive and keeps its bytes; the receive that reaches them raises
// exn_fail_network with EMSGSIZE, taking nothing, and the next receive
// delivers those bytes without descriptors.
#ifndef RKT_SOCKET_UNIX_SOCKET_FDS_H_
#define RKT_SOCKET_UNIX_SOCKET_FDS_H_

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "evt/evt.h"
#include "ports/port.h"

namespace rkt {

namespace internal {
class received_fds;
}  // namespace internal

// Received descriptors, closed by their custodian's shutdown or when the
// last copy of the handle goes, unless taken. Copies share them. Any
// green thread on any OS thread.
class unix_socket_fds {
 public:
  unix_socket_fds();
  explicit unix_socket_fds(std::shared_ptr<internal::received_fds> st) : st_(std::move(st)) {}

  // How many arrived (0 once taken or closed).
  std::size_t size() const;
  // The descriptors, still owned here: for a look (fstat, say) before
  // take(). Empty once taken or closed.
  std::vector<int> peek() const;
  // Hands the descriptors to the caller, who closes them; nothing closes
  // them for it any more. Later calls return nothing.
  std::vector<int> take() const;
  // Closes those not taken; idempotent.
  void close() const;

 private:
  std::shared_ptr<internal::received_fds> st_;
};

// What one receive delivered: bytes and the descriptors attached to the
// first of them (often none). Bytes are empty only when descriptors
// pending are delivered (their own bytes were read through the port) and
// no byte without descriptors of its own follows in the port's buffer.
struct unix_socket_message {
  std::string bytes;
  unix_socket_fds fds;
};

// The most descriptors one message can carry (Linux's SCM_MAX_FD).
inline constexpr std::size_t unix_socket_max_fds = 253;

// Sends `bytes` (at least one: a stream carries descriptors with bytes)
// and copies of `fds` (at most unix_socket_max_fds) to the peer of the
// connection under `out`, parking while the socket is full. Raises
// exn_fail_contract for empty bytes, too many or negative descriptors, or
// a port that is not over a Unix socket; exn_fail_network for a closed
// port (EBADF) or a failed send (EPIPE, ECONNRESET; EBADF for a
// descriptor that is not open).
void unix_socket_send_fds(const output_port& out, std::string_view bytes,
                          std::span<const int> fds);
void unix_socket_send_fds(const output_port& out, std::string_view bytes,
                          std::initializer_list<int> fds);

// An event that receives, when it is the event chosen, at most `max_bytes`
// bytes (1 or more) and at most `max_fds` descriptors (up to
// unix_socket_max_fds) from the connection under `in` (see the top of this
// file); its result is EOF once the peer has closed its side and nothing
// is left to deliver. Ready when the port has buffered bytes, when
// descriptors are pending (max_fds > 0), or when the port can read bytes
// or EOF from the socket. As a port event, never ready on a
// closed port. The descriptors go to the custodian current when this is
// called; once it is shut down, the event is ready and raises its error
// without reading (as unix_socket_accept_evt). Raises, when called,
// exn_fail_contract for a port not over a Unix socket or bad limits, and
// exn_fail_network (EBADF) for a closed port.
evt<or_eof<unix_socket_message>> unix_socket_receive_fds_evt(const input_port& in,
                                                             std::size_t max_bytes = 4096,
                                                             std::size_t max_fds = 16);

}  // namespace rkt

#endif  // RKT_SOCKET_UNIX_SOCKET_FDS_H_
