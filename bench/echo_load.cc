// Load generator of the Unix-socket echo benchmark (docs/PERFORMANCE.md);
// bench/echo_compare.sh drives it against each echo server.
//
//   echo_load --path P [--connections C] [--seconds T] [--warmup S]
//             [--size N] [--server-pid PID]
//   echo_load --path P --probe
//
// Opens C connections to the Unix socket P, then runs ping-pong on each:
// send N bytes, wait for all N to come back, record the round trip, repeat.
// Only round trips that end after the S-second warmup count. With
// --server-pid it also reads the server's /proc status: VmRSS before
// connecting and with all connections live, and the CPU it used while
// measured. --probe makes one connection and one round trip, and exits 0
// if the server echoed (the script's readiness check).
//
// One OS thread, one epoll set, no allocation after setup: on a 2-core
// machine the server under test gets the other core, so the client has to
// cost less per round trip than the fastest server. It issues one read and
// one write per round trip (a short read means the socket is drained, as in
// bench/epoll_echo.c) and one clock read per event.
//
// Output: a human-readable report, then one line
//   RESULT conns=.. round_trips=.. rps=.. p50_us=.. p90_us=.. p99_us=..
//          max_us=.. min_conn_rts=.. client_cpu=..
//          [server_cpu=.. rss_before_kib=.. rss_live_kib=.. kib_per_conn=..]
// Exit status: 0 on success, 1 on a failed connection or a bad echo, 2 on a
// usage error.

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

[[noreturn]] void fail(const char* fmt, const char* arg = "",
                       int err = 0) {
  std::fprintf(stderr, "echo_load: ");
  std::fprintf(stderr, fmt, arg);
  if (err != 0) std::fprintf(stderr, ": %s", std::strerror(err));
  std::fprintf(stderr, "\n");
  std::exit(1);
}

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Log-linear histogram of nanoseconds: exact below 128 ns, then 64 buckets
// per power of two, so a reported percentile is within 1/64 (1.6%) above
// the true value. Fixed size; record() never allocates.
class histogram {
 public:
  void record(uint64_t v) {
    ++counts_[index(v)];
    ++total_;
    max_ = std::max(max_, v);
  }
  void clear() { *this = histogram(); }
  uint64_t total() const { return total_; }
  uint64_t max() const { return max_; }

  // The highest value of the bucket holding the q-quantile sample.
  uint64_t quantile(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total_));
    if (rank >= total_) rank = total_ - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen > rank) return std::min(upper(i), max_);
    }
    return max_;
  }

 private:
  static constexpr int kSubBits = 6;  // 64 buckets per power of two
  static constexpr size_t kBuckets = (64 - kSubBits) * (1u << kSubBits) +
                                     (1u << kSubBits);

  // Below 2^(kSubBits+1) the index is the value. Above, with e the top bit,
  // the index is (e - kSubBits) * 64 + (v >> (e - kSubBits)), where the
  // shifted value lies in [64, 128): the ranges of neighbouring powers of
  // two abut.
  static size_t index(uint64_t v) {
    if (v < (uint64_t{2} << kSubBits)) return v;
    int e = 63 - std::countl_zero(v);
    int shift = e - kSubBits;
    return static_cast<size_t>(shift) * (1u << kSubBits) + (v >> shift);
  }
  static uint64_t upper(size_t i) {
    if (i < (size_t{2} << kSubBits)) return i;
    size_t shift = i / (1u << kSubBits) - 1;
    uint64_t m = i % (1u << kSubBits) + (1u << kSubBits);
    return ((m + 1) << shift) - 1;
  }

  uint64_t counts_[kBuckets] = {};
  uint64_t total_ = 0;
  uint64_t max_ = 0;
};

