// hello_web [SOCKET_PATH [THREADS]]: the README's web server on a Unix
// socket (default /tmp/rkt-hello.sock), with THREADS server threads
// (options.threads, default 1). GET and HEAD of any path answer 200
// "Hello, World!\n" (text/plain); POST and PUT echo the request body with
// its Content-Type. A socket file at SOCKET_PATH that nothing listens on (a
// run killed by SIGKILL left it) is replaced (replace_stale); a live
// server there, or a file that is not a socket, makes the listen fail.
// Prints "listening on SOCKET_PATH" once it listens. SIGINT, SIGTERM or
// SIGHUP (read from a signalfd by a green thread) stops the server, which
// removes its socket file (unlink_on_close), and exits 0.
//
// Started by a service manager with a listening socket (LISTEN_FDS,
// systemd-socket-activate), it serves on the first socket passed instead
// of SOCKET_PATH, prints "listening on systemd socket NAME", and leaves
// that socket's file to the manager.
//
// A SOCKET_PATH of the form @NAME listens on the Linux abstract socket name
// NAME instead (curl --abstract-unix-socket NAME); there is no file then.
//
// The benchmark and the peer tests rely on this command line and output.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "evt/exn.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "examples/stop_signals.h"
#include "ports/fd_port.h"
#include "socket/systemd_listeners.h"
#include "socket/tcp_unit.h"
#include "web/server.h"

namespace {

rkt::web::response hello(rkt::web::request& req) {
  if (req.method() == "POST" || req.method() == "PUT") {
    rkt::web::response r = rkt::web::response::text(
        req.read_body(), 200,
        std::string(req.header("Content-Type").value_or("application/octet-stream")));
    return r;
  }
  return rkt::web::response::text("Hello, World!\n", 200, "text/plain");
}

}  // namespace

int main(int argc, char** argv) {
  const long threads = argc == 3 ? std::strtol(argv[2], nullptr, 10) : 1;
  if (argc > 3 || threads < 1 || threads > 1024) {
    std::fprintf(stderr, "usage: hello_web [SOCKET_PATH [THREADS]]  (THREADS: 1 to 1024)\n");
    return 2;
  }
  const std::string path = argc >= 2 ? argv[1] : "/tmp/rkt-hello.sock";
  const int signal_fd = rkt::examples::block_stop_signals("hello_web");
  if (signal_fd < 0) return 1;
  const bool abstract = !path.empty() && path[0] == '@';
  const rkt::unix_socket_path where =
      abstract ? rkt::unix_socket_path(rkt::unix_socket_abstract_name(std::string(1, '\0') +
                                                                      path.substr(1)))
               : rkt::unix_socket_path(path);
  std::string listening_on = path;
  std::optional<rkt::web::server> server;
  try {
    std::shared_ptr<rkt::tcp_unit> transport;
    const std::vector<rkt::systemd_listener> passed = rkt::systemd_listeners();
    if (!passed.empty()) {
      transport = rkt::make_inherited_tcp_unit(passed.front());
      listening_on = "systemd socket " + passed.front().name;
    } else {
      transport = rkt::make_unix_socket_tcp_unit(
          where, {.replace_stale = true, .unlink_on_close = true});
    }
    server = rkt::web::serve(hello, {.transport = transport,
                                     .threads = static_cast<std::size_t>(threads)});
  } catch (const rkt::exn_fail& e) {
    std::fprintf(stderr, "hello_web: %s\n", e.what());
    return 1;
  }
  rkt::input_port signals = rkt::make_fd_input_port(signal_fd, "signalfd");
  rkt::thread([signals, s = *server] {
    try {
      (void)signals.read_bytes(sizeof(signalfd_siginfo));
    } catch (const rkt::exn_fail&) {
    }
    s.stop();
  });
  std::printf("listening on %s\n", listening_on.c_str());
  std::fflush(stdout);
  rkt::sync(server->finished_evt());
  signals.close();
  return 0;
}
