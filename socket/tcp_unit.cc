// The two tcp^ implementations: tcp_unit_tcp forwards to tcp.h;
// make_unix_socket_tcp_unit forwards to unix_socket.h with Racket's
// make-unix-socket-tcp@ behaviour for what a Unix socket lacks.
#include "socket/tcp_unit.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <string>
#include <variant>

#include "absl/time/time.h"
#include "evt/exn.h"
#include "evt/sync.h"
#include "ports/fd_port.h"
#include "socket/internal/path_text.h"

namespace rkt {

tcp_unit_listener::operator evt<tcp_unit_listener>() const {
  return wrap_evt(held_->ready(), [self = *this] { return self; });
}

namespace {

// How a listener of any unit reads in a message (Racket's printed form).
std::string describe_listener(const tcp_unit_listener& l) {
  if (l.get<tcp_listener>() != nullptr) return "#<tcp-listener>";
  if (l.get<unix_socket_listener>() != nullptr) return "#<unix-socket-listener>";
  return "#<listener>";
}

// The unit's own listener inside `l`, or exn_fail_contract naming `who`,
// the predicate `expected` and what was given, as Racket's contract on
// the function the unit forwards to words it.
template <class L>
const L& own_listener(const tcp_unit_listener& l, const char* who, const char* expected) {
  const L* own = l.get<L>();
  if (own == nullptr) {
    throw exn_fail_contract(std::string(who) + ": contract violation\n  expected: " + expected +
                            "\n  given: " + describe_listener(l));
  }
  return *own;
}

class tcp_tcp_unit final : public tcp_unit {
 public:
  tcp_unit_listener listen(uint16_t port_no, int max_allow_wait, bool reuse,
                           const std::optional<std::string>& hostname) override {
    return tcp_unit_listener(tcp_listen(port_no, max_allow_wait, reuse, hostname));
  }
  std::pair<input_port, output_port> connect(const std::string& hostname, uint16_t port_no,
                                             const std::optional<std::string>& local_hostname,
                                             std::optional<uint16_t> local_port_no) override {
    return tcp_connect(hostname, port_no, local_hostname, local_port_no);
  }
  std::pair<input_port, output_port> accept(const tcp_unit_listener& l) override {
    return tcp_accept(own(l, "tcp_accept"));
  }
  evt<std::pair<input_port, output_port>> accept_evt(const tcp_unit_listener& l) override {
    return tcp_accept_evt(own(l, "tcp_accept_evt"));
  }
  bool accept_ready(const tcp_unit_listener& l) override {
    return tcp_accept_ready(own(l, "tcp_accept_ready"));
  }
  void close(const tcp_unit_listener& l) override { tcp_close(own(l, "tcp_close")); }
  bool listener_p(const tcp_unit_listener& l) const override {
    return l.get<tcp_listener>() != nullptr;
  }
  tcp_address_info addresses(const input_port& p) override { return tcp_addresses(p); }
  tcp_address_info addresses(const output_port& p) override { return tcp_addresses(p); }
  tcp_address_info addresses(const tcp_unit_listener& l) override {
    return tcp_addresses(own(l, "tcp_addresses"));
  }
  void abandon_port(const input_port& p) override { tcp_abandon_port(p); }
  void abandon_port(const output_port& p) override { tcp_abandon_port(p); }

 private:
  static const tcp_listener& own(const tcp_unit_listener& l, const char* who) {
    return own_listener<tcp_listener>(l, who, "tcp_listener_p");
  }
};

class unix_socket_tcp_unit final : public tcp_unit {
 public:
  unix_socket_tcp_unit(unix_socket_path path, unix_socket_listen_options options)
      : path_(std::move(path)), options_(options) {}

  tcp_unit_listener listen(uint16_t, int max_allow_wait, bool,
                           const std::optional<std::string>&) override {
    return tcp_unit_listener(unix_socket_listen(path_, max_allow_wait, options_));
  }
  std::pair<input_port, output_port> connect(const std::string&, uint16_t,
                                             const std::optional<std::string>&,
                                             std::optional<uint16_t>) override {
    return unix_socket_connect(path_);
  }
  std::pair<input_port, output_port> accept(const tcp_unit_listener& l) override {
    return unix_socket_accept(own(l, "unix_socket_accept"));
  }
  evt<std::pair<input_port, output_port>> accept_evt(const tcp_unit_listener& l) override {
    return unix_socket_accept_evt(own(l, "unix_socket_accept_evt"));
  }
  // Racket's unit: (sync/timeout 0 listener) as a boolean.
  bool accept_ready(const tcp_unit_listener& l) override {
    return sync_timeout(absl::ZeroDuration(), own(l, "tcp_accept_ready")).has_value();
  }
  void close(const tcp_unit_listener& l) override {
    unix_socket_close_listener(own(l, "unix_socket_close_listener"));
  }
  bool listener_p(const tcp_unit_listener& l) const override {
    return l.get<unix_socket_listener>() != nullptr;
  }
  // Racket's unit ignores its argument; a listener must still be this
  // unit's kind (a C++ caller gets the same check from every function).
  tcp_address_info addresses(const input_port&) override { return loopback(); }
  tcp_address_info addresses(const output_port&) override { return loopback(); }
  tcp_address_info addresses(const tcp_unit_listener& l) override {
    own(l, "tcp_addresses");
    return loopback();
  }
  void abandon_port(const input_port& p) override { rkt::abandon_port(p); }
  void abandon_port(const output_port& p) override { rkt::abandon_port(p); }

