// bind_socket_file: a plain bind, or a bind under a temporary name that is
// chmod-ed, made to listen and renamed into place (replacing a stale file
// when asked); remove_socket_file_if_same for unlink_on_close.
#include "socket/internal/socket_file.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2, RENAME_NOREPLACE, RENAME_EXCHANGE (glibc >= 2.28)
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "absl/time/clock.h"
#include "evt/exn.h"
#include "socket/internal/owned_fd.h"
#include "socket/internal/path_text.h"

namespace rkt::internal {
namespace {

constexpr std::size_t kMaxPath = sizeof(sockaddr_un::sun_path);

// Tries with a fresh temporary name when one is taken (EADDRINUSE), and
// rounds of the stale check when the path changes under it.
constexpr int kAttempts = 8;

[[noreturn]] void raise_file_error(const char* who, const std::string& what,
                                   const unix_socket_path& path, int error) {
  throw exn_fail_network(errno_message(std::string(who) + ": " + what + "\n  path: " +
                                           describe_unix_socket_path(path),
                                       error),
                         error);
}

bool address_of(const std::string& name, sockaddr_un& addr, socklen_t& len) {
  if (name.size() > kMaxPath) return false;
  addr = sockaddr_un{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, name.data(), name.size());
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  return true;
}

// A name no other listen picks: the pid, a per-process counter and a
// number drawn once per process.
std::string temporary_base() {
  static const uint64_t run = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
           static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  }();
  static std::atomic<uint64_t> counter{0};
  const uint64_t n = run ^ (static_cast<uint64_t>(::getpid()) << 40) ^
                     (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull);
  char buf[32];
  std::snprintf(buf, sizeof buf, ".rkt-%016llx", static_cast<unsigned long long>(n));
  return buf;
}

bool same_file(const struct stat& st, socket_file_id id) {
  return st.st_dev == id.dev && st.st_ino == id.ino;
}

// The temporary file, unlinked at scope exit unless it was renamed away.
class temporary_file {
 public:
  temporary_file(int dirfd, std::string base) : dirfd_(dirfd), base_(std::move(base)) {}
  temporary_file(const temporary_file&) = delete;
  temporary_file& operator=(const temporary_file&) = delete;
  ~temporary_file() {
    if (!base_.empty()) ::unlinkat(dirfd_, base_.c_str(), 0);
  }
  const std::string& base() const { return base_; }
  void placed() { base_.clear(); }

 private:
  const int dirfd_;
  std::string base_;
};

// What a connect to a socket file found.
enum class probe { listening, refused, gone, unknown };

probe probe_listener(const std::string& name, int& error) {
  sockaddr_un addr;
  socklen_t len;
  if (!address_of(name, addr, len)) return probe::unknown;
  owned_fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (s.get() < 0) {
    error = errno;
    return probe::unknown;
  }
  int r;
  do {
    r = ::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), len);
  } while (r != 0 && errno == EINTR);
  if (r == 0 || errno == EAGAIN) return probe::listening;  // EAGAIN: its backlog is full
  error = errno;
  if (error == ECONNREFUSED) return probe::refused;
  if (error == ENOENT) return probe::gone;
  return probe::unknown;
}

