// systemd socket activation, beyond Racket: the listening sockets a service
// manager passed to this process (sd_listen_fds(3)'s protocol), as rkt
// listeners.
//
//   for (const rkt::systemd_listener& l : rkt::systemd_listeners()) {
//     if (l.name == "web") web_listener = std::get<rkt::tcp_listener>(l.listener);
//   }
//
// make_inherited_tcp_unit (socket/tcp_unit.h) hands one to the web server.
//
// The protocol: LISTEN_PID is this process's pid, LISTEN_FDS the number of
// descriptors passed from fd 3 up, LISTEN_FDNAMES (optional) their names
// separated by ':'. Works with systemd, systemd-socket-activate and any
// manager that speaks it.
#ifndef RKT_SOCKET_SYSTEMD_LISTENERS_H_
#define RKT_SOCKET_SYSTEMD_LISTENERS_H_

#include <string>
#include <variant>
#include <vector>

#include "socket/tcp.h"
#include "socket/unix_socket.h"

namespace rkt {

// One passed listener.
struct systemd_listener {
  // Its LISTEN_FDNAMES entry; "unknown" when the manager gave no names (as
  // sd_listen_fds_with_names(3) reports them).
  std::string name;
  // The descriptor's number as passed (3, 4, ...); the listener owns it.
  int fd = -1;
  // An AF_UNIX socket is a unix_socket_listener; AF_INET and AF_INET6 a
  // tcp_listener.
  std::variant<unix_socket_listener, tcp_listener> listener;
};

// The first descriptor a service manager passes.
inline constexpr int systemd_listen_fds_start = 3;

// Takes the listeners passed to this process, in descriptor order. With no
// LISTEN_PID, or one that is not this process's pid (the variables were
// inherited from a parent), returns none. Either way, it then unsets
// LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, as sd_listen_fds(1) does, so
// that a second call and child processes see nothing; call it before any
// other OS thread reads the environment (setenv is not thread-safe).
//
// Each descriptor is checked to be a listening stream socket
// (SO_ACCEPTCONN, SO_TYPE) of family AF_UNIX, AF_INET or AF_INET6
// (SO_DOMAIN), made close-on-exec and non-blocking (O_NONBLOCK is on the
// open file description, shared with the manager, which does not accept
// on it while the service runs), registered with this OS thread's reactor
// and managed by the current custodian: its shutdown closes them all.
// Errors: malformed variables (LISTEN_FDS not a number, a LISTEN_FDNAMES
// count that differs) raise exn_fail_contract naming the variable; a
// descriptor that fails a check raises exn_fail_network naming it
// ("systemd_listeners: not a listening socket\n  fd: 4\n  errno: 22 ..."),
// and then no descriptor is taken (none is registered or closed).
std::vector<systemd_listener> systemd_listeners();

}  // namespace rkt

#endif  // RKT_SOCKET_SYSTEMD_LISTENERS_H_
