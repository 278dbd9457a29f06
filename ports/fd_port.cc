// fd ports: fd_input and fd_output are the two sides of one fd_link, which
// owns the descriptor and its io_handle and closes them when both sides are
// done with it. A readiness report reaches the link (an io_listener), which
// serves the reads and writes parked on either side.
//
// A descriptor that cannot be waited on (a regular file or directory,
// which never blocks, or one that epoll refuses with EPERM, such as
// /dev/null) is always ready: its link has no io_handle, and its reads and
// writes never park. Each side reads or writes the descriptor through
// internal/fd_io.h, per the link's fd_way, so that a call does not block
// the OS thread (fd_port.h lists the exceptions) and rkt never changes a
// descriptor's file status flags.
//
// Locking: fd_link::mu guards in/out/sides; it is taken before a side's mu
// (on_io), never after, so a side calls release() with its own mu released.
// The io_handle and the descriptor are closed on the reactor's owner thread
// (io_handle::close_from_any_thread), so a report never reaches a closed
// handle and the descriptor number is not reused while the reactor still
// knows it.
#include "ports/fd_port.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "custodian/custodian.h"
#include "custodian/managed.h"
#include "evt/exn.h"
#include "evt/io_handle.h"
#include "ports/internal/fd_io.h"
#include "ports/internal/input_core.h"
#include "ports/internal/output_core.h"
#include "ports/internal/passed_fds.h"

namespace rkt {
namespace {

using internal::fd_way;

class fd_input;
class fd_output;

constexpr uint32_t kReadReady = internal::kReadable | internal::kHangup | internal::kError |
                                io_handle::kClosed;
constexpr uint32_t kWriteReady = internal::kWritable | internal::kHangup | internal::kError |
                                 io_handle::kClosed;

class fd_link final : public io_listener, public std::enable_shared_from_this<fd_link> {
 public:
  enum side : uint8_t { kInput = 1, kOutput = 2 };

  // What the descriptor is, and how its sides start reading and writing it.
  struct kind {
    bool socket = false;
    bool fifo = false;  // a pipe or FIFO: writes may raise SIGPIPE
    bool unix_domain = false;  // an AF_UNIX socket: reads keep passed descriptors
    fd_way way = fd_way::plain;
  };

  fd_link(int fd, kind k, node_ref<io_handle> io) : fd_(fd), kind_(k), io_(std::move(io)) {}

  int fd() const { return fd_; }
  bool socket() const { return kind_.socket; }
  bool fifo() const { return kind_.fifo; }
  bool unix_domain() const { return kind_.unix_domain; }
  fd_way way() const { return kind_.way; }
  io_handle* io() const { return io_.get(); }

  // Whether the side should try the fd in direction `dirs` now: always
  // when `fresh` (and without an io_handle); otherwise only if a report
  // came since the last EAGAIN.
  bool may_try(uint32_t dirs, uint64_t& seen, bool fresh) const {
    if (!io_) return true;
    seen = io_->readiness();
    return fresh || (io_handle::bits(seen) & dirs) != 0;
  }
  // Asks the kernel whether the fd is ready for `events` (POLLIN/POLLOUT)
  // now, and records a yes as readiness.
  bool poll_now(short events) const {
    if (!io_) return true;
    if (!internal::fd_ready_now(fd_, events)) return false;
    if ((events & POLLOUT) != 0) io_->assume_ready(internal::kWritable);
    return true;
  }
  // The side saw EAGAIN for `dir` after may_try returned `seen`.
  void saw_again(uint64_t seen, uint32_t dir) const {
    if (io_) io_->consume(seen, dir);
  }
  // The OS thread whose reactor watched the descriptor has exited: nothing
  // will report it ready again, so a side that would wait fails instead.
  bool owner_exited() const { return io_ && io_->owner_exited(); }

  // Attaches the sides (the constructor of make_fd_ports, before any report).
  void attach(fd_input* in, fd_output* out) {
    std::lock_guard<std::mutex> g(mu_);
    in_ = in;
    out_ = out;
    sides_ = (in != nullptr ? kInput : 0) | (out != nullptr ? kOutput : 0);
    if (io_) io_->set_listener(this);
  }

  void on_io(uint32_t events) noexcept override;

  // A side is closed: shut that direction of a socket down while the other
  // is open; close everything when neither is. Requires: the side's mu
  // released.
  void release(side s);
  // The output side will close without shutting writing down (Racket's
  // tcp-abandon-port): the peer sees the close only with the input side's.
  void abandon_output() {
    std::lock_guard<std::mutex> g(mu_);
    abandoned_output_ = true;
  }
  // The side's destructor: no report may reach it any more.
  void detach(side s) {
    std::lock_guard<std::mutex> g(mu_);
    if (s == kInput) in_ = nullptr;
    if (s == kOutput) out_ = nullptr;
  }

