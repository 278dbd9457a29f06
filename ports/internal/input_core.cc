// input_core: reads against the buffer, the parked reads, and close.
#include "ports/internal/input_core.h"

#include <algorithm>
#include <atomic>

#include "evt/exn.h"

namespace rkt::internal {

input_core::input_core(std::string name, std::mutex& mu)
    : mu_(mu), name_(std::move(name)) {}

input_core::~input_core() = default;

std::exception_ptr input_core::system_error(const char* who, int error) const {
  return std::make_exception_ptr(exn_fail_filesystem(
      errno_message(std::string(who) + ": error reading from stream port\n  port: " + name_, error),
      error));
}

std::exception_ptr input_core::closed_error(const char* who) const {
  return std::make_exception_ptr(exn_fail(std::string(who) +
                                          ": input port is closed\n  input port: #<input-port:" +
                                          name_ + ">"));
}

void input_core::raise_if_closed_locked(const char* who) const {
  if (closed_) std::rethrow_exception(closed_error(who));
}

input_core::attempt input_core::attempt_locked(const read_request& req, commit_target& c,
                                               bool& may_fill, bool fresh) {
  const read_spec& spec = req.spec();
  for (;;) {
    if (closed_) {
      // The port itself is ready (a read would not block: it raises); so
      // is a read of zero bytes. Port events never are; methods raise.
      const bool nothing_wanted =
          (spec.what == read_spec::op::avail || spec.what == read_spec::op::exact) &&
          spec.want == 0;
      const bool ready = spec.what == read_spec::op::ready || nothing_wanted;
      if (!ready && req.port_event()) return attempt::not_ready;
      if (!c.claim()) return attempt::lost;
      if (ready) {
        req.deliver(c.slot(), read_outcome{false, {}});
      } else {
        c.slot().set_exception(closed_error(req.who()));
      }
      c.publish();
      return attempt::done;
    }
    byte_buffer& buf = buffer();
    const std::string_view data = buf.view();
    std::optional<read_take> take = scan(spec, data, eof_pending_);
    if (!take && error_pending_ != 0) {
      // Bytes before an error are delivered as if EOF followed them; the
      // error waits for the next read (Racket never drops bytes).
      const bool bytes_first = spec.skip < data.size() && spec.what != read_spec::op::eof;
      if (spec.what == read_spec::op::ready) {
        take = read_take{};
      } else if (bytes_first) {
        take = scan(spec, data, true);
      } else {
        if (!c.claim()) return attempt::lost;
        c.slot().set_exception(system_error(req.who(), error_pending_));
        error_pending_ = 0;
        c.publish();
        return attempt::done;
      }
    }
    if (take) {
      if (!c.claim()) return attempt::lost;
      const std::size_t skip = std::min(spec.skip, data.size());
      req.deliver(c.slot(), read_outcome{take->eof, data.substr(skip, take->bytes)});
      if (take->consume != 0) {
        buf.consume(take->consume);
        consumed_locked(take->consume);
      }
      if (take->consume_eof) eof_pending_ = false;
      if (spec.peek && !take->eof) examined_locked(skip + take->bytes);
      c.publish();
      return attempt::done;
    }
    if (spec.what == read_spec::op::exact || spec.what == read_spec::op::line || spec.peek) {
      examined_locked(data.size());
    }
    if (!may_fill || eof_pending_ || error_pending_ != 0) return attempt::not_ready;
    if (spec.what == read_spec::op::avail && !spec.peek && spec.want >= kDirectReadMin &&
        req.dst() != nullptr) {
      switch (read_direct(req, c, fresh)) {
        case direct::done:
          return attempt::done;
        case direct::lost:
          return attempt::lost;
        case direct::again:
          may_fill = false;
          return attempt::not_ready;
        case direct::rescan:
          continue;
        case direct::unsupported:
          break;
      }
    }
    int error = 0;
    switch (fill_locked(error, fresh)) {
      case fill_status::progress:
        break;
      case fill_status::eof:
        eof_pending_ = true;
        break;
      case fill_status::error:
        error_pending_ = error;
        break;
      case fill_status::would_block:
        // The reader is about to park on an empty buffer: it holds no
        // storage while it waits (idle connections, issue 12).
        buf.release_if_empty();
        may_fill = false;
        return attempt::not_ready;
    }
  }
}

// An avail read into its own destination, with the buffer empty: claims
// first, since the read consumes; gives the claim back when nothing came.
input_core::direct input_core::read_direct(const read_request& req, commit_target& c,
                                           bool fresh) {
  if (!c.claim()) return direct::lost;
  fill_status st;
  std::size_t n = 0;
  int error = 0;
  if (read_direct_locked(std::span<char>(req.dst(), req.spec().want), st, n, error, fresh)) {
    switch (st) {
      case fill_status::progress:
        req.deliver(c.slot(), read_outcome{false, std::string_view(req.dst(), n), true});
        c.publish();
        return direct::done;
      case fill_status::eof:
        c.unclaim();
        eof_pending_ = true;
        return direct::rescan;
      case fill_status::error:
        c.unclaim();
        error_pending_ = error;
        return direct::rescan;
      case fill_status::would_block:
        c.unclaim();
        return direct::again;
    }
  }
  c.unclaim();
  return direct::unsupported;
}

void input_core::serve_locked() {
  bool may_fill = true;
  waiter* w = readers_.front();
  while (w != nullptr) {
    waiter* next = w->next;
    waiter_commit c(*w, readers_);
    (void)attempt_locked(*static_cast<const read_request*>(w->data), c, may_fill, false);
    w = next;
  }
}

void input_core::park_locked(waiter& w, const read_request& req) {
  w.data = const_cast<read_request*>(&req);
  readers_.push_back(&w);
}

bool input_core::close() {
  {
    lock l(*this);
    if (closed_) return false;
    closed_ = true;
    buffer().clear();
    close_source_locked();
    serve_locked();
  }
  closed_signal_.post();
  after_close();
  return true;
}

bool input_core::closed() const {
  std::lock_guard<std::mutex> g(mu_);
  return closed_;
}

evt<void> input_core::closed_evt() const { return closed_signal_.peek_evt(); }

}  // namespace rkt::internal
