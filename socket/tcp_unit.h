// Racket's tcp^ signature (net/tcp-sig) as one C++ interface, so that code
// written against it (the web server in web/) runs over TCP or over a Unix
// socket without change:
//
//   std::shared_ptr<rkt::tcp_unit> unit =
//       rkt::make_unix_socket_tcp_unit("/run/app.sock");   // or tcp_unit_tcp()
//   rkt::tcp_unit_listener l = unit->listen(80, 511, true);
//   auto [in, out] = unit->accept(l);
//
// Two implementations: tcp_unit_tcp() is Racket's tcp@ over socket/tcp.h;
// make_unix_socket_tcp_unit(path) is Racket's make-unix-socket-tcp@ over
// socket/unix_socket.h. A listener of either is a tcp_unit_listener: an
// event ready when accept would not block (or once the listener is closed),
// whose result is the listener itself. Passing a unit a listener that
// another kind of unit made raises exn_fail_contract in Racket's words for
// the function the unit forwards to ("tcp_accept: contract violation\n
// expected: tcp_listener_p\n  given: #<unix-socket-listener>").
//
// Errors. Every failing system call raises exn_fail_network carrying
// errno, from either unit and from the ports of every connection a unit
// makes: a write to a peer that has closed (EPIPE), a read or write after
// the peer reset the connection (ECONNRESET), as well as a refused connect
// or a path in use. A server catches exn_fail_network around a connection
// and goes on (racket/web-server#102: Racket's Unix unit let a peer's EPIPE
// through as exn:fail:filesystem, which its server did not catch). What is
// not a system call's failure keeps the layer below's exception and
// message, as in Racket: a closed TCP listener raises exn_fail_contract
// (tcp.h; closing it twice too), a closed Unix listener makes accept raise
// exn_fail without errno and closing it again does nothing
// (unix_socket.h), a shut-down custodian raises exn_fail_contract.
//
// Locking: a unit holds no mutable state; its functions may be called from
// any green thread on any OS thread, as the functions they forward to.
#ifndef RKT_SOCKET_TCP_UNIT_H_
#define RKT_SOCKET_TCP_UNIT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "evt/evt.h"
#include "ports/port.h"
#include "socket/systemd_listeners.h"
#include "socket/tcp.h"
#include "socket/unix_socket.h"

namespace rkt {

// A listener made by some tcp_unit: it holds that unit's own listener type
// (tcp_listener, unix_socket_listener, or a third unit's) behind one type.
// Copies share the listener; two compare equal when they hold the same one.
class tcp_unit_listener {
 public:
  using result_type = tcp_unit_listener;

  // Wraps a unit's listener. L must be an event (evt-like) that is ready
  // when accepting would not block, and equality-comparable.
  template <class L>
    requires(!std::is_same_v<std::decay_t<L>, tcp_unit_listener>)
  explicit tcp_unit_listener(L listener)
      : held_(std::make_shared<holder<L>>(std::move(listener))) {}

  // The wrapped listener if it is an L, else nullptr.
  template <class L>
  const L* get() const {
    if (held_->type() != typeid(L)) return nullptr;
    return &static_cast<const holder<L>&>(*held_).listener;
  }

  operator evt<tcp_unit_listener>() const;  // NOLINT: listeners are events

  bool operator==(const tcp_unit_listener& o) const { return held_->same(*o.held_); }

 private:
  struct holder_base {
    virtual ~holder_base() = default;
    virtual const std::type_info& type() const = 0;
    virtual bool same(const holder_base& o) const = 0;
    virtual evt<void> ready() const = 0;
  };
  template <class L>
  struct holder final : holder_base {
    explicit holder(L l) : listener(std::move(l)) {}
    const std::type_info& type() const override { return typeid(L); }
    bool same(const holder_base& o) const override {
      return o.type() == typeid(L) && static_cast<const holder<L>&>(o).listener == listener;
    }
    evt<void> ready() const override {
      return wrap_evt(listener, [](const evt_result_t<L>&) {});
    }
    L listener;
  };

  // Never null.
  std::shared_ptr<const holder_base> held_;
};

// Racket's tcp^: what a transport provides to a server or a client. The
// default arguments belong to this interface (they are not virtual): call
// through tcp_unit, as the web server does.
class tcp_unit {
 public:
  virtual ~tcp_unit() = default;

  // Racket's tcp-listen: listens on `port_no` with a backlog of
  // `max_allow_wait`; `reuse` asks for SO_REUSEADDR; `hostname` picks the
  // address. A unit may ignore what has no meaning for it (the Unix-socket
  // unit ignores all but the backlog).
  virtual tcp_unit_listener listen(uint16_t port_no, int max_allow_wait = 4, bool reuse = false,
                                   const std::optional<std::string>& hostname = std::nullopt) = 0;