 private:
  const int fd_;
  const kind kind_;
  const node_ref<io_handle> io_;
  std::mutex mu_;
  fd_input* in_ = nullptr;    // guarded by mu_
  fd_output* out_ = nullptr;  // guarded by mu_
  uint8_t sides_ = 0;         // the sides not yet released; guarded by mu_
  bool abandoned_output_ = false;  // guarded by mu_
};

// Not an errno: the "error" of a side that would wait on a descriptor
// whose OS thread has exited (fd_port.h, "OS threads").
constexpr int kOwnerExited = -1;

std::exception_ptr fd_error(bool socket, const std::string& what, int error) {
  if (socket) return std::make_exception_ptr(exn_fail_network(errno_message(what, error), error));
  return std::make_exception_ptr(exn_fail_filesystem(errno_message(what, error), error));
}

std::exception_ptr owner_exited_error(const char* who, const std::string& name) {
  return std::make_exception_ptr(
      exn_fail_contract(std::string(who) +
                        ": the OS thread that made the port has exited, so it cannot wait\n"
                        "  port: " +
                        name));
}

class fd_input final : public internal::input_core, public managed_resource {
 public:
  fd_input(std::shared_ptr<fd_link> link, std::string name)
      : input_core(std::move(name), mu_),
        link_(std::move(link)),
        way_(link_->way()),
        keeps_passed_(link_->unix_domain()) {}
  ~fd_input() override {
    close();
    link_->detach(fd_link::kInput);
  }

  internal::byte_buffer& buffer() override { return buffer_; }

  fill_status fill_locked(int& error, bool fresh) override {
    const std::size_t want = mode_ == buffer_mode::none ? 1 : kReadChunk;
    fill_status st;
    std::size_t n = 0;
    st = read_into(buffer_.prepare(want), want, n, error, fresh);
    if (st == fill_status::progress) buffer_.commit(n);
    return st;
  }

  bool read_direct_locked(std::span<char> dst, fill_status& st, std::size_t& n, int& error,
                          bool fresh) override {
    if (mode_ == buffer_mode::none) return false;  // one byte at a time
    st = read_into(dst.data(), dst.size(), n, error, fresh);
    return true;
  }

  std::exception_ptr system_error(const char* who, int error) const override {
    if (error == kOwnerExited) return owner_exited_error(who, name());
    return fd_error(link_->socket(),
                    std::string(who) + ": error reading from stream port\n  port: " + name(),
                    error);
  }
  std::optional<buffer_mode> buffer_mode_locked() const override { return mode_; }
  bool set_buffer_mode_locked(buffer_mode m) override {
    mode_ = m;
    return true;
  }
  void close_source_locked() override {
    if (passed_) passed_->close_all();
  }
  void after_close() override { link_->release(fd_link::kInput); }

  void shut_down_by_custodian() noexcept override { close(); }
  std::string describe() const override { return "input port " + name(); }
  fd_link& link() const { return *link_; }

  // The stream position of the next byte a read takes (requires mu).
  uint64_t head_locked() const { return received_ - buffer_.size(); }
  internal::passed_fds* passed_locked() const { return passed_.get(); }

 private:
  static constexpr std::size_t kReadChunk = 4096;  // what one fill asks the kernel for

  // Inline into both callers (the socket reads of every round trip).
  [[gnu::always_inline]] fill_status read_into(char* p, std::size_t len, std::size_t& n, int& error,
                                               bool fresh) {
    uint64_t seen = 0;
    if (!link_->may_try(kReadReady, seen, fresh)) return fill_status::would_block;
    const ssize_t r = keeps_passed_ ? recv_keeping_fds(p, len)
                                    : internal::fd_read(link_->fd(), way_, p, len);
    if (r > 0) {
      n = static_cast<std::size_t>(r);
      // A short read drained the descriptor: record it as not readable, so
      // that the next read parks without an EAGAIN read first (new bytes
      // bring a new report; one that came since `seen` keeps the bit).
      if (n < len) link_->saw_again(seen, internal::kReadable);
      return fill_status::progress;
    }
    if (r == 0) return fill_status::eof;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (link_->owner_exited()) {
        error = kOwnerExited;
        return fill_status::error;
      }
      link_->saw_again(seen, internal::kReadable);
      return fill_status::would_block;
    }
    error = errno;
    return fill_status::error;
  }

