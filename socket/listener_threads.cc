// listener_threads.h over the listener's stations (internal/listener.h).
#include "socket/listener_threads.h"

#include <memory>

#include "socket/internal/listener.h"

namespace rkt {
namespace {

std::vector<listener_thread_stats> threads_of(const internal::listener_state& st) {
  std::vector<listener_thread_stats> out;
  for (const internal::listener_station::stats& s : st.station_stats()) {
    out.push_back(listener_thread_stats{s.owner, s.reports, s.accepts, s.withdrawn, s.parked});
  }
  return out;
}

int descriptor_of(const internal::listener_state& st) { return st.closed() ? -1 : st.fd(); }

}  // namespace

std::vector<listener_thread_stats> listener_threads(const unix_socket_listener& l) {
  return threads_of(*l.state());
}
std::vector<listener_thread_stats> listener_threads(const tcp_listener& l) {
  return threads_of(*l.state());
}

int listener_descriptor(const unix_socket_listener& l) { return descriptor_of(*l.state()); }
int listener_descriptor(const tcp_listener& l) { return descriptor_of(*l.state()); }

uint32_t set_accept_rotation(uint32_t every) {
  return internal::listener_state::set_rotate_every(every);
}

}  // namespace rkt
