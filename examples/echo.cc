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
//   echo PATH N     the same with N accept loops, one per OS thread (the
//                   main one and N - 1 more), all under the one custodian;
//                   each connection is served on the thread that accepted
//                   it. On the way out it prints the connections accepted
//                   per thread, and fails (exit 1) if a descriptor opened
//                   while serving is still open.
//
// The signals arrive through a signalfd read by a green thread, in both
// modes.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <dirent.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
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

// The descriptors open in this process.
std::set<int> open_fds() {
  std::set<int> fds;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') fds.insert(std::atoi(e->d_name));
    }
    fds.erase(::dirfd(d));
    ::closedir(d);
  }
  return fds;
}

// Serves on `path` with `threads` accept loops until a signal arrives on
// `signal_fd`; the exit status.
int serve_until_signalled(const std::string& path, std::size_t threads, int signal_fd) {
  rkt::custodian server = rkt::make_custodian();
  rkt::yield();  // this OS thread's scheduler (its reactor's descriptors) exists from here
  const std::set<int> fds_before = open_fds();
  std::vector<std::atomic<std::size_t>> accepted(threads);
  std::vector<std::thread> loops;
  try {
    rkt::custodian_scope under(server);
    rkt::unix_socket_listener listener = rkt::unix_socket_listen(
        path, 511, {.replace_stale = true, .unlink_on_close = true});
    loops = rkt::examples::serve_echo_on_threads(listener, threads, accepted);
    rkt::input_port signals = rkt::make_fd_input_port(signal_fd, "signalfd");
    rkt::thread([signals, server] {
      try {
        (void)signals.read_bytes(sizeof(signalfd_siginfo));
      } catch (const rkt::exn_fail&) {
        return;  // the server shut down first, closing the signal port
      }
      server.shutdown_all();
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo: %s\n", e.what());
    server.shutdown_all();
    for (std::thread& t : loops) t.join();
    return 1;
  }
  std::printf("echo server on %s\n", path.c_str());
  std::fflush(stdout);
  rkt::sync(server.shutdown_evt());
  for (std::thread& t : loops) t.join();
  // One pass of this OS thread's idle loop: it carries out the port closes
  // that other OS threads handed to it (ports it owns).
  rkt::sleep(absl::Milliseconds(1));
  std::string per_thread;
  for (const std::atomic<std::size_t>& n : accepted) per_thread += " " + std::to_string(n.load());
  std::printf("echo server stopped; connections accepted per thread:%s\n", per_thread.c_str());
  int status = 0;
  for (int fd : open_fds()) {
    if (fds_before.count(fd) == 0) {
      std::fprintf(stderr, "echo: descriptor %d is still open after the shutdown\n", fd);
      status = 1;
    }
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  const long threads = argc == 3 ? std::strtol(argv[2], nullptr, 10) : 1;
  if (argc > 3 || threads < 1 || threads > 1024) {
    std::fprintf(stderr, "usage: echo [SOCKET_PATH [THREADS]]  (THREADS: 1 to 1024)\n");
    return 2;
  }
  const int signal_fd = rkt::examples::block_stop_signals("echo");
  if (signal_fd < 0) return 1;
  if (argc >= 2) {
    return serve_until_signalled(argv[1], static_cast<std::size_t>(threads), signal_fd);
  }
  return rkt::examples::run_echo_demo(argv[0], signal_fd);
}
