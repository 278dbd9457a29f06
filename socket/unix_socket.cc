// racket/unix-socket over the reactor: path checks and sockaddr building,
// connect, and the listener functions (socket/internal/listener.h does the
// listening and accepting).
#include "socket/unix_socket.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "evt/alarm.h"
#include "evt/exn.h"
#include "evt/sync.h"
#include "ports/fd_port.h"
#include "socket/internal/listener.h"
#include "socket/internal/owned_fd.h"
#include "socket/internal/path_text.h"
#include "socket/internal/socket_file.h"

namespace rkt {
namespace {

constexpr std::size_t kMaxPath = sizeof(sockaddr_un::sun_path);  // 108 on Linux, 104 on BSD

using ports = std::pair<input_port, output_port>;

// A path's address bytes, or why it has none. For a filesystem path: made
// absolute against the current directory with repeated slashes collapsed
// (Racket's path->complete-path and cleanse-path).
struct resolved_path {
  std::string name;    // the bytes that go into sun_path
  bool valid = false;  // unix_socket_path_p
  int cwd_error = 0;   // a relative path whose absolute form cannot be had
};

// The current directory, or "" with errno set. A directory that was
// removed has no absolute form (ENOENT); neither has one outside the root
// (older kernels return "(unreachable)..." instead of failing).
std::string current_directory() {
  char* cwd = ::getcwd(nullptr, 0);  // any length (glibc allocates)
  if (cwd == nullptr) return std::string();
  std::string out(cwd);
  std::free(cwd);
  if (out.empty() || out[0] != '/') {
    errno = ENOENT;
    return std::string();
  }
  return out;
}

resolved_path resolve(const unix_socket_path& path) {
  resolved_path r;
  const std::string& b = path.bytes();
  if (!unix_socket_available) return r;
  if (path.abstract()) {
#if defined(__linux__)
    r.valid = !b.empty() && b.size() <= kMaxPath && b[0] == '\0';
    r.name = b;
#endif
    return r;
  }
  if (b.empty() || b.find('\0') != std::string::npos) return r;
  std::string full;
  if (b[0] != '/') {
    full = current_directory();
    if (full.empty()) {
      // Never taken as relative to "/": the path names nothing.
      r.cwd_error = errno;
      return r;
    }
    full += '/';
  }
  full += b;
  for (char c : full) {
    if (c == '/' && !r.name.empty() && r.name.back() == '/') continue;
    r.name += c;
  }
  r.valid = r.name.size() <= kMaxPath;
  return r;
}

// The escape Racket's writer uses for a control character, if it names one.
const char* named_escape(unsigned char c) {
  switch (c) {
    case 7: return "\\a";
    case 8: return "\\b";
    case 9: return "\\t";
    case 10: return "\\n";
    case 11: return "\\v";
    case 12: return "\\f";
    case 13: return "\\r";
    case 27: return "\\e";
    case '"': return "\\\"";
    case '\\': return "\\\\";
    default: return nullptr;
  }
}

}  // namespace

// What `path` reads as in a message, written as Racket's ~e writes it: a
// string (other control characters as \uXXXX), or for an abstract name a
// byte string (other non-printing bytes in octal, three digits when an
// octal digit follows).
std::string internal::describe_unix_socket_path(const unix_socket_path& path) {
  const std::string& b = path.bytes();
  std::string out = path.abstract() ? "#\"" : "\"";
  for (std::size_t i = 0; i < b.size(); ++i) {
    const auto c = static_cast<unsigned char>(b[i]);
    char buf[8];
    if (const char* e = named_escape(c)) {
      out += e;
    } else if (!path.abstract() && (c < 32 || c == 127)) {
      std::snprintf(buf, sizeof buf, "\\u%04X", c);
      out += buf;
    } else if (path.abstract() && (c < 32 || c >= 127)) {
      const bool octal_next = i + 1 < b.size() && b[i + 1] >= '0' && b[i + 1] <= '7';
      std::snprintf(buf, sizeof buf, octal_next ? "\\%03o" : "\\%o", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

namespace {

std::string describe_path(const unix_socket_path& path) {
  return internal::describe_unix_socket_path(path);
}

struct socket_address {
  sockaddr_un addr{};
  socklen_t len = 0;
};

[[noreturn]] void raise_socket_error(const char* who, const char* what,
                                     const unix_socket_path& path, int error);

// Raises exn_fail_contract for a path that is invalid whatever the current
// directory (Racket checks its arguments' contracts first).
void check_path(const resolved_path& r, const unix_socket_path& path, const char* who) {
  if (r.valid || r.cwd_error != 0) return;
  throw exn_fail_contract(std::string(who) +
                          ": contract violation\n  expected: unix_socket_path_p\n  given: " +
                          describe_path(path));
}

// The address of a checked path; raises exn_fail_network with the errno for
// a relative path whose current directory has no absolute form.
socket_address address_of(const resolved_path& r, const unix_socket_path& path,
                          const char* who) {
  if (r.cwd_error != 0) {
    raise_socket_error(who, "cannot make the path absolute: no current directory", path,
                       r.cwd_error);
  }
  socket_address a;
  a.addr.sun_family = AF_UNIX;
  std::memcpy(a.addr.sun_path, r.name.data(), r.name.size());
  a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + r.name.size());
  return a;
}

void raise_socket_error(const char* who, const char* what, const unix_socket_path& path,
                        int error) {
  throw exn_fail_network(
      errno_message(std::string(who) + ": " + what + "\n  path: " + describe_path(path), error),
      error);
}

int new_socket(const char* who, const unix_socket_path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) raise_socket_error(who, "failed to create socket", path, errno);
  return fd;
}

}  // namespace

bool unix_socket_path_p(const unix_socket_path& path) { return resolve(path).valid; }

// ---------------------------------------------------------------------------
// Listeners.

unix_socket_listener::operator evt<unix_socket_listener>() const {
  return evt<unix_socket_listener>(
      make_node<internal::listener_ready_node<unix_socket_listener>>(st_));
}

unix_socket_listener unix_socket_listen(const unix_socket_path& path, int backlog,
                                        const unix_socket_listen_options& options) {
  const char* who = "unix_socket_listen";
  const resolved_path r = resolve(path);
  check_path(r, path, who);
  if (backlog < 0) {
    // Racket 8.7's message for (unix-socket-listen path -1).
    throw exn_fail_contract(std::string(who) +
                            ": contract violation\n  expected: natural?\n  given: " +
                            std::to_string(backlog));
  }
  if (options.mode && (*options.mode & ~static_cast<mode_t>(0777)) != 0) {
    char given[16];
    std::snprintf(given, sizeof given, "0%o", static_cast<unsigned>(*options.mode));
    throw exn_fail_contract(std::string(who) +
                            ": contract violation\n  expected: a file mode within 0777\n  "
                            "given: " +
                            given);
  }
  if (options.mode && path.abstract()) {
    throw exn_fail_contract(std::string(who) +
                            ": contract violation\n  expected: a filesystem path (an abstract "
                            "name has no file to give a mode)\n  given: " +
                            describe_path(path));
  }
  const socket_address a = address_of(r, path, who);
  current_custodian().check_not_shut_down(who);
  internal::owned_fd fd(new_socket(who, path));
  internal::socket_file_id file;
  if (path.abstract()) {
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a.addr), a.len) != 0) {
      raise_socket_error(who, "failed to bind socket", path, errno);
    }
    if (::listen(fd.get(), backlog) != 0) {
      raise_socket_error(who, "failed to listen", path, errno);
    }
  } else {
    file = internal::bind_socket_file(fd.get(), r.name, path, backlog, options, who);
  }
  int error = 0;
  std::shared_ptr<internal::listener_state> st;
  try {
    st = internal::listener_state::open(fd.release(), internal::unix_socket_listener_kind, describe_path(path), who,
                                        error);
  } catch (...) {
    // The custodian was shut down meanwhile: the file just bound goes too.
    if (!path.abstract()) internal::remove_socket_file_if_same(r.name, file);
    throw;
  }
  if (st == nullptr) {
    if (!path.abstract()) internal::remove_socket_file_if_same(r.name, file);
    raise_socket_error(who, "failed to register socket", path, error);
  }
  if (options.unlink_on_close && !path.abstract()) {
    st->set_close_hook(
        [name = r.name, file] { internal::remove_socket_file_if_same(name, file); });
  }
  return unix_socket_listener(std::move(st));
}

