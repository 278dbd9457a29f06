// The README's main job: an echo server on a Unix socket, a green thread
// per connection, all of it owned by one custodian (echo_server.cc).
//
//   echo            measures it against the C epoll baseline from bench/
//                   under the same load, in alternating rounds, and prints
//                   the ratio (echo_demo.h); about 10 s.
//   echo PATH       serves on PATH until SIGINT, SIGTERM or SIGHUP, then
//                   shuts the server's custodian down (closing the listener,
//                   which removes the socket file, and every connection,
//                   killing their threads). A socket file at PATH that
//                   nothing listens on (left by a run killed with SIGKILL)
//                   is replaced.
//
// The signals arrive through a signalfd read by a green thread, in both
// modes.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "custodian/custodian.h"
#include "evt/exn.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "examples/echo_demo.h"
#include "examples/echo_server.h"
#include "examples/stop_signals.h"
#include "ports/fd_port.h"
#include "socket/unix_socket.h"

namespace {

// Serves on `path` until a signal arrives on `signal_fd`; the exit status.
int serve_until_signalled(const std::string& path, int signal_fd) {
  rkt::custodian server = rkt::make_custodian();
  try {
    rkt::custodian_scope under(server);
    rkt::unix_socket_listener listener =
        rkt::unix_socket_listen(path, 511, {.replace_stale = true, .unlink_on_close = true});
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
  rkt::sync(server.shutdown_evt());
  std::printf("echo server stopped\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2) {
    std::fprintf(stderr, "usage: echo [SOCKET_PATH]\n");
    return 2;
  }
  const int signal_fd = rkt::examples::block_stop_signals("echo");
  if (signal_fd < 0) return 1;
  if (argc == 2) return serve_until_signalled(argv[1], signal_fd);
  return rkt::examples::run_echo_demo(argv[0], signal_fd);
}
