// Ports over file descriptors: sockets, OS pipes and files. The descriptor
// is made non-blocking and registered once with the calling OS thread's
// reactor; a read or write that would block parks the green thread.
//
// Both ports of one descriptor share it: closing the input port of a socket
// shuts its reading down, closing the output port flushes and shuts writing
// down (the peer reads EOF while the other direction keeps working), and the
// descriptor itself is closed when both ports are closed (or dropped).
//
// fd ports register with the custodian current when they are made; its
// shutdown closes them without waiting for a flush to a peer that does not
// read. Closing happens on the OS thread that made the ports (the reactor's
// owner): a close from another OS thread is handed to that one, so such a
// port must not outlive the OS thread that made it.
//
// Output ports start in buffer mode block (4096 bytes); writes to a peer
// that has gone raise exn_fail_network / exn_fail_filesystem with EPIPE, never
// SIGPIPE.
#ifndef RKT_PORTS_FD_PORT_H_
#define RKT_PORTS_FD_PORT_H_

#include <string>
#include <utility>

#include "ports/port.h"

namespace rkt {

// Takes ownership of `fd` (a connected socket, an OS pipe, a terminal, ...)
// and returns its input and output ports, both named `name`. Errors on a
// socket raise exn_fail_network, on anything else exn_fail_filesystem.
// Raises exn_fail_contract "<who>: the custodian has been shut down" (and
// closes fd) when the current custodian is shut down.
std::pair<input_port, output_port> make_fd_ports(int fd, std::string name,
                                                 const char* who = "make-fd-ports");

// make_fd_ports for a stream socket its caller created non-blocking
// (SOCK_NONBLOCK, accept4): saves make_fd_ports's fstat and fcntl calls,
// three per connection. The socket library uses it; a descriptor that is not
// a non-blocking socket must go through make_fd_ports.
std::pair<input_port, output_port> make_nonblocking_socket_ports(int fd, std::string name,
                                                                 const char* who);

// An input-only or output-only port over `fd`, which it owns.
input_port make_fd_input_port(int fd, std::string name, const char* who = "make-fd-input-port");
output_port make_fd_output_port(int fd, std::string name,
                                const char* who = "make-fd-output-port");

// The descriptor under an open fd port, or -1 (another kind of port, or
// closed). For system calls that do not read or write it (getsockname,
// setsockopt); the port still owns it.
int fd_port_descriptor(const input_port& in);
int fd_port_descriptor(const output_port& out);

// Racket's tcp-abandon-port: closes the port like close(), except that an
// output port of a socket whose input port is still open does not shut
// writing down; the peer sees the close when the input port closes too.
void abandon_port(const output_port& out);
void abandon_port(const input_port& in);

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