 private:
  static const unix_socket_listener& own(const tcp_unit_listener& l, const char* who) {
    return own_listener<unix_socket_listener>(l, who, "unix_socket_listener_p");
  }
  static tcp_address_info loopback() {
    return tcp_address_info{.local_host = "127.0.0.1",
                            .local_port = 1,
                            .remote_host = "127.0.0.1",
                            .remote_port = 0};
  }

  const unix_socket_path path_;
  const unix_socket_listen_options options_;
};

// listen returns the listener it was given; the rest is the base unit's.
class preopened_tcp_unit final : public tcp_unit {
 public:
  preopened_tcp_unit(tcp_unit_listener listener, std::shared_ptr<tcp_unit> base)
      : listener_(std::move(listener)), base_(std::move(base)) {}

  tcp_unit_listener listen(uint16_t, int, bool, const std::optional<std::string>&) override {
    return listener_;
  }
  std::pair<input_port, output_port> connect(const std::string& hostname, uint16_t port_no,
                                             const std::optional<std::string>& local_hostname,
                                             std::optional<uint16_t> local_port_no) override {
    return base_->connect(hostname, port_no, local_hostname, local_port_no);
  }
  std::pair<input_port, output_port> accept(const tcp_unit_listener& l) override {
    return base_->accept(l);
  }
  evt<std::pair<input_port, output_port>> accept_evt(const tcp_unit_listener& l) override {
    return base_->accept_evt(l);
  }
  bool accept_ready(const tcp_unit_listener& l) override { return base_->accept_ready(l); }
  void close(const tcp_unit_listener& l) override { base_->close(l); }
  bool listener_p(const tcp_unit_listener& l) const override { return base_->listener_p(l); }
  tcp_address_info addresses(const input_port& p) override { return base_->addresses(p); }
  tcp_address_info addresses(const output_port& p) override { return base_->addresses(p); }
  tcp_address_info addresses(const tcp_unit_listener& l) override {
    return base_->addresses(l);
  }
  void abandon_port(const input_port& p) override { base_->abandon_port(p); }
  void abandon_port(const output_port& p) override { base_->abandon_port(p); }

 private:
  const tcp_unit_listener listener_;
  const std::shared_ptr<tcp_unit> base_;
};

// The address a Unix listening socket is bound to, as a unix_socket_path.
unix_socket_path bound_path(int fd) {
  sockaddr_un a{};
  socklen_t len = sizeof a;
  const std::size_t header = offsetof(sockaddr_un, sun_path);
  if (fd < 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0 || len <= header) {
    return unix_socket_abstract_name(std::string(1, '\0'));
  }
  std::string name(a.sun_path, len - header);
  if (name[0] == '\0') return unix_socket_abstract_name(name);
  return unix_socket_path(std::string(name.c_str()));  // up to the NUL, if any
}

}  // namespace

std::shared_ptr<tcp_unit> make_preopened_tcp_unit(tcp_unit_listener listener,
                                                  std::shared_ptr<tcp_unit> base) {
  return std::make_shared<preopened_tcp_unit>(std::move(listener), std::move(base));
}

std::shared_ptr<tcp_unit> make_inherited_tcp_unit(const systemd_listener& l) {
  if (const auto* u = std::get_if<unix_socket_listener>(&l.listener)) {
    return make_preopened_tcp_unit(tcp_unit_listener(*u),
                                   make_unix_socket_tcp_unit(bound_path(l.fd)));
  }
  return make_preopened_tcp_unit(tcp_unit_listener(std::get<tcp_listener>(l.listener)),
                                 tcp_unit_tcp());
}

std::shared_ptr<tcp_unit> tcp_unit_tcp() {
  static const std::shared_ptr<tcp_unit> unit = std::make_shared<tcp_tcp_unit>();
  return unit;
}

std::shared_ptr<tcp_unit> make_unix_socket_tcp_unit(const unix_socket_path& path) {
  return make_unix_socket_tcp_unit(path, unix_socket_listen_options{});
}

std::shared_ptr<tcp_unit> make_unix_socket_tcp_unit(const unix_socket_path& path,
                                                    const unix_socket_listen_options& options) {
  if (!unix_socket_path_p(path)) {
    throw exn_fail_contract(
        "make_unix_socket_tcp_unit: contract violation\n  expected: unix_socket_path_p\n  given: " +
        internal::describe_unix_socket_path(path));
  }
  return std::make_shared<unix_socket_tcp_unit>(path, options);
}

}  // namespace rkt
