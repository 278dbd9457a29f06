// SCM_RIGHTS over a Unix-socket connection's ports: sendmsg after the
// output port's flush, waiting on a watch of the connection's descriptor of
// the sending OS thread's own; receiving takes from the input port, whose
// reads keep the descriptors that come (ports/fd_port.h), so this file
// reads no socket itself.
#include "socket/unix_socket_fds.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "custodian/custodian.h"
#include "custodian/managed.h"
#include "evt/exn.h"
#include "evt/io_handle.h"
#include "evt/reactor.h"
#include "evt/sync.h"
#include "ports/fd_port.h"

namespace rkt {
namespace internal {

// Received descriptors: a managed resource of the receiving custodian.
// Locking: mu_ guards fds_; closing happens outside it never (close(2) does
// not block on a descriptor of ours).
class received_fds final : public managed_resource {
 public:
  explicit received_fds(std::vector<int> fds) : fds_(std::move(fds)) {}
  ~received_fds() override { close(); }

  std::vector<int> peek() const {
    std::lock_guard<std::mutex> g(mu_);
    return fds_;
  }
  std::size_t size() const {
    std::lock_guard<std::mutex> g(mu_);
    return fds_.size();
  }
  std::vector<int> take() {
    std::lock_guard<std::mutex> g(mu_);
    return std::exchange(fds_, {});
  }
  void close() noexcept {
    std::vector<int> fds = take();
    for (int fd : fds) ::close(fd);
  }

  void shut_down_by_custodian() noexcept override { close(); }
  std::string describe() const override { return "received descriptors"; }

 private:
  mutable std::mutex mu_;
  std::vector<int> fds_;  // guarded by mu_
};

}  // namespace internal

unix_socket_fds::unix_socket_fds() = default;

std::size_t unix_socket_fds::size() const { return st_ ? st_->peek().size() : 0; }
std::vector<int> unix_socket_fds::peek() const { return st_ ? st_->peek() : std::vector<int>(); }
std::vector<int> unix_socket_fds::take() const { return st_ ? st_->take() : std::vector<int>(); }
void unix_socket_fds::close() const {
  if (st_) st_->close();
}

namespace {

using message = or_eof<unix_socket_message>;

const char* const kSend = "unix_socket_send_fds";
const char* const kReceive = "unix_socket_receive_fds_evt";

[[noreturn]] void raise_contract(const char* who, const std::string& expected,
                                 const std::string& given) {
  throw exn_fail_contract(std::string(who) + ": contract violation\n  expected: " + expected +
                          "\n  given: " + given);
}

[[noreturn]] void raise_network(const char* who, const std::string& what,
                                const std::string& port, int error) {
  throw exn_fail_network(errno_message(std::string(who) + ": " + what + "\n  port: " + port,
                                       error),
                         error);
}

// The descriptor under `port`, checked to be a Unix socket's (as
// unix_socket_peer_credentials checks).
template <class Port>
int unix_socket_descriptor(const Port& port, const char* who) {
  const int fd = fd_port_descriptor(port);
  if (fd < 0) {
    if (port.closed()) raise_network(who, "port is closed", port.name(), EBADF);
    raise_contract(who, "a Unix-socket port", port.name());
  }
  int domain = 0;
  socklen_t len = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) {
    raise_contract(who, "a Unix-socket port", port.name());
  }
  return fd;
}

// A second registration of a connection's descriptor with the calling OS
// thread's reactor (a duplicate: the ports' own registration is theirs),
// for the readiness a send or receive waits on. Lives for one call or one
// sync, so that it does not keep the connection open after its ports
// close; made and dropped on one OS thread.
class fd_watch {
 public:
  fd_watch(int fd, const char* who, const std::string& port) {
    dup_ = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_ < 0) raise_network(who, "cannot watch the socket", port, errno);
    io_ = io_handle::create(dup_);
    if (io_->error() != 0) {
      const int e = io_->error();
      io_->close();
      ::close(dup_);
      raise_network(who, "cannot watch the socket", port, e);
    }
  }
  fd_watch(const fd_watch&) = delete;
  fd_watch& operator=(const fd_watch&) = delete;
  ~fd_watch() {
    io_->close_from_any_thread([fd = dup_] { ::close(fd); });
  }
  io_handle& io() const { return *io_; }

  // Parks until `events` (POLLIN, POLLOUT) may hold, after an EAGAIN seen
  // with readiness `seen`.
  void wait(uint64_t seen, short events) const {
    const uint32_t dir = events == POLLIN ? internal::kReadable : internal::kWritable;
    io_->consume(seen, dir);
    sync(dir == internal::kReadable ? io_->readable_evt() : io_->writable_evt());
  }

 private:
  int dup_ = -1;
  node_ref<io_handle> io_;
};

