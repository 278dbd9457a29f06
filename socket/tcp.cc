// racket/tcp over the reactor: address lookup, connect (non-blocking, one
// address after another), listen, and the listener functions
// (socket/internal/listener.h does the listening and accepting).
#include "socket/tcp.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "evt/exn.h"
#include "evt/io_handle.h"
#include "evt/sync.h"
#include "ports/fd_port.h"
#include "socket/internal/listener.h"
#include "socket/internal/owned_fd.h"

namespace rkt {
namespace {

using ports = std::pair<input_port, output_port>;

struct addrinfo_list {
  addrinfo* head = nullptr;
  ~addrinfo_list() {
    if (head != nullptr) ::freeaddrinfo(head);
  }
};

// Resolves host:port (numeric addresses without a lookup). Raises
// "<who>: host not found" with the negative getaddrinfo code.
void resolve(const char* who, const std::string* host, uint16_t port, bool passive,
             addrinfo_list& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = (passive ? AI_PASSIVE : 0) | AI_NUMERICSERV;
  const std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host != nullptr ? host->c_str() : nullptr, service.c_str(), &hints,
                         &out.head);
  if (rc != 0) {
    std::string m = std::string(who) + ": host not found\n  hostname: " +
                    (host != nullptr ? *host : std::string("#f")) + "\n  error: " +
                    ::gai_strerror(rc);
    throw exn_fail_network(m, rc == EAI_SYSTEM ? errno : -std::abs(rc));
  }
}

std::string host_text(const sockaddr_storage& a) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (a.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr, buf, sizeof buf);
  } else if (a.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(a).sin6_addr, buf, sizeof buf);
  }
  return buf;
}

uint16_t port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return 0;
}

// Connects `fd` to `a` without blocking the OS thread: waits for the
// writable report, then reads the outcome. Returns 0 or the errno.
int connect_parked(int fd, const addrinfo& a) {
  if (::connect(fd, a.ai_addr, a.ai_addrlen) == 0) return 0;
  if (errno != EINPROGRESS && errno != EINTR) return errno;
  {
    // A handle only for the wait; closed before the fd's ports register it.
    node_ref<io_handle> io = io_handle::create(fd);
    if (io->error() != 0) return io->error();
    sync(io->writable_evt());
    io->close();
  }
  int error = 0;
  socklen_t len = sizeof error;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) return errno;
  return error;
}

tcp_address_info addresses_of_fd(int fd, bool listener) {
  sockaddr_storage local{}, remote{};
  socklen_t ll = sizeof local, rl = sizeof remote;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0 ||
      (local.ss_family != AF_INET && local.ss_family != AF_INET6)) {
    throw exn_fail_contract("tcp_addresses: contract violation\n  expected: tcp-port?");
  }
  tcp_address_info info;
  info.local_host = host_text(local);
  info.local_port = port_of(local);
  if (listener) {
    info.remote_host = local.ss_family == AF_INET6 ? "::" : "0.0.0.0";
  } else if (::getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &rl) == 0) {
    info.remote_host = host_text(remote);
    info.remote_port = port_of(remote);
  } else {
    const int e = errno;
    throw exn_fail_network(errno_message("tcp_addresses: could not get peer address", e), e);
  }
  return info;
}

template <class Port>
tcp_address_info port_addresses(const Port& p) {
  const int fd = fd_port_descriptor(p);
  if (fd < 0) {
    if (p.closed()) throw exn_fail_network("tcp_addresses: port is closed", EBADF);
    throw exn_fail_contract("tcp_addresses: contract violation\n  expected: tcp-port?");
  }
  return addresses_of_fd(fd, false);
}

[[noreturn]] void raise_closed_listener(const char* who) {
  internal::raise_closed_listener(internal::tcp_listener_kind, who);
}

}  // namespace

tcp_listener::operator evt<tcp_listener>() const {
  return evt<tcp_listener>(make_node<internal::listener_ready_node<tcp_listener>>(st_));
}