struct options {
  std::string path;
  int connections = 1;
  double seconds = 10;
  double warmup = 2;
  size_t size = 64;
  long server_pid = 0;
  bool probe = false;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: echo_load --path P [--connections C] [--seconds T] "
               "[--warmup S] [--size N] [--server-pid PID]\n"
               "       echo_load --path P --probe\n");
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--probe") {
      o.probe = true;
      continue;
    }
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    char* end = nullptr;
    errno = 0;
    if (a == "--path") {
      o.path = v;
      continue;
    } else if (a == "--connections") {
      o.connections = static_cast<int>(std::strtol(v, &end, 10));
    } else if (a == "--seconds") {
      o.seconds = std::strtod(v, &end);
    } else if (a == "--warmup") {
      o.warmup = std::strtod(v, &end);
    } else if (a == "--size") {
      o.size = std::strtoul(v, &end, 10);
    } else if (a == "--server-pid") {
      o.server_pid = std::strtol(v, &end, 10);
    } else {
      usage();
    }
    if (errno != 0 || end == v || *end != '\0') usage();
  }
  if (o.path.empty() || o.connections < 1 || o.seconds <= 0 ||
      o.warmup < 0 || o.size < 1 || o.size > (1u << 20)) {
    usage();
  }
  return o;
}

// VmRSS of pid in KiB, or -1.
long rss_kib(long pid) {
  char name[64];
  std::snprintf(name, sizeof name, "/proc/%ld/status", pid);
  FILE* f = std::fopen(name, "r");
  if (f == nullptr) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  }
  std::fclose(f);
  return kib;
}

// User plus system CPU seconds of pid, all threads, or -1.
double cpu_seconds(long pid) {
  char name[64];
  std::snprintf(name, sizeof name, "/proc/%ld/stat", pid);
  FILE* f = std::fopen(name, "r");
  if (f == nullptr) return -1;
  char buf[1024];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // The command name may hold spaces; fields resume after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return -1;
  unsigned long utime = 0, stime = 0;
  // Fields 3..13 are skipped; 14 and 15 are utime and stime.
  if (std::sscanf(p + 1,
                  " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                  &utime, &stime) != 2) {
    return -1;
  }
  return static_cast<double>(utime + stime) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](timeval t) { return t.tv_sec + t.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

void raise_nofile(int connections) {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) fail("getrlimit", "", errno);
  rlim_t need = static_cast<rlim_t>(connections) + 16;
  if (rl.rlim_cur >= need) return;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
    std::fprintf(stderr,
                 "echo_load: %d connections need %lu descriptors; the hard "
                 "open-file limit is %lu\n",
                 connections, static_cast<unsigned long>(need),
                 static_cast<unsigned long>(rl.rlim_max));
    std::exit(1);
  }
  rl.rlim_cur = need;
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0) fail("setrlimit", "", errno);
}

// A blocking connect waits while the listener's backlog is full (a
// non-blocking one would fail with EAGAIN on a Unix socket), bounded by
// SO_SNDTIMEO. The socket is made non-blocking afterwards.
int connect_one(const sockaddr_un& addr, int index, int total) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket", "", errno);
  timeval timeout{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  int r;
  do {
    r = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int err = errno;
    std::fprintf(stderr,
                 "echo_load: cannot connect to %s (connection %d of %d): "
                 "%s\n",
                 addr.sun_path, index + 1, total, std::strerror(err));
    std::exit(1);
  }
  timeval none{0, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
  if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) fail("fcntl", "", errno);
  return fd;
}

// Invariant: at most one message per connection is in flight, so the
// bytes read are always a prefix of `pattern` starting at `got`.
struct conn {
  int fd;
  bool want_out;   // EPOLLOUT registered: the write of this message blocked
  uint32_t sent;   // bytes of the current message written
  uint32_t got;    // bytes of its echo read
  int64_t t_sent;  // when its first byte was written
  uint64_t done;   // round trips completed in the measured phase
};

class load {
 public:
  load(const options& o, const std::vector<int>& fds)
      : o_(o), conns_(fds.size()), pattern_(o.size), scratch_(o.size) {
    for (size_t i = 0; i < o.size; ++i) {
      pattern_[i] = static_cast<char>('a' + i % 26);
    }
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) fail("epoll_create1", "", errno);
    for (size_t i = 0; i < fds.size(); ++i) {
      conns_[i] = conn{fds[i], false, 0, 0, 0, 0};
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
      ev.data.ptr = &conns_[i];
      if (epoll_ctl(ep_, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
        fail("epoll_ctl", "", errno);
      }
    }
    events_.resize(std::min<size_t>(fds.size(), 1024));
  }

