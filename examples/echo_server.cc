// serve_echo: accept, spawn, echo until EOF.
#include "examples/echo_server.h"

#include <array>
#include <cstdio>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/time/time.h"
#include "evt/exn.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "ports/port.h"

namespace rkt::examples {
namespace {

// Echoes until the peer closes its side; a peer that vanishes mid-write ends
// the connection the same way.
void echo(const input_port& in, const output_port& out) {
  std::array<char, 2048> buf;
  try {
    while (or_eof<std::size_t> n = in.read_bytes_avail(buf)) {
      out.write_bytes(std::string_view(buf.data(), *n));
      out.flush();
    }
  } catch (const exn_fail&) {
  }
  in.close();
  try {
    out.close();
  } catch (const exn_fail&) {
  }
}

bool listener_closed(const unix_socket_listener& listener) {
  // A closed listener is always ready, an open one with nothing to accept
  // is not; after a failed accept there is nothing to accept.
  return sync_timeout(absl::ZeroDuration(), listener).has_value();
}

}  // namespace

void serve_echo(const unix_socket_listener& listener, std::atomic<std::size_t>* accepted) {
  for (;;) {
    std::optional<std::pair<input_port, output_port>> conn;
    try {
      conn = unix_socket_accept(listener);
    } catch (const exn_fail& e) {
      // The listener was closed (the server is shutting down: plain
      // exn_fail), or the accept failed for this one connection
      // (exn_fail_network): keep serving the others.
      if (listener_closed(listener)) return;
      std::fprintf(stderr, "echo: %s\n", e.what());
      continue;
    }
    if (accepted != nullptr) accepted->fetch_add(1, std::memory_order_relaxed);
    rkt::thread([in = conn->first, out = conn->second] { echo(in, out); });
  }
}

std::vector<std::thread> serve_echo_on_threads(const unix_socket_listener& listener,
                                               std::size_t threads,
                                               std::vector<std::atomic<std::size_t>>& accepted) {
  const custodian server = current_custodian();
  rkt::thread([listener, counter = &accepted[0]] { serve_echo(listener, counter); });
  std::vector<std::thread> started;
  try {
    for (std::size_t i = 1; i < threads; ++i) {
      started.emplace_back([listener, server, counter = &accepted[i]] {
        {
          custodian_scope under(server);
          rkt::thread([listener, counter] { serve_echo(listener, counter); });
        }
        // Returning ends this OS thread, whose teardown finishes the dying
        // loop and connections and closes their ports.
        sync(server.shutdown_evt());
      });
    }
  } catch (...) {
    server.shutdown_all();
    for (std::thread& t : started) t.join();
    throw;
  }
  return started;
}

}  // namespace rkt::examples