tcp_listener tcp_listen(uint16_t port_no, int max_allow_wait, bool reuse,
                        const std::optional<std::string>& hostname) {
  const char* who = "tcp_listen";
  if (max_allow_wait < 0) {
    throw exn_fail_contract(std::string(who) + ": contract violation\n  expected: "
                            "exact-nonnegative-integer?\n  given: " +
                            std::to_string(max_allow_wait));
  }
  current_custodian().check_not_shut_down(who);
  addrinfo_list addrs;
  resolve(who, hostname ? &*hostname : nullptr, port_no, true, addrs);
  // Without a host name, the IPv6 wildcard first, as a dual-stack socket.
  std::vector<const addrinfo*> candidates;
  for (const addrinfo* a = addrs.head; a != nullptr; a = a->ai_next) candidates.push_back(a);
  if (!hostname) {
    std::stable_partition(candidates.begin(), candidates.end(),
                          [](const addrinfo* a) { return a->ai_family == AF_INET6; });
  }
  int last_error = EADDRNOTAVAIL;
  for (const addrinfo* a : candidates) {
    const int fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    const int one = 1, zero = 0;
    if (reuse) (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->ai_family == AF_INET6 && !hostname) {
      (void)::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, max_allow_wait) != 0) {
      last_error = errno;
      ::close(fd);
      continue;
    }
    auto st = internal::listener_state::open(fd, internal::tcp_listener_kind, std::to_string(port_no), who,
                                             last_error);
    if (st != nullptr) return tcp_listener(std::move(st));
  }
  throw exn_fail_network(errno_message(std::string(who) + ": listen failed\n  port number: " +
                                           std::to_string(port_no),
                                       last_error),
                         last_error);
}

ports tcp_connect(const std::string& hostname, uint16_t port_no,
                  const std::optional<std::string>& local_hostname,
                  std::optional<uint16_t> local_port_no) {
  const char* who = "tcp_connect";
  current_custodian().check_not_shut_down(who);
  addrinfo_list remote;
  resolve(who, &hostname, port_no, false, remote);
  addrinfo_list local;
  if (local_hostname || local_port_no) {
    resolve(who, local_hostname ? &*local_hostname : nullptr, local_port_no.value_or(0),
            !local_hostname, local);
  }
  int last_error = ECONNREFUSED;
  for (const addrinfo* a = remote.head; a != nullptr; a = a->ai_next) {
    internal::owned_fd fd(::socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
      last_error = errno;
      continue;
    }
    if (local.head != nullptr) {
      const addrinfo* l = local.head;
      while (l != nullptr && l->ai_family != a->ai_family) l = l->ai_next;
      if (l == nullptr || ::bind(fd.get(), l->ai_addr, l->ai_addrlen) != 0) {
        last_error = l == nullptr ? EAFNOSUPPORT : errno;
        continue;
      }
    }
    const int error = connect_parked(fd.get(), *a);
    if (error != 0) {
      last_error = error;
      continue;
    }
    const int one = 1;
    (void)::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return make_nonblocking_socket_ports(fd.release(), "tcp", who);
  }
  throw exn_fail_network(errno_message(std::string(who) + ": connection failed\n  hostname: " +
                                           hostname + "\n  port number: " +
                                           std::to_string(port_no),
                                       last_error),
                         last_error);
}

ports tcp_accept(const tcp_listener& listener) {
  return internal::listener_state::accept(listener.state(), "tcp_accept");
}

evt<ports> tcp_accept_evt(const tcp_listener& listener) {
  return internal::listener_state::accept_evt(listener.state(), current_custodian(),
                                              "tcp_accept_evt");
}

bool tcp_accept_ready(const tcp_listener& listener) {
  if (listener.state()->closed()) raise_closed_listener("tcp_accept_ready");
  return sync_timeout(absl::ZeroDuration(), listener).has_value();
}

void tcp_close(const tcp_listener& listener) {
  if (listener.state()->closed()) raise_closed_listener("tcp_close");
  listener.state()->close();
}

tcp_address_info tcp_addresses(const input_port& p) { return port_addresses(p); }
tcp_address_info tcp_addresses(const output_port& p) { return port_addresses(p); }

tcp_address_info tcp_addresses(const tcp_listener& l) {
  if (l.state()->closed()) raise_closed_listener("tcp_addresses");
  return addresses_of_fd(l.state()->fd(), true);
}

void tcp_abandon_port(const output_port& p) { abandon_port(p); }
void tcp_abandon_port(const input_port& p) { abandon_port(p); }

}  // namespace rkt
