// input_core: what every input port shares, whatever its source. A source
// (an fd, a pipe, a byte string) supplies bytes into a buffer without
// blocking; the core runs every read against that buffer with scan(),
// commits it through a commit_target, and keeps the reads that cannot
// complete yet (parked syncs' waiters) until the source has more.
//
// Locking: mu() guards everything here and the source's state; a pipe's
// two ends share one mutex. Nothing blocks or parks under it. It is taken
// before any sync claim (evt_impl.h's lock order). Every locked region ends
// with settle_locked(), through which a pipe serves the other end of itself.
//
// Invariants (mu held):
//   - readers_ holds the waiters of parked reads that could not complete at
//     the last attempt; any change to the buffer, eof_pending_,
//     error_pending_ or closed_ is followed by serve_locked().
//   - A read consumes bytes only after its claim succeeded.
//   - Once closed_, readers_ holds only port events, which wait there until
//     their sync commits elsewhere (they are never ready).
#ifndef RKT_PORTS_INTERNAL_INPUT_CORE_H_
#define RKT_PORTS_INTERNAL_INPUT_CORE_H_

#include <cstddef>
#include <exception>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "evt/evt.h"
#include "evt/semaphore.h"
#include "ports/internal/byte_buffer.h"
#include "ports/internal/read_spec.h"
#include "ports/port.h"

namespace rkt::internal {

// The bytes a read completed with (already past its skip), or EOF. With
// `in_place`, the source has already put them at the request's dst().
struct read_outcome {
  bool eof;
  std::string_view bytes;
  bool in_place = false;
};

// A read that may park: the event node behind it. `who` names it in errors.
// A port event (read_bytes_evt, eof_evt, ...: `port_event`) is never ready
// on a closed port, as in Racket, so that a sync holding it keeps waiting
// for its other events; a method's read raises the closed-port error
// instead. Reads of zero bytes complete on a closed port too (Racket).
class read_request {
 public:
  read_request(read_spec spec, const char* who, bool port_event)
      : spec_(spec), who_(who), port_event_(port_event) {}
  const read_spec& spec() const { return spec_; }
  const char* who() const { return who_; }
  bool port_event() const { return port_event_; }
  // Stores the typed result of `o` into `slot`.
  virtual void deliver(result_slot& slot, const read_outcome& o) const = 0;
  // Where an avail read copies its bytes, if it has such a place (sources
  // may then read straight into it); nullptr otherwise.
  virtual char* dst() const { return nullptr; }

 protected:
  ~read_request() = default;

 private:
  const read_spec spec_;
  const char* const who_;
  const bool port_event_;
};

class input_core {
 public:
  enum class fill_status { progress, would_block, eof, error };
  enum class attempt { done, lost, not_ready };

  input_core(std::string name, std::mutex& mu);
  input_core(const input_core&) = delete;
  input_core& operator=(const input_core&) = delete;
  virtual ~input_core();

  std::mutex& mu() const { return mu_; }
  const std::string& name() const { return name_; }

  // --- The source; each requires mu. ---
  virtual byte_buffer& buffer() = 0;
  // Adds bytes to buffer() without blocking; on error, sets `error`.
  // Without `fresh`, a source may answer would_block from what it already
  // knows (an fd with no readiness report since its last EAGAIN), which is
  // right only for a read about to park: the report will serve it.
  virtual fill_status fill_locked(int& error, bool fresh) = 0;
  // Reads straight into `dst`, bypassing the empty buffer (fd ports):
  // returns false when the source does not, else the status and, on
  // progress, `n`.
  virtual bool read_direct_locked(std::span<char> /*dst*/, fill_status& /*st*/,
                                  std::size_t& /*n*/, int& /*error*/, bool /*fresh*/) {
    return false;
  }
  // Avail reads of at least this many bytes into an empty buffer go
  // straight to their destination.
  static constexpr std::size_t kDirectReadMin = 1024;
  // A read dropped n bytes from the buffer's head.
  virtual void consumed_locked(std::size_t /*n*/) {}
  // A read that is still waiting has looked at the first n buffered bytes
  // (a pipe counts them as peeked, which makes room for its writer).
  virtual void examined_locked(std::size_t /*n*/) {}
  // The port is being closed; release the source's side.
  virtual void close_source_locked() {}
  // Serve whatever else this region's changes let proceed (pipes).
  virtual void settle_locked() {}
  // Runs once, after the close that closed the port, with mu released.
  virtual void after_close() {}
  virtual std::exception_ptr system_error(const char* who, int error) const;
  virtual std::optional<buffer_mode> buffer_mode_locked() const { return std::nullopt; }
  // False when the port has no buffer mode.
  virtual bool set_buffer_mode_locked(buffer_mode /*m*/) { return false; }

  // Takes mu and serves the parked requests (a readiness report came).
  void serve() {
    lock l(*this);
    serve_locked();
  }

  // --- Generic; each requires mu. ---
  // Runs `req` now. `may_fill` is cleared when the source ran dry, so that
  // one serve pass asks the source once; `fresh` as for fill_locked.
  attempt attempt_locked(const read_request& req, commit_target& c, bool& may_fill,
                         bool fresh = true);
  // An avail read straight into req.dst() (the buffer is empty).
  enum class direct { done, lost, again, rescan, unsupported };
  direct read_direct(const read_request& req, commit_target& c, bool fresh);
  // Completes the parked reads that can complete now.
  void serve_locked();
  void park_locked(waiter& w, const read_request& req);
  void unpark_locked(waiter& w) { readers_.remove(&w); }
  bool closed_locked() const { return closed_; }
  std::exception_ptr closed_error(const char* who) const;
  void raise_if_closed_locked(const char* who) const;

  // Closes the port (idempotent): parked reads fail, port_closed_evt fires.
  // Takes mu; returns whether this call closed it.
  bool close();
  bool closed() const;
  evt<void> closed_evt() const;

  // Takes mu for a region and settles before releasing it.
  class lock {
   public:
    explicit lock(input_core& c) : c_(c), l_(c.mu()) {}
    ~lock() {
      if (l_.owns_lock()) c_.settle_locked();
    }
    // Settles and unlocks before the scope ends: a read that failed under
    // this lock parked under it too (read_node::park_under).
    void release() {
      c_.settle_locked();
      l_.unlock();
    }
    lock(const lock&) = delete;
    lock& operator=(const lock&) = delete;
    std::unique_lock<std::mutex>& guard() { return l_; }

   private:
    input_core& c_;
    std::unique_lock<std::mutex> l_;
  };

 protected:
  bool eof_pending_ = false;  // the source reported EOF after the buffer
  int error_pending_ = 0;     // the source failed after the buffer

 private:
  std::mutex& mu_;
  const std::string name_;
  bool closed_ = false;
  waiter_list readers_;
  const semaphore closed_signal_;  // posted once, by the close
};

}  // namespace rkt::internal

#endif  // RKT_PORTS_INTERNAL_INPUT_CORE_H_