  // Racket's tcp-connect.
  virtual std::pair<input_port, output_port> connect(
      const std::string& hostname, uint16_t port_no,
      const std::optional<std::string>& local_hostname = std::nullopt,
      std::optional<uint16_t> local_port_no = std::nullopt) = 0;

  // Racket's tcp-accept: parks until a connection comes. Its ports belong
  // to the current custodian.
  virtual std::pair<input_port, output_port> accept(const tcp_unit_listener& listener) = 0;
  // Racket's tcp-accept-evt: an event that accepts only when chosen; its
  // ports belong to the custodian current when accept_evt is called (not
  // when it is synced), so shutting that custodian down closes them.
  virtual evt<std::pair<input_port, output_port>> accept_evt(
      const tcp_unit_listener& listener) = 0;
  // Racket's tcp-accept-ready?: whether accept would not block. On a
  // closed listener the TCP unit raises and the Unix unit answers true
  // (its listener event is ready), each as Racket's.
  virtual bool accept_ready(const tcp_unit_listener& listener) = 0;
  // Racket's tcp-close. Connections already accepted stay open.
  virtual void close(const tcp_unit_listener& listener) = 0;
  // Whether `listener` is one of this unit's (Racket's tcp-listener?).
  virtual bool listener_p(const tcp_unit_listener& listener) const = 0;

  // Racket's tcp-addresses with port numbers, of a connection's port or of
  // a listener.
  virtual tcp_address_info addresses(const input_port& port) = 0;
  virtual tcp_address_info addresses(const output_port& port) = 0;
  virtual tcp_address_info addresses(const tcp_unit_listener& listener) = 0;

  // Racket's tcp-abandon-port: closes the port, flushing an output port,
  // but an output port abandoned while its input port is open sends the
  // peer no EOF; the connection ends when the input port closes too.
  // Abandoning an input port is closing it.
  virtual void abandon_port(const input_port& port) = 0;
  virtual void abandon_port(const output_port& port) = 0;
};

// Racket's tcp@: socket/tcp.h behind the interface. One shared instance.
std::shared_ptr<tcp_unit> tcp_unit_tcp();

// Racket's make-unix-socket-tcp@: a unit whose listen binds `path` (port,
// reuse and hostname ignored; max_allow_wait is listen(2)'s backlog, so a
// full backlog refuses a non-blocking connect with EAGAIN) and whose
// addresses reports "127.0.0.1" for both ends, local port 1 and remote port
// 0, whatever port it is given (Racket's unit ignores its argument; a
// listener must still be this unit's). Listening twice on one path raises
// exn_fail_network (EADDRINUSE); closing the listener leaves the socket
// file. Where Racket's unit raises "not supported", this one works:
// connect connects to `path` (hostname and ports ignored; a full backlog
// makes it wait, as unix_socket_connect), and abandon_port abandons as the
// TCP unit's does. `path` is kept as given, so a relative one is resolved
// against the current directory at each listen and connect, as Racket's.
// Raises exn_fail_contract naming `path` (an abstract name written as a
// byte string, "#\"\\0name\"") when it is not a valid unix_socket_path;
// Racket's unit checks only when it listens.
std::shared_ptr<tcp_unit> make_unix_socket_tcp_unit(const unix_socket_path& path);
// The same, with unix_socket_listen's options for every listen (beyond
// Racket): replace_stale, unlink_on_close, mode.
std::shared_ptr<tcp_unit> make_unix_socket_tcp_unit(const unix_socket_path& path,
                                                    const unix_socket_listen_options& options);

// A unit over a listener opened elsewhere (inherited from a service
// manager, say): its listen returns `listener` whatever its arguments (the
// same listener at each call, also once closed), and every other function
// forwards to `base`, the unit of the listener's kind, whose checks the
// listener passes. Beyond Racket.
std::shared_ptr<tcp_unit> make_preopened_tcp_unit(tcp_unit_listener listener,
                                                  std::shared_ptr<tcp_unit> base);

// make_preopened_tcp_unit for a listener from systemd_listeners(): over
// tcp_unit_tcp() for a TCP listener; for a Unix one, over
// make_unix_socket_tcp_unit of the address the socket is bound to (so
// that connect reaches it; an unnamed socket gets the abstract name "\0").
std::shared_ptr<tcp_unit> make_inherited_tcp_unit(const systemd_listener& listener);

}  // namespace rkt

#endif  // RKT_SOCKET_TCP_UNIT_H_