// Puts the listening socket at dir/tmp into place at dir/base, never over
// an existing file; with replace_stale, over a stale socket file only.
void place(int dirfd, temporary_file& tmp, const std::string& base, const std::string& name,
           const unix_socket_path& path, bool replace_stale, const char* who) {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (::renameat2(dirfd, tmp.base().c_str(), dirfd, base.c_str(), RENAME_NOREPLACE) == 0) {
      tmp.placed();
      return;
    }
    int e = errno;
    if (e == EINVAL || e == ENOSYS) {
      // A filesystem without RENAME_NOREPLACE: link(2) also refuses an
      // existing name (EEXIST), and the temporary name then goes.
      if (::linkat(dirfd, tmp.base().c_str(), dirfd, base.c_str(), 0) == 0) return;
      e = errno;
    }
    if (e != EEXIST) raise_file_error(who, "failed to bind socket", path, e);
    if (!replace_stale) raise_file_error(who, "failed to bind socket", path, EADDRINUSE);

    struct stat old;
    if (::fstatat(dirfd, base.c_str(), &old, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone: retry
    if (!S_ISSOCK(old.st_mode)) {
      raise_file_error(who, "failed to bind socket: the path exists and is not a socket", path,
                       EADDRINUSE);
    }
    int probe_error = 0;
    switch (probe_listener(name, probe_error)) {
      case probe::listening:
        raise_file_error(who, "failed to bind socket: a listener answers on the socket file",
                         path, EADDRINUSE);
      case probe::gone:
        continue;
      case probe::unknown:
        raise_file_error(who,
                         std::string("failed to bind socket: cannot tell whether the socket "
                                     "file is stale (connect: ") +
                             std::strerror(probe_error) + ")",
                         path, EADDRINUSE);
      case probe::refused:
        break;
    }
    // Stale. Swap the new socket in; the old file, now under the temporary
    // name, is removed only if it is the one found refusing. If another
    // process replaced it in between, swap back and report the path in use.
    const socket_file_id stale{old.st_dev, old.st_ino};
    if (::renameat2(dirfd, tmp.base().c_str(), dirfd, base.c_str(), RENAME_EXCHANGE) != 0) {
      e = errno;
      if (e != EINVAL && e != ENOSYS) raise_file_error(who, "failed to bind socket", path, e);
      // No RENAME_EXCHANGE here: unlink the checked file, then place again.
      struct stat again;
      if (::fstatat(dirfd, base.c_str(), &again, AT_SYMLINK_NOFOLLOW) == 0 &&
          same_file(again, stale)) {
        ::unlinkat(dirfd, base.c_str(), 0);
      }
      continue;
    }
    struct stat swapped;
    if (::fstatat(dirfd, tmp.base().c_str(), &swapped, AT_SYMLINK_NOFOLLOW) == 0 &&
        same_file(swapped, stale)) {
      return;  // the temporary name now holds the stale file: its guard unlinks it
    }
    ::renameat2(dirfd, tmp.base().c_str(), dirfd, base.c_str(), RENAME_EXCHANGE);
    raise_file_error(who, "failed to bind socket: the socket file changed while it was replaced",
                     path, EADDRINUSE);
  }
  raise_file_error(who, "failed to bind socket: the socket file keeps changing", path,
                   EADDRINUSE);
}

}  // namespace

socket_file_id bind_socket_file(int fd, const std::string& name, const unix_socket_path& path,
                                int backlog, const unix_socket_listen_options& options,
                                const char* who) {
  sockaddr_un addr;
  socklen_t len = 0;
  if (!address_of(name, addr, len)) {  // the callers check; kept for safety
    raise_file_error(who, "failed to bind socket", path, ENAMETOOLONG);
  }
  socket_file_id id;
  const std::size_t slash = name.rfind('/');
  const std::string base = name.substr(slash + 1);
  if ((!options.mode && !options.replace_stale) || base.empty()) {
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
      raise_file_error(who, "failed to bind socket", path, errno);
    }
    if (::listen(fd, backlog) != 0) raise_file_error(who, "failed to listen", path, errno);
    struct stat st;
    if (::lstat(name.c_str(), &st) == 0) id = {st.st_dev, st.st_ino};
    return id;
  }

  const std::string dir = slash == 0 ? "/" : name.substr(0, slash);
  owned_fd dirfd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (dirfd.get() < 0) raise_file_error(who, "failed to bind socket", path, errno);

  // Bind under a temporary name in the same directory (so that rename can
  // move it), reached through /proc/self/fd when dir + name is too long.
  std::optional<temporary_file> tmp;
  for (int attempt = 0; !tmp; ++attempt) {
    const std::string tmp_base = temporary_base();
    std::string tmp_name = dir + (dir == "/" ? "" : "/") + tmp_base;
    if (tmp_name.size() > kMaxPath) {
      tmp_name = "/proc/self/fd/" + std::to_string(dirfd.get()) + "/" + tmp_base;
    }
    sockaddr_un tmp_addr;
    socklen_t tmp_len = 0;
    if (!address_of(tmp_name, tmp_addr, tmp_len)) {
      raise_file_error(who, "failed to bind socket", path, ENAMETOOLONG);
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&tmp_addr), tmp_len) == 0) {
      tmp.emplace(dirfd.get(), tmp_base);
    } else if (errno != EADDRINUSE || attempt + 1 == kAttempts) {
      raise_file_error(who, "failed to bind socket", path, errno);
    }
  }
  struct stat st;
  if (::fstatat(dirfd.get(), tmp->base().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    raise_file_error(who, "failed to bind socket", path, errno);
  }
  id = {st.st_dev, st.st_ino};
  // Not listening yet: a connect through the temporary name is refused
  // until the mode is in place.
  if (options.mode && ::fchmodat(dirfd.get(), tmp->base().c_str(), *options.mode, 0) != 0) {
    raise_file_error(who, "failed to set the socket file's mode", path, errno);
  }
  if (::listen(fd, backlog) != 0) raise_file_error(who, "failed to listen", path, errno);
  place(dirfd.get(), *tmp, base, name, path, options.replace_stale, who);
  return id;
}

void remove_socket_file_if_same(const std::string& name, socket_file_id id) noexcept {
  struct stat st;
  if (::lstat(name.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && same_file(st, id)) {
    ::unlink(name.c_str());
  }
}

}  // namespace rkt::internal
