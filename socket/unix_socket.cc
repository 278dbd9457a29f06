// racket/unix-socket over the reactor: path checks and sockaddr building,
// connect, and listeners with their two events (the listener itself, ready
// when a connection waits, and accept_evt, which accepts when chosen).
//
// Listener state (unix_listener_state::mu): the fd, its io_handle and the
// parked syncs of both events. A readiness report serves them: every
// listener-evt waiter commits (nothing is consumed), then accept_evt
// waiters accept one connection each until accept(2) says EAGAIN. An
// accept_evt claims its sync before accept(2), so a losing event accepts
// nothing; when accept(2) then finds no connection, the claim is given back.
#include "socket/unix_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "custodian/managed.h"
#include "evt/alarm.h"
#include "evt/exn.h"
#include "evt/internal/scheduler.h"
#include "evt/io_handle.h"
#include "evt/sync.h"
#include "ports/fd_port.h"
#include "ports/internal/commit.h"

namespace rkt {
namespace {

constexpr std::size_t kMaxPath = sizeof(sockaddr_un::sun_path);  // 108 on Linux, 104 on BSD

using ports = std::pair<input_port, output_port>;

// The bytes a filesystem path names, made absolute against the current
// directory with repeated slashes collapsed (Racket's path->complete-path
// and cleanse-path).
std::string complete_path(const std::string& p) {
  std::string full;
  if (!p.empty() && p[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd) != nullptr) full = cwd;
    full += '/';
  }
  full += p;
  std::string out;
  for (char c : full) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out += c;
  }
  return out;
}

// What `path` reads as in a message: a quoted string, or the abstract
// name's bytes with NULs written \0.
std::string describe_path(const unix_socket_path& path) {
  std::string out = path.abstract() ? "#\"" : "\"";
  for (char c : path.bytes()) {
    if (c == '\0') {
      out += "\\0";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

struct socket_address {
  sockaddr_un addr{};
  socklen_t len = 0;
};

// The address for a valid path; raises exn_fail_contract for an invalid one.
socket_address address_of(const unix_socket_path& path, const char* who) {
  if (!unix_socket_path_p(path)) {
    throw exn_fail_contract(std::string(who) +
                            ": contract violation\n  expected: unix_socket_path_p\n  given: " +
                            describe_path(path));
  }
  const std::string name = path.abstract() ? path.bytes() : complete_path(path.bytes());
  socket_address a;
  a.addr.sun_family = AF_UNIX;
  std::memcpy(a.addr.sun_path, name.data(), name.size());
  a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  return a;
}

[[noreturn]] void raise_socket_error(const char* who, const char* what,
                                     const unix_socket_path& path, int error) {
  throw exn_fail_network(
      errno_message(std::string(who) + ": " + what + "\n  path: " + describe_path(path), error),
      error);
}

void refuse_if_shut_down(const char* who) {
  if (current_custodian().is_shut_down()) {
    throw exn_fail_contract(std::string(who) + ": the custodian has been shut down");
  }
}

int new_socket(const char* who, const unix_socket_path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) raise_socket_error(who, "failed to create socket", path, errno);
  return fd;
}

}  // namespace

bool unix_socket_path_p(const unix_socket_path& path) {
  if (!unix_socket_available) return false;
  const std::string& b = path.bytes();
  if (path.abstract()) {
#if defined(__linux__)
    return !b.empty() && b.size() <= kMaxPath && b[0] == '\0';
#else
    return false;
#endif
  }
  if (b.empty() || b.find('\0') != std::string::npos) return false;
  return complete_path(b).size() <= kMaxPath;
}

// ---------------------------------------------------------------------------
// Listeners.

namespace internal {

class unix_listener_state final : public managed_resource, public io_listener {
 public:
  unix_listener_state(int fd, node_ref<io_handle> io, std::string path_text)
      : fd_(fd), io_(std::move(io)), path_text_(std::move(path_text)) {
    io_->set_listener(this);
  }
  ~unix_listener_state() override { close(); }

  // The listener event and accept_evt park here (mu_ held).
  class listener_node;
  class accept_node;

  // Whether a connection is waiting (or the listener is closed). Asks the
  // kernel; on "no", re-arms the reactor's interest. Requires mu_.
  bool ready_locked() {
    if (closed_) return true;
    const uint64_t seen = io_->readiness();
    pollfd p{fd_, POLLIN, 0};
    int r;
    do {
      r = ::poll(&p, 1, 0);
    } while (r < 0 && errno == EINTR);
    if (r > 0) return true;
    io_->consume(seen, kReadable);
    return false;
  }

  // Accepts one connection now: the fd, or -1 with errno (EAGAIN: none).
  // Requires mu_.
  int accept_locked() {
    for (;;) {
      const uint64_t seen = io_->readiness();
      const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) return fd;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        io_->consume(seen, kReadable);
        errno = EAGAIN;
      }
      return -1;
    }
  }

  void on_io(uint32_t events) noexcept override;

  void close() noexcept;
  void shut_down_by_custodian() noexcept override { close(); }
  std::string describe() const override { return "unix socket listener " + path_text_; }

  std::mutex& mu() { return mu_; }
  bool closed_locked() const { return closed_; }
  waiter_list& ready_waiters() { return ready_waiters_; }
  waiter_list& accept_waiters() { return accept_waiters_; }
  void serve_locked();

 private:
  const int fd_;
  const node_ref<io_handle> io_;
  const std::string path_text_;
  std::mutex mu_;
  bool closed_ = false;          // guarded by mu_
  waiter_list ready_waiters_;    // guarded by mu_
  waiter_list accept_waiters_;   // guarded by mu_
};

