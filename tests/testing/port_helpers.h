// Helpers for the port and socket suites (ports_fd_test, ports_memory_test,
// unix_socket_test, tcp_test): checking what a call raised, running a call
// that may park on a bounded green thread, the two ports of one end of a
// connection, bounded reads of what arrives (and checks that nothing does),
// a large write to a slow reader, deterministic test bytes and their hash, a
// scratch directory under /tmp, and descriptor / socket-file checks.
#ifndef RKT_TESTS_TESTING_PORT_HELPERS_H_
#define RKT_TESTS_TESTING_PORT_HELPERS_H_

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "absl/time/time.h"
#include "evt/exn.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "ports/port.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/sync_within.h"

namespace rkt::test {

// Runs `f`, which must raise E, and returns what it raised; records a
// failure (and returns nullopt) when it raises nothing or something else.
template <class E, class F>
std::optional<E> raised(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected " << typeid(E).name() << ", got " << typeid(e).name() << ": "
                  << e.what();
    return std::nullopt;
  }
  ADD_FAILURE() << "expected " << typeid(E).name() << ", nothing was raised";
  return std::nullopt;
}

// Runs `f` on a new green thread and waits for it, bounded; returns its
// result or rethrows what it raised. For the calls that park (connect,
// accept): a call that hangs fails the test (the thread is killed) instead
// of hanging it.
template <class F>
auto on_green_thread(F f) -> std::invoke_result_t<F&> {
  using R = std::invoke_result_t<F&>;
  if constexpr (std::is_void_v<R>) {
    on_green_thread([&] {
      f();
      return true;
    });
  } else {
    std::optional<R> result;
    std::exception_ptr error;
    {
      scoped_thread t([&] {
        try {
          result.emplace(f());
        } catch (const rkt::thread_killed&) {
          throw;
        } catch (...) {
          error = std::current_exception();
        }
      });
      t.join();
    }
    if (error) std::rethrow_exception(error);
    return std::move(*result);
  }
}

// One end of a connection: its input and output port.
struct conn {
  rkt::input_port in;
  rkt::output_port out;
  conn(rkt::input_port i, rkt::output_port o) : in(std::move(i)), out(std::move(o)) {}
  explicit conn(std::pair<rkt::input_port, rkt::output_port> p)
      : in(std::move(p.first)), out(std::move(p.second)) {}
  void close() const {
    in.close();
    out.close();
  }
};

// The next `n` bytes of `in` (fewer before EOF; "<EOF>" at EOF), bounded.
inline std::string arrives(const rkt::input_port& in, std::size_t n) {
  return sync_within(rkt::read_bytes_evt(n, in)).value_or("<EOF>");
}

// Everything up to EOF, each read bounded.
inline std::string read_to_eof(const rkt::input_port& in) {
  std::string out;
  char buf[4096];
  for (;;) {
    rkt::or_eof<std::size_t> n = sync_within(rkt::read_bytes_avail_evt(buf, in));
    if (!n.has_value()) return out;
    out.append(buf, *n);
  }
}

// Whether `in` is at EOF (consumes a byte if it is not), bounded.
inline bool at_eof(const rkt::input_port& in) {
  return !sync_within(rkt::read_bytes_evt(1, in)).has_value();
}

// Fails if a byte (or EOF) reaches `in` within `quiet`. The scheduler runs
// meanwhile, so a readiness report for bytes sent would be seen. A correct
// port passes however short `quiet` is; only a wrong one on a slow machine
// can slip through.
inline void expect_nothing_arrives(const rkt::input_port& in, absl::Duration quiet) {
  char buf[256];
  std::optional<rkt::or_eof<std::size_t>> n =
      rkt::sync_timeout(quiet, rkt::read_bytes_avail_evt(buf, in));
  if (n.has_value()) {
    ADD_FAILURE() << "arrived: "
                  << (n->has_value() ? "\"" + std::string(buf, **n) + "\"" : std::string("EOF"));
  }
}

// What a slow reader got from one large write (see write_to_slow_reader).
struct slow_transfer {
  std::size_t written = 0;  // what write_bytes returned
  std::size_t reads = 0;    // how many reads it took
  std::string got;          // what was read, up to EOF
};

// The most a slow reader takes in one read.
inline constexpr std::size_t kSlowReadSize = 700;

// Writes `data` to `out` in one write_bytes on a green thread, then closes
// `out`, while another green thread reads `in` until EOF, at most
// kSlowReadSize bytes at a time and yielding after each read.
inline slow_transfer write_to_slow_reader(const rkt::output_port& out, const rkt::input_port& in,
                                          const std::string& data) {
  slow_transfer r;
  r.got.reserve(data.size());
  scoped_thread reader([&] {
    char buf[kSlowReadSize];
    for (;;) {
      rkt::or_eof<std::size_t> n = in.read_bytes_avail(buf);
      if (!n) return;
      EXPECT_GE(*n, 1u);
      r.got.append(buf, *n);
      ++r.reads;
      rkt::yield();
    }
  });
  scoped_thread writer([&] {
    r.written = out.write_bytes(data);
    out.close();
  });
  writer.join();
  reader.join();
  return r;
}

// Deterministic bytes (xorshift) that do not repeat with any short period,
// different for each seed.
inline std::string pattern(std::size_t n, uint32_t seed = 0) {
  std::string s(n, '\0');
  uint32_t x = 2463534242u ^ (seed * 2654435761u);
  if (x == 0) x = 1;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x >> 11);
  }
  return s;
}

// FNV-1a, to compare a long stream with what arrived: fnv1a(all) ==
// fnv1a(rest, fnv1a(first part)).
inline constexpr uint64_t kFnvOffset = 14695981039346656037ull;
inline uint64_t fnv1a(std::string_view bytes, uint64_t h = kFnvOffset) {
  for (char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ull;
  }
  return h;
}

// A directory under /tmp named "<prefix>.XXXXXX", removed with its contents
// (also when a test took away its permissions) at scope exit. The short
// default leaves room for paths of a bounded length (sockaddr_un).
class temp_dir {
 public:
  explicit temp_dir(const std::string& prefix = "rkt_test") {
    std::string tmpl = "/tmp/" + prefix + ".XXXXXX";
    const char* p = mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr) << std::strerror(errno);
    path_ = p != nullptr ? p : "/nonexistent";
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(path_, ec);
    EXPECT_FALSE(std::filesystem::exists(path_)) << path_ << " was not removed";
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // A path in this directory of exactly `n` bytes.
  std::string file_of_length(std::size_t n, char fill = 'p') const {
    EXPECT_GT(n, path_.size() + 1);
    return path_ + "/" + std::string(n - path_.size() - 1, fill);
  }
  // How many entries the directory holds.
  std::size_t entries() const {
    std::size_t n = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(path_, ec);
         !ec && it != std::filesystem::directory_iterator(); ++it) {
      ++n;
    }
    return n;
  }

 private:
  std::string path_;
};

// Whether `fd` is an open descriptor of this process.
inline bool fd_open(int fd) { return fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

// Whether `path` names a socket file (not following a symlink).
inline bool is_socket_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_socket(std::filesystem::symlink_status(path, ec));
}

}  // namespace rkt::test

#endif  // RKT_TESTS_TESTING_PORT_HELPERS_H_
