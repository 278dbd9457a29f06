// Socket costs, each next to a baseline in the same binary.
// Every row is timed in real time (UseRealTime): one baseline runs on two
// OS threads, whose CPU time the main thread's clock would not see.
//
//   BM_PingPong/*   64 bytes there and back over a socketpair(AF_UNIX,
//                   SOCK_STREAM); one iteration = one round trip.
//                   rkt_port: the main green thread writes and flushes
//                   end A's output port, then reads 64 bytes
//                   (read_bytes_into) from A's input port; an echo green
//                   thread on the same OS thread reads 64 bytes from end B
//                   and writes them back. rkt_port_unbuffered: the same with
//                   both output ports in buffer mode none. rkt_one_thread:
//                   one green thread does all four steps (write A, read B,
//                   write B, read A): the ports' and the reactor's cost
//                   without a switch to another green thread.
//                   raw_two_threads: blocking read(2)/write(2), the echo on a
//                   second OS thread (what a hand-written program does).
//                   raw_one_thread: the four steps as blocking syscalls on
//                   one thread, the syscall floor.
//   BM_AcceptUnix/* one iteration = connect + accept + close of both ends,
//                   on a listener bound in a mkdtemp directory. rkt:
//                   unix_socket_connect then unix_socket_accept on the same
//                   green thread (a connect completes once it is queued in
//                   the backlog, so the accept never parks), then the four
//                   ports closed. rkt_server_thread: a server green thread
//                   accepts and closes; the main one connects, reads EOF and
//                   closes. raw: socket/connect/accept4/close, blocking, on
//                   one thread.
//   BM_AcceptTcp/*  the same over 127.0.0.1 (tcp_connect / tcp_accept),
//                   listener on port 0.
//
// TCP and TIME_WAIT: the client sets SO_LINGER {1, 0} (rkt through
// fd_port_descriptor, raw directly) and its descriptor is closed before the
// server's, so the close resets the connection and neither end enters
// TIME_WAIT. Without it, each connection would leave a socket in TIME_WAIT
// for 60 s, hitting tcp_max_tw_buckets (or, when the client closes first,
// exhausting the ~28k ephemeral ports) within seconds at these rates. Ports
// are closed input first, so rkt's close of the output port is the last
// and closes the descriptor without a FIN first (no SHUT_WR): the same
// packets as the raw row.
//
// Every benchmark reports allocs/op (bench/alloc_counter.h), and the accept
// rows items_per_second = connections per second. Each benchmark checks
// that it leaves no descriptor open and no scratch directory behind.
#include <benchmark/benchmark.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "bench/bench_util.h"
#include "evt/exn.h"
#include "evt/thread.h"
#include "ports/fd_port.h"
#include "ports/port.h"
#include "socket/tcp.h"
#include "socket/unix_socket.h"

namespace rkt::bench {
namespace {

using port_pair = std::pair<input_port, output_port>;

constexpr std::size_t kMessage = 64;
constexpr int kBacklog = 16;
// SO_LINGER on, timeout 0: close(2) resets the connection (socket(7)).
constexpr linger kResetOnClose{1, 0};

std::string errno_text(const char* what, int error = errno) {
  return std::string(what) + ": " + std::strerror(error);
}

// Descriptors open in this process; -1 when /proc/self/fd cannot be read.
int open_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

// Counts descriptors on construction; check() skips the benchmark (if not
// already skipped) when the count has changed. For rkt benchmarks, construct
// it after the OS thread's scheduler exists (its reactor holds descriptors
// for the life of the thread).
class fd_leak_check {
 public:
  fd_leak_check() : before_(open_fds()) {}
  void check(benchmark::State& state) const {
    const int after = open_fds();
    if (before_ >= 0 && after != before_ && !state.error_occurred()) {
      const std::string m = "descriptors open before: " + std::to_string(before_) +
                            ", after: " + std::to_string(after);
      state.SkipWithError(m.c_str());
    }
  }