  // A read of an AF_UNIX socket: recvmsg, keeping the descriptors that
  // come with the bytes at their stream position.
  ssize_t recv_keeping_fds(char* p, std::size_t len) {
    msghdr msg;
    const ssize_t r = internal::recv_with_fds(link_->fd(), p, len, msg);
    if (r <= 0) return r;
    if (internal::brought_fds(msg)) [[unlikely]] keep_passed(msg);
    received_ += static_cast<uint64_t>(r);
    return r;
  }
  [[gnu::noinline]] void keep_passed(msghdr& msg) {
    if (!passed_) passed_ = std::make_unique<internal::passed_fds>();
    passed_->arrived(received_, msg);
  }

  std::mutex mu_;
  const std::shared_ptr<fd_link> link_;
  fd_way way_;                               // guarded by mu_
  const bool keeps_passed_;                  // reads with recv_keeping_fds
  internal::byte_buffer buffer_;             // guarded by mu_
  buffer_mode mode_ = buffer_mode::block;  // guarded by mu_
  // Only with keeps_passed_, guarded by mu_: the bytes read from the socket
  // so far, and the descriptors that came with them (made by the first).
  uint64_t received_ = 0;
  std::unique_ptr<internal::passed_fds> passed_;
};

class fd_output final : public internal::output_core, public managed_resource {
 public:
  fd_output(std::shared_ptr<fd_link> link, std::string name)
      : output_core(std::move(name), mu_, buffer_mode::block),
        link_(std::move(link)),
        way_(link_->way()) {}
  ~fd_output() override {
    close_without_waiting();
    link_->detach(fd_link::kOutput);
  }

  sink_result sink_write_locked(std::string_view bytes, bool fresh) override {
    uint64_t seen = 0;
    if (!link_->may_try(kWriteReady, seen, fresh)) return {};
    const ssize_t r =
        internal::fd_write(link_->fd(), way_, link_->fifo(), bytes.data(), bytes.size());
    if (r >= 0) return sink_result{static_cast<std::size_t>(r), 0};
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (link_->owner_exited()) return sink_result{0, kOwnerExited};
      link_->saw_again(seen, internal::kWritable);
      return {};
    }
    return sink_result{0, errno};
  }
  bool sink_ready_locked(bool fresh) const override {
    uint64_t seen = 0;
    if (link_->may_try(kWriteReady, seen, false)) return true;
    // Not known writable: ask the kernel when a fresh answer is wanted.
    return fresh && link_->poll_now(POLLOUT);
  }
  std::exception_ptr system_error(const char* who, int error) const override {
    if (error == kOwnerExited) return owner_exited_error(who, name());
    return fd_error(link_->socket(),
                    std::string(who) + ": error writing to stream port\n  port: " + name(),
                    error);
  }
  void after_close() override { link_->release(fd_link::kOutput); }

  void shut_down_by_custodian() noexcept override { close_without_waiting(); }
  std::string describe() const override { return "output port " + name(); }
  fd_link& link() const { return *link_; }

 private:
  std::mutex mu_;
  const std::shared_ptr<fd_link> link_;
  fd_way way_;  // guarded by mu_
};

// A report serves only the side whose direction it names: a report of
// write space alone (the peer read what we sent) cannot complete a read.
void fd_link::on_io(uint32_t events) noexcept {
  std::lock_guard<std::mutex> g(mu_);
  if (in_ != nullptr && (events & kReadReady) != 0) in_->serve();
  if (out_ != nullptr && (events & kWriteReady) != 0) out_->serve();
}

void fd_link::release(side s) {
  bool last;
  {
    std::lock_guard<std::mutex> g(mu_);
    if ((sides_ & s) == 0) return;
    sides_ &= ~s;
    last = sides_ == 0;
    if (!last && kind_.socket && !(s == kOutput && abandoned_output_)) {
      // Half-close; ENOTCONN (the peer is gone) needs nothing more.
      (void)::shutdown(fd_, s == kInput ? SHUT_RD : SHUT_WR);
    }
  }
  if (!last) return;
  if (io_) {
    // The handle closes on its owner thread before the descriptor does, so
    // the reactor never watches a closed (or reused) number; the link lives
    // until then, since the handle's listener points at it.
    io_->close_from_any_thread([self = shared_from_this()] { ::close(self->fd_); });
  } else {
    ::close(fd_);
  }
}

// Who made the descriptor: rkt (a file it opened with O_NONBLOCK, a socket
// the socket library made non-blocking), or the caller, whose descriptor
// rkt must leave as it found it.
enum class origin : uint8_t { rkt, caller };

