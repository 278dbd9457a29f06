// output_core: what every output port shares, whatever its sink. A sink (an
// fd, a pipe, a byte string) accepts bytes without blocking, or says it is
// full; the core keeps the port's buffer (fd ports only) and its mode,
// runs every write against the sink, and keeps the writes that cannot go
// yet (parked syncs' waiters) until the sink has room.
//
// Locking as for input_core (input_core.h): mu() guards everything, a
// pipe's ends share it, nothing parks under it, every locked region ends
// with settle_locked().
//
// Invariants (mu held):
//   - A write event writes only after its claim succeeded; if the sink turns
//     out to be full it gives the claim back having written nothing.
//   - Buffered bytes are always written out before newer bytes.
#ifndef RKT_PORTS_INTERNAL_OUTPUT_CORE_H_
#define RKT_PORTS_INTERNAL_OUTPUT_CORE_H_

#include <cstddef>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "evt/evt.h"
#include "evt/semaphore.h"
#include "ports/internal/byte_buffer.h"
#include "ports/port.h"

namespace rkt::internal {

// A write that may park: the event node behind it.
class write_request {
 public:
  enum class op : uint8_t {
    avail,  // flush, then write at least one byte of data() unbuffered
    ready,  // flush; then ready when the sink has room
  };
  write_request(op what, const char* who) : what_(what), who_(who) {}
  op what() const { return what_; }
  const char* who() const { return who_; }
  virtual std::string_view data() const { return {}; }
  // Stores the typed result (the count written, for avail) into `slot`.
  virtual void deliver(result_slot& slot, std::size_t written) const = 0;

 protected:
  ~write_request() = default;

 private:
  const op what_;
  const char* const who_;
};

class output_core {
 public:
  enum class attempt { done, lost, not_ready };
  // What a sink did with a write: took n bytes (n == 0 and error == 0:
  // full), or failed with errno `error`.
  struct sink_result {
    std::size_t n = 0;
    int error = 0;
  };
  static constexpr std::size_t kBufferSize = 4096;

  output_core(std::string name, std::mutex& mu, std::optional<buffer_mode> mode);
  output_core(const output_core&) = delete;
  output_core& operator=(const output_core&) = delete;
  virtual ~output_core();

  std::mutex& mu() const { return mu_; }
  const std::string& name() const { return name_; }

  // --- The sink; each requires mu. ---
  // `fresh` as for input_core::fill_locked: without it, an fd sink may
  // answer "full" from its last EAGAIN when no report has come since.
  virtual sink_result sink_write_locked(std::string_view bytes, bool fresh) = 0;
  // Whether a write of one byte might be taken now.
  virtual bool sink_ready_locked(bool fresh) const = 0;
  // The port is being closed (after its flush, if any).
  virtual void close_sink_locked() {}
  virtual void settle_locked() {}
  // Runs once, after the close that closed the port, with mu released.
  virtual void after_close() {}
  virtual std::exception_ptr system_error(const char* who, int error) const;

  // Takes mu and serves the parked requests (a readiness report came).
  void serve() {
    lock l(*this);
    serve_locked();
  }

  // --- Generic; each requires mu. ---
  attempt attempt_locked(const write_request& req, commit_target& c, bool fresh = true);
  void serve_locked();
  void park_locked(waiter& w, const write_request& req);
  void unpark_locked(waiter& w) { writers_.remove(&w); }
  bool closed_locked() const { return closed_; }
  std::exception_ptr closed_error(const char* who) const;
  void raise_if_closed_locked(const char* who) const;
  std::optional<buffer_mode> buffer_mode_locked() const { return mode_; }
  // False when the port has no buffer.
  bool set_buffer_mode_locked(buffer_mode m);

  // Writes the buffer out without blocking: true once it is empty. On a
  // sink error the buffer is dropped (Racket) and the errno returned in
  // `error`.
  bool flush_some_locked(int& error, bool fresh = true);
  // Buffers or writes `bytes` per the mode without blocking; returns how
  // many were taken. Used by write_bytes, which parks in between.
  std::size_t write_some_locked(std::string_view bytes, int& error);

  // Closes the port without flushing (idempotent): parked writes fail,
  // port_closed_evt fires. Takes mu; returns whether this call closed it.
  bool close_now();
  // One flush attempt that does not wait, then close_now(): what a custodian
  // shutdown, a dropped fd port and a close in a dying thread do, so that
  // none of them waits for a peer that does not read. A flush error is
  // dropped with the bytes. Takes mu.
  void close_without_waiting() noexcept;
  bool closed() const;
  evt<void> closed_evt() const;

  class lock {
   public:
    explicit lock(output_core& c) : c_(c), l_(c.mu()) {}
    // Settles only if the region still holds mu: an exception raised while
    // a write was parked (a kill) leaves it released.
    ~lock() {
      if (l_.owns_lock()) c_.settle_locked();
    }
    lock(const lock&) = delete;
    lock& operator=(const lock&) = delete;
    std::unique_lock<std::mutex>& guard() { return l_; }

   private:
    output_core& c_;
    std::unique_lock<std::mutex> l_;
  };

 private:
  std::mutex& mu_;
  const std::string name_;
  bool closed_ = false;
  std::optional<buffer_mode> mode_;  // nullopt: no buffer
  byte_buffer buffer_;
  waiter_list writers_;
  const semaphore closed_signal_;  // posted once, by the close
};

}  // namespace rkt::internal

#endif  // RKT_PORTS_INTERNAL_OUTPUT_CORE_H_
