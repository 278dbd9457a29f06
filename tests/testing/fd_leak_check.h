// fd_leak_check: snapshots the open file descriptors of the process (the
// entries of /proc/self/fd and what each names) and reports, later, the ones
// opened or replaced since, and the ones closed since.
//
//   rkt::test::fd_leak_check fds;
//   ... code under test, which should release what it opens ...
//   EXPECT_THAT(fds.leaked(), IsEmpty()) << fds.describe(fds.leaked());
//
// Header-only and free of GoogleTest, so benchmarks can use it too. Linux only.
// The check cannot tell whose descriptor it sees: construct it, and call
// leaked(), while no other thread is opening or closing descriptors.
#ifndef RKT_TESTS_TESTING_FD_LEAK_CHECK_H_
#define RKT_TESTS_TESTING_FD_LEAK_CHECK_H_

#include <dirent.h>
#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace rkt::test {

class fd_leak_check {
 public:
  fd_leak_check() : before_(snapshot()) {}

  // Descriptors open now that were closed at construction, or that now name
  // another file than then. The name is the /proc/self/fd link ("pipe:[812]",
  // "socket:[97]", a path); anonymous inodes all read alike
  // ("anon_inode:[eventfd]"), so replacing one with another goes unseen.
  std::vector<int> leaked() const {
    std::vector<int> out;
    for (const auto& [fd, target] : snapshot()) {
      auto it = before_.find(fd);
      if (it == before_.end() || it->second != target) out.push_back(fd);
    }
    return out;
  }

  // Descriptors open at construction and closed now: a double close, or a
  // close of a descriptor the code did not own.
  std::vector<int> closed() const {
    const std::map<int, std::string> now = snapshot();
    std::vector<int> out;
    for (const auto& [fd, target] : before_) {
      if (now.find(fd) == now.end()) out.push_back(fd);
    }
    return out;
  }

  // "7 -> pipe:[812]; 9 -> socket:[97]" for a failure message.
  static std::string describe(const std::vector<int>& fds) {
    std::string out;
    for (int fd : fds) {
      if (!out.empty()) out += "; ";
      out += std::to_string(fd) + " -> " + link_target(fd);
    }
    return out;
  }

  // Every open descriptor and what it names, except the one that reads the
  // directory. Aborts if /proc is not mounted: a check that cannot look must
  // not pass.
  static std::map<int, std::string> snapshot() {
    DIR* dir = opendir("/proc/self/fd");
    if (dir == nullptr) {
      std::perror("fd_leak_check: opendir(/proc/self/fd)");
      std::abort();
    }
    const int own_fd = dirfd(dir);
    std::map<int, std::string> out;
    while (const dirent* entry = readdir(dir)) {
      char* end = nullptr;
      const long fd = std::strtol(entry->d_name, &end, 10);
      if (end == entry->d_name || *end != '\0' || fd == own_fd) continue;
      out.emplace(static_cast<int>(fd), link_target(static_cast<int>(fd)));
    }
    closedir(dir);
    return out;
  }

 private:
  static std::string link_target(int fd) {
    char buf[PATH_MAX];
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = readlink(path.c_str(), buf, sizeof buf);
    return n < 0 ? std::string("(closed)") : std::string(buf, static_cast<size_t>(n));
  }

  const std::map<int, std::string> before_;
};

}  // namespace rkt::test

#endif  // RKT_TESTS_TESTING_FD_LEAK_CHECK_H_
