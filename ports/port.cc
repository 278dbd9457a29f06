// The port handles: each method runs its request against the port at once
// and, when it must wait, syncs on a node on its own stack; and the port
// events, which are the same nodes made on the heap.
#include "ports/port.h"

#include <algorithm>

#include "evt/exn.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "ports/internal/port_nodes.h"

namespace rkt {

using internal::input_core;
using internal::output_core;
using internal::read_node;
using internal::read_spec;
using internal::write_node;
using internal::write_request;

namespace {

// Runs a read of result type R. With `block`, waits for it; without, returns
// nullopt when it cannot complete now.
template <class R>
std::optional<R> run_read(input_core& core, const read_spec& spec, const char* who,
                          char* dst, bool block) {
  read_node<R> node(nullptr, core, spec, who, dst);
  input_core::lock l(core);
  {
    direct_commit c;
    bool may_fill = true;
    // A blocking read may trust the source's readiness record: if it says
    // "drained", the read parks and the next report serves it. A
    // non-blocking one must ask (no report comes before it returns).
    if (core.attempt_locked(node, c, may_fill, /*fresh=*/!block) == input_core::attempt::done) {
      c.slot().rethrow_if_exception();
      return c.slot().take<R>();
    }
  }
  if (!block) return std::nullopt;
  // Parks from under the same lock: one attempt, no re-check.
  node.park_under(l);
  return internal::sync_on_stack<R>(node);
}

// The mode as Racket prints it in messages.
std::string mode_name(buffer_mode m) {
  switch (m) {
    case buffer_mode::none:
      return "'none";
    case buffer_mode::line:
      return "'line";
    case buffer_mode::block:
      return "'block";
  }
  return "?";
}

or_eof<std::size_t> read_avail(input_core& core, std::span<char> buf, std::size_t skip,
                               bool peek, bool block, const char* who) {
  const read_spec spec{
      .what = read_spec::op::avail, .peek = peek, .skip = skip, .want = buf.size()};
  std::optional<or_eof<std::size_t>> r =
      run_read<or_eof<std::size_t>>(core, spec, who, buf.data(), block);
  if (!r) return std::size_t{0};
  return *r;
}

}  // namespace

// --- input_port ---

input_port::input_port(std::shared_ptr<input_core> core) : core_(std::move(core)) {}

input_port::operator evt<input_port>() const {
  return evt<input_port>(make_node<read_node<input_port>>(
      core_, *core_, read_spec{.what = read_spec::op::ready}, "input-port-evt"));
}

or_eof<uint8_t> input_port::read_byte() const {
  char c;
  or_eof<std::size_t> n = read_avail(*core_, std::span<char>(&c, 1), 0, false, true, "read-byte");
  if (!n) return eof;
  return static_cast<uint8_t>(c);
}

or_eof<uint8_t> input_port::peek_byte(std::size_t skip) const {
  char c;
  or_eof<std::size_t> n = read_avail(*core_, std::span<char>(&c, 1), skip, true, true, "peek-byte");
  if (!n) return eof;
  return static_cast<uint8_t>(c);
}

or_eof<std::string> input_port::read_bytes(std::size_t n) const {
  return *run_read<or_eof<std::string>>(
      *core_, read_spec{.what = read_spec::op::exact, .want = n}, "read-bytes", nullptr, true);
}

or_eof<std::size_t> input_port::read_bytes_into(std::span<char> buf) const {
  return *run_read<or_eof<std::size_t>>(
      *core_, read_spec{.what = read_spec::op::exact, .want = buf.size()}, "read-bytes!",
      buf.data(), true);
}

or_eof<std::string> input_port::peek_bytes(std::size_t n, std::size_t skip) const {
  return *run_read<or_eof<std::string>>(
      *core_, read_spec{.what = read_spec::op::exact, .peek = true, .skip = skip, .want = n},
      "peek-bytes", nullptr, true);
}

or_eof<std::size_t> input_port::read_bytes_avail(std::span<char> buf) const {
  return read_avail(*core_, buf, 0, false, true, "read-bytes-avail!");
}

or_eof<std::size_t> input_port::read_bytes_avail_star(std::span<char> buf) const {
  return read_avail(*core_, buf, 0, false, false, "read-bytes-avail!*");
}

or_eof<std::size_t> input_port::peek_bytes_avail(std::span<char> buf, std::size_t skip) const {
  return read_avail(*core_, buf, skip, true, true, "peek-bytes-avail!");
}

or_eof<std::size_t> input_port::peek_bytes_avail_star(std::span<char> buf,
                                                      std::size_t skip) const {
  return read_avail(*core_, buf, skip, true, false, "peek-bytes-avail!*");
}

or_eof<std::string> input_port::read_line(line_mode mode) const {
  return *run_read<or_eof<std::string>>(
      *core_, read_spec{.what = read_spec::op::line, .mode = mode}, "read-line", nullptr, true);
}

bool input_port::byte_ready() const {
  char c;
  input_core::lock l(*core_);
  core_->raise_if_closed_locked("byte-ready?");
  read_node<or_eof<std::size_t>> node(nullptr, *core_,
                                      read_spec{.what = read_spec::op::ready}, "byte-ready?", &c);
  direct_commit commit;
  bool may_fill = true;
  return core_->attempt_locked(node, commit, may_fill) == input_core::attempt::done;
}

void input_port::close() const { core_->close(); }
bool input_port::closed() const { return core_->closed(); }
const std::string& input_port::name() const { return core_->name(); }

std::optional<buffer_mode> input_port::get_buffer_mode() const {
  input_core::lock l(*core_);
  core_->raise_if_closed_locked("file-stream-buffer-mode");
  return core_->buffer_mode_locked();
}

void input_port::set_buffer_mode(buffer_mode mode) const {
  input_core::lock l(*core_);
  core_->raise_if_closed_locked("file-stream-buffer-mode");
  if (mode == buffer_mode::line) {
    throw exn_fail_contract(
        "file-stream-buffer-mode: 'line buffering not supported for an input port\n  port: "
        "#<input-port:" + core_->name() + ">");
  }
  if (!core_->set_buffer_mode_locked(mode)) {
    throw exn_fail_contract("file-stream-buffer-mode: buffering not supported for input port\n"
                            "  mode: " + mode_name(mode) + "\n  input port: #<input-port:" +
                            core_->name() + ">");
  }
}

// --- output_port ---

namespace {

// Parks until the port's buffer is flushed and its sink has room (or the
// port is closed). Requires: `l` locked; it is unlocked while parked.
void wait_writable(output_core& core, output_core::lock& l, const char* who) {
  l.guard().unlock();
  write_node<std::size_t> node(nullptr, core, write_request::op::ready, who);
  node.skip_next_poll();
  internal::sync_on_stack<std::size_t>(node);
  l.guard().lock();
}

void raise_write_error(output_core& core, const char* who, int error) {
  std::rethrow_exception(core.system_error(who, error));
}

}  // namespace

output_port::output_port(std::shared_ptr<output_core> core) : core_(std::move(core)) {}

output_port::operator evt<output_port>() const {
  return evt<output_port>(
      make_node<write_node<output_port>>(core_, *core_, write_request::op::ready,
                                         "output-port-evt"));
}

void output_port::write_byte(uint8_t b) const {
  const char c = static_cast<char>(b);
  output_core::lock l(*core_);
  for (;;) {
    core_->raise_if_closed_locked("write-byte");
    int error = 0;
    if (core_->write_some_locked(std::string_view(&c, 1), error) == 1) return;
    if (error != 0) raise_write_error(*core_, "write-byte", error);
    wait_writable(*core_, l, "write-byte");
  }
}

std::size_t output_port::write_bytes(std::string_view bytes) const {
  if (bytes.empty()) return 0;  // even on a closed port, as in Racket
  output_core::lock l(*core_);
  std::string_view rest = bytes;
  for (;;) {
    core_->raise_if_closed_locked("write-bytes");
    if (rest.empty()) return bytes.size();
    int error = 0;
    std::size_t n = core_->write_some_locked(rest, error);
    if (error != 0) raise_write_error(*core_, "write-bytes", error);
    rest.remove_prefix(n);
    if (rest.empty()) return bytes.size();
    if (n == 0) wait_writable(*core_, l, "write-bytes");
  }
}

std::size_t output_port::write_bytes_avail(std::string_view bytes) const {
  write_node<std::size_t> node(nullptr, *core_, write_request::op::avail, "write-bytes-avail",
                               {}, bytes);
  {
    output_core::lock l(*core_);
    direct_commit c;
    if (core_->attempt_locked(node, c) == output_core::attempt::done) {
      c.slot().rethrow_if_exception();
      return c.slot().take<std::size_t>();
    }
  }
  node.skip_next_poll();
  return internal::sync_on_stack<std::size_t>(node);
}

std::optional<std::size_t> output_port::write_bytes_avail_star(std::string_view bytes) const {
  output_core::lock l(*core_);
  core_->raise_if_closed_locked("write-bytes-avail*");
  int error = 0;
  if (!core_->flush_some_locked(error)) {
    if (error != 0) raise_write_error(*core_, "write-bytes-avail*", error);
    return std::nullopt;
  }
  if (bytes.empty()) return 0;
  output_core::sink_result r = core_->sink_write_locked(bytes, true);
  if (r.error != 0) raise_write_error(*core_, "write-bytes-avail*", r.error);
  return r.n;
}

void output_port::flush() const {
  output_core::lock l(*core_);
  for (;;) {
    core_->raise_if_closed_locked("flush-output");
    int error = 0;
    if (core_->flush_some_locked(error)) return;
    if (error != 0) raise_write_error(*core_, "flush-output", error);
    wait_writable(*core_, l, "flush-output");
  }
}

void output_port::close() const {
  // A thread being killed does not wait for the sink (a peer that never
  // reads would keep kill() from returning): it closes as a custodian
  // shutdown does, dropping what one attempt could not flush, and raises
  // nothing (it may be running a destructor).
  if (current_thread_killed()) {
    core_->close_without_waiting();
    return;
  }
  std::exception_ptr flush_error;
  {
    output_core::lock l(*core_);
    while (!core_->closed_locked()) {
      int error = 0;
      if (core_->flush_some_locked(error)) break;
      if (error != 0) {
        flush_error = core_->system_error("close-output-port", error);
        break;
      }
      try {
        wait_writable(*core_, l, "close-output-port");
      } catch (...) {
        // Killed while waiting (`l` is released): the port still closes,
        // without the bytes it could not flush.
        core_->close_now();
        throw;
      }
    }
  }
  core_->close_now();
  if (flush_error) std::rethrow_exception(flush_error);
}

bool output_port::closed() const { return core_->closed(); }
const std::string& output_port::name() const { return core_->name(); }

std::optional<buffer_mode> output_port::get_buffer_mode() const {
  output_core::lock l(*core_);
  core_->raise_if_closed_locked("file-stream-buffer-mode");
  return core_->buffer_mode_locked();
}

void output_port::set_buffer_mode(buffer_mode mode) const {
  output_core::lock l(*core_);
  core_->raise_if_closed_locked("file-stream-buffer-mode");
  if (!core_->set_buffer_mode_locked(mode)) {
    throw exn_fail_contract("file-stream-buffer-mode: buffering not supported for output port\n"
                            "  mode: " + mode_name(mode) + "\n  output port: #<output-port:" +
                            core_->name() + ">");
  }
  // Racket flushes when buffering is turned down.
  int error = 0;
  if (mode != buffer_mode::block && !core_->flush_some_locked(error) && error != 0) {
    raise_write_error(*core_, "file-stream-buffer-mode", error);
  }
}

std::optional<buffer_mode> file_stream_buffer_mode(const input_port& in) {
  return in.get_buffer_mode();
}
void file_stream_buffer_mode(const input_port& in, buffer_mode mode) { in.set_buffer_mode(mode); }
std::optional<buffer_mode> file_stream_buffer_mode(const output_port& out) {
  return out.get_buffer_mode();
}
void file_stream_buffer_mode(const output_port& out, buffer_mode mode) {
  out.set_buffer_mode(mode);
}

// --- Port events ---

evt<or_eof<std::string>> read_bytes_evt(std::size_t k, const input_port& in) {
  return evt<or_eof<std::string>>(make_node<read_node<or_eof<std::string>>>(
      in.core(), *in.core(), read_spec{.what = read_spec::op::exact, .want = k},
      "read-bytes-evt"));
}

evt<or_eof<std::string>> peek_bytes_evt(std::size_t k, std::size_t skip, const input_port& in) {
  return evt<or_eof<std::string>>(make_node<read_node<or_eof<std::string>>>(
      in.core(), *in.core(),
      read_spec{.what = read_spec::op::exact, .peek = true, .skip = skip, .want = k},
      "peek-bytes-evt"));
}

evt<or_eof<std::size_t>> read_bytes_avail_evt(std::span<char> buf, const input_port& in) {
  return evt<or_eof<std::size_t>>(make_node<read_node<or_eof<std::size_t>>>(
      in.core(), *in.core(), read_spec{.what = read_spec::op::avail, .want = buf.size()},
      "read-bytes-avail!-evt", buf.data()));
}

evt<or_eof<std::string>> read_line_evt(const input_port& in, line_mode mode) {
  return evt<or_eof<std::string>>(make_node<read_node<or_eof<std::string>>>(
      in.core(), *in.core(), read_spec{.what = read_spec::op::line, .mode = mode},
      "read-line-evt"));
}

evt<void> eof_evt(const input_port& in) {
  return evt<void>(make_node<read_node<void>>(in.core(), *in.core(),
                                              read_spec{.what = read_spec::op::eof}, "eof-evt"));
}

evt<std::size_t> write_bytes_avail_evt(std::string_view bytes, const output_port& out) {
  return evt<std::size_t>(make_node<write_node<std::size_t>>(
      out.core(), *out.core(), write_request::op::avail, "write-bytes-avail-evt",
      std::string(bytes)));
}

evt<void> port_closed_evt(const input_port& in) { return in.core()->closed_evt(); }
evt<void> port_closed_evt(const output_port& out) { return out.core()->closed_evt(); }

}  // namespace rkt