  // Runs the warmup, then the measured phase; returns its length in ns.
  int64_t run(double* client_cpu, double* server_cpu) {
    int64_t start = now_ns();
    int64_t measure_at = start + static_cast<int64_t>(o_.warmup * 1e9);
    int64_t end_at = measure_at + static_cast<int64_t>(o_.seconds * 1e9);
    for (conn& c : conns_) send_next(c, start);

    bool measuring = false;
    double cpu0 = 0, server_cpu0 = 0;
    int64_t now = start;
    for (;;) {
      if (!measuring && now >= measure_at) {
        measuring = true;
        hist_.clear();
        for (conn& c : conns_) c.done = 0;
        measure_at = now;
        cpu0 = self_cpu_seconds();
        if (o_.server_pid != 0) server_cpu0 = cpu_seconds(o_.server_pid);
      }
      if (now >= end_at) break;
      int64_t next = measuring ? end_at : measure_at;
      int timeout_ms = static_cast<int>((next - now) / 1'000'000) + 1;
      int n = epoll_wait(ep_, events_.data(), static_cast<int>(events_.size()),
                         timeout_ms);
      if (n < 0 && errno != EINTR) fail("epoll_wait", "", errno);
      now = now_ns();
      for (int i = 0; i < n; ++i) {
        conn& c = *static_cast<conn*>(events_[i].data.ptr);
        if (c.sent < o_.size) {
          if (events_[i].events & (EPOLLOUT | EPOLLERR)) write_rest(c);
          continue;
        }
        if (!read_echo(c)) continue;
        hist_.record(static_cast<uint64_t>(now - c.t_sent));
        ++c.done;
        send_next(c, now);
        // One clock read per batch would stretch the last round trips of a
        // large batch; one per completed round trip keeps each send time
        // honest.
        now = now_ns();
      }
    }
    *client_cpu = (self_cpu_seconds() - cpu0) / ((now - measure_at) / 1e9);
    *server_cpu =
        o_.server_pid == 0
            ? -1
            : (cpu_seconds(o_.server_pid) - server_cpu0) /
                  ((now - measure_at) / 1e9);
    return now - measure_at;
  }

  const histogram& hist() const { return hist_; }

  // Round trips of the connection served least in the measured phase: 0
  // means a server starved a connection.
  uint64_t min_done() const {
    uint64_t m = UINT64_MAX;
    for (const conn& c : conns_) m = std::min(m, c.done);
    return m;
  }

 private:
  void send_next(conn& c, int64_t now) {
    c.sent = 0;
    c.got = 0;
    c.t_sent = now;
    write_rest(c);
  }

  void write_rest(conn& c) {
    while (c.sent < o_.size) {
      ssize_t n = write(c.fd, pattern_.data() + c.sent, o_.size - c.sent);
      if (n > 0) {
        c.sent += static_cast<uint32_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && errno == EAGAIN) {
        set_out(c, true);
        return;
      } else {
        fail("write to the server", "", n < 0 ? errno : EPIPE);
      }
    }
    set_out(c, false);
  }

  void set_out(conn& c, bool on) {
    if (c.want_out == on) return;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (on ? uint32_t{EPOLLOUT} : 0u);
    ev.data.ptr = &c;
    if (epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev) < 0) {
      fail("epoll_ctl", "", errno);
    }
    c.want_out = on;
  }

  // Reads what has come back of the current message; true once all of it
  // has. With one message in flight the socket never holds more than the
  // rest of this echo, so one read that is short or completes the echo
  // drains it.
  bool read_echo(conn& c) {
    for (;;) {
      size_t want = o_.size - c.got;
      ssize_t n = read(c.fd, scratch_.data(), want);
      if (n > 0) {
        if (std::memcmp(scratch_.data(), pattern_.data() + c.got,
                        static_cast<size_t>(n)) != 0) {
          fail("the server echoed different bytes than were sent");
        }
        c.got += static_cast<uint32_t>(n);
        if (c.got == o_.size) return true;
        if (static_cast<size_t>(n) < want) return false;
      } else if (n == 0) {
        fail("the server closed a connection");
      } else if (errno == EAGAIN) {
        return false;
      } else if (errno != EINTR) {
        fail("read from the server", "", errno);
      }
    }
  }

  const options& o_;
  std::vector<conn> conns_;
  std::vector<char> pattern_;
  std::vector<char> scratch_;
  std::vector<epoll_event> events_;
  histogram hist_;
  int ep_ = -1;
};

