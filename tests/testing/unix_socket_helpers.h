// Helpers for the tests of socket/unix_socket.h: a bounded accept and
// abstract names that parallel test runs cannot collide on.
#ifndef RKT_TESTS_TESTING_UNIX_SOCKET_HELPERS_H_
#define RKT_TESTS_TESTING_UNIX_SOCKET_HELPERS_H_

#include <errno.h>  // program_invocation_short_name (GNU)
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <random>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "socket/unix_socket.h"
#include "tests/testing/port_helpers.h"

namespace rkt::test {

// Accepts one connection on `l`; fails the test instead of hanging.
inline conn accept_bounded(const rkt::unix_socket_listener& l) {
  return conn(on_green_thread([&] { return rkt::unix_socket_accept(l); }));
}

// A fresh abstract name: NUL, "rkt.", the test binary's name, its pid and a
// number drawn once per run (parallel test runs may share the abstract
// namespace), a counter, and `tag`.
inline std::string unique_abstract(const std::string& tag) {
  static const uint64_t run = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
           static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  }();
  static std::atomic<int> counter{0};
  return std::string("\0rkt.", 5) + program_invocation_short_name + "." +
         std::to_string(getpid()) + "." + std::to_string(run) + "." +
         std::to_string(counter.fetch_add(1)) + "." + tag;
}

}  // namespace rkt::test

#endif  // RKT_TESTS_TESTING_UNIX_SOCKET_HELPERS_H_
