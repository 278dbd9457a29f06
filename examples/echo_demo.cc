// run_echo_demo: the rounds, the two servers, the report.
//
// Fairness: each server gets one OS thread (rkt's runs on this process's
// only OS thread, where the demo's own green threads stay parked while it
// is measured; the C server is a single-threaded process) and each is driven
// by the same load generator binary, a process of its own. The servers take
// turns (rkt, C, rkt, C, ...), each fresh for its run, so that a slow spell
// of a shared machine falls on both; the report gives medians.
#include "examples/echo_demo.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "custodian/custodian.h"
#include "evt/exn.h"
#include "evt/thread.h"
#include "examples/child_process.h"
#include "examples/echo_server.h"
#include "ports/fd_port.h"
#include "socket/unix_socket.h"
#include "tools/cpp/runfiles/runfiles.h"

namespace rkt::examples {
namespace {

constexpr int kRounds = 3;
constexpr int kConnections = 100;
constexpr int kMessageBytes = 64;
constexpr const char* kWarmupSeconds = "0.5";
constexpr const char* kMeasuredSeconds = "1";

// What the compiler was asked for; the C server and rkt's libraries are
// built in the same mode as this file.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr const char* kBuildCaveat = "this build has a sanitizer";
#elif !defined(__OPTIMIZE__) || !defined(NDEBUG)
constexpr const char* kBuildCaveat = "this build is not optimized (no -c opt)";
#else
constexpr const char* kBuildCaveat = nullptr;
#endif

struct programs {
  std::string epoll_echo;  // bench/epoll_echo.c
  std::string echo_load;   // bench/echo_load.cc
};

// The two bench/ programs, data dependencies of //examples:echo.
programs find_programs(const char* argv0) {
  using bazel::tools::cpp::runfiles::Runfiles;
  const std::string how = "; run the demo with ./bazelw run -c opt //examples:echo";
  std::string error;
  std::unique_ptr<Runfiles> runfiles(Runfiles::Create(argv0, &error));
  if (runfiles == nullptr) {
    throw exn_fail("cannot find the runfiles of " + std::string(argv0) + how);
  }
  programs p{runfiles->Rlocation("rkt/bench/epoll_echo"),
             runfiles->Rlocation("rkt/bench/echo_load")};
  for (const std::string* path : {&p.epoll_echo, &p.echo_load}) {
    if (path->empty() || access(path->c_str(), X_OK) != 0) {
      throw exn_fail("cannot find " + *path + how);
    }
  }
  return p;
}

// A fresh directory under /tmp holding the two servers' socket files;
// removed, with whatever socket file is left in it, on the way out.
class socket_dir {
 public:
  socket_dir() {
    char name[] = "/tmp/rkt-echo-XXXXXX";
    if (mkdtemp(name) == nullptr) {
      throw exn_fail(std::string("mkdtemp /tmp: ") + std::strerror(errno));
    }
    dir_ = name;
  }
  ~socket_dir() {
    ::unlink(rkt_socket().c_str());
    ::unlink(c_socket().c_str());
    ::rmdir(dir_.c_str());
  }
  socket_dir(const socket_dir&) = delete;
  socket_dir& operator=(const socket_dir&) = delete;

  std::string rkt_socket() const { return dir_ + "/rkt.sock"; }
  std::string c_socket() const { return dir_ + "/c.sock"; }

