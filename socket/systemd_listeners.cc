// systemd_listeners: reads and unsets the LISTEN_* variables, checks each
// passed descriptor, and wraps it in a listener of its family.
#include "socket/systemd_listeners.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "custodian/custodian.h"
#include "evt/exn.h"
#include "socket/internal/listener.h"

namespace rkt {
namespace {

const char* const kWho = "systemd_listeners";

std::optional<std::string> take_env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

[[noreturn]] void raise_variable(const char* variable, const std::string& value,
                                 const std::string& expected) {
  throw exn_fail_contract(std::string(kWho) + ": contract violation\n  expected: " + variable +
                          " " + expected + "\n  given: \"" + value + "\"");
}

[[noreturn]] void raise_fd(const std::string& what, int fd, int error) {
  throw exn_fail_network(
      errno_message(std::string(kWho) + ": " + what + "\n  fd: " + std::to_string(fd), error),
      error);
}

// A decimal number of at most 9 digits, or nullopt.
std::optional<long> parse_count(const std::string& s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  long n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

int socket_option(int fd, int option) {
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(fd, SOL_SOCKET, option, &v, &len) != 0) {
    raise_fd(errno == ENOTSOCK ? "not a socket" : "cannot read the socket's options", fd, errno);
  }
  return v;
}

// Checks that `fd` is a listening stream socket of a family we serve;
// returns the family.
int check_listening(int fd) {
  if (::fcntl(fd, F_GETFD) < 0) raise_fd("not an open descriptor", fd, errno);
  if (socket_option(fd, SO_TYPE) != SOCK_STREAM) {
    raise_fd("not a stream socket", fd, EPROTOTYPE);
  }
  if (socket_option(fd, SO_ACCEPTCONN) == 0) raise_fd("not a listening socket", fd, EINVAL);
  const int family = socket_option(fd, SO_DOMAIN);
  if (family != AF_UNIX && family != AF_INET && family != AF_INET6) {
    raise_fd("not a Unix, IPv4 or IPv6 socket", fd, EAFNOSUPPORT);
  }
  return family;
}

}  // namespace

std::vector<systemd_listener> systemd_listeners() {
  const std::optional<std::string> pid = take_env("LISTEN_PID");
  const std::optional<std::string> fds = take_env("LISTEN_FDS");
  const std::optional<std::string> names = take_env("LISTEN_FDNAMES");
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!pid || !fds) return {};
  const std::optional<long> for_pid = parse_count(*pid);
  if (!for_pid) raise_variable("LISTEN_PID", *pid, "as a process id");
  if (*for_pid != ::getpid()) return {};  // meant for another process
  const std::optional<long> count = parse_count(*fds);
  if (!count) raise_variable("LISTEN_FDS", *fds, "as a count of descriptors");

  std::vector<std::string> fd_names;
  if (names) {
    std::size_t start = 0;
    for (;;) {
      const std::size_t colon = names->find(':', start);
      fd_names.push_back(names->substr(start, colon - start));
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
    if (static_cast<long>(fd_names.size()) != *count) {
      raise_variable("LISTEN_FDNAMES", *names,
                     "with one name per descriptor (LISTEN_FDS=" + *fds + ")");
    }
  } else {
    fd_names.assign(static_cast<std::size_t>(*count), "unknown");
  }

  current_custodian().check_not_shut_down(kWho);
  // Check them all before taking any.
  std::vector<int> families;
  for (long i = 0; i < *count; ++i) {
    families.push_back(check_listening(systemd_listen_fds_start + static_cast<int>(i)));
  }
  std::vector<systemd_listener> out;
  for (long i = 0; i < *count; ++i) {
    const int fd = systemd_listen_fds_start + static_cast<int>(i);
    const int fd_flags = ::fcntl(fd, F_GETFD);
    const int fl_flags = ::fcntl(fd, F_GETFL);
    if (fd_flags < 0 || ::fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC) != 0 || fl_flags < 0 ||
        ::fcntl(fd, F_SETFL, fl_flags | O_NONBLOCK) != 0) {
      raise_fd("cannot set the descriptor's flags", fd, errno);
    }
    const bool unix = families[static_cast<std::size_t>(i)] == AF_UNIX;
    const std::string& name = fd_names[static_cast<std::size_t>(i)];
    int error = 0;
    const internal::listener_kind& kind =
        unix ? internal::unix_socket_listener_kind : internal::tcp_listener_kind;
    auto st = internal::listener_state::open(
        fd, kind, "systemd fd " + std::to_string(fd) + " " + name, kWho, error);
    if (st == nullptr) raise_fd("failed to register socket", fd, error);
    systemd_listener l{
        .name = name,
        .fd = fd,
        .listener = unix ? std::variant<unix_socket_listener, tcp_listener>(
                               unix_socket_listener(std::move(st)))
                         : std::variant<unix_socket_listener, tcp_listener>(
                               tcp_listener(std::move(st)))};
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace rkt
