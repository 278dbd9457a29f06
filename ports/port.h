// Racket-style ports: rkt::input_port and rkt::output_port are
// reference-counted handles over one port implementation interface, so fd
// ports (fd_port.h), pipes (pipe.h) and byte-string ports (bytes_port.h) are
// siblings. Every port is also an event, and the port events below commit
// their read or write atomically: an event that is not chosen in a sync
// consumes (or writes) nothing.
//
//   auto [in, out] = rkt::make_pipe();
//   out.write_bytes("hello\nworld");
//   out.close();
//   rkt::or_eof<std::string> line = in.read_line();          // "hello"
//   auto r = rkt::sync(rkt::read_line_evt(in), rkt::wrap_evt(alarm, ...));
//
// EOF is a distinct result: an or_eof<T> is empty (== rkt::eof) at EOF.
// Handles may be shared between green threads on any OS threads; each
// operation is atomic with respect to the others on the same port. Dropping
// the last handle of a port closes it (an output port is flushed first, as
// close() does, except for fd ports dropped without a close, which try one
// flush without waiting).
//
// Errors: an operation on a closed port raises exn_fail "<who>: input port
// is closed" (or "output port"), naming the port on the next line, as
// Racket does; as in Racket too, a read of zero bytes and write_bytes("")
// return at once instead. A system-call failure raises exn_fail_filesystem
// (files, pipes) or exn_fail_network (sockets) carrying errno. A thread
// parked in a read or write method of a port that another thread closes
// wakes with that error.
//
// Closed ports as events, as in Racket: the read events (read_bytes_evt,
// peek_bytes_evt, read_bytes_avail_evt, read_line_evt, eof_evt) are never
// ready on a closed port, also when the port closes while a sync waits on
// one, so a choice that holds one waits for its other events; a read of
// zero bytes is ready with "" (or 0). The port itself and port_closed_evt
// are ready; write_bytes_avail_evt raises the closed-port error.
//
// Semantics: the Racket 8.7 reference, chapter 13 (Input and Output).
#ifndef RKT_PORTS_PORT_H_
#define RKT_PORTS_PORT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "evt/evt.h"

namespace rkt {

// A read result that may be EOF instead: empty at EOF.
template <class T>
using or_eof = std::optional<T>;
// The EOF value: `if (r == rkt::eof)`.
inline constexpr std::nullopt_t eof = std::nullopt;

// Racket's read-line modes. (`return_` is Racket's 'return: `return` is a
// C++ keyword.)
enum class line_mode {
  linefeed,         // \n
  return_,          // \r
  return_linefeed,  // \r\n only; a lone \r or \n stays in the line
  any,              // \n, \r, or \r\n as one separator
  any_one,          // \n or \r, each on its own
};

// Output buffering (Racket's file-stream-buffer-mode). Input ports accept
// none and block only.
enum class buffer_mode { none, line, block };

namespace internal {
class input_core;
class output_core;
}  // namespace internal

class input_port {
 public:
  // As an event: ready when a byte or EOF is available (or the port is
  // closed); the result is the port, and nothing is consumed.
  using result_type = input_port;
  operator evt<input_port>() const;  // NOLINT: ports are events

  // Reads one byte; blocks until there is one or EOF.
  or_eof<uint8_t> read_byte() const;
  // The byte after `skip` bytes, left in the port.
  or_eof<uint8_t> peek_byte(std::size_t skip = 0) const;
  // Reads `n` bytes, blocking until it has them; fewer only when EOF comes
  // first (the EOF is then left for the next read); EOF when no byte came
  // before it. n == 0 gives "" at once.
  or_eof<std::string> read_bytes(std::size_t n) const;
  // read_bytes into `buf`; returns how many bytes were read (Racket's
  // read-bytes!).
  or_eof<std::size_t> read_bytes_into(std::span<char> buf) const;
  // Like read_bytes, but the bytes stay in the port.
  or_eof<std::string> peek_bytes(std::size_t n, std::size_t skip = 0) const;
  // Reads what is available, at least one byte: blocks only while nothing
  // is (Racket's read-bytes-avail!). An empty `buf` returns 0 at once.
  or_eof<std::size_t> read_bytes_avail(std::span<char> buf) const;
  // Never blocks: 0 when nothing is available (Racket's read-bytes-avail!*).
  or_eof<std::size_t> read_bytes_avail_star(std::span<char> buf) const;
  // Like read_bytes_avail, after `skip` bytes, leaving the bytes in the port.
  or_eof<std::size_t> peek_bytes_avail(std::span<char> buf, std::size_t skip = 0) const;
  or_eof<std::size_t> peek_bytes_avail_star(std::span<char> buf, std::size_t skip = 0) const;
  // Reads up to and through the next separator of `mode`, which is not part
  // of the result; at EOF, the bytes before it; EOF when there were none.
  or_eof<std::string> read_line(line_mode mode = line_mode::linefeed) const;
  // True when a read of one byte would not block (Racket's byte-ready?).
  bool byte_ready() const;

