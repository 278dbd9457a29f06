// Descriptor passing over a Unix-socket connection (SCM_RIGHTS), beyond
// Racket: send descriptors with some bytes through a connection's output
// port, and receive them as an event.
//
//   rkt::unix_socket_send_fds(out, "log", {pipe_write_end});
//   rkt::or_eof<rkt::unix_socket_message> m =
//       rkt::sync(rkt::unix_socket_receive_fds_evt(in));
//   std::vector<int> mine = m->fds.take();       // now the caller's to close
//
// Descriptors travel with bytes. The kernel hands them to the read that
// takes the first byte they were sent with, and a read that takes that
// byte without asking for descriptors closes them: every read of an input
// port does (its buffer is filled with plain recv, up to 4096 bytes at a
// time, so it can take the bytes of a message sent after the ones it was
// asked for). On a connection that carries descriptors, therefore, read
// with unix_socket_receive_fds_evt whenever a message with descriptors may
// be next, and through the port only bytes that are known to come before
// any (a protocol's fixed-size header read before the peer sends the
// descriptors, say).
//
// Buffering, and the order of bytes:
//   - Receiving: bytes the input port has already read from the socket
//     and not delivered come first. A receive while the port holds some
//     delivers them (at most max_bytes), with no descriptors, and reads
//     nothing from the socket; the next receive reads the socket.
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
// port. More descriptors than the receiver's max_fds (MSG_CTRUNC: the
// kernel closes the ones that did not fit) raise exn_fail_network with
// EMSGSIZE after closing the ones that did; the bytes of that read are
// lost with them.
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

// What one receive delivered: at least one byte, and the descriptors that
// came with them (often none).
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
// unix_socket_max_fds) from the connection under `in`; its result is EOF
// once the peer has closed its side. Ready when the port has buffered
// bytes or the socket is readable. As a port event, never ready on a
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
