// idle_scaling: how the cost of a connection-per-green-thread server grows
// with the number of connections (issue 12). For each count it times three
// phases separately, repeats the whole several times, and prints the median
// per phase and per connection, with the resident memory each idle
// connection adds:
//   accept   the clients connect; the server accepts each connection and
//            spawns its green thread, which parks in a read;
//   echo     every client sends one message; the server echoes it on each
//            (until the last echo is written);
//   shutdown one custodian shutdown closes the listener and every server
//            end and kills every connection thread.
// Linear scaling shows as a per-connection time that stays flat. Each phase
// reports its wall time and the server process's CPU time (user + system,
// getrusage): on a loaded machine the CPU time moves far less than the
// wall time. The resident bytes per idle connection are the median over
// the runs; runs after the first reuse heap freed by the one before, so
// tests/unix_socket_idle_test (a fresh process) is the figure to quote.
//
// Two kinds of connection:
//   unix  Unix-socket connections; the clients are blocking sockets in a
//         child process (forked before the runtime starts), so each process
//         holds one descriptor per connection. The count stops at what
//         RLIMIT_NOFILE allows (raised to the hard limit first).
//   pipe  a pair of rkt pipes per connection: no descriptor, so the counts
//         go to 100,000 wherever the descriptor limit is lower; it shows the
//         runtime's share (stacks, threads, ports, custodian) alone.
//
//   ./bazelw run -c opt //bench:idle_scaling -- [--runs=5] [unix|pipe] [COUNT...]
// (defaults: 5 runs, unix, 1000 10000 100000). Columns per phase: the
// median wall time, it per connection, and the median CPU time per
// connection.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "custodian/custodian.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "ports/pipe.h"
#include "ports/port.h"
#include "socket/unix_socket.h"
#include "tests/testing/idle_echo.h"
#include "tests/testing/resident_memory.h"

namespace {

using clock_type = std::chrono::steady_clock;
constexpr std::string_view kMessage = "ping";

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "idle_scaling: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(2);
}

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// The process's CPU time so far (user + system), in seconds.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// Wall and CPU time of one phase.
struct timing {
  double wall = 0;
  double cpu = 0;
};

class stopwatch {
 public:
  stopwatch() : wall_(clock_type::now()), cpu_(cpu_seconds()) {}
  timing read() const { return {seconds_since(wall_), cpu_seconds() - cpu_}; }

 private:
  clock_type::time_point wall_;
  double cpu_;
};

rlim_t raise_fd_limit_to_hard() {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  return lim.rlim_cur;
}

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("write");
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

// One line from a blocking descriptor (the control channel).
std::string read_line(int fd) {
  std::string line;
  char c = 0;
  for (;;) {
    const ssize_t n = read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("control channel");
    if (c == '\n') return line;
    line += c;
  }
}

// ---------------------------------------------------------------------------
// The client process of the unix kind: obeys one-line commands on `control`
// and answers "ok" to each.
//   connect PATH COUNT  opens COUNT blocking connections to PATH
//   echo                sends the message on each and reads its echo
//   eof                 checks that each reads EOF, and closes it
//   quit                exits
[[noreturn]] void client_process(int control) {
  std::vector<int> fds;
  for (;;) {
    const std::string cmd = read_line(control);
    if (cmd.rfind("connect ", 0) == 0) {
      const std::size_t space = cmd.rfind(' ');
      const std::string path = cmd.substr(8, space - 8);
      const std::size_t count = std::strtoull(cmd.c_str() + space + 1, nullptr, 10);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::memcpy(addr.sun_path, path.data(), path.size());
      for (std::size_t i = 0; i < count; ++i) {
        const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) die("client socket");
        if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
          die("client connect");
        }
        fds.push_back(fd);
      }
    } else if (cmd == "echo") {
      for (int fd : fds) write_all(fd, kMessage);
      for (int fd : fds) {
        char buf[16];
        std::size_t got = 0;
        while (got < kMessage.size()) {
          const ssize_t n = read(fd, buf + got, sizeof buf - got);
          if (n <= 0) die("client read of the echo");
          got += static_cast<std::size_t>(n);
        }
      }
    } else if (cmd == "eof") {
      for (int fd : fds) {
        char buf[16];
        if (read(fd, buf, sizeof buf) != 0) die("client expected EOF");
        close(fd);
      }
      fds.clear();
    } else if (cmd == "quit") {
      _exit(0);
    }
    write_all(control, "ok\n");
  }
}

struct phases {
  timing accept;
  timing echo;
  timing shutdown;
  double bytes_per_idle = 0;
};

phases run_unix(std::size_t n, int control, const std::string& path) {
  phases p;
  rkt::custodian server = rkt::make_custodian();
  rkt::semaphore accepted;
  rkt::semaphore echoed;
  {
    rkt::custodian_scope in(server);
    const rkt::unix_socket_listener listener = rkt::unix_socket_listen(path, 4096);
    rkt::thread([listener, &accepted, &echoed] {
      for (;;) {
        auto [in, out] = rkt::unix_socket_accept(listener);
        rkt::thread([in = std::move(in), out = std::move(out), &echoed] { rkt::test::echo_until_eof(in, out, echoed); });
        accepted.post();
      }
    });
  }
  rkt::sync(rkt::system_idle_evt());
  const std::size_t baseline = rkt::test::resident_bytes();

  stopwatch w;
  write_all(control, "connect " + path + " " + std::to_string(n) + "\n");
  for (std::size_t i = 0; i < n; ++i) accepted.wait();
  rkt::sync(rkt::system_idle_evt());  // every connection thread parked in its read
  p.accept = w.read();
  // The client answers once its last connect returned, which may be after
  // the last accept.
  if (read_line(control) != "ok") die("client connect");

  w = stopwatch();
  write_all(control, "echo\n");
  for (std::size_t i = 0; i < n; ++i) echoed.wait();
  rkt::sync(rkt::system_idle_evt());
  p.echo = w.read();
  if (read_line(control) != "ok") die("client echo");
  const std::size_t idle = rkt::test::resident_bytes();
  p.bytes_per_idle = rkt::test::resident_bytes_each(baseline, idle, n);

  w = stopwatch();
  server.shutdown_all();
  p.shutdown = w.read();
  write_all(control, "eof\n");
  if (read_line(control) != "ok") die("client eof");
  unlink(path.c_str());
  return p;
}