  // Closes the port; idempotent. Readers parked on it wake with an error.
  void close() const;
  bool closed() const;
  const std::string& name() const;

  // The buffer mode, or nullopt for ports without a buffer (pipes, byte
  // strings). Setting it on those raises exn_fail_contract; line is not an
  // input mode.
  std::optional<buffer_mode> get_buffer_mode() const;
  void set_buffer_mode(buffer_mode mode) const;

  bool operator==(const input_port& o) const { return core_ == o.core_; }

  explicit input_port(std::shared_ptr<internal::input_core> core);
  const std::shared_ptr<internal::input_core>& core() const { return core_; }

 private:
  std::shared_ptr<internal::input_core> core_;
};

class output_port {
 public:
  // As an event: ready when a write of at least one byte would not block
  // (buffered bytes flushed first), or the port is closed; the result is
  // the port.
  using result_type = output_port;
  operator evt<output_port>() const;  // NOLINT: ports are events

  void write_byte(uint8_t b) const;
  // Writes all of `bytes`, buffered per the port's mode, parking while the
  // destination is full. Returns bytes.size().
  std::size_t write_bytes(std::string_view bytes) const;
  // Flushes, then writes as many bytes as can go without blocking, at least
  // one: blocks only while none can. An empty `bytes` just flushes and
  // returns 0.
  std::size_t write_bytes_avail(std::string_view bytes) const;
  // Never blocks: nullopt when buffered bytes could not all be flushed, 0
  // when they were but no more can go now (Racket's write-bytes-avail*).
  std::optional<std::size_t> write_bytes_avail_star(std::string_view bytes) const;
  // Writes out every buffered byte, parking as needed.
  void flush() const;

  // Flushes, then closes; idempotent. On an error during the flush the
  // buffered bytes are dropped, the port is closed anyway, and the error is
  // raised.
  void close() const;
  bool closed() const;
  const std::string& name() const;

  // The buffer mode (fd ports start in block), or nullopt for ports without
  // a buffer; setting it on those raises exn_fail_contract.
  std::optional<buffer_mode> get_buffer_mode() const;
  void set_buffer_mode(buffer_mode mode) const;

  bool operator==(const output_port& o) const { return core_ == o.core_; }

  explicit output_port(std::shared_ptr<internal::output_core> core);
  const std::shared_ptr<internal::output_core>& core() const { return core_; }

 private:
  std::shared_ptr<internal::output_core> core_;
};

// --- Port events (racket/port). Each sync of one of these is a distinct
// request; the bytes are consumed (or written) only if it is chosen, and
// they are always contiguous in the port's stream. A read error is raised
// by the sync that chooses the event. On a closed port the read events are
// never ready (see the top of this file).

// k bytes, fewer only before EOF, or EOF; k == 0 is ready with "".
evt<or_eof<std::string>> read_bytes_evt(std::size_t k, const input_port& in);
// Like read_bytes_evt, leaving the bytes in the port, after `skip` bytes.
evt<or_eof<std::string>> peek_bytes_evt(std::size_t k, std::size_t skip, const input_port& in);
// The bytes available into `buf` (at least one), or EOF; the result is the
// count. `buf` must stay valid until the event is chosen or the sync ends.
evt<or_eof<std::size_t>> read_bytes_avail_evt(std::span<char> buf, const input_port& in);
// A line as read_line reads it.
evt<or_eof<std::string>> read_line_evt(const input_port& in, line_mode mode = line_mode::linefeed);
// Ready when the next thing in the port is EOF; consumes it when chosen.
evt<void> eof_evt(const input_port& in);
// Flushes, then writes at least one byte of `bytes` (copied when the event
// is made) unbuffered; the result is the count written, 0 for an empty
// `bytes` once the buffer is flushed. Nothing is written unless chosen.
evt<std::size_t> write_bytes_avail_evt(std::string_view bytes, const output_port& out);
// Ready once the port is closed.
evt<void> port_closed_evt(const input_port& in);
evt<void> port_closed_evt(const output_port& out);

// Racket's file-stream-buffer-mode: the port's buffer mode, or nullopt for a
// port without one (pipes, byte strings); with a mode, sets it (input ports
// take none and block). Setting it on a port without a buffer, or line on an
// input port, raises exn_fail_contract; on a closed port, exn_fail. The
// same as get_buffer_mode / set_buffer_mode. (file_stream_port_p is in
// fd_port.h.)
std::optional<buffer_mode> file_stream_buffer_mode(const input_port& in);
void file_stream_buffer_mode(const input_port& in, buffer_mode mode);
std::optional<buffer_mode> file_stream_buffer_mode(const output_port& out);
void file_stream_buffer_mode(const output_port& out, buffer_mode mode);

}  // namespace rkt

#endif  // RKT_PORTS_PORT_H_
