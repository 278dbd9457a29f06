// racket/unix-socket in C++, function for function: AF_UNIX SOCK_STREAM
// connections whose two ends are rkt ports, and listeners that are events.
//
//   rkt::unix_socket_listener l = rkt::unix_socket_listen("/tmp/echo.sock");
//   auto [in, out] = rkt::unix_socket_accept(l);      // parks this green thread
//   auto [cin, cout] = rkt::unix_socket_connect("/tmp/echo.sock");
//   rkt::sync(rkt::unix_socket_accept_evt(l), ...);    // accepts only if chosen
//
// Paths come in two kinds, as Racket tells strings from byte strings: a
// filesystem path (std::string, std::string_view, const char*,
// std::filesystem::path) and, on Linux, an abstract name
// (unix_socket_abstract_name: bytes whose first byte is NUL). A path that
// is not valid (unix_socket_path_p) is refused with exn_fail_contract naming
// it, never truncated.
//
// Listeners, connections and accepted ports register with the current
// custodian (for unix_socket_accept_evt: the one current when the event was
// made). Socket errors raise exn_fail_network carrying errno (Racket raises
// plain exn:fail; exn_fail_network is a subclass of exn_fail), with Racket's
// message shape: "unix_socket_connect: failed to connect socket\n  path:
// \"/x\"\n  errno: 2\n  error: No such file or directory".
//
// Accepting takes no descriptor that is not there: when the process or the
// system has none left (EMFILE, ENFILE), a pending connection stays queued
// and the accept (or a parked unix_socket_accept_evt) keeps waiting,
// retrying after a delay that grows from 1 ms to 100 ms, so it goes on
// within about 100 ms once descriptors are freed and costs next to no CPU
// meanwhile. Racket raises "failed to accept socket" instead.
//
// The reference is Racket's racket/unix-socket documentation and, where it
// is silent, the behaviour of Racket 8.7's implementation.
#ifndef RKT_SOCKET_UNIX_SOCKET_H_
#define RKT_SOCKET_UNIX_SOCKET_H_

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "evt/evt.h"
#include "ports/port.h"

namespace rkt {

// Racket's unix-socket-available?: Linux, macOS and the BSDs.
#if defined(__linux__) || defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__) || defined(__DragonFly__)
inline constexpr bool unix_socket_available = true;
#else
inline constexpr bool unix_socket_available = false;
#endif

// An abstract socket name (Racket: a byte string): valid when it has 1 to
// 108 bytes and the first is NUL; later NULs are part of the name.
class unix_socket_abstract_name {
 public:
  explicit unix_socket_abstract_name(std::string bytes) : bytes_(std::move(bytes)) {}
  const std::string& bytes() const { return bytes_; }
  bool operator==(const unix_socket_abstract_name&) const = default;

 private:
  std::string bytes_;
};

// Either kind of path, as the functions below take it.
class unix_socket_path {
 public:
  unix_socket_path(std::string_view fs_path) : bytes_(fs_path), abstract_(false) {}  // NOLINT
  unix_socket_path(const std::string& fs_path) : bytes_(fs_path), abstract_(false) {}  // NOLINT
  unix_socket_path(const char* fs_path) : bytes_(fs_path), abstract_(false) {}  // NOLINT
  unix_socket_path(const std::filesystem::path& fs_path)  // NOLINT
      : bytes_(fs_path.string()), abstract_(false) {}
  unix_socket_path(const unix_socket_abstract_name& name)  // NOLINT
      : bytes_(name.bytes()), abstract_(true) {}

  bool abstract() const { return abstract_; }
  // The filesystem path as given, or the abstract name's bytes.
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
  bool abstract_;
};

// Racket's unix-socket-path?: a filesystem path is valid when it is not
// empty, has no NUL byte, and its absolute form (against the current
// directory) has at most 108 bytes on Linux (104 on BSD and macOS); an
// abstract name as above, on Linux only. A relative path is not valid
// while the current directory has no absolute form (it was removed): it
// names nothing, and connect and listen raise exn_fail_network with
// getcwd's errno ("<who>: cannot make the path absolute: no current
// directory") rather than use "/" in its place.
bool unix_socket_path_p(const unix_socket_path& path);

namespace internal {
class listener_state;
}  // namespace internal

// A listening socket. It is an event, ready when a connection is waiting
// to be accepted, or once the listener is closed (then an accept raises);
// its result is the listener itself. Copies share one listener.
class unix_socket_listener {
 public:
  using result_type = unix_socket_listener;
  operator evt<unix_socket_listener>() const;  // NOLINT: listeners are events

  bool operator==(const unix_socket_listener& o) const { return st_ == o.st_; }

