// Ports over file descriptors: sockets, OS pipes, terminals, devices and
// files. The descriptor is registered once with the calling OS thread's
// reactor; a read or write that would block parks the green thread, never
// the OS thread (exceptions below).
//
// Descriptor flags. rkt never changes the file status flags of a
// descriptor it did not open: O_NONBLOCK belongs to the open file
// description, which other processes may share (a terminal, a pipe to
// `cat`), and nothing could restore it after a kill by a signal. A program
// that makes ports over its stdin, stdout and stderr leaves them as it found
// them, while it runs and after it exits. Each read and write is made
// non-blocking per call instead:
//   - sockets: recv/send with MSG_DONTWAIT (send adds MSG_NOSIGNAL);
//   - OS pipes: preadv2/pwritev2 with RWF_NOWAIT; where the kernel refuses
//     it (named FIFOs, kernels whose pipes lack it) the pipe is read and
//     written as "anything else";
//   - anything else that can be waited on (terminals, FIFOs, character
//     devices): poll(2) with a zero timeout, then read(2) only if it
//     reported the descriptor readable, and write(2) only if it reported
//     it writable, of at most 4096 bytes (PIPE_BUF: a pipe that poll calls
//     writable has that much room);
//   - regular files, directories, and descriptors epoll refuses (EPERM:
//     /dev/null, /dev/zero, /dev/urandom, ...): read(2)/write(2) directly.
//     They cannot be waited on, so they are always ready, under the epoll
//     and the poll reactor alike: a daemon whose stdout is /dev/null or a
//     file logs through a port as it would to a terminal.
// Files opened by open_input_file / open_output_file are rkt's own (opened
// with O_NONBLOCK) and are read and written directly; so are the sockets
// of the socket library (make_nonblocking_socket_ports).
//
// What can still block the OS thread, on a descriptor another process
// shares: a polled read whose bytes that process takes between the poll and
// the read (the read then waits for more bytes or EOF); a polled write
// that finds less room than it writes, because another writer filled it
// meanwhile, or because the descriptor is a terminal (whose room poll does
// not measure) with less than 4096 bytes free. A device that epoll refuses
// and that does block would block too (poll(2) calls such devices always
// ready). Regular files on slow storage block as read(2) does.
//
// SIGPIPE. A write to a pipe or FIFO whose reader is gone raises EPIPE
// (exn_fail_filesystem), never SIGPIPE; sockets use MSG_NOSIGNAL. No signal
// disposition is changed: SIGPIPE is blocked in the writing OS thread for
// the write, the one the write raised is taken, and the mask restored (a
// SIGPIPE already pending before the write is left pending). Child
// processes get the default SIGPIPE. The cost: two pthread_sigmask calls
// per write(2) to a pipe or FIFO (none for sockets and files).
//
// Both ports of one descriptor share it: closing the input port of a socket
// shuts its reading down, closing the output port flushes and shuts writing
// down (the peer reads EOF while the other direction keeps working), and the
// descriptor itself is closed when both ports are closed (or dropped).
//
// fd ports register with the custodian current when they are made; its
// shutdown closes them without waiting for a flush to a peer that does not
// read. So does close() in a green thread that is being killed (see
// rkt::current_thread_killed): it gives up what one attempt cannot flush,
// without parking and without raising.
//
// OS threads. An fd port may be used from any OS thread, but the descriptor
// is watched by the reactor of the OS thread that made the port, and a
// close from elsewhere is handed to that thread (an idle loop runs it).
// Once that OS thread has exited, the port keeps working as far as it can
// without waiting: reads of what has arrived, writes that fit, flushes,
// close (which then closes the descriptor at once) and custodian shutdown
// all work, and nothing touches freed memory. An operation that would have
// to wait for readiness raises exn_fail_contract instead ("<who>: the OS
// thread that made the port has exited, so it cannot wait"), and so does a
// read or write parked on it when that thread exits; bytes read before are
// delivered first. Ports over descriptors that are always ready (files,
// /dev/null) are not affected.
//
// Output ports start in buffer mode block (4096 bytes).
//
// Descriptors passed over a Unix-domain socket. The input port of an
// AF_UNIX stream socket fills its buffer with recvmsg(2) (MSG_DONTWAIT |
// MSG_CMSG_CLOEXEC) instead of recv, with room for 253 descriptors (Linux's
// SCM_MAX_FD), so that descriptors a peer sends with SCM_RIGHTS are never
// closed by a read that takes their bytes. The port keeps them,
// close-on-exec, attached to the stream position of the first byte of the
// recvmsg that brought them (the kernel ends that read within the message
// they were sent with, and may put bytes sent before it in front), until
// fd_port_take_passed takes them; its close (or its custodian's shutdown)
// closes those not taken. Plain reads are unaffected: they deliver the
// bytes and leave the descriptors with the port. socket/unix_socket_fds.h
// is the interface meant for programs. The cost: recvmsg in place of recv
// (one system call per fill, as before; one more instruction per echo
// round trip, bench/RESULTS.md), two words per fd input port, and nothing
// more until descriptors come.
#ifndef RKT_PORTS_FD_PORT_H_
#define RKT_PORTS_FD_PORT_H_

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ports/port.h"

