// spawned_child: runs a program as a child process with chosen descriptors
// (parent descriptor -> child descriptor number) and extra environment
// variables, and waits for it with a bound (a pidfd polled with a timeout),
// killing it when the bound passes. A child not waited for is killed and
// reaped at scope exit, so a failing test leaves no process behind.
//
//   rkt::test::spawned_child c({.argv = {"/bin/true"}, .fds = {{devnull, 1}}});
//   std::optional<int> status = c.wait();   // waitpid's status, or nullopt
//   c.send_signal(SIGTERM); c.exited();      // a signal; a check that does not wait
//
// posix_spawn is safe in a multi-threaded test process (no fork of the
// test's threads and locks). Linux only (pidfd_open, 5.3).
#ifndef RKT_TESTS_TESTING_SPAWNED_CHILD_H_
#define RKT_TESTS_TESTING_SPAWNED_CHILD_H_

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/testing/sync_within.h"

extern char** environ;

namespace rkt::test {

struct spawn_spec {
  std::vector<std::string> argv;          // argv[0] is looked up in PATH
  std::vector<std::pair<int, int>> fds;   // {parent fd, child fd}, dup2'ed in order
  std::vector<std::string> env;           // "NAME=value", added or replacing
};

class spawned_child {
 public:
  explicit spawned_child(const spawn_spec& spec) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    for (const auto& [from, to] : spec.fds) posix_spawn_file_actions_adddup2(&actions, from, to);
    std::vector<char*> argv;
    for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry(*e);
      const std::string name = entry.substr(0, entry.find('='));
      bool replaced = false;
      for (const std::string& add : spec.env) {
        if (add.substr(0, add.find('=')) == name) replaced = true;
      }
      if (!replaced) env_strings.push_back(entry);
    }
    for (const std::string& add : spec.env) env_strings.push_back(add);
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int rc = posix_spawnp(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawnp " << spec.argv[0] << ": " << std::strerror(rc);
      pid_ = -1;
      return;
    }
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd_ < 0) ADD_FAILURE() << "pidfd_open: " << std::strerror(errno);
  }
  ~spawned_child() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      int st;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
    }
    if (pidfd_ >= 0) ::close(pidfd_);
  }
  spawned_child(const spawned_child&) = delete;
  spawned_child& operator=(const spawned_child&) = delete;

  bool started() const { return pid_ > 0; }

  // Sends `sig` to the child if it has not been waited for.
  // The child's process id.
  pid_t pid() const { return pid_; }

  void send_signal(int sig) {
    if (pid_ > 0 && !status_) ::kill(pid_, sig);
  }

  // Whether the child has exited, without waiting (it is reaped if so).
  bool exited() {
    if (status_) return true;
    if (pid_ <= 0 || pidfd_ < 0) return false;
    struct pollfd p {pidfd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    int st = 0;
    pid_t got;
    do {
      got = ::waitpid(pid_, &st, WNOHANG);
    } while (got < 0 && errno == EINTR);
    if (got == pid_) status_ = st;
    return status_.has_value();
  }

  // waitpid's status once the child has exited; nullopt, with a test
  // failure, when it has not within `bound` (it is then killed).
  std::optional<int> wait(absl::Duration bound = kHangBound) {
    if (status_ || pid_ <= 0 || pidfd_ < 0) return status_;
    const absl::Time deadline = absl::Now() + bound;
    for (;;) {
      const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (left <= 0) break;
      struct pollfd p {pidfd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left));
      if (r > 0) break;
      if (r < 0 && errno != EINTR) break;
    }
    int st = 0;
    pid_t got;
    do {
      got = ::waitpid(pid_, &st, WNOHANG);
    } while (got < 0 && errno == EINTR);
    if (got == pid_) {
      status_ = st;
    } else {
      ADD_FAILURE() << "the child did not exit within " << bound;
    }
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> status_;
};

// "exited 0", "killed by signal 13", ... for a failure message.
inline std::string describe_status(std::optional<int> st) {
  if (!st) return "still running";
  if (WIFEXITED(*st)) return "exited " + std::to_string(WEXITSTATUS(*st));
  if (WIFSIGNALED(*st)) return "killed by signal " + std::to_string(WTERMSIG(*st));
  return "status " + std::to_string(*st);
}

}  // namespace rkt::test

#endif  // RKT_TESTS_TESTING_SPAWNED_CHILD_H_
