// Port throughput (issue: ports), each next to a baseline run in the same
// binary. Every transfer runs on one OS thread; bytes/s is Google
// Benchmark's bytes_per_second (SetBytesProcessed), lines/s items_per_second.
//
//   BM_Socket/*/C   a socketpair(AF_UNIX, SOCK_STREAM): C = 64 or 65536-byte
//                   writes, 1 MiB (C = 64) or 4 MiB (C = 65536) per
//                   iteration. rkt_port: a writer green thread does
//                   write_bytes of each chunk then one flush, the main green
//                   thread reads with read_bytes_avail into 64 KiB;
//                   rkt_port_unbuffered: the same with the output port in
//                   buffer mode none (a write(2) per chunk, as raw does);
//                   raw: non-blocking write(2) until EAGAIN, then read(2)
//                   into 64 KiB until everything written is read, repeated.
//   BM_OsPipe/*/C   the same over pipe2(O_NONBLOCK), through
//                   make_fd_input_port / make_fd_output_port (which read
//                   and write a pipe with preadv2/pwritev2 RWF_NOWAIT and
//                   block SIGPIPE in the thread around each write, see
//                   ports/fd_port.h). raw_sigpipe_masked: raw with each
//                   write(2) between two pthread_sigmask calls that block
//                   SIGPIPE and restore the mask: what that guard costs.
//   BM_Pipe/rkt_make_pipe/C   the same through rkt::make_pipe(64 KiB): no
//                   raw baseline; compare with the fd rows.
//   BM_ReadLine/*   1 MiB of 64-byte lines read line by line until EOF:
//                   read_line on open_input_bytes against std::string_view
//                   find('\n') splitting (the floor), the same copying each
//                   line into a std::string (what read_line returns), and
//                   std::getline on a std::istringstream. rkt_socket_port:
//                   read_line on a socketpair fd port fed by a writer green
//                   thread, against raw_socket: the raw loop above splitting
//                   into std::strings.
//
// Each benchmark first runs one untimed transfer that checks every byte
// received. Every benchmark reports allocs/op (bench/alloc_counter.h); it
// includes the setup done with the timer paused (1 for std_getline's
// refill, and open_input_bytes's own for rkt_bytes_port).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench/bench_util.h"
#include "evt/thread.h"
#include "ports/bytes_port.h"
#include "ports/fd_port.h"
#include "ports/pipe.h"
#include "ports/port.h"

namespace rkt::bench {
namespace {

constexpr std::size_t kReadBuffer = 64 * 1024;
constexpr std::size_t kPipeLimit = 64 * 1024;

// Bytes moved per iteration for a chunk size: 16384 writes of 64 B, or 64
// of 64 KiB.
std::size_t total_for(std::size_t chunk) { return chunk <= 64 ? (1u << 20) : (4u << 20); }

// A chunk whose bytes differ from their neighbours, so that a lost or
// repeated byte shows.
std::string make_chunk(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 251) % 251);
  return s;
}