namespace {

[[noreturn]] void raise_closed(const char* who) {
  throw exn_fail_network(std::string(who) + ": unix socket listener is closed", EBADF);
}

std::exception_ptr closed_error(const char* who) {
  try {
    raise_closed(who);
  } catch (...) {
    return std::current_exception();
  }
}

std::exception_ptr accept_error(const char* who, int error) {
  return std::make_exception_ptr(
      exn_fail_network(errno_message(std::string(who) + ": failed to accept socket", error), error));
}

}  // namespace

// The listener as an event: ready when a connection waits or it is closed.
class unix_listener_state::listener_node final : public base_evt<unix_socket_listener> {
 public:
  explicit listener_node(std::shared_ptr<unix_listener_state> st) : st_(std::move(st)) {}
  bool try_sync(self_ref& self) override {
    std::lock_guard<std::mutex> g(st_->mu());
    return st_->ready_locked() && self.commit<unix_socket_listener>(st_);
  }
  void arm(waiter& w) override {
    std::lock_guard<std::mutex> g(st_->mu());
    if (st_->ready_locked()) {
      self_ref self(w);
      self.commit<unix_socket_listener>(st_);
      return;
    }
    w.data = this;
    st_->ready_waiters().push_back(&w);
  }
  void disarm(waiter& w) noexcept override {
    std::lock_guard<std::mutex> g(st_->mu());
    st_->ready_waiters().remove(&w);
  }
  const char* name() const override { return "unix-socket-listener"; }
  const std::shared_ptr<unix_listener_state>& state() const { return st_; }

 private:
  const std::shared_ptr<unix_listener_state> st_;
};

// accept_evt: accepts only when chosen; the ports go to `owner`.
class unix_listener_state::accept_node final : public base_evt<ports> {
 public:
  accept_node(std::shared_ptr<unix_listener_state> st, custodian owner, const char* who)
      : st_(std::move(st)), owner_(std::move(owner)), who_(who) {}

  // Tries one accept through `c`. Requires the state's mu.
  bool attempt_locked(commit_target& c) {
    if (!c.claim()) return true;  // committed elsewhere: done with it
    if (st_->closed_locked()) {
      c.slot().set_exception(closed_error(who_));
      c.publish();
      return true;
    }
    const int fd = st_->accept_locked();
    if (fd < 0) {
      const int error = errno;
      if (error == EAGAIN || error == EMFILE || error == ENFILE) {
        // Nothing to take now (or no descriptor to take it with: the
        // reactor reports again when the next connection arrives).
        c.unclaim();
        return false;
      }
      c.slot().set_exception(accept_error(who_, error));
      c.publish();
      return true;
    }
    try {
      custodian_scope in(owner_);
      c.slot().emplace<ports>(make_fd_ports(fd, "unix-socket", who_));
    } catch (...) {
      c.slot().set_exception(std::current_exception());
    }
    c.publish();
    return true;
  }

  bool try_sync(self_ref& self) override {
    std::lock_guard<std::mutex> g(st_->mu());
    self_commit c(self);
    return attempt_locked(c);  // a poll's claim cannot fail
  }
  void arm(waiter& w) override {
    std::lock_guard<std::mutex> g(st_->mu());
    self_ref self(w);
    self_commit c(self);
    if (attempt_locked(c)) return;
    w.data = this;
    st_->accept_waiters().push_back(&w);
  }
  void disarm(waiter& w) noexcept override {
    std::lock_guard<std::mutex> g(st_->mu());
    st_->accept_waiters().remove(&w);
  }
  const char* name() const override { return "unix-socket-accept-evt"; }

