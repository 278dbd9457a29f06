// The echo server of the README's main job: a green thread per connection,
// everything owned by one custodian.
#ifndef RKT_EXAMPLES_ECHO_SERVER_H_
#define RKT_EXAMPLES_ECHO_SERVER_H_

#include "custodian/custodian.h"
#include "socket/unix_socket.h"

namespace rkt::examples {

// Accepts connections on `listener` forever, echoing each on its own green
// thread. Every connection's ports and thread are made under the current
// custodian, so shutting it down ends them all; the loop ends then too (its
// accept raises, or the shutdown kills it).
void serve_echo(const unix_socket_listener& listener);

}  // namespace rkt::examples

#endif  // RKT_EXAMPLES_ECHO_SERVER_H_