void check_send_arguments(std::string_view bytes, std::span<const int> fds) {
  if (bytes.empty()) raise_contract(kSend, "at least one byte to carry the descriptors", "\"\"");
  if (fds.size() > unix_socket_max_fds) {
    raise_contract(kSend, "at most " + std::to_string(unix_socket_max_fds) + " descriptors",
                   std::to_string(fds.size()) + " descriptors");
  }
  for (int fd : fds) {
    if (fd < 0) raise_contract(kSend, "a descriptor (a natural number)", std::to_string(fd));
  }
}

// One sendmsg of `bytes` and `fds`, parking while the socket is full;
// returns how many bytes it took.
std::size_t send_with_fds(int fd, const std::string& port, std::string_view bytes,
                          std::span<const int> fds) {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  std::optional<fd_watch> watch;
  for (;;) {
    const uint64_t seen = watch ? watch->io().readiness() : 0;
    const ssize_t n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return static_cast<std::size_t>(n);
    const int e = errno;
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) {
      raise_network(kSend, "error writing to stream port", port, e);
    }
    if (!watch) {
      watch.emplace(fd, kSend, port);
      continue;  // try again now that a report can reach us
    }
    if (watch->io().owner_exited()) {
      throw exn_fail_contract(std::string(kSend) +
                              ": the OS thread that made the port has exited, so it cannot "
                              "wait\n  port: " +
                              port);
    }
    watch->wait(seen, POLLOUT);
  }
}

struct receive_spec {
  input_port in;
  custodian owner;
  std::size_t max_bytes;
  std::size_t max_fds;
};

// What the port holds for one receive (ports/fd_port.h,
// fd_port_take_passed), or nullopt when it holds nothing for it.
std::optional<message> take_now(const receive_spec& r) {
  std::optional<fd_port_passed> t = fd_port_take_passed(r.in, r.max_bytes, r.max_fds);
  if (!t) return std::nullopt;
  if (t->lost) {
    raise_network(kReceive,
                  "descriptors were lost: the read that brought them was truncated "
                  "(MSG_CTRUNC); the " +
                      std::to_string(t->lost_count) + " that arrived were closed",
                  r.in.name(), EMSGSIZE);
  }
  auto fds = std::make_shared<internal::received_fds>(std::move(t->fds));  // closes them on raise
  if (fds->size() > 0) r.owner.manage(fds, kReceive);
  return unix_socket_message{std::move(t->bytes), unix_socket_fds(std::move(fds))};
}

// The receive, once its event is chosen: what the port holds, or, if
// another reader raced it to the bytes, what the port reads next.
message receive_now(const receive_spec& r, bool eof_seen) {
  r.owner.check_not_shut_down(kReceive);
  for (;;) {
    if (std::optional<message> m = take_now(r)) return std::move(*m);
    if (eof_seen) return eof;
    if (r.in.closed()) raise_network(kReceive, "port is closed", r.in.name(), EBADF);
    eof_seen = !r.in.peek_byte().has_value();  // parks until the port has a byte or EOF
  }
}

}  // namespace

void unix_socket_send_fds(const output_port& out, std::string_view bytes,
                          std::span<const int> fds) {
  check_send_arguments(bytes, fds);
  const int fd = unix_socket_descriptor(out, kSend);
  out.flush();  // earlier bytes first
  const std::size_t sent = send_with_fds(fd, out.name(), bytes, fds);
  if (sent < bytes.size()) {
    out.write_bytes(bytes.substr(sent));
    out.flush();
  }
}

void unix_socket_send_fds(const output_port& out, std::string_view bytes,
                          std::initializer_list<int> fds) {
  unix_socket_send_fds(out, bytes, std::span<const int>(fds.begin(), fds.size()));
}

evt<message> unix_socket_receive_fds_evt(const input_port& in, std::size_t max_bytes,
                                         std::size_t max_fds) {
  if (max_bytes == 0) raise_contract(kReceive, "max_bytes of at least 1", "0");
  if (max_fds > unix_socket_max_fds) {
    raise_contract(kReceive, "max_fds of at most " + std::to_string(unix_socket_max_fds),
                   std::to_string(max_fds));
  }
  unix_socket_descriptor(in, kReceive);
  receive_spec r{in, current_custodian(), max_bytes, max_fds};
  return guard_evt([r]() -> evt<message> {
    if (r.owner.is_shut_down()) {
      // Ready, and raises without reading (as an accept_evt does).
      return wrap_evt(always_evt(), [r] { return receive_now(r, false); });
    }
    if (r.in.closed()) return never_evt_of<message>();  // a port event (socket/unix_socket.h)
    if (fd_port_buffered(r.in) > 0 || (r.max_fds > 0 && fd_port_passed_pending(r.in))) {
      return wrap_evt(always_evt(), [r] { return receive_now(r, false); });
    }
    // Ready once the port has read bytes (with their descriptors) or EOF.
    return wrap_evt(peek_bytes_evt(1, 0, r.in), [r](const or_eof<std::string>& peeked) {
      return receive_now(r, !peeked.has_value());
    });
  });
}

}  // namespace rkt