namespace rkt {

// Takes ownership of `fd` (a connected socket, an OS pipe, a terminal, ...)
// and returns its input and output ports, both named `name`. The
// descriptor's flags are left as they are (see the top of this file).
// Errors on a socket raise exn_fail_network, on anything else
// exn_fail_filesystem.
// Raises exn_fail_contract "<who>: the custodian has been shut down" (and
// closes fd) when the current custodian is shut down.
std::pair<input_port, output_port> make_fd_ports(int fd, std::string name,
                                                 const char* who = "make-fd-ports");

// make_fd_ports for a stream socket its caller created non-blocking
// (SOCK_NONBLOCK, accept4): saves make_fd_ports's fstat and fcntl calls,
// three per connection. The socket library uses it; a descriptor that is not
// a non-blocking socket must go through make_fd_ports. `unix_domain` says
// the socket is AF_UNIX (its input port keeps passed descriptors; see the
// top of this file); make_fd_ports finds that out itself.
std::pair<input_port, output_port> make_nonblocking_socket_ports(int fd, std::string name,
                                                                 const char* who,
                                                                 bool unix_domain = false);

// An input-only or output-only port over `fd`, which it owns.
input_port make_fd_input_port(int fd, std::string name, const char* who = "make-fd-input-port");
output_port make_fd_output_port(int fd, std::string name,
                                const char* who = "make-fd-output-port");

// The descriptor under an open fd port, or -1 (another kind of port, or
// closed). For system calls that do not read or write it (getsockname,
// setsockopt); the port still owns it.
int fd_port_descriptor(const input_port& in);
int fd_port_descriptor(const output_port& out);

// True when the port is an fd port whose descriptor is watched by the
// reactor of the calling OS thread, that is, when it was made on this OS
// thread (an accepted connection's ports are made on the thread that
// accepted it). False for ports of other kinds, for fd ports that need no
// reactor (files, /dev/null), and once the thread that made the port has
// exited. Still answers after close. For servers and tests that check a
// connection is served where it was accepted.
bool fd_port_on_this_os_thread(const input_port& in);
bool fd_port_on_this_os_thread(const output_port& out);

// How many bytes an fd input port has read from its descriptor and not yet
// delivered (0 for another kind of port, or a closed one).
std::size_t fd_port_buffered(const input_port& in);

// What fd_port_take_passed took.
struct fd_port_passed {
  std::string bytes;     // consumed from the port
  std::vector<int> fds;  // now the caller's to close
  // A set of descriptors here was lost: the recvmsg that brought it was
  // truncated (MSG_CTRUNC: no room, or no free descriptor number), and the
  // lost_count that did arrive were closed. Nothing else was taken; the
  // set is forgotten and its bytes stay in the port.
  bool lost = false;
  std::size_t lost_count = 0;
};

// Takes from the port's buffer, without reading its descriptor, what one
// receive of passed descriptors delivers (nullopt when there is nothing:
// the buffer is empty and no descriptors are pending, or the port is
// closed or not an fd port). With P the read position:
//   - If a set of descriptors is attached at P, or before it (its bytes
//     were read through the port: it is pending), and max_fds > 0: up to
//     max_fds of it (the rest stays pending, for the next take), with the
//     bytes from P up to the position of the next set (none when that set
//     is pending too), at most max_bytes. Sets are taken in stream order,
//     one per take, never merged.
//   - Otherwise: the bytes from P up to the next set attached after P, at
//     most max_bytes (with max_fds 0 pending sets stay pending).
std::optional<fd_port_passed> fd_port_take_passed(const input_port& in, std::size_t max_bytes,
                                                  std::size_t max_fds);

// Whether a set of passed descriptors (or a lost one) is pending at the
// port's read position, so that fd_port_take_passed with max_fds > 0 has
// something to take even with nothing buffered.
bool fd_port_passed_pending(const input_port& in);

// How many passed descriptors the port holds (0 once closed).
std::size_t fd_port_passed_held(const input_port& in);

// Racket's tcp-abandon-port: closes the port like close(), except that an
// output port of a socket whose input port is still open does not shut
// writing down; the peer sees the close when the input port closes too.
void abandon_port(const output_port& out);
void abandon_port(const input_port& in);

// Racket's file-stream-port?: true for fd ports over anything but a socket
// (files, OS pipes, terminals, devices), also once closed; false for
// sockets' ports (as Racket's TCP and Unix-socket ports) and for ports of
// other kinds.
bool file_stream_port_p(const input_port& in);
bool file_stream_port_p(const output_port& out);

// Racket's open-input-file: raises exn_fail_filesystem naming the path and
// the errno text when the file cannot be opened.
input_port open_input_file(const std::string& path);

// What open_output_file does when the file exists (Racket's #:exists).
enum class exists_mode {
  error,     // raise exn_fail_filesystem (EEXIST)
  append,    // write at the end
  truncate,  // empty it
  replace,   // remove it and create a new file
  update,    // write from the start over the old bytes; it must exist
  can_update,  // update, creating the file when it is missing
};

// Racket's open-output-file (creating the file, mode 0666 & ~umask).
output_port open_output_file(const std::string& path, exists_mode exists = exists_mode::error);

}  // namespace rkt

#endif  // RKT_PORTS_FD_PORT_H_
