// output_core: buffering, writes against the sink, parked writes, close.
#include "ports/internal/output_core.h"

#include "evt/exn.h"

namespace rkt::internal {

output_core::output_core(std::string name, std::mutex& mu, std::optional<buffer_mode> mode)
    : mu_(mu),
      name_(std::move(name)),
      mode_(mode) {}

output_core::~output_core() = default;

std::exception_ptr output_core::system_error(const char* who, int error) const {
  return std::make_exception_ptr(exn_fail_filesystem(
      errno_message(std::string(who) + ": error writing to stream port\n  port: " + name_, error),
      error));
}

std::exception_ptr output_core::closed_error(const char* who) const {
  return std::make_exception_ptr(exn_fail(std::string(who) +
                                          ": output port is closed\n  output port: #<output-port:" +
                                          name_ + ">"));
}

void output_core::raise_if_closed_locked(const char* who) const {
  if (closed_) std::rethrow_exception(closed_error(who));
}

bool output_core::set_buffer_mode_locked(buffer_mode m) {
  if (!mode_) return false;
  mode_ = m;
  return true;
}

bool output_core::flush_some_locked(int& error, bool fresh) {
  while (!buffer_.empty()) {
    sink_result r = sink_write_locked(buffer_.view(), fresh);
    if (r.error != 0) {
      buffer_.clear();
      error = r.error;
      return false;
    }
    if (r.n == 0) return false;
    buffer_.consume(r.n);
  }
  // All written: an idle port keeps no buffer (issue 12).
  buffer_.release_if_empty();
  return true;
}

std::size_t output_core::write_some_locked(std::string_view bytes, int& error) {
  const buffer_mode mode = mode_.value_or(buffer_mode::none);
  if (mode != buffer_mode::none) {
    if (buffer_.size() + bytes.size() < kBufferSize) {
      // Fits: buffer it; line mode writes a completed line out at once.
      buffer_.append(bytes);
      if (mode == buffer_mode::line && bytes.find('\n') != std::string_view::npos) {
        (void)flush_some_locked(error);
      }
      return bytes.size();
    }
    if (!flush_some_locked(error)) return 0;
    if (bytes.size() < kBufferSize) {
      buffer_.append(bytes);
      return bytes.size();
    }
  } else if (!flush_some_locked(error)) {
    return 0;
  }
  // Large writes skip the buffer.
  sink_result r = sink_write_locked(bytes, true);
  error = r.error;
  return r.n;
}

output_core::attempt output_core::attempt_locked(const write_request& req, commit_target& c,
                                                 bool fresh) {
  if (closed_) {
    if (!c.claim()) return attempt::lost;
    if (req.what() == write_request::op::ready) {
      req.deliver(c.slot(), 0);
    } else {
      c.slot().set_exception(closed_error(req.who()));
    }
    c.publish();
    return attempt::done;
  }
  int error = 0;
  bool flushed = flush_some_locked(error, fresh);
  if (!flushed && error == 0) return attempt::not_ready;
  const std::string_view data = req.data();
  if (error == 0 && !data.empty()) {
    if (!sink_ready_locked(fresh)) return attempt::not_ready;
    if (!c.claim()) return attempt::lost;
    sink_result r = sink_write_locked(data, fresh);
    if (r.error == 0 && r.n == 0) {
      c.unclaim();
      return attempt::not_ready;
    }
    if (r.error != 0) {
      c.slot().set_exception(system_error(req.who(), r.error));
    } else {
      req.deliver(c.slot(), r.n);
    }
    c.publish();
    return attempt::done;
  }
  if (error == 0 && req.what() == write_request::op::ready && !sink_ready_locked(fresh)) {
    return attempt::not_ready;
  }
  if (!c.claim()) return attempt::lost;
  if (error != 0) {
    c.slot().set_exception(system_error(req.who(), error));
  } else {
    req.deliver(c.slot(), 0);
  }
  c.publish();
  return attempt::done;
}

void output_core::serve_locked() {
  // In FIFO order; the first write that cannot go means the sink is full
  // (or the buffer cannot be flushed), so the rest wait too.
  while (waiter* w = writers_.front()) {
    waiter_commit c(*w, writers_);
    if (attempt_locked(*static_cast<const write_request*>(w->data), c, false) ==
        attempt::not_ready) {
      return;
    }
  }
}

void output_core::park_locked(waiter& w, const write_request& req) {
  w.data = const_cast<write_request*>(&req);
  writers_.push_back(&w);
}

bool output_core::close_now() {
  {
    lock l(*this);
    if (closed_) return false;
    closed_ = true;
    buffer_.clear();
    close_sink_locked();
    serve_locked();
  }
  closed_signal_.post();
  after_close();
  return true;
}

void output_core::close_without_waiting() noexcept {
  {
    lock l(*this);
    int error = 0;
    if (!closed_) (void)flush_some_locked(error);
  }
  close_now();
}

bool output_core::closed() const {
  std::lock_guard<std::mutex> g(mu_);
  return closed_;
}

evt<void> output_core::closed_evt() const { return closed_signal_.peek_evt(); }

}  // namespace rkt::internal
