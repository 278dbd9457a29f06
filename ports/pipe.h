// In-memory pipes (Racket's make-pipe): what is written to the output end
// is read from the input end, with no OS resource behind them, so pipes are
// not managed by custodians.
#ifndef RKT_PORTS_PIPE_H_
#define RKT_PORTS_PIPE_H_

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "ports/port.h"

namespace rkt {

// A new pipe. With a `limit`, the pipe holds at most that many unread bytes
// that have not been peeked (peeking extends the room until the peeked bytes
// are read), and writes park until a read makes room. Bytes written after
// the input end is closed are dropped. Closing the output end gives the
// reader EOF after the bytes already in the pipe.
std::pair<input_port, output_port> make_pipe(std::optional<std::size_t> limit = std::nullopt,
                                             std::string input_name = "pipe",
                                             std::string output_name = "pipe");

// Bytes written to the pipe and not yet read (peeked bytes count). Raises
// exn_fail_contract for a port that is not a pipe end.
std::size_t pipe_content_length(const input_port& p);
std::size_t pipe_content_length(const output_port& p);

}  // namespace rkt

#endif  // RKT_PORTS_PIPE_H_
