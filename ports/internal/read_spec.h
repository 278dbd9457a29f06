// read_spec: what one read wants from an input port, and scan(), which
// decides from the buffered bytes alone whether it can complete now. Every
// read, peek, line read and input event of every kind of port goes through
// scan(), so their semantics (Racket's) live in one place.
#ifndef RKT_PORTS_INTERNAL_READ_SPEC_H_
#define RKT_PORTS_INTERNAL_READ_SPEC_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "ports/port.h"

namespace rkt::internal {

struct read_spec {
  enum class op : uint8_t {
    avail,  // at least one byte (up to `want`), or EOF
    exact,  // `want` bytes, fewer only before EOF, or EOF
    line,   // through the next separator of `mode`, or to EOF
    eof,    // EOF next
    ready,  // a byte or EOF available; consumes nothing
  };
  op what = op::avail;
  bool peek = false;
  std::size_t skip = 0;  // peeks only
  std::size_t want = 0;
  line_mode mode = line_mode::linefeed;
};

// How a read completes: its result is EOF, or `bytes` bytes starting at
// `skip`; it drops `consume` bytes (result plus separator) and, with
// `consume_eof`, the pending EOF.
struct read_take {
  bool eof = false;
  std::size_t bytes = 0;
  std::size_t consume = 0;
  bool consume_eof = false;
};

// Whether `spec` completes with `data` buffered; `at_end` says that EOF
// follows `data`. nullopt: it needs more bytes.
std::optional<read_take> scan(const read_spec& spec, std::string_view data, bool at_end);

}  // namespace rkt::internal

#endif  // RKT_PORTS_INTERNAL_READ_SPEC_H_