phases run_pipe(std::size_t n) {
  phases p;
  rkt::custodian server = rkt::make_custodian();
  rkt::semaphore echoed;
  std::vector<rkt::output_port> to_server;
  std::vector<rkt::input_port> from_server;
  to_server.reserve(n);
  from_server.reserve(n);
  rkt::sync(rkt::system_idle_evt());
  const std::size_t baseline = rkt::test::resident_bytes();

  stopwatch w;
  {
    rkt::custodian_scope in(server);
    for (std::size_t i = 0; i < n; ++i) {
      auto [server_in, client_out] = rkt::make_pipe();
      auto [client_in, server_out] = rkt::make_pipe();
      to_server.push_back(std::move(client_out));
      from_server.push_back(std::move(client_in));
      rkt::thread([in = std::move(server_in), out = std::move(server_out), &echoed] {
        rkt::test::echo_until_eof(in, out, echoed);
      });
    }
  }
  rkt::sync(rkt::system_idle_evt());
  p.accept = w.read();

  w = stopwatch();
  for (const rkt::output_port& out : to_server) out.write_bytes(kMessage);
  for (std::size_t i = 0; i < n; ++i) echoed.wait();
  rkt::sync(rkt::system_idle_evt());
  p.echo = w.read();
  char buf[16];
  for (const rkt::input_port& in : from_server) {
    if (in.read_bytes_avail(std::span<char>(buf)) != kMessage.size()) die("pipe echo");
  }
  const std::size_t idle = rkt::test::resident_bytes();
  p.bytes_per_idle = rkt::test::resident_bytes_each(baseline, idle, n);

  w = stopwatch();
  server.shutdown_all();
  p.shutdown = w.read();
  return p;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  std::string kind = "unix";
  std::vector<std::size_t> counts;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--runs=", 0) == 0) {
      runs = std::atoi(a.c_str() + 7);
    } else if (a == "unix" || a == "pipe") {
      kind = a;
    } else {
      counts.push_back(std::strtoull(a.c_str(), nullptr, 10));
    }
  }
  const rlim_t fd_limit = raise_fd_limit_to_hard();
  if (counts.empty()) counts = {1'000, 10'000, 100'000};

  int control[2] = {-1, -1};
  pid_t child = -1;
  std::string path;
  if (kind == "unix") {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, control) != 0) die("socketpair");
    child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
      close(control[0]);
      client_process(control[1]);
    }
    close(control[1]);
    char tmpl[] = "/tmp/rkt_idle_scaling.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) die("mkdtemp");
    path = std::string(tmpl) + "/s";
  }

  std::printf("kind: %s; stack guards: %s; reactor: %s; RLIMIT_NOFILE: %lu; runs: %d\n",
              kind.c_str(), rkt::stack_guard_name(), rkt::reactor_name(),
              static_cast<unsigned long>(fd_limit), runs);
  std::printf("%8s | %-24s | %-24s | %-24s | %7s\n", "", "accept + spawn", "first echo",
              "custodian shutdown", "");
  std::printf("%8s | %8s %7s %7s | %8s %7s %7s | %8s %7s %7s | %7s\n", "conns", "wall ms",
              "us/conn", "cpu us", "wall ms", "us/conn", "cpu us", "wall ms", "us/conn", "cpu us",
              "B/idle");
  for (std::size_t n : counts) {
    if (kind == "unix" && n + 64 > fd_limit) {
      std::printf("%8zu | skipped: needs %zu descriptors per process, RLIMIT_NOFILE is %lu\n", n,
                  n + 64, static_cast<unsigned long>(fd_limit));
      continue;
    }
    std::vector<double> wall[3], cpu[3], mem;
    for (int r = 0; r < runs; ++r) {
      const phases p = kind == "unix" ? run_unix(n, control[0], path) : run_pipe(n);
      const timing* t[3] = {&p.accept, &p.echo, &p.shutdown};
      for (int k = 0; k < 3; ++k) {
        wall[k].push_back(t[k]->wall);
        cpu[k].push_back(t[k]->cpu);
      }
      mem.push_back(p.bytes_per_idle);
    }
    const double dn = static_cast<double>(n);
    std::printf("%8zu |", n);
    for (int k = 0; k < 3; ++k) {
      std::printf(" %8.1f %7.2f %7.2f |", median(wall[k]) * 1e3, median(wall[k]) * 1e6 / dn,
                  median(cpu[k]) * 1e6 / dn);
    }
    std::printf(" %7.0f\n", median(mem));
    std::fflush(stdout);
  }

  if (child > 0) {
    write_all(control[0], "quit\n");
    int status = 0;
    waitpid(child, &status, 0);
    close(control[0]);
    rmdir(path.substr(0, path.rfind('/')).c_str());
  }
  return 0;
}
