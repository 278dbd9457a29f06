// The state of one running server (web/server.h): its options, custodian,
// listener, the accept loop, and the manager green thread that watches the
// connections' deadlines and carries out drain requests.
//
// Threads: everything below "server OS thread only" is touched only by
// green threads of the OS thread that called serve() (the accept loop, the
// manager, the connections), which switch only at syncs, so it needs no
// lock. The server handle, which any OS thread may use, touches only the
// custodian and the semaphores, which are safe across OS threads.
#ifndef RKT_WEB_INTERNAL_SERVER_STATE_H_
#define RKT_WEB_INTERNAL_SERVER_STATE_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "evt/semaphore.h"
#include "socket/tcp_unit.h"
#include "web/internal/timer_list.h"
#include "web/server.h"

namespace rkt::web::internal {

class server_state : public std::enable_shared_from_this<server_state> {
 public:
  server_state(handler h, options opts, custodian cust);

  // Listens (raising what listen raises) and spawns the accept loop and the
  // manager under the server's custodian.
  void start();

  void log(std::string_view line) const;

  const handler handler_;
  const options opts_;
  const custodian cust_;
  std::shared_ptr<tcp_unit> unit_;
  std::optional<tcp_unit_listener> listener_;
  std::string local_ip_;
  uint16_t local_port_ = 0;

  // Cross-thread: a drain request (posted by server::drain), and the signal
  // that no connection is left once draining (posted once, peeked).
  const semaphore drain_request_;
  const semaphore drained_;

  // --- server OS thread only.
  // Connections awaiting or reading a request (request_timeout), and those
  // whose request is read (response_timeout).
  timer_list reading_;
  timer_list responding_;
  bool draining_ = false;

  // Sets c's deadline on `list`, now plus the list's timeout.
  void set_deadline(connection& c, timer_list& list);
  // A connection began (accepted) or ended (its thread is finishing).
  void connection_began() { ++active_; }
  void connection_ended();

 private:
  void accept_loop();
  void manage();
  void expire(absl::Time now);
  void begin_drain();

  std::size_t active_ = 0;
  bool accept_paused_ = false;
  const semaphore slot_freed_;   // posted when a connection ends while paused
  // Posted when a deadline earlier than manager_wakes_at_ (what the manager
  // sleeps until) is set.
  const semaphore timer_wake_;
  absl::Time manager_wakes_at_ = absl::InfiniteFuture();
};

}  // namespace rkt::web::internal

#endif  // RKT_WEB_INTERNAL_SERVER_STATE_H_
