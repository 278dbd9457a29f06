// Byte-string ports (Racket's open-input-bytes, open-output-bytes,
// get-output-bytes): ports over memory, not managed by custodians.
#ifndef RKT_PORTS_BYTES_PORT_H_
#define RKT_PORTS_BYTES_PORT_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "ports/port.h"

namespace rkt {

// An input port that reads a copy of `bytes`, then EOF.
input_port open_input_bytes(std::string_view bytes, std::string name = "string");

// An output port that accumulates what is written to it; it never blocks.
output_port open_output_bytes(std::string name = "string");

// The bytes accumulated in `out` (from open_output_bytes), from `start` to
// `end` (default: all). With `reset`, the port is emptied afterwards. Works
// on a closed port too. Raises exn_fail_contract for another kind of port
// or a range outside the accumulated bytes.
std::string get_output_bytes(const output_port& out, bool reset = false, std::size_t start = 0,
                             std::optional<std::size_t> end = std::nullopt);

}  // namespace rkt

#endif  // RKT_PORTS_BYTES_PORT_H_