 private:
  std::string dir_;
};

struct run_result {
  double round_trips_per_s = 0;
  double p99_us = 0;
};

// The number after " key=" in echo_load's RESULT line.
std::optional<double> result_field(const std::string& line, const std::string& key) {
  const std::size_t at = line.find(" " + key + "=");
  if (at == std::string::npos) return std::nullopt;
  const char* start = line.c_str() + at + key.size() + 2;
  char* end = nullptr;
  const double v = std::strtod(start, &end);
  if (end == start) return std::nullopt;
  return v;
}

// One run of the load generator against the server listening on `path`.
run_result run_load(const programs& p, const std::string& path) {
  child_process load({p.echo_load, "--path", path, "--connections", std::to_string(kConnections),
                      "--size", std::to_string(kMessageBytes), "--warmup", kWarmupSeconds,
                      "--seconds", kMeasuredSeconds},
                     /*capture_stdout=*/true);
  // Its report ends with one machine-readable line; see bench/echo_load.cc.
  std::string result;
  while (or_eof<std::string> line = load.out().read_line()) {
    if (line->starts_with("RESULT ")) result = *line;
  }
  const std::optional<int> status = load.wait_for(absl::Seconds(10));
  if (!status) throw exn_fail("echo_load did not exit after closing its output");
  const std::optional<double> rps = result_field(result, "rps");
  const std::optional<double> p99 = result_field(result, "p99_us");
  // It exits 1 after its report when no round trip ended in the measured
  // time (a server slowed down by a sanitizer, say): a figure of 0.
  const bool none_measured = WIFEXITED(*status) && WEXITSTATUS(*status) == 1 && rps && *rps == 0;
  const bool measured = rps && p99 && (*status == 0 || none_measured);
  if (!measured) throw exn_fail("echo_load failed (" + describe_wait_status(*status) + ")");
  return {*rps, *p99};
}

// rkt's server for one run: serve_echo on this OS thread, everything under
// a custodian of its own that the destructor shuts down.
class rkt_echo_server {
 public:
  explicit rkt_echo_server(std::string path) : path_(std::move(path)), server_(make_custodian()) {
    custodian_scope under(server_);
    unix_socket_listener listener = unix_socket_listen(path_, 511);
    rkt::thread([listener] { serve_echo(listener); });
  }
  ~rkt_echo_server() {
    server_.shutdown_all();
    ::unlink(path_.c_str());
  }
  rkt_echo_server(const rkt_echo_server&) = delete;
  rkt_echo_server& operator=(const rkt_echo_server&) = delete;

 private:
  std::string path_;
  custodian server_;
};

run_result measure_rkt(const programs& p, const socket_dir& dir) {
  rkt_echo_server server(dir.rkt_socket());
  return run_load(p, dir.rkt_socket());
}

// Waits until `server` accepts connections on `path`.
void wait_until_listening(child_process& server, const std::string& path) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  for (;;) {
    try {
      auto [in, out] = unix_socket_connect(path);
      in.close();
      out.close();
      return;
    } catch (const exn_fail_network&) {
      // Not bound or not listening yet.
    }
    if (std::optional<int> status = server.wait_for(absl::ZeroDuration())) {
      throw exn_fail(server.name() + " exited (" + describe_wait_status(*status) + ")");
    }
    if (absl::Now() >= deadline) throw exn_fail(server.name() + " is not listening after 10 s");
    rkt::sleep(absl::Milliseconds(5));
  }
}

// The C server for one run: started fresh, and checked on the way out to
// exit 0 on SIGTERM and remove its socket file, as echo_compare.sh checks.
run_result measure_c(const programs& p, const socket_dir& dir) {
  child_process server({p.epoll_echo, dir.c_socket()}, /*capture_stdout=*/false);
  wait_until_listening(server, dir.c_socket());
  const run_result r = run_load(p, dir.c_socket());
  const int status = server.stop(absl::Seconds(5));
  if (status != 0) {
    throw exn_fail("epoll_echo did not stop cleanly (" + describe_wait_status(status) + ")");
  }
  if (access(dir.c_socket().c_str(), F_OK) == 0) throw exn_fail("epoll_echo left its socket file");
  return r;
}

// "1,234,567"
std::string grouped(double v) {
  std::string digits = std::to_string(static_cast<long long>(v + 0.5));
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) {
    digits.insert(static_cast<std::size_t>(i), ",");
  }
  return digits;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// One server's runs, in order.
struct contender {
  const char* label;
  run_result (*measure)(const programs&, const socket_dir&);
  std::vector<double> rps = {};
  std::vector<double> p99_us = {};