// True when bytes [p, p + n) of the received stream, which repeats `chunk`,
// starting at stream offset `pos` are right.
bool matches(std::string_view chunk, std::size_t pos, const char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] != chunk[(pos + i) % chunk.size()]) return false;
  }
  return true;
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Sends total / chunk.size() copies of `chunk` through `out` from a new
// green thread, and reads them from `in` on the calling one with
// read_bytes_avail. Returns "" or what went wrong.
std::string port_transfer(const input_port& in, const output_port& out, std::string_view chunk,
                          std::size_t total, std::span<char> buf, bool verify) {
  std::string writer_error;
  rkt::thread writer([&] {
    try {
      for (std::size_t sent = 0; sent < total; sent += chunk.size()) out.write_bytes(chunk);
      out.flush();
    } catch (const std::exception& e) {
      writer_error = e.what();
    }
  });
  std::string error;
  std::size_t got = 0;
  try {
    while (got < total) {
      or_eof<std::size_t> n = in.read_bytes_avail(buf);
      if (n == rkt::eof) {
        error = "read_bytes_avail: unexpected EOF after " + std::to_string(got) + " bytes";
        break;
      }
      if (*n == 0 || *n > buf.size()) {
        error = "read_bytes_avail returned " + std::to_string(*n);
        break;
      }
      if (verify && !matches(chunk, got, buf.data(), *n)) {
        error = "read_bytes_avail: wrong bytes after " + std::to_string(got) + " bytes";
        break;
      }
      got += *n;
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) writer.kill();  // it may be parked on a full destination
  writer.wait();
  if (!writer_error.empty()) return "writer: " + writer_error;
  return error;
}

// The hand-written single-thread loop: write to non-blocking `wfd` until
// EAGAIN (or done), then read everything written from `rfd`, passing each
// read to consume(const char*, size_t); repeat.
// With `mask_sigpipe`, each write runs with SIGPIPE blocked in the thread.
template <class Consume>
std::string raw_transfer(int wfd, int rfd, std::string_view chunk, std::size_t total,
                         std::span<char> buf, Consume&& consume, bool mask_sigpipe = false) {
  sigset_t sigpipe_set;
  sigemptyset(&sigpipe_set);
  sigaddset(&sigpipe_set, SIGPIPE);
  std::size_t sent = 0;
  std::size_t got = 0;
  while (got < total) {
    while (sent < total) {
      const std::size_t off = sent % chunk.size();
      sigset_t old;
      if (mask_sigpipe) ::pthread_sigmask(SIG_BLOCK, &sigpipe_set, &old);
      const ssize_t n = ::write(wfd, chunk.data() + off, chunk.size() - off);
      if (mask_sigpipe) {
        const int saved = errno;
        ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
        errno = saved;
      }
      if (n < 0) {
        if (errno == EAGAIN) break;
        if (errno == EINTR) continue;
        return errno_text("write");
      }
      sent += static_cast<std::size_t>(n);
    }
    while (got < sent) {
      const ssize_t n = ::read(rfd, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EAGAIN) break;
        if (errno == EINTR) continue;
        return errno_text("read");
      }
      if (n == 0) return "read: unexpected EOF";
      if (!consume(got, buf.data(), static_cast<std::size_t>(n))) {
        return "read: wrong bytes after " + std::to_string(got) + " bytes";
      }
      got += static_cast<std::size_t>(n);
    }
  }
  return "";
}

std::string raw_bytes_transfer(int wfd, int rfd, std::string_view chunk, std::size_t total,
                               std::span<char> buf, bool verify, bool mask_sigpipe = false) {
  return raw_transfer(
      wfd, rfd, chunk, total, buf,
      [&](std::size_t pos, const char* p, std::size_t n) {
        return !verify || matches(chunk, pos, p, n);
      },
      mask_sigpipe);
}

// The check pass, then the timed loop, of a byte-transfer benchmark;
// `transfer(verify)` moves total_for(chunk) bytes.
template <class Transfer>
void run_transfer(benchmark::State& state, std::size_t total, Transfer&& transfer) {
  std::string error = transfer(true);
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  alloc_probe allocs;
  for (auto _ : state) {
    error = transfer(false);
    if (!error.empty()) break;
  }
  allocs.report(state);
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(total));
}

// Two descriptors, closed on destruction unless set to -1 (handed to
// ports).
struct fd_pair {
  int fd[2] = {-1, -1};
  ~fd_pair() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
};

bool open_socketpair(fd_pair& p) {
  return ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p.fd) == 0;
}
bool open_os_pipe(fd_pair& p) { return ::pipe2(p.fd, O_NONBLOCK | O_CLOEXEC) == 0; }

void close_all(std::initializer_list<const input_port*> ins,
               std::initializer_list<const output_port*> outs) {
  for (const output_port* o : outs) o->close();
  for (const input_port* i : ins) i->close();
}

// ---------------------------------------------------------------------------
// Socketpair.

// Both ends of a socketpair as ports, `a` over fd[0] and `b` over fd[1];
// nullopt, with the benchmark skipped, when the pair cannot be made.
struct socket_ports_pair {
  std::pair<input_port, output_port> a;
  std::pair<input_port, output_port> b;
};
std::optional<socket_ports_pair> open_socket_ports(benchmark::State& state) {
  fd_pair fds;
  if (!open_socketpair(fds)) {
    state.SkipWithError(errno_text("socketpair").c_str());
    return std::nullopt;
  }
  std::pair<input_port, output_port> a = rkt::make_fd_ports(fds.fd[0], "bench");
  fds.fd[0] = -1;
  std::pair<input_port, output_port> b = rkt::make_fd_ports(fds.fd[1], "bench");
  fds.fd[1] = -1;
  return socket_ports_pair{std::move(a), std::move(b)};
}