// Registers `fd` with the reactor (unless `k` says it never blocks) and makes
// its link. A descriptor that epoll refuses (EPERM: /dev/null, /dev/zero,
// ...) has no readiness to wait for: like a file, it is always ready and
// read and written directly. Closes fd and raises when registration fails
// otherwise.
std::shared_ptr<fd_link> register_link(int fd, fd_link::kind k, bool pollable,
                                       const char* who) {
  node_ref<io_handle> io;
  if (pollable) {
    io = io_handle::create(fd);
    if (const int e = io->error(); e == EPERM) {
      io = node_ref<io_handle>();
      k.way = fd_way::plain;
    } else if (e != 0) {
      io = node_ref<io_handle>();
      ::close(fd);
      std::rethrow_exception(
          fd_error(k.socket, std::string(who) + ": cannot register descriptor", e));
    } else {
      io->assume_ready(internal::kReadable | internal::kWritable);
    }
  }
  return std::make_shared<fd_link>(fd, k, std::move(io));
}

// The link for any `fd`: finds out what it is and how to read and write it
// without blocking (fd_port.h). Closes fd and raises when that fails.
std::shared_ptr<fd_link> make_link(int fd, origin from, const char* who) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    throw exn_fail_filesystem(errno_message(std::string(who) + ": bad file descriptor", e), e);
  }
  fd_link::kind k;
  k.socket = S_ISSOCK(st.st_mode);
  k.fifo = S_ISFIFO(st.st_mode);
  const bool pollable = !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
  if (k.socket) {
    k.way = fd_way::socket;
    int domain = 0;
    socklen_t len = sizeof domain;
    k.unix_domain = ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
                    domain == AF_UNIX;
  } else if (!pollable || from == origin::rkt) {
    k.way = fd_way::plain;
  } else if (k.fifo) {
    k.way = fd_way::nowait;
  } else {
    k.way = fd_way::polled;
  }
  return register_link(fd, k, pollable, who);
}

template <class Core>
std::shared_ptr<Core> make_side(const std::shared_ptr<fd_link>& link, const std::string& name) {
  return std::make_shared<Core>(link, name);
}

// Both ports of `link`, managed by the current custodian.
std::pair<input_port, output_port> both_ports(std::shared_ptr<fd_link> link,
                                              const std::string& name, const char* who) {
  auto in = make_side<fd_input>(link, name);
  auto out = make_side<fd_output>(link, name);
  link->attach(in.get(), out.get());
  // If the custodian refuses them, the sides close (and so the fd) as they go.
  custodian c = current_custodian();
  c.manage(in, who);
  c.manage(out, who);
  return {input_port(std::move(in)), output_port(std::move(out))};
}

input_port input_only(int fd, origin from, const std::string& name, const char* who) {
  std::shared_ptr<fd_link> link = make_link(fd, from, who);
  auto in = make_side<fd_input>(link, name);
  link->attach(in.get(), nullptr);
  current_custodian().manage(in, who);
  return input_port(std::move(in));
}

output_port output_only(int fd, origin from, const std::string& name, const char* who) {
  std::shared_ptr<fd_link> link = make_link(fd, from, who);
  auto out = make_side<fd_output>(link, name);
  link->attach(nullptr, out.get());
  current_custodian().manage(out, who);
  return output_port(std::move(out));
}

}  // namespace

std::pair<input_port, output_port> make_fd_ports(int fd, std::string name, const char* who) {
  return both_ports(make_link(fd, origin::caller, who), name, who);
}

std::pair<input_port, output_port> make_nonblocking_socket_ports(int fd, std::string name,
                                                                 const char* who,
                                                                 bool unix_domain) {
  return both_ports(register_link(fd,
                                  fd_link::kind{.socket = true,
                                                .unix_domain = unix_domain,
                                                .way = fd_way::socket},
                                  true, who),
                    name, who);
}

input_port make_fd_input_port(int fd, std::string name, const char* who) {
  return input_only(fd, origin::caller, name, who);
}

output_port make_fd_output_port(int fd, std::string name, const char* who) {
  return output_only(fd, origin::caller, name, who);
}

int fd_port_descriptor(const input_port& in) {
  auto* core = dynamic_cast<fd_input*>(in.core().get());
  return core != nullptr && !in.closed() ? core->link().fd() : -1;
}

int fd_port_descriptor(const output_port& out) {
  auto* core = dynamic_cast<fd_output*>(out.core().get());
  return core != nullptr && !out.closed() ? core->link().fd() : -1;
}

