// The demo run of the README's main job (`echo` with no argument): rkt's
// echo server against the C epoll baseline from bench/, under the same load,
// in the same run.
#ifndef RKT_EXAMPLES_ECHO_DEMO_H_
#define RKT_EXAMPLES_ECHO_DEMO_H_

namespace rkt::examples {

// Measures rkt's echo server (serve_echo, on this OS thread) and the C
// server bench/epoll_echo.c (a process with one thread) in alternating
// rounds, each driven by the load generator bench/echo_load.cc (a process of
// its own), and prints each server's median throughput with its range and
// the ratio of the medians. The two bench/ programs are found in the Bazel
// runfiles of the binary named by `argv0`.
//
// A signal read from `signal_fd` (a signalfd for SIGINT and SIGTERM, which
// the caller blocked before starting any OS thread; the demo takes it over)
// stops the demo: the children get SIGTERM and are reaped, the socket files
// and their directory are removed.
//
// Returns the exit status: 0 once the report is printed, 1 on a failure,
// 128 + the signal's number when interrupted.
int run_echo_demo(const char* argv0, int signal_fd);

}  // namespace rkt::examples

#endif  // RKT_EXAMPLES_ECHO_DEMO_H_
