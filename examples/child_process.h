// The child processes of the echo demo (the C baseline server and the load
// generator): started with posix_spawn, optionally with stdout read through
// an rkt port, waited for without blocking the OS thread's other green
// threads, and never left behind.
//
// Used from one OS thread only (the demo's): the list of children that
// terminate_children() signals is not locked.
#ifndef RKT_EXAMPLES_CHILD_PROCESS_H_
#define RKT_EXAMPLES_CHILD_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "ports/port.h"

namespace rkt::examples {

class child_process {
 public:
  // Starts argv[0] (a path to an executable) with `argv`. The child gets the
  // default signal dispositions and an empty signal mask, whatever this
  // process blocks or ignores, and this process's stdin and stderr. Its
  // stdout is this process's, or with `capture_stdout` a pipe read by out().
  // Raises exn_fail naming the program and the errno text when it cannot be
  // started.
  child_process(const std::vector<std::string>& argv, bool capture_stdout);
  // A child still running is killed (SIGKILL) and reaped.
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  // The child's stdout; only with capture_stdout.
  const input_port& out() const { return *out_; }

  // The wait status once the child has exited, polling every few
  // milliseconds with rkt::sleep (other green threads run meanwhile);
  // nullopt if it is still running after `patience`.
  std::optional<int> wait_for(absl::Duration patience);

  // Sends SIGTERM, waits up to `patience`, then SIGKILL; returns the wait
  // status.
  int stop(absl::Duration patience);

  const std::string& name() const { return name_; }

 private:
  bool reap(int options);

  std::string name_;
  pid_t pid_ = -1;  // -1 once reaped
  int status_ = 0;
  std::optional<input_port> out_;
};

// Sends SIGTERM to every child_process that has not been reaped yet (a pid
// is forgotten only when reaped, so none can have been reused).
void terminate_children();

// "exit status N" or "killed by signal NAME", for messages.
std::string describe_wait_status(int status);

}  // namespace rkt::examples

#endif  // RKT_EXAMPLES_CHILD_PROCESS_H_