bool fd_port_on_this_os_thread(const input_port& in) {
  auto* core = dynamic_cast<fd_input*>(in.core().get());
  return core != nullptr && core->link().io() != nullptr && core->link().io()->on_owner_thread();
}

bool fd_port_on_this_os_thread(const output_port& out) {
  auto* core = dynamic_cast<fd_output*>(out.core().get());
  return core != nullptr && core->link().io() != nullptr && core->link().io()->on_owner_thread();
}

std::size_t fd_port_buffered(const input_port& in) {
  auto* core = dynamic_cast<fd_input*>(in.core().get());
  if (core == nullptr) return 0;
  internal::input_core::lock l(*core);
  return core->closed_locked() ? 0 : core->buffer().size();
}

bool fd_port_passed_pending(const input_port& in) {
  auto* core = dynamic_cast<fd_input*>(in.core().get());
  if (core == nullptr) return false;
  internal::input_core::lock l(*core);
  const internal::passed_fds* p = core->passed_locked();
  return !core->closed_locked() && p != nullptr && p->pending_at(core->head_locked());
}

std::size_t fd_port_passed_held(const input_port& in) {
  auto* core = dynamic_cast<fd_input*>(in.core().get());
  if (core == nullptr) return 0;
  internal::input_core::lock l(*core);
  const internal::passed_fds* p = core->passed_locked();
  return core->closed_locked() || p == nullptr ? 0 : p->held();
}

std::optional<fd_port_passed> fd_port_take_passed(const input_port& in, std::size_t max_bytes,
                                                  std::size_t max_fds) {
  auto* core = dynamic_cast<fd_input*>(in.core().get());
  if (core == nullptr) return std::nullopt;
  internal::input_core::lock l(*core);
  if (core->closed_locked()) return std::nullopt;
  internal::byte_buffer& buf = core->buffer();
  internal::passed_fds* p = core->passed_locked();
  fd_port_passed out;
  if (p == nullptr) {
    out.bytes.assign(buf.view().substr(0, max_bytes));
  } else {
    internal::passed_fds::take_result t =
        p->take(core->head_locked(), buf.size(), max_bytes, max_fds);
    if (t.lost) {
      out.lost = true;
      out.lost_count = t.lost_count;
      return out;
    }
    out.fds = std::move(t.fds);
    out.bytes.assign(buf.view().substr(0, t.bytes));
  }
  if (out.bytes.empty() && out.fds.empty()) return std::nullopt;
  buf.consume(out.bytes.size());
  core->consumed_locked(out.bytes.size());
  buf.release_if_empty();
  return out;
}

void abandon_port(const output_port& out) {
  if (auto* core = dynamic_cast<fd_output*>(out.core().get())) core->link().abandon_output();
  out.close();
}

void abandon_port(const input_port& in) { in.close(); }

bool file_stream_port_p(const input_port& in) {
  auto* core = dynamic_cast<fd_input*>(in.core().get());
  return core != nullptr && !core->link().socket();
}

bool file_stream_port_p(const output_port& out) {
  auto* core = dynamic_cast<fd_output*>(out.core().get());
  return core != nullptr && !core->link().socket();
}

namespace {

int open_or_raise(const char* who, const char* what, const std::string& path, int flags) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NONBLOCK, 0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int e = errno;
    throw exn_fail_filesystem(
        errno_message(std::string(who) + ": " + what + "\n  path: " + path, e), e);
  }
  return fd;
}

}  // namespace

input_port open_input_file(const std::string& path) {
  const char* who = "open-input-file";
  current_custodian().check_not_shut_down(who);
  return input_only(open_or_raise(who, "cannot open input file", path, O_RDONLY), origin::rkt,
                    path, who);
}

output_port open_output_file(const std::string& path, exists_mode exists) {
  const char* who = "open-output-file";
  current_custodian().check_not_shut_down(who);
  int flags = O_WRONLY;
  switch (exists) {
    case exists_mode::error:
      flags |= O_CREAT | O_EXCL;
      break;
    case exists_mode::append:
      flags |= O_CREAT | O_APPEND;
      break;
    case exists_mode::truncate:
      flags |= O_CREAT | O_TRUNC;
      break;
    case exists_mode::replace:
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        const int e = errno;
        throw exn_fail_filesystem(
            errno_message(std::string(who) + ": error deleting file\n  path: " + path, e), e);
      }
      flags |= O_CREAT | O_EXCL;
      break;
    case exists_mode::update:
      break;
    case exists_mode::can_update:
      flags |= O_CREAT;
      break;
  }
  return output_only(open_or_raise(who, "cannot open output file", path, flags), origin::rkt,
                     path, who);
}

}  // namespace rkt
