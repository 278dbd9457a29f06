// child_process: posix_spawn (not fork: it is what a process with several
// OS threads, and TSan, can rely on), reaping by polling waitpid.
#include "examples/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/time/clock.h"
#include "evt/exn.h"
#include "evt/thread.h"
#include "ports/fd_port.h"

extern char** environ;

namespace rkt::examples {
namespace {

// Children not yet reaped; see terminate_children().
std::vector<pid_t>& live_children() {
  static std::vector<pid_t> pids;
  return pids;
}

}  // namespace

child_process::child_process(const std::vector<std::string>& argv, bool capture_stdout)
    : name_(argv.at(0)) {
  int pipe_fds[2] = {-1, -1};
  if (capture_stdout && pipe2(pipe_fds, O_CLOEXEC) < 0) {
    throw exn_fail(name_ + ": pipe2: " + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 onto 1 clears close-on-exec there; every descriptor this process
  // opens is close-on-exec, so the child inherits only 0, 1 and 2.
  if (capture_stdout) posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const int rc = posix_spawn(&pid_, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (capture_stdout) close(pipe_fds[1]);
  if (rc != 0) {
    pid_ = -1;
    if (capture_stdout) close(pipe_fds[0]);
    throw exn_fail(name_ + ": cannot start: " + std::strerror(rc));
  }
  live_children().push_back(pid_);
  if (capture_stdout) out_ = make_fd_input_port(pipe_fds[0], name_ + " stdout");
}

child_process::~child_process() {
  if (out_) out_->close();
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    reap(0);
  }
}

bool child_process::reap(int options) {
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, options);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;  // WNOHANG, still running
  // r == pid_, or -1 (ECHILD: someone else reaped it; nothing to wait for).
  std::vector<pid_t>& live = live_children();
  live.erase(std::remove(live.begin(), live.end(), pid_), live.end());
  pid_ = -1;
  status_ = r > 0 ? status : 0;
  return true;
}

std::optional<int> child_process::wait_for(absl::Duration patience) {
  const absl::Time deadline = absl::Now() + patience;
  while (!reap(WNOHANG)) {
    if (absl::Now() >= deadline) return std::nullopt;
    rkt::sleep(absl::Milliseconds(2));
  }
  return status_;
}

int child_process::stop(absl::Duration patience) {
  if (pid_ > 0) ::kill(pid_, SIGTERM);
  if (std::optional<int> status = wait_for(patience)) return *status;
  ::kill(pid_, SIGKILL);
  reap(0);
  return status_;
}

void terminate_children() {
  for (pid_t pid : live_children()) ::kill(pid, SIGTERM);
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    if (name != nullptr) return std::string("killed by SIG") + name;
    return "killed by signal " + std::to_string(WTERMSIG(status));
  }
  return "wait status " + std::to_string(status);
}

}  // namespace rkt::examples