  explicit unix_socket_listener(std::shared_ptr<internal::listener_state> st)
      : st_(std::move(st)) {}
  const std::shared_ptr<internal::listener_state>& state() const { return st_; }

 private:
  std::shared_ptr<internal::listener_state> st_;
};

// Racket's unix-socket-listener?; the C++ type already decides it.
template <class T>
constexpr bool unix_socket_listener_p(const T&) {
  return std::is_same_v<T, unix_socket_listener>;
}

// Connects to `path`; the connection closes when both ports are closed, and
// closing only the output port sends the peer EOF. Raises exn_fail_network
// (ENOENT, ECONNREFUSED, EACCES, ...).
std::pair<input_port, output_port> unix_socket_connect(const unix_socket_path& path);

// What unix_socket_listen does with the socket file, beyond Racket. All
// three concern filesystem paths; an abstract name has no file.
struct unix_socket_listen_options {
  // The socket file's exact permission bits (the umask is not applied), as
  // a subset of 0777: who may connect. The file never has wider ones: the
  // socket is bound under a temporary name in the same directory
  // (".rkt-<random>", reached through /proc/self/fd when the directory's
  // path leaves it no room in sun_path), chmod-ed, made to listen, then
  // renamed into place; nothing can connect to it before the chmod, since
  // it is not listening yet. Bits outside 0777, or a mode with an
  // abstract name, raise exn_fail_contract. The kernel keeps the address
  // the socket was bound to: getsockname(2) on it (and getpeername(2) at
  // its peers) reports the temporary name. replace_stale binds the same
  // way.
  std::optional<mode_t> mode = std::nullopt;
  // A path in use by a socket file nothing listens on (left by a process
  // that died) is replaced: a connect to it must be refused
  // (ECONNREFUSED), the file must be a socket (lstat), and it is swapped
  // with the new socket atomically (rename(2) RENAME_EXCHANGE, then the
  // old file is unlinked if it is still the one found refusing). A path
  // where something listens, a file that is not a socket, or one whose
  // state cannot be told (connect failed otherwise) is never removed: the
  // listen raises exn_fail_network with EADDRINUSE and says which.
  bool replace_stale = false;
  // Closing the listener (a call, a custodian shutdown, or the last handle
  // dropped) removes the socket file, if the path still names the file it
  // bound (same device and inode); a file that another process has put
  // there since stays. Go's default for its Unix listeners.
  bool unlink_on_close = false;
};

// Binds and listens on `path` with the given backlog. Binding creates the
// socket file, which closing the listener leaves in place (unless
// options.unlink_on_close). A path in use raises exn_fail_network with
// EADDRINUSE (unless options.replace_stale finds it stale); a negative
// backlog raises exn_fail_contract ("expected: natural?", as Racket's
// contract says).
unix_socket_listener unix_socket_listen(const unix_socket_path& path, int backlog = 4,
                                        const unix_socket_listen_options& options = {});

// Closes the listener; idempotent. The socket file stays, unless the
// listener was made with unlink_on_close.
void unix_socket_close_listener(const unix_socket_listener& listener);

// Accepts a connection, parking the calling green thread until one comes.
// On a closed listener raises exn_fail (not a system call's failure, so no
// errno) "unix_socket_accept: unix socket listener is closed". Under a
// shut-down current custodian raises exn_fail_contract "unix_socket_accept:
// the custodian has been shut down" without accepting: a pending
// connection stays queued for another accepter.
std::pair<input_port, output_port> unix_socket_accept(const unix_socket_listener& listener);

// An event whose result is an accepted connection's ports; it accepts only
// when it is the event chosen, and an accept error is raised by the sync
// that chose it. The ports go to the custodian current when this function
// is called. It is ready at once, raising, on a closed listener or once
// that custodian is shut down (as unix_socket_accept).
evt<std::pair<input_port, output_port>> unix_socket_accept_evt(
    const unix_socket_listener& listener);

// Who is at the other end of a Unix-socket connection, as the kernel
// recorded it when the connection was made (SO_PEERCRED): the peer's
// process, user and group ids. Beyond Racket.
struct unix_socket_credentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// The peer credentials of the connection under `port` (either port of a
// connection from unix_socket_connect or an accept, or an fd port over a
// Unix stream socket). A port that is not over a Unix socket raises
// exn_fail_contract; a closed port raises exn_fail_network (EBADF). Linux
// only: elsewhere it raises exn_fail_network (ENOSYS).
unix_socket_credentials unix_socket_peer_credentials(const input_port& port);
unix_socket_credentials unix_socket_peer_credentials(const output_port& port);

}  // namespace rkt

#endif  // RKT_SOCKET_UNIX_SOCKET_H_
