// Waiting for a forked child, bounded: for tests that must run something in
// a process of its own (a crash, a process exit, a changed resource limit).
// The wait is an event, not a sleep: the child's pidfd (pidfd_open(2))
// turns readable when it exits.
#ifndef RKT_TESTS_TESTING_CHILD_PROCESS_H_
#define RKT_TESTS_TESTING_CHILD_PROCESS_H_

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "absl/time/time.h"

namespace rkt::test {

// Waits up to `bound` for child `pid` to exit and reaps it, storing its
// wait status. On timeout, kills and reaps it and returns false. Uses
// poll(2) directly, so it works on any OS thread, with or without a
// scheduler.
inline bool wait_for_child(pid_t pid, absl::Duration bound, int& status) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  bool exited = true;
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    const int64_t ms = absl::ToInt64Milliseconds(bound);
    int r;
    do {
      r = ::poll(&p, 1, static_cast<int>(ms));
    } while (r < 0 && errno == EINTR);
    exited = r > 0;
    ::close(pidfd);
  }
  if (!exited) ::kill(pid, SIGKILL);
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return exited;
}

}  // namespace rkt::test

#endif  // RKT_TESTS_TESTING_CHILD_PROCESS_H_