  void print_summary() const {
    const auto [lo, hi] = std::minmax_element(rps.begin(), rps.end());
    std::printf("  %-4s %9s round trips/s (%s-%s), p99 latency %.0f us\n", label,
                grouped(median(rps)).c_str(), grouped(*lo).c_str(), grouped(*hi).c_str(),
                median(p99_us));
  }
};

void print_caveat() {
  if (kBuildCaveat == nullptr) return;
  std::printf("NOTE: %s, so the ratio does not mean much;\n", kBuildCaveat);
  std::printf("      for the real figure: ./bazelw run -c opt //examples:echo\n");
}

// The rounds and the report; returns the exit status. `stop_signal` is set
// by the signal reader, a green thread of this OS thread, when SIGINT or
// SIGTERM arrives; the children are then already signalled, so the run
// under way ends soon.
int measure_and_report(const programs& p, const int& stop_signal) {
  std::printf(
      "rkt's echo server against a hand-written C epoll server, same load, same run:\n"
      "  rkt   examples/echo_server.cc: a green thread per connection, one OS thread\n"
      "  C     bench/epoll_echo.c: single-threaded edge-triggered epoll loop\n"
      "  load  bench/echo_load (a process of its own): %d connections, %d-byte ping-pong,\n"
      "        %s s warmup + %s s measured per run; %d rounds, rkt and C in turn\n",
      kConnections, kMessageBytes, kWarmupSeconds, kMeasuredSeconds, kRounds);
  print_caveat();
  std::printf("\n");

  socket_dir dir;
  contender rkt_runs{"rkt", measure_rkt}, c_runs{"C", measure_c};
  for (int round = 1; round <= kRounds; ++round) {
    std::printf("round %d ", round);
    for (contender* server : {&rkt_runs, &c_runs}) {
      std::fflush(stdout);
      std::optional<run_result> r;
      try {
        r = server->measure(p, dir);
      } catch (const exn_fail& e) {
        if (stop_signal == 0) {
          std::fprintf(stderr, "\necho: %s run: %s\n", server->label, e.what());
          return 1;
        }
      }
      if (stop_signal != 0) {
        std::printf("\ninterrupted (SIG%s); stopped\n", sigabbrev_np(stop_signal));
        return 128 + stop_signal;
      }
      server->rps.push_back(r->round_trips_per_s);
      server->p99_us.push_back(r->p99_us);
      std::printf("  %s %9s/s", server->label, grouped(r->round_trips_per_s).c_str());
    }
    std::printf("\n");
  }

  std::printf("\nmedian of %d runs (lowest-highest):\n", kRounds);
  rkt_runs.print_summary();
  c_runs.print_summary();
  const double ratio = median(rkt_runs.rps) / median(c_runs.rps);
  std::printf(
      "rkt / C = %.2f: rkt's throughput is %.2fx the hand-written C epoll server's "
      "(%d-byte ping-pong, %d connections)\n",
      ratio, ratio, kMessageBytes, kConnections);
  print_caveat();
  return 0;
}

}  // namespace

int run_echo_demo(const char* argv0, int signal_fd) {
  programs p;
  try {
    p = find_programs(argv0);
  } catch (const exn_fail& e) {
    ::close(signal_fd);
    std::fprintf(stderr, "echo: %s\n", e.what());
    return 1;
  }

  // SIGINT/SIGTERM: remember which, and signal the children at once, so
  // that whatever the demo waits for ends.
  int stop_signal = 0;
  custodian signals_owner = make_custodian();
  std::optional<rkt::thread> signal_reader;
  {
    custodian_scope under(signals_owner);
    input_port signals = make_fd_input_port(signal_fd, "signalfd");
    signal_reader.emplace([signals, &stop_signal] {
      or_eof<std::string> info;
      try {
        info = signals.read_bytes(sizeof(signalfd_siginfo));
      } catch (const exn_fail&) {
        return;
      }
      if (!info || info->size() != sizeof(signalfd_siginfo)) return;
      signalfd_siginfo si;
      std::memcpy(&si, info->data(), sizeof si);
      stop_signal = static_cast<int>(si.ssi_signo);
      terminate_children();
    });
  }

  int status;
  try {
    status = measure_and_report(p, stop_signal);
  } catch (const exn_fail& e) {
    std::fprintf(stderr, "echo: %s\n", e.what());
    status = 1;
  }
  std::fflush(stdout);
  signals_owner.shutdown_all();
  signal_reader->wait();
  return status;
}

}  // namespace rkt::examples