 private:
  int before_;
};

// unix_socket_accept and tcp_accept wait for a descriptor to come free when
// accept(2) says EMFILE instead of failing, which here would hang the
// benchmark: the accept rows need this many descriptors free.
constexpr int kAcceptHeadroom = 8;

// "" when at least kAcceptHeadroom more descriptors can be opened.
std::string check_headroom() {
  rlimit lim{};
  const int open = open_fds();
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || open < 0) return "";
  if (lim.rlim_cur == RLIM_INFINITY ||
      static_cast<rlim_t>(open) + kAcceptHeadroom <= lim.rlim_cur) {
    return "";
  }
  return "RLIMIT_NOFILE " + std::to_string(lim.rlim_cur) + " leaves fewer than " +
         std::to_string(kAcceptHeadroom) + " descriptors free";
}

// Makes the calling OS thread's scheduler (and reactor) if it has none yet.
void start_scheduler() { rkt::yield(); }

// A directory /tmp/rkt_bench.XXXXXX for a listener's socket file; removed
// with its contents by remove() or, failing that, on destruction.
class scratch_dir {
 public:
  scratch_dir() {
    std::string t = "/tmp/rkt_bench.XXXXXX";
    if (::mkdtemp(t.data()) != nullptr) {
      path_ = std::move(t);
    } else {
      error_ = errno_text("mkdtemp");
    }
  }
  ~scratch_dir() { (void)remove(); }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;

  // "" when made, else what went wrong.
  const std::string& error() const { return error_; }
  std::string file(const char* name) const { return path_ + "/" + name; }
  // "" once the directory is gone, else what went wrong.
  std::string remove() {
    if (path_.empty()) return "";
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (ec || std::filesystem::exists(path_)) return "cannot remove " + path_;
    path_.clear();
    return "";
  }

 private:
  std::string path_;
  std::string error_;
};

// Two descriptors, closed on destruction unless set to -1 (handed to ports).
struct fd_pair {
  int fd[2] = {-1, -1};
  ~fd_pair() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
};

// 64 bytes that differ from their neighbours, so a lost or repeated byte
// shows.
std::string make_message() {
  std::string s(kMessage, '\0');
  for (std::size_t i = 0; i < kMessage; ++i) s[i] = static_cast<char>(i * 37 + 11);
  return s;
}

void close_ports(const port_pair& p) {
  p.first.close();
  p.second.close();
}

// ---------------------------------------------------------------------------
// Ping-pong through ports.

// Both ends of a socketpair as ports; nullopt, with the benchmark skipped,
// when the pair cannot be made.
struct socket_ends {
  port_pair a;
  port_pair b;
};
std::optional<socket_ends> open_socket_ends(benchmark::State& state) {
  fd_pair fds;
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.fd) != 0) {
    state.SkipWithError(errno_text("socketpair").c_str());
    return std::nullopt;
  }
  port_pair a = rkt::make_fd_ports(fds.fd[0], "bench-a");
  fds.fd[0] = -1;
  port_pair b = rkt::make_fd_ports(fds.fd[1], "bench-b");
  fds.fd[1] = -1;
  return socket_ends{std::move(a), std::move(b)};
}

// Reads exactly kMessage bytes into `buf`; "" or what went wrong.
std::string read_message(const input_port& in, char* buf) {
  const or_eof<std::size_t> n = in.read_bytes_into(std::span<char>(buf, kMessage));
  if (n == rkt::eof) return "read_bytes_into: unexpected EOF";
  if (*n != kMessage) return "read_bytes_into: short read of " + std::to_string(*n);
  return "";
}

void send_message(const output_port& out, std::string_view msg) {
  out.write_bytes(msg);
  out.flush();
}

