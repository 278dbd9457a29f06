// Racket's racket/tcp in C++: TCP connections whose two ends are rkt ports,
// and listeners that are events, IPv4 and IPv6; the same shape as
// unix_socket.h, and what the tcp transport interface is built on.
//
//   rkt::tcp_listener l = rkt::tcp_listen(0, 16, true, "127.0.0.1");
//   uint16_t port = rkt::tcp_addresses(l).local_port;
//   auto [in, out] = rkt::tcp_connect("127.0.0.1", port);
//
// Listeners and ports register with the current custodian (for
// tcp_accept_evt: the one current when the event was made). Using a closed
// listener raises exn_fail_contract "<who>: listener is closed\n  listener:
// #<tcp-listener>", as Racket 8.7 does (its documentation says
// exn:fail:network). Accepting under a shut-down custodian raises
// exn_fail_contract before accept(2), leaving a pending connection queued;
// running out of descriptors (EMFILE, ENFILE) makes an accept wait and
// retry, as unix_socket.h describes. Other errors raise
// exn_fail_network carrying errno ("tcp_connect: connection failed\n
// hostname: 127.0.0.1\n  port number: 1\n  errno: 111\n  error: Connection
// refused"); a host name that does not resolve carries the negative
// getaddrinfo code. Name lookups (for names that are not numeric
// addresses) block the calling OS thread while they run.
//
// The reference is Racket's racket/tcp documentation and, where they differ,
// the behaviour of Racket 8.7.
#ifndef RKT_SOCKET_TCP_H_
#define RKT_SOCKET_TCP_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "evt/evt.h"
#include "ports/port.h"

namespace rkt {
namespace internal {
class listener_state;
}  // namespace internal

// A listening TCP socket; an event ready when a connection waits (or once
// closed), whose result is the listener. Copies share one listener.
class tcp_listener {
 public:
  using result_type = tcp_listener;
  operator evt<tcp_listener>() const;  // NOLINT: listeners are events
  bool operator==(const tcp_listener& o) const { return st_ == o.st_; }

  explicit tcp_listener(std::shared_ptr<internal::listener_state> st) : st_(std::move(st)) {}
  const std::shared_ptr<internal::listener_state>& state() const { return st_; }

 private:
  std::shared_ptr<internal::listener_state> st_;
};

template <class T>
constexpr bool tcp_listener_p(const T&) {
  return std::is_same_v<T, tcp_listener>;
}

// Listens on `port_no` (0: one the system picks) with a backlog of
// `max_allow_wait` (negative: exn_fail_contract "expected:
// exact-nonnegative-integer?", Racket's message); with `reuse`,
// SO_REUSEADDR. With a `hostname`, on its
// first address; without, on every IPv6 and IPv4 address (one dual-stack
// socket where the system allows, else IPv4).
tcp_listener tcp_listen(uint16_t port_no, int max_allow_wait = 4, bool reuse = false,
                        const std::optional<std::string>& hostname = std::nullopt);

// Connects to `hostname`:`port_no`, trying each of its addresses in turn;
// optionally from a local address and port.
std::pair<input_port, output_port> tcp_connect(
    const std::string& hostname, uint16_t port_no,
    const std::optional<std::string>& local_hostname = std::nullopt,
    std::optional<uint16_t> local_port_no = std::nullopt);

// Accepts a connection, parking until one comes; raises on a closed
// listener.
std::pair<input_port, output_port> tcp_accept(const tcp_listener& listener);
// Accepts only when chosen; the ports go to the custodian current now.
evt<std::pair<input_port, output_port>> tcp_accept_evt(const tcp_listener& listener);
// Whether a connection is waiting; raises on a closed listener.
bool tcp_accept_ready(const tcp_listener& listener);
// Closes the listener; raises exn_fail_contract if it is already closed
// (Racket).
void tcp_close(const tcp_listener& listener);

struct tcp_address_info {
  std::string local_host;
  uint16_t local_port = 0;
  std::string remote_host;  // "0.0.0.0" (or "::") and 0 for a listener
  uint16_t remote_port = 0;
};
// The addresses of a TCP port's connection, or of a listener (Racket's
// tcp-addresses with port-numbers? true). Raises exn_fail_contract for a
// port that is not a TCP port, exn_fail_network for a closed one.
tcp_address_info tcp_addresses(const input_port& p);
tcp_address_info tcp_addresses(const output_port& p);
tcp_address_info tcp_addresses(const tcp_listener& l);

// Racket's tcp-abandon-port (fd_port.h's abandon_port).
void tcp_abandon_port(const output_port& p);
void tcp_abandon_port(const input_port& p);

}  // namespace rkt

#endif  // RKT_SOCKET_TCP_H_
