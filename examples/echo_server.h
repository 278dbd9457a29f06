// The echo server of the README's main job: a green thread per connection,
// everything owned by one custodian.
#ifndef RKT_EXAMPLES_ECHO_SERVER_H_
#define RKT_EXAMPLES_ECHO_SERVER_H_

#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

#include "custodian/custodian.h"
#include "socket/unix_socket.h"

namespace rkt::examples {

// Accepts connections on `listener` forever, echoing each on its own green
// thread. Every connection's ports and thread are made under the current
// custodian, so shutting it down ends them all; the loop ends then too (its
// accept raises, or the shutdown kills it). Each connection is served on
// the OS thread of the loop that accepted it; `accepted`, if given, counts
// them.
void serve_echo(const unix_socket_listener& listener,
                std::atomic<std::size_t>* accepted = nullptr);

// serve_echo on `threads` OS threads at once: one accept loop on the
// calling OS thread (a green thread, run whenever the caller syncs) and one
// on each of threads - 1 new OS threads, all under the current custodian,
// whose shutdown ends them all. The new OS threads end once it is shut
// down; join them. accepted[i] counts thread i's connections (it must have
// `threads` elements, outlive the threads, and not move).
std::vector<std::thread> serve_echo_on_threads(const unix_socket_listener& listener,
                                               std::size_t threads,
                                               std::vector<std::atomic<std::size_t>>& accepted);

}  // namespace rkt::examples

#endif  // RKT_EXAMPLES_ECHO_SERVER_H_