double us(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

int probe(const sockaddr_un& addr) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 1;
  timeval timeout{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
    close(fd);
    return 1;
  }
  const char msg[] = "probe";
  char back[sizeof msg];
  size_t got = 0;
  if (write(fd, msg, sizeof msg) != static_cast<ssize_t>(sizeof msg)) {
    close(fd);
    return 1;
  }
  while (got < sizeof msg) {
    ssize_t n = read(fd, back + got, sizeof msg - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  return got == sizeof msg && std::memcmp(msg, back, got) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  options o = parse(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (o.path.size() >= sizeof addr.sun_path) {
    fail("socket path too long: %s", o.path.c_str());
  }
  std::memcpy(addr.sun_path, o.path.c_str(), o.path.size() + 1);
  if (o.probe) return probe(addr);

  raise_nofile(o.connections);
  long rss_before = o.server_pid != 0 ? rss_kib(o.server_pid) : -1;
  if (o.server_pid != 0 && rss_before < 0) {
    std::fprintf(stderr, "echo_load: no process %ld\n", o.server_pid);
    return 1;
  }

  int64_t t0 = now_ns();
  std::vector<int> fds;
  fds.reserve(static_cast<size_t>(o.connections));
  for (int i = 0; i < o.connections; ++i) {
    fds.push_back(connect_one(addr, i, o.connections));
  }
  std::printf("echo_load: %d connections to %s in %.3f s; %zu-byte "
              "ping-pong, %.1f s warmup, %.1f s measured\n",
              o.connections, o.path.c_str(), (now_ns() - t0) / 1e9, o.size,
              o.warmup, o.seconds);
  std::fflush(stdout);

  // Heap-allocated: the histogram is about 30 KiB.
  auto l = std::make_unique<load>(o, fds);
  double client_cpu = 0, server_cpu = 0;
  int64_t elapsed = l->run(&client_cpu, &server_cpu);
  // Sampled before any connection closes: every one is live and has been
  // echoing for the whole run.
  long rss_live = o.server_pid != 0 ? rss_kib(o.server_pid) : -1;
  for (int fd : fds) close(fd);

  const histogram& h = l->hist();
  double rps = static_cast<double>(h.total()) / (elapsed / 1e9);
  std::printf("connections      %d\n", o.connections);
  std::printf("round trips      %llu\n",
              static_cast<unsigned long long>(h.total()));
  std::printf("round trips/s    %.0f\n", rps);
  std::printf("latency (us)     p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
              us(h.quantile(0.50)), us(h.quantile(0.90)),
              us(h.quantile(0.99)), us(h.max()));
  std::printf("least served     %llu round trips (one connection)\n",
              static_cast<unsigned long long>(l->min_done()));
  std::printf("client cpu       %.2f of one core\n", client_cpu);
  std::string server;
  if (o.server_pid != 0) {
    double per_conn =
        static_cast<double>(rss_live - rss_before) / o.connections;
    std::printf("server cpu       %.2f of one core\n", server_cpu);
    std::printf("server rss       %ld KiB before, %ld KiB live: %.2f KiB "
                "per connection\n",
                rss_before, rss_live, per_conn);
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  " server_cpu=%.2f rss_before_kib=%ld rss_live_kib=%ld "
                  "kib_per_conn=%.2f",
                  server_cpu, rss_before, rss_live, per_conn);
    server = buf;
  }
  std::printf("RESULT conns=%d round_trips=%llu rps=%.0f p50_us=%.1f "
              "p90_us=%.1f p99_us=%.1f max_us=%.1f min_conn_rts=%llu "
              "client_cpu=%.2f%s\n",
              o.connections, static_cast<unsigned long long>(h.total()), rps,
              us(h.quantile(0.50)), us(h.quantile(0.90)),
              us(h.quantile(0.99)), us(h.max()),
              static_cast<unsigned long long>(l->min_done()), client_cpu,
              server.c_str());
  return h.total() > 0 ? 0 : 1;
}