 private:
  const std::shared_ptr<unix_listener_state> st_;
  const custodian owner_;
  const char* const who_;
};

void unix_listener_state::serve_locked() {
  while (waiter* w = ready_waiters_.pop_front()) {
    if (claim_waiter(*w)) {
      auto* node = static_cast<listener_node*>(w->data);
      complete_waiter_with<unix_socket_listener>(*w, node->state());
    }
  }
  while (waiter* w = accept_waiters_.front()) {
    waiter_commit c(*w, accept_waiters_);
    if (!static_cast<accept_node*>(w->data)->attempt_locked(c)) return;
  }
}

void unix_listener_state::on_io(uint32_t /*events*/) noexcept {
  std::lock_guard<std::mutex> g(mu_);
  serve_locked();
}

void unix_listener_state::close() noexcept {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (closed_) return;
    closed_ = true;
    serve_locked();  // every parked sync sees the close
  }
  // The fd and the handle close on the reactor's owner thread.
  node_ref<io_handle> io = io_;
  const int fd = fd_;
  io->owner().post([io, fd] {
    io->set_listener(nullptr);
    io->close();
    ::close(fd);
  });
}

}  // namespace internal

using internal::unix_listener_state;

unix_socket_listener::operator evt<unix_socket_listener>() const {
  return evt<unix_socket_listener>(make_node<unix_listener_state::listener_node>(st_));
}

unix_socket_listener unix_socket_listen(const unix_socket_path& path, int backlog) {
  const char* who = "unix_socket_listen";
  const socket_address a = address_of(path, who);
  if (backlog < 0) {
    throw exn_fail_contract(std::string(who) +
                            ": contract violation\n  expected: exact-nonnegative-integer?\n  "
                            "given: " + std::to_string(backlog));
  }
  refuse_if_shut_down(who);
  const int fd = new_socket(who, path);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len) != 0) {
    const int e = errno;
    ::close(fd);
    raise_socket_error(who, "failed to bind socket", path, e);
  }
  if (::listen(fd, backlog) != 0) {
    const int e = errno;
    ::close(fd);
    raise_socket_error(who, "failed to listen", path, e);
  }
  node_ref<io_handle> io = io_handle::create(fd);
  if (io->error() != 0) {
    const int e = io->error();
    ::close(fd);
    raise_socket_error(who, "failed to register socket", path, e);
  }
  auto st = std::make_shared<unix_listener_state>(fd, std::move(io), describe_path(path));
  current_custodian().manage(st, who);  // if refused, st's destructor closes fd
  return unix_socket_listener(std::move(st));
}

void unix_socket_close_listener(const unix_socket_listener& listener) {
  listener.state()->close();
}

evt<ports> unix_socket_accept_evt(const unix_socket_listener& listener) {
  return evt<ports>(make_node<unix_listener_state::accept_node>(
      listener.state(), current_custodian(), "unix_socket_accept_evt"));
}

ports unix_socket_accept(const unix_socket_listener& listener) {
  const evt<ports> accept = evt<ports>(make_node<unix_listener_state::accept_node>(
      listener.state(), current_custodian(), "unix_socket_accept"));
  // An accept that found no descriptor to take the connection with (EMFILE,
  // ENFILE) stays parked, and nothing reports when descriptors are freed:
  // try again every quarter second rather than spinning.
  for (;;) {
    std::optional<ports> got = sync_timeout(absl::Milliseconds(250), accept);
    if (got) return std::move(*got);
  }
}

std::pair<input_port, output_port> unix_socket_connect(const unix_socket_path& path) {
  const char* who = "unix_socket_connect";
  const socket_address a = address_of(path, who);
  refuse_if_shut_down(who);
  const int fd = new_socket(who, path);
  // A full backlog answers a non-blocking connect with EAGAIN (not
  // EINPROGRESS, and no readiness follows): try again after a pause.
  absl::Duration pause = absl::Microseconds(100);
  for (;;) {
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len) == 0) break;
    const int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN) {
      sync(alarm_evt(absl::Now() + pause));
      pause = std::min(pause * 2, absl::Milliseconds(20));
      continue;
    }
    ::close(fd);
    raise_socket_error(who, "failed to connect socket", path, e);
  }
  return make_fd_ports(fd, "unix-socket", who);
}

}  // namespace rkt
