// await_blocked_in_wait(tid): waits, with a bound, until OS thread `tid` of
// this process sleeps in one of the system calls a reactor waits in
// (epoll_wait and its variants, poll, ppoll), as
// /proc/self/task/<tid>/syscall shows (proc(5): the call number while
// blocked, "running" otherwise). Tests use it to know that a thread is idle
// in its reactor before they make the event it should (or should not) see.
// Header-only and free of GoogleTest. Linux only.
#ifndef RKT_TESTS_TESTING_BLOCKED_IN_WAIT_H_
#define RKT_TESTS_TESTING_BLOCKED_IN_WAIT_H_

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace rkt::test {

inline bool is_reactor_wait_syscall(long nr) {
  switch (nr) {
#ifdef SYS_epoll_wait
    case SYS_epoll_wait:
#endif
#ifdef SYS_epoll_pwait2
    case SYS_epoll_pwait2:
#endif
#ifdef SYS_poll
    case SYS_poll:
#endif
    case SYS_epoll_pwait:
    case SYS_ppoll:
      return true;
    default:
      return false;
  }
}

// The calling OS thread's id, for await_blocked_in_wait.
inline pid_t os_thread_id() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// True once `tid` is seen blocked in a reactor wait; false if that is not
// seen within `patience` (or the thread is gone).
inline bool await_blocked_in_wait(pid_t tid,
                                  std::chrono::milliseconds patience = std::chrono::seconds(20)) {
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/syscall";
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(path);
    if (!in.is_open()) return false;
    long nr;
    if (in >> nr && is_reactor_wait_syscall(nr)) return true;
    std::this_thread::yield();
  }
  return false;
}

}  // namespace rkt::test

#endif  // RKT_TESTS_TESTING_BLOCKED_IN_WAIT_H_
