// errno_message: Racket-shaped messages for system errors; see exn.h.
#include "evt/exn.h"

#include <string.h>

namespace rkt {

std::string errno_message(const std::string& who_and_what, int error) {
  char buf[256];
  // GNU strerror_r returns the message, possibly not in buf.
  const char* text = strerror_r(error, buf, sizeof buf);
  std::string m = who_and_what;
  m += "\n  errno: ";
  m += std::to_string(error);
  m += "\n  error: ";
  m += text;
  return m;
}

}  // namespace rkt
