// make_default_reactor(): the backend a scheduler gets (contract in
// evt/reactor.h).
//
// Built with RKT_REACTOR_POLL (Bazel passes it for `--define rkt_reactor=poll`,
// see the `reactor` target in evt/BUILD.bazel), the default is poll(2);
// otherwise epoll. At run time the environment variable RKT_REACTOR=poll or
// RKT_REACTOR=epoll overrides the build's choice, so one binary can benchmark
// both; any other value is ignored (check reactor::name() to confirm which
// backend is in use). The variable is read at each call.
#include <cstdlib>
#include <cstring>
#include <memory>

#include "evt/reactor.h"

namespace rkt::internal {

std::unique_ptr<reactor> make_default_reactor() {
  if (const char* choice = std::getenv("RKT_REACTOR")) {
    if (std::strcmp(choice, "poll") == 0) return make_poll_reactor();
    if (std::strcmp(choice, "epoll") == 0) return make_epoll_reactor();
  }
#ifdef RKT_REACTOR_POLL
  return make_poll_reactor();
#else
  return make_epoll_reactor();
#endif
}

}  // namespace rkt::internal
