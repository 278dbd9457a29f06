// What each OS thread does with a listener that several OS threads accept
// from (docs/MULTICORE.md): per thread, the readiness reports its reactor
// delivered and the connections it accepted; and the process-wide rotation
// setting. For tests, monitoring and tuning; nothing here changes how a
// listener behaves, except set_accept_rotation.
//
//   for (const rkt::listener_thread_stats& t : rkt::listener_threads(l))
//     std::printf("%llu accepted\n", (unsigned long long)t.accepts);
#ifndef RKT_SOCKET_LISTENER_THREADS_H_
#define RKT_SOCKET_LISTENER_THREADS_H_

#include <cstdint>
#include <thread>
#include <vector>

#include "socket/tcp.h"
#include "socket/unix_socket.h"

namespace rkt {

// One OS thread's part of a listener. A thread has one from the first time
// it synced on the listener (or on one of its accept events) there; the
// thread that made the listener has one from the start.
struct listener_thread_stats {
  std::thread::id thread;  // the OS thread
  uint64_t reports;        // readiness reports (with retries and nudges) its reactor delivered
  uint64_t accepts;        // connections accepted on it
  bool withdrawn;          // its reactor no longer watches the listener (it stopped accepting)
  bool parked;             // an accept or a listener sync is parked on it now
};

// One entry per OS thread that has a part, in the order they got it (the
// parts of exited threads stay, frozen, until the listener is dropped).
std::vector<listener_thread_stats> listener_threads(const unix_socket_listener& l);
std::vector<listener_thread_stats> listener_threads(const tcp_listener& l);

// The listening descriptor, for getsockopt and the like (the listener still
// owns it); -1 once the listener is closed.
int listener_descriptor(const unix_socket_listener& l);
int listener_descriptor(const tcp_listener& l);

// How many connections an OS thread accepts between two re-registrations of
// the listener with its reactor; each moves it behind the other threads in
// the kernel's wake-up order (docs/MULTICORE.md, "Rotation"). 0 turns it
// off. Process-wide; default 16. Returns the previous value.
uint32_t set_accept_rotation(uint32_t every);

}  // namespace rkt

#endif  // RKT_SOCKET_LISTENER_THREADS_H_
