// rkt's exceptions, after Racket's exn hierarchy (reference: exceptions.txt):
//
//   exn                      any rkt error
//   └─ exn_fail              a failure
//      ├─ exn_fail_contract  bad arguments or use: closed port, dead thread,
//      │                     invalid path, shut-down custodian
//      ├─ exn_fail_filesystem (errno)  file operations
//      └─ exn_fail_network    (errno)  socket operations
//
// Messages follow Racket's convention: "who: what" followed by indented
// "  field: value" lines. thread_killed, which kill() and custodian shutdown
// deliver, is deliberately not a std::exception, so `catch (const
// std::exception&)` cannot swallow it.
#ifndef RKT_EVT_EXN_H_
#define RKT_EVT_EXN_H_

#include <stdexcept>
#include <string>

namespace rkt {

class exn : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class exn_fail : public exn {
 public:
  using exn::exn;
};

class exn_fail_contract : public exn_fail {
 public:
  using exn_fail::exn_fail;
};

// A system call failed; error_number() is its errno.
class exn_fail_filesystem : public exn_fail {
 public:
  exn_fail_filesystem(const std::string& message, int error)
      : exn_fail(message), errno_(error) {}
  int error_number() const { return errno_; }

 private:
  int errno_;
};

class exn_fail_network : public exn_fail {
 public:
  exn_fail_network(const std::string& message, int error) : exn_fail(message), errno_(error) {}
  int error_number() const { return errno_; }

 private:
  int errno_;
};

// Unwinds a green thread that was killed. Not a std::exception; a handler
// that catches it with `catch (...)` and carries on is killed again at its
// next switch point (sync, yield, sleep).
struct thread_killed final {};

// "<who>: <what>" plus one "\n  errno: N\n  error: <strerror>" tail, the
// shape of Racket's system-error messages.
std::string errno_message(const std::string& who_and_what, int error);

}  // namespace rkt

#endif  // RKT_EVT_EXN_H_