void unix_socket_close_listener(const unix_socket_listener& listener) {
  listener.state()->close();
}

evt<ports> unix_socket_accept_evt(const unix_socket_listener& listener) {
  return internal::listener_state::accept_evt(listener.state(), current_custodian(),
                                              "unix_socket_accept_evt");
}

ports unix_socket_accept(const unix_socket_listener& listener) {
  return internal::listener_state::accept(listener.state(), "unix_socket_accept");
}

std::pair<input_port, output_port> unix_socket_connect(const unix_socket_path& path) {
  const char* who = "unix_socket_connect";
  const resolved_path r = resolve(path);
  check_path(r, path, who);
  const socket_address a = address_of(r, path, who);
  current_custodian().check_not_shut_down(who);
  internal::owned_fd fd(new_socket(who, path));
  // A full backlog answers a non-blocking connect with EAGAIN (not
  // EINPROGRESS, and no readiness follows): try again after a pause.
  absl::Duration pause = absl::Microseconds(100);
  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a.addr), a.len) == 0) break;
    const int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN) {
      sync(alarm_evt(absl::Now() + pause));
      pause = std::min(pause * 2, absl::Milliseconds(20));
      continue;
    }
    raise_socket_error(who, "failed to connect socket", path, e);
  }
  return make_nonblocking_socket_ports(fd.release(), "unix-socket", who, /*unix_domain=*/true);
}

namespace {

[[noreturn]] void raise_not_unix_socket_port(const char* who, const std::string& name) {
  throw exn_fail_contract(std::string(who) +
                          ": contract violation\n  expected: a Unix-socket port\n  given: " +
                          name);
}

template <class Port>
unix_socket_credentials peer_credentials(const Port& port) {
  const char* who = "unix_socket_peer_credentials";
  const int fd = fd_port_descriptor(port);
  if (fd < 0) {
    if (port.closed()) {
      throw exn_fail_network(errno_message(std::string(who) + ": port is closed", EBADF), EBADF);
    }
    raise_not_unix_socket_port(who, port.name());
  }
#if defined(__linux__)
  int domain = 0;
  socklen_t len = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) {
    raise_not_unix_socket_port(who, port.name());
  }
  ucred cred{};
  len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    const int e = errno;
    throw exn_fail_network(
        errno_message(std::string(who) + ": cannot read the peer's credentials\n  port: " +
                          port.name(),
                      e),
        e);
  }
  return unix_socket_credentials{.pid = cred.pid, .uid = cred.uid, .gid = cred.gid};
#else
  throw exn_fail_network(
      errno_message(std::string(who) + ": not supported on this system", ENOSYS), ENOSYS);
#endif
}

}  // namespace

unix_socket_credentials unix_socket_peer_credentials(const input_port& port) {
  return peer_credentials(port);
}

unix_socket_credentials unix_socket_peer_credentials(const output_port& port) {
  return peer_credentials(port);
}

}  // namespace rkt
