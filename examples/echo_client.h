// The load of the README's main job: connections doing 64-byte ping-pong,
// with the round trips counted and their latencies kept.
#ifndef RKT_EXAMPLES_ECHO_CLIENT_H_
#define RKT_EXAMPLES_ECHO_CLIENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "socket/unix_socket.h"

namespace rkt::examples {

struct echo_load_result {
  int connections = 0;
  uint64_t round_trips = 0;
  absl::Duration elapsed;
  std::vector<int64_t> latencies_ns;  // one per round trip, unsorted
  std::string error;                  // the first connection's failure, if any
};

// Opens `connections` connections to `path` and runs ping-pong of
// `message_size` bytes on each, from its own green thread, for `duration`;
// verifies every echo. Green threads on the calling OS thread.
echo_load_result run_echo_load(const unix_socket_path& path, int connections,
                               absl::Duration duration, std::size_t message_size = 64);

}  // namespace rkt::examples

#endif  // RKT_EXAMPLES_ECHO_CLIENT_H_