// fd[0] writes, fd[1] reads; each end has both ports, and all four stay open
// until the end.
void socket_ports(benchmark::State& state, buffer_mode mode) {
  const std::size_t chunk_size = static_cast<std::size_t>(state.range(0));
  const std::string chunk = make_chunk(chunk_size);
  const std::size_t total = total_for(chunk_size);
  std::vector<char> buf(kReadBuffer);
  try {
    const std::optional<socket_ports_pair> ends = open_socket_ports(state);
    if (!ends) return;
    const auto& [a_in, a_out] = ends->a;
    const auto& [b_in, b_out] = ends->b;
    a_out.set_buffer_mode(mode);
    run_transfer(state, total, [&](bool verify) {
      return port_transfer(b_in, a_out, chunk, total, buf, verify);
    });
    close_all({&a_in, &b_in}, {&a_out, &b_out});
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void BM_Socket_rkt_port(benchmark::State& state) { socket_ports(state, buffer_mode::block); }
void BM_Socket_rkt_port_unbuffered(benchmark::State& state) {
  socket_ports(state, buffer_mode::none);
}

// The raw baseline: `open` makes the pair, fd[writer] is written and the
// other end read.
void raw_fd_bench(benchmark::State& state, bool (*open)(fd_pair&), const char* what,
                  int writer, bool mask_sigpipe = false) {
  const std::size_t chunk_size = static_cast<std::size_t>(state.range(0));
  const std::string chunk = make_chunk(chunk_size);
  const std::size_t total = total_for(chunk_size);
  std::vector<char> buf(kReadBuffer);
  fd_pair fds;
  if (!open(fds)) {
    state.SkipWithError(errno_text(what).c_str());
    return;
  }
  run_transfer(state, total, [&](bool verify) {
    return raw_bytes_transfer(fds.fd[writer], fds.fd[1 - writer], chunk, total, buf, verify,
                              mask_sigpipe);
  });
}

void BM_Socket_raw(benchmark::State& state) {
  raw_fd_bench(state, open_socketpair, "socketpair", 0);
}

BENCHMARK(BM_Socket_rkt_port)->Name("BM_Socket/rkt_port")->Arg(64)->Arg(65536);
BENCHMARK(BM_Socket_rkt_port_unbuffered)->Name("BM_Socket/rkt_port_unbuffered")->Arg(64);
BENCHMARK(BM_Socket_raw)->Name("BM_Socket/raw")->Arg(64)->Arg(65536);

// ---------------------------------------------------------------------------
// OS pipe.

void os_pipe_ports(benchmark::State& state, buffer_mode mode) {
  const std::size_t chunk_size = static_cast<std::size_t>(state.range(0));
  const std::string chunk = make_chunk(chunk_size);
  const std::size_t total = total_for(chunk_size);
  std::vector<char> buf(kReadBuffer);
  fd_pair fds;
  if (!open_os_pipe(fds)) {
    state.SkipWithError(errno_text("pipe2").c_str());
    return;
  }
  try {
    input_port in = rkt::make_fd_input_port(fds.fd[0], "bench");
    fds.fd[0] = -1;
    output_port out = rkt::make_fd_output_port(fds.fd[1], "bench");
    fds.fd[1] = -1;
    out.set_buffer_mode(mode);
    run_transfer(state, total, [&](bool verify) {
      return port_transfer(in, out, chunk, total, buf, verify);
    });
    close_all({&in}, {&out});
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void BM_OsPipe_rkt_port(benchmark::State& state) { os_pipe_ports(state, buffer_mode::block); }
void BM_OsPipe_rkt_port_unbuffered(benchmark::State& state) {
  os_pipe_ports(state, buffer_mode::none);
}

void BM_OsPipe_raw(benchmark::State& state) { raw_fd_bench(state, open_os_pipe, "pipe2", 1); }
void BM_OsPipe_raw_sigpipe_masked(benchmark::State& state) {
  raw_fd_bench(state, open_os_pipe, "pipe2", 1, /*mask_sigpipe=*/true);
}

BENCHMARK(BM_OsPipe_rkt_port)->Name("BM_OsPipe/rkt_port")->Arg(64)->Arg(65536);
BENCHMARK(BM_OsPipe_rkt_port_unbuffered)->Name("BM_OsPipe/rkt_port_unbuffered")->Arg(64);
BENCHMARK(BM_OsPipe_raw)->Name("BM_OsPipe/raw")->Arg(64)->Arg(65536);
BENCHMARK(BM_OsPipe_raw_sigpipe_masked)
    ->Name("BM_OsPipe/raw_sigpipe_masked")
    ->Arg(64)
    ->Arg(65536);

// ---------------------------------------------------------------------------
// In-memory pipe.

void BM_Pipe_rkt_make_pipe(benchmark::State& state) {
  const std::size_t chunk_size = static_cast<std::size_t>(state.range(0));
  const std::string chunk = make_chunk(chunk_size);
  const std::size_t total = total_for(chunk_size);
  std::vector<char> buf(kReadBuffer);
  try {
    const std::pair<input_port, output_port> pipe = rkt::make_pipe(kPipeLimit);
    const input_port& in = pipe.first;
    const output_port& out = pipe.second;
    run_transfer(state, total, [&](bool verify) {
      return port_transfer(in, out, chunk, total, buf, verify);
    });
    close_all({&in}, {&out});
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

BENCHMARK(BM_Pipe_rkt_make_pipe)->Name("BM_Pipe/rkt_make_pipe")->Arg(64)->Arg(65536);

// ---------------------------------------------------------------------------
// read_line.

constexpr std::size_t kLineLength = 64;  // with its '\n'
constexpr std::size_t kLines = (1u << 20) / kLineLength;

// kLines lines of kLineLength - 1 lowercase letters, each followed by '\n'.
const std::string& line_data() {
  static const std::string data = [] {
    std::string s;
    s.reserve(kLines * kLineLength);
    for (std::size_t i = 0; i < kLines; ++i) {
      for (std::size_t j = 0; j + 1 < kLineLength; ++j) {
        s.push_back(static_cast<char>('a' + (i * 31 + j) % 26));
      }
      s.push_back('\n');
    }
    return s;
  }();
  return data;
}

// True when `line` is line `i` of line_data() without its '\n'.
bool line_ok(std::size_t i, std::string_view line) {
  return i < kLines &&
         line == std::string_view(line_data()).substr(i * kLineLength, kLineLength - 1);
}

void report_lines(benchmark::State& state) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(line_data().size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kLines));
}

// The check pass and timed loop of the read_line benchmarks: read_all(check)
// reads every line of line_data() once, passing each to check(i, line),
// and returns "" or what went wrong.
template <class ReadAll>
void run_lines(benchmark::State& state, ReadAll&& read_all) {
  std::string error = read_all(line_ok);
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  alloc_probe allocs;
  for (auto _ : state) {
    error = read_all([](std::size_t, std::string_view) { return true; });
    if (!error.empty()) break;
  }
  allocs.report(state);
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  report_lines(state);
}

std::string count_error(std::size_t lines) {
  return "got " + std::to_string(lines) + " lines, expected " + std::to_string(kLines);
}

// read_line until EOF on a fresh open_input_bytes port (made, and the old
// one dropped, with the timer paused).
void BM_ReadLine_rkt_bytes_port(benchmark::State& state) {
  const std::string& data = line_data();
  std::optional<input_port> in;
  bool in_loop = false;
  try {
    run_lines(state, [&](auto&& check) -> std::string {
      if (in_loop) state.PauseTiming();
      in.reset();
      in.emplace(rkt::open_input_bytes(data));
      if (in_loop) state.ResumeTiming();
      in_loop = true;
      std::size_t i = 0;
      while (or_eof<std::string> line = in->read_line()) {
        if (!check(i, *line)) return "read_line: wrong line " + std::to_string(i);
        keep(*line);
        ++i;
      }
      return i == kLines ? "" : count_error(i);
    });
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void BM_ReadLine_string_view_split(benchmark::State& state) {
  const std::string& data = line_data();
  run_lines(state, [&](auto&& check) -> std::string {
    std::string_view rest = data;
    std::size_t i = 0;
    while (!rest.empty()) {
      const std::size_t nl = rest.find('\n');
      const std::string_view line = rest.substr(0, nl);
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      if (!check(i, line)) return "wrong line " + std::to_string(i);
      keep(line);
      ++i;
    }
    return i == kLines ? "" : count_error(i);
  });
}

void BM_ReadLine_string_split(benchmark::State& state) {
  const std::string& data = line_data();
  run_lines(state, [&](auto&& check) -> std::string {
    std::string_view rest = data;
    std::size_t i = 0;
    while (!rest.empty()) {
      const std::size_t nl = rest.find('\n');
      const std::string line(rest.substr(0, nl));
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      if (!check(i, line)) return "wrong line " + std::to_string(i);
      keep(line);
      ++i;
    }
    return i == kLines ? "" : count_error(i);
  });
}

// std::getline into one std::string (which keeps its capacity) on a
// std::istringstream refilled with the timer paused.
void BM_ReadLine_std_getline(benchmark::State& state) {
  const std::string& data = line_data();
  std::istringstream ss;
  bool in_loop = false;
  run_lines(state, [&](auto&& check) -> std::string {
    if (in_loop) state.PauseTiming();
    ss.str(data);
    ss.clear();
    if (in_loop) state.ResumeTiming();
    in_loop = true;
    std::string line;
    std::size_t i = 0;
    while (std::getline(ss, line)) {
      if (!check(i, line)) return "wrong line " + std::to_string(i);
      keep(line);
      ++i;
    }
    return i == kLines ? "" : count_error(i);
  });
}

// A writer green thread writes line_data() in one write_bytes and flushes;
// the main green thread reads kLines lines with read_line.
void BM_ReadLine_rkt_socket_port(benchmark::State& state) {
  const std::string& data = line_data();
  try {
    const std::optional<socket_ports_pair> ends = open_socket_ports(state);
    if (!ends) return;
    const auto& [a_in, a_out] = ends->a;
    const auto& [b_in, b_out] = ends->b;
    run_lines(state, [&](auto&& check) -> std::string {
      std::string writer_error;
      rkt::thread writer([&] {
        try {
          a_out.write_bytes(data);
          a_out.flush();
        } catch (const std::exception& e) {
          writer_error = e.what();
        }
      });
      std::string error;
      try {
        for (std::size_t i = 0; i < kLines; ++i) {
          or_eof<std::string> line = b_in.read_line();
          if (line == rkt::eof) {
            error = "read_line: unexpected EOF at line " + std::to_string(i);
            break;
          }
          if (!check(i, *line)) {
            error = "read_line: wrong line " + std::to_string(i);
            break;
          }
          keep(*line);
        }
      } catch (const std::exception& e) {
        error = e.what();
      }
      if (!error.empty()) writer.kill();
      writer.wait();
      if (!writer_error.empty()) return "writer: " + writer_error;
      return error;
    });
    close_all({&a_in, &b_in}, {&a_out, &b_out});
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// The raw loop of BM_Socket/raw writing line_data() and splitting what it
// reads into std::string lines, carrying a partial line between reads.
void BM_ReadLine_raw_socket(benchmark::State& state) {
  const std::string& data = line_data();
  std::vector<char> buf(kReadBuffer);
  fd_pair fds;
  if (!open_socketpair(fds)) {
    state.SkipWithError(errno_text("socketpair").c_str());
    return;
  }
  run_lines(state, [&](auto&& check) -> std::string {
    std::string partial;
    std::size_t i = 0;
    bool ok = true;
    std::string error = raw_transfer(
        fds.fd[0], fds.fd[1], data, data.size(), buf,
        [&](std::size_t, const char* p, std::size_t n) {
          std::string_view rest(p, n);
          for (;;) {
            const std::size_t nl = rest.find('\n');
            if (nl == std::string_view::npos) {
              partial.append(rest);
              return true;
            }
            std::string line;
            if (partial.empty()) {
              line.assign(rest.substr(0, nl));
            } else {
              line = std::move(partial);
              partial.clear();
              line.append(rest.substr(0, nl));
            }
            rest.remove_prefix(nl + 1);
            ok = ok && check(i, line);
            keep(line);
            ++i;
          }
        });
    if (!error.empty()) return error;
    if (!ok) return "wrong line";
    return i == kLines && partial.empty() ? "" : count_error(i);
  });
}

BENCHMARK(BM_ReadLine_rkt_bytes_port)->Name("BM_ReadLine/rkt_bytes_port");
BENCHMARK(BM_ReadLine_string_view_split)->Name("BM_ReadLine/string_view_split");
BENCHMARK(BM_ReadLine_string_split)->Name("BM_ReadLine/string_split");
BENCHMARK(BM_ReadLine_std_getline)->Name("BM_ReadLine/std_getline");
BENCHMARK(BM_ReadLine_rkt_socket_port)->Name("BM_ReadLine/rkt_socket_port");
BENCHMARK(BM_ReadLine_raw_socket)->Name("BM_ReadLine/raw_socket");

}  // namespace
}  // namespace rkt::bench