void ping_pong_ports(benchmark::State& state, buffer_mode mode) {
  start_scheduler();
  const fd_leak_check fds;
  const std::string msg = make_message();
  try {
    const std::optional<socket_ends> ends = open_socket_ends(state);
    if (!ends) return;
    const port_pair& a = ends->a;
    const port_pair& b = ends->b;
    a.second.set_buffer_mode(mode);
    b.second.set_buffer_mode(mode);
    // Echoes until A's output closes. On any exit it closes end B, so that
    // a main thread waiting for an answer sees EOF instead of hanging.
    std::string echo_error;
    rkt::thread echo([&] {
      try {
        char buf[kMessage];
        for (;;) {
          const or_eof<std::size_t> n = b.first.read_bytes_into(buf);
          if (n == rkt::eof) break;
          if (*n != kMessage) {
            echo_error = "echo: short read of " + std::to_string(*n);
            break;
          }
          send_message(b.second, std::string_view(buf, kMessage));
        }
        close_ports(b);
      } catch (const std::exception& e) {
        if (echo_error.empty()) echo_error = std::string("echo: ") + e.what();
        try {
          close_ports(b);
        } catch (const std::exception&) {
        }
      }
    });
    std::string error;
    char back[kMessage];
    alloc_probe allocs;
    try {
      for (auto _ : state) {
        send_message(a.second, msg);
        error = read_message(a.first, back);
        if (!error.empty()) break;
        if (std::memcmp(back, msg.data(), kMessage) != 0) {
          error = "the echo differs from what was sent";
          break;
        }
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    allocs.report(state);
    a.second.close();
    echo.wait();
    close_ports(a);
    close_ports(b);
    if (!echo_error.empty()) error = echo_error;
    if (!error.empty()) state.SkipWithError(error.c_str());
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
  fds.check(state);
}

void BM_PingPong_rkt_port(benchmark::State& state) {
  ping_pong_ports(state, buffer_mode::block);
}
void BM_PingPong_rkt_port_unbuffered(benchmark::State& state) {
  ping_pong_ports(state, buffer_mode::none);
}

void BM_PingPong_rkt_one_thread(benchmark::State& state) {
  start_scheduler();
  const fd_leak_check fds;
  const std::string msg = make_message();
  try {
    const std::optional<socket_ends> ends = open_socket_ends(state);
    if (!ends) return;
    const port_pair& a = ends->a;
    const port_pair& b = ends->b;
    std::string error;
    char there[kMessage];
    char back[kMessage];
    alloc_probe allocs;
    for (auto _ : state) {
      send_message(a.second, msg);
      error = read_message(b.first, there);
      if (!error.empty()) break;
      send_message(b.second, std::string_view(there, kMessage));
      error = read_message(a.first, back);
      if (!error.empty()) break;
      if (std::memcmp(back, msg.data(), kMessage) != 0) {
        error = "the echo differs from what was sent";
        break;
      }
    }
    allocs.report(state);
    close_ports(a);
    close_ports(b);
    if (!error.empty()) state.SkipWithError(error.c_str());
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
  fds.check(state);
}

// Blocking read(2) of exactly `n` bytes; "" or what went wrong. With
// `eof_first`, an EOF before the first byte is no error: it sets *eof_first.
std::string read_fully(int fd, char* p, std::size_t n, bool* eof_first = nullptr) {
  const std::size_t wanted = n;
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_text("read");
    }
    if (r == 0 && n == wanted && eof_first != nullptr) {
      *eof_first = true;
      return "";
    }
    if (r == 0) return "read: unexpected EOF";
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return "";
}

// Blocking write(2) of all `n` bytes; "" or what went wrong.
std::string write_fully(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::write(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_text("write");
    }
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return "";
}

bool open_blocking_socketpair(benchmark::State& state, fd_pair& p) {
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p.fd) == 0) return true;
  state.SkipWithError(errno_text("socketpair").c_str());
  return false;
}

// The timed loop of the raw rows: `round_trip(back)` sends `msg` and reads
// the echo into `back`, returning "" or what went wrong. Stops at the first
// error or a wrong echo, reports allocations, and returns the error.
template <class RoundTrip>
std::string timed_raw_pingpong(benchmark::State& state, const std::string& msg,
                               RoundTrip&& round_trip) {
  std::string error;
  char back[kMessage];
  alloc_probe allocs;
  for (auto _ : state) {
    error = round_trip(back);
    if (!error.empty()) break;
    if (std::memcmp(back, msg.data(), kMessage) != 0) {
      error = "the echo differs from what was sent";
      break;
    }
  }
  allocs.report(state);
  return error;
}

void BM_PingPong_raw_two_threads(benchmark::State& state) {
  const fd_leak_check fds;
  const std::string msg = make_message();
  {
    fd_pair p;
    if (!open_blocking_socketpair(state, p)) return;
    // Echoes on fd[1] until EOF; on an error it shuts fd[1] down so that
    // the main thread's read returns.
    std::string echo_error;
    std::thread echo([&] {
      char buf[kMessage];
      for (;;) {
        bool eof = false;
        echo_error = read_fully(p.fd[1], buf, kMessage, &eof);
        if (!echo_error.empty()) echo_error = "echo: " + echo_error;
        if (!echo_error.empty() || eof) break;
        echo_error = write_fully(p.fd[1], buf, kMessage);
        if (!echo_error.empty()) break;
      }
      if (!echo_error.empty()) ::shutdown(p.fd[1], SHUT_RDWR);
    });
    std::string error = timed_raw_pingpong(state, msg, [&](char* back) {
      std::string e = write_fully(p.fd[0], msg.data(), kMessage);
      return e.empty() ? read_fully(p.fd[0], back, kMessage) : e;
    });
    ::shutdown(p.fd[0], SHUT_WR);
    echo.join();
    if (!echo_error.empty()) error = echo_error;
    if (!error.empty()) state.SkipWithError(error.c_str());
  }
  fds.check(state);
}

void BM_PingPong_raw_one_thread(benchmark::State& state) {
  const fd_leak_check fds;
  const std::string msg = make_message();
  {
    fd_pair p;
    if (!open_blocking_socketpair(state, p)) return;
    char there[kMessage];
    const std::string error = timed_raw_pingpong(state, msg, [&](char* back) {
      std::string e = write_fully(p.fd[0], msg.data(), kMessage);
      if (e.empty()) e = read_fully(p.fd[1], there, kMessage);
      if (e.empty()) e = write_fully(p.fd[1], there, kMessage);
      return e.empty() ? read_fully(p.fd[0], back, kMessage) : e;
    });
    if (!error.empty()) state.SkipWithError(error.c_str());
  }
  fds.check(state);
}

BENCHMARK(BM_PingPong_rkt_port)->Name("BM_PingPong/rkt_port")->UseRealTime();
BENCHMARK(BM_PingPong_rkt_port_unbuffered)
    ->Name("BM_PingPong/rkt_port_unbuffered")
    ->UseRealTime();
BENCHMARK(BM_PingPong_rkt_one_thread)->Name("BM_PingPong/rkt_one_thread")->UseRealTime();
BENCHMARK(BM_PingPong_raw_two_threads)->Name("BM_PingPong/raw_two_threads")->UseRealTime();
BENCHMARK(BM_PingPong_raw_one_thread)->Name("BM_PingPong/raw_one_thread")->UseRealTime();

// ---------------------------------------------------------------------------
// Accept rate through rkt.

// A Unix-socket listener on a file in its own scratch directory. The
// listener is closed by close_listener() (idempotent); the directory, with
// the socket file that closing leaves, goes with the object.
class unix_endpoint {
 public:
  // Raises as unix_socket_listen does; check dir_error() first.
  unix_endpoint() : path_(dir_.file("l")) {
    if (dir_.error().empty()) listener_.emplace(unix_socket_listen(path_, kBacklog));
  }
  const std::string& dir_error() const { return dir_.error(); }
  port_pair connect() const { return unix_socket_connect(path_); }
  port_pair accept() const { return unix_socket_accept(*listener_); }
  void close_listener() {
    if (listener_) unix_socket_close_listener(*listener_);
  }
  // "" once the scratch directory is removed.
  std::string remove_files() { return dir_.remove(); }

 private:
  scratch_dir dir_;
  std::string path_;
  std::optional<unix_socket_listener> listener_;
};

// A TCP listener on 127.0.0.1, port chosen by the system. Connections it
// makes reset on close (see the file comment).
class tcp_endpoint {
 public:
  tcp_endpoint()
      : listener_(tcp_listen(0, kBacklog, true, "127.0.0.1")),
        port_(tcp_addresses(listener_).local_port) {}
  const std::string& dir_error() const { return no_error_; }
  port_pair connect() const {
    port_pair c = tcp_connect("127.0.0.1", port_);
    if (::setsockopt(fd_port_descriptor(c.second), SOL_SOCKET, SO_LINGER, &kResetOnClose,
                     sizeof kResetOnClose) != 0) {
      const int e = errno;
      close_ports(c);
      throw exn_fail_network(errno_text("setsockopt(SO_LINGER)", e), e);
    }
    return c;
  }
  port_pair accept() const { return tcp_accept(listener_); }
  // tcp_close raises on a closed listener; this does not.
  void close_listener() {
    if (open_) tcp_close(listener_);
    open_ = false;
  }
  std::string remove_files() { return ""; }

 private:
  tcp_listener listener_;
  uint16_t port_;
  bool open_ = true;
  std::string no_error_;
};

// Ends the benchmark: closes the listener, removes its files, reports
// `error` (when nothing was reported yet).
template <class Endpoint>
void finish_endpoint(benchmark::State& state, Endpoint& ep, std::string error) {
  try {
    ep.close_listener();
  } catch (const std::exception& e) {
    if (error.empty()) error = e.what();
  }
  const std::string removed = ep.remove_files();
  if (error.empty()) error = removed;
  if (!error.empty() && !state.error_occurred()) state.SkipWithError(error.c_str());
}

// What both rkt accept benchmarks share: the scheduler, the descriptor
// checks, the endpoint, the allocation and item counts, and the teardown.
// `timed(ep)` runs the timed loop and returns what went wrong, or "".
template <class Endpoint, class Timed>
void accept_bench(benchmark::State& state, Timed&& timed) {
  start_scheduler();
  const fd_leak_check fds;
  if (const std::string e = check_headroom(); !e.empty()) {
    state.SkipWithError(e.c_str());
    return;
  }
  try {
    Endpoint ep;
    if (!ep.dir_error().empty()) {
      state.SkipWithError(ep.dir_error().c_str());
      return;
    }
    alloc_probe allocs;
    std::string error = timed(ep);
    allocs.report(state);
    state.SetItemsProcessed(state.iterations());
    finish_endpoint(state, ep, std::move(error));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
  fds.check(state);
}

// One green thread connects, accepts and closes, client first (input side
// first; see the file comment).
template <class Endpoint>
void BM_Accept_rkt(benchmark::State& state) {
  accept_bench<Endpoint>(state, [&](Endpoint& ep) -> std::string {
    try {
      for (auto _ : state) {
        const port_pair c = ep.connect();
        const port_pair s = ep.accept();
        close_ports(c);
        close_ports(s);
      }
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  });
}

// A server green thread accepts and closes at once; the main green thread
// connects, waits for the server's EOF, and closes.
template <class Endpoint>
void BM_Accept_rkt_server_thread(benchmark::State& state) {
  accept_bench<Endpoint>(state, [&](Endpoint& ep) -> std::string {
    // Accepts until the listener closes. On an error it closes the
    // listener itself, which resets the queued connection the main thread
    // waits on, so that the main thread does not hang.
    bool stopping = false;
    std::string server_error;
    rkt::thread server([&] {
      for (;;) {
        try {
          close_ports(ep.accept());
        } catch (const std::exception& e) {
          if (stopping) return;
          server_error = std::string("server: ") + e.what();
          try {
            ep.close_listener();
          } catch (const std::exception&) {
          }
          return;
        }
      }
    });
    std::string error;
    try {
      for (auto _ : state) {
        const port_pair c = ep.connect();
        const or_eof<uint8_t> b = c.first.read_byte();
        close_ports(c);
        if (b != rkt::eof) {
          error = "read_byte: a byte instead of EOF";
          break;
        }
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    // Closing the listener ends the server's accept; closing it again in
    // the teardown does nothing.
    stopping = true;
    try {
      ep.close_listener();
    } catch (const std::exception& e) {
      if (error.empty()) error = e.what();
    }
    server.wait();
    return server_error.empty() ? error : server_error;
  });
}

// ---------------------------------------------------------------------------
// Accept rate, raw.

// A listening socket and the address to connect to; the descriptor is
// closed, and a socket file removed, on destruction.
struct raw_listener {
  int fd = -1;
  sockaddr_storage addr{};
  socklen_t len = 0;
  bool reset_on_close = false;  // TCP clients set SO_LINGER {1, 0}
  std::optional<scratch_dir> dir;
  ~raw_listener() {
    if (fd >= 0) ::close(fd);
  }
};

// Binds and listens; "" or what went wrong.
std::string listen_on(raw_listener& l) {
  l.fd = ::socket(l.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l.fd < 0) return errno_text("socket");
  if (::bind(l.fd, reinterpret_cast<const sockaddr*>(&l.addr), l.len) != 0) {
    return errno_text("bind");
  }
  if (::listen(l.fd, kBacklog) != 0) return errno_text("listen");
  return "";
}

std::string raw_unix_listener(raw_listener& l) {
  l.dir.emplace();
  if (!l.dir->error().empty()) return l.dir->error();
  const std::string path = l.dir->file("l");
  auto& a = reinterpret_cast<sockaddr_un&>(l.addr);
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) return "socket path too long: " + path;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  l.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return listen_on(l);
}

std::string raw_tcp_listener(raw_listener& l) {
  auto& a = reinterpret_cast<sockaddr_in&>(l.addr);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  l.len = sizeof a;
  l.reset_on_close = true;
  std::string error = listen_on(l);
  if (!error.empty()) return error;
  socklen_t len = sizeof a;
  if (::getsockname(l.fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return errno_text("getsockname");
  }
  return "";
}

// One connection made, accepted and closed (client first); "" or what went
// wrong.
std::string raw_connect_accept_close(const raw_listener& l) {
  const int c = ::socket(l.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0) return errno_text("socket");
  if (l.reset_on_close &&
      ::setsockopt(c, SOL_SOCKET, SO_LINGER, &kResetOnClose, sizeof kResetOnClose) != 0) {
    const int e = errno;
    ::close(c);
    return errno_text("setsockopt(SO_LINGER)", e);
  }
  if (::connect(c, reinterpret_cast<const sockaddr*>(&l.addr), l.len) != 0) {
    const int e = errno;
    ::close(c);
    return errno_text("connect", e);
  }
  const int s = ::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (s < 0) {
    const int e = errno;
    ::close(c);
    return errno_text("accept4", e);
  }
  ::close(c);
  ::close(s);
  return "";
}

template <std::string (*Setup)(raw_listener&)>
void BM_Accept_raw(benchmark::State& state) {
  const fd_leak_check fds;
  {
    raw_listener l;
    std::string error = Setup(l);
    if (error.empty()) {
      alloc_probe allocs;
      for (auto _ : state) {
        error = raw_connect_accept_close(l);
        if (!error.empty()) break;
      }
      allocs.report(state);
      state.SetItemsProcessed(state.iterations());
    }
    if (l.dir && error.empty()) error = l.dir->remove();
    if (!error.empty()) state.SkipWithError(error.c_str());
  }
  fds.check(state);
}

BENCHMARK(BM_Accept_rkt<unix_endpoint>)->Name("BM_AcceptUnix/rkt")->UseRealTime();
BENCHMARK(BM_Accept_rkt_server_thread<unix_endpoint>)
    ->Name("BM_AcceptUnix/rkt_server_thread")
    ->UseRealTime();
BENCHMARK(BM_Accept_raw<raw_unix_listener>)->Name("BM_AcceptUnix/raw")->UseRealTime();
BENCHMARK(BM_Accept_rkt<tcp_endpoint>)->Name("BM_AcceptTcp/rkt")->UseRealTime();
BENCHMARK(BM_Accept_rkt_server_thread<tcp_endpoint>)
    ->Name("BM_AcceptTcp/rkt_server_thread")
    ->UseRealTime();
BENCHMARK(BM_Accept_raw<raw_tcp_listener>)->Name("BM_AcceptTcp/raw")->UseRealTime();

}  // namespace
}  // namespace rkt::bench
