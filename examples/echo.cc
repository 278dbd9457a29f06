// The README's main job: an echo server on a Unix socket, a green thread
// per connection, all of it owned by one custodian.
//
//   echo            serves on a fresh socket under /tmp, drives it for 3 s
//                   with 100 client connections on a second OS thread,
//                   prints what it measured, shuts down and exits.
//   echo PATH       serves on PATH until SIGINT or SIGTERM.
//
// Either way SIGINT/SIGTERM shut the server's custodian down (closing the
// listener and every connection, killing their threads), and the socket
// file is removed on the way out.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "evt/exn.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "examples/echo_client.h"
#include "examples/echo_server.h"
#include "ports/fd_port.h"
#include "socket/unix_socket.h"

namespace {

constexpr int kClientConnections = 100;
constexpr absl::Duration kClientRun = absl::Seconds(3);

double percentile_us(std::vector<int64_t>& ns, double p) {
  if (ns.empty()) return 0;
  const std::size_t i = std::min(ns.size() - 1, static_cast<std::size_t>(p * ns.size()));
  std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(i), ns.end());
  return static_cast<double>(ns[i]) / 1000.0;
}

void report(rkt::examples::echo_load_result r) {
  const double seconds = absl::ToDoubleSeconds(r.elapsed);
  std::printf("connections:      %d\n", r.connections);
  std::printf("round trips:      %llu in %.2f s (%.0f per second)\n",
              static_cast<unsigned long long>(r.round_trips), seconds,
              static_cast<double>(r.round_trips) / seconds);
  std::printf("latency p50:      %.1f us\n", percentile_us(r.latencies_ns, 0.50));
  std::printf("latency p99:      %.1f us\n", percentile_us(r.latencies_ns, 0.99));
  std::printf("latency max:      %.1f us\n", percentile_us(r.latencies_ns, 1.0));
  if (!r.error.empty()) std::printf("client error:     %s\n", r.error.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // SIGINT and SIGTERM arrive through a signalfd, read by a green thread;
  // blocked before any other OS thread exists, so that all inherit the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  const int signal_fd = signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) {
    std::perror("signalfd");
    return 1;
  }

  const bool demo = argc < 2;
  const std::string path =
      demo ? "/tmp/rkt-echo-" + std::to_string(getpid()) + ".sock" : std::string(argv[1]);

  rkt::custodian server = rkt::make_custodian();
  try {
    rkt::custodian_scope under(server);
    rkt::unix_socket_listener listener = rkt::unix_socket_listen(path, 511);
    rkt::thread([listener] { rkt::examples::serve_echo(listener); });
    rkt::input_port signals = rkt::make_fd_input_port(signal_fd, "signalfd");
    rkt::thread([signals, server] {
      try {
        (void)signals.read_bytes(sizeof(signalfd_siginfo));
      } catch (const rkt::exn_fail&) {
        return;  // the server shut down first, closing the signal port
      }
      server.shutdown_all();
    });
  } catch (const rkt::exn_fail& e) {
    std::fprintf(stderr, "echo: %s\n", e.what());
    return 1;
  }
  std::printf("echo server on %s\n", path.c_str());
  std::fflush(stdout);

  if (demo) {
    std::optional<rkt::examples::echo_load_result> result;
    std::thread client([&] {
      result = rkt::examples::run_echo_load(path, kClientConnections, kClientRun);
    });
    // The main OS thread serves while the client runs on its own.
    while (!rkt::sync_timeout(absl::Milliseconds(50), server.shutdown_evt()) && !result) {
    }
    client.join();
    if (result) report(std::move(*result));
    server.shutdown_all();
  } else {
    rkt::sync(server.shutdown_evt());
  }
  ::unlink(path.c_str());
  std::printf("echo server stopped\n");
  return 0;
}
