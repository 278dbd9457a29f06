// The server side of one connection in the idle-connection test and in
// bench/idle_scaling: one function, so that both measure the same parked
// frame. Not test-only, so that the benchmark shares it.
#ifndef RKT_TESTS_TESTING_IDLE_ECHO_H_
#define RKT_TESTS_TESTING_IDLE_ECHO_H_

#include <span>
#include <string_view>

#include "evt/semaphore.h"
#include "ports/port.h"

namespace rkt::test {

// Echoes what arrives on `in` to `out` until EOF, flushing and posting
// `echoed` after each echo. Between messages it is parked in the read,
// with a 64-byte buffer on its stack.
inline void echo_until_eof(const input_port& in, const output_port& out,
                           const semaphore& echoed) {
  char buf[64];
  for (;;) {
    const or_eof<std::size_t> got = in.read_bytes_avail(std::span<char>(buf));
    if (got == eof) return;
    out.write_bytes(std::string_view(buf, *got));
    out.flush();
    echoed.post();
  }
}

}  // namespace rkt::test

#endif  // RKT_TESTS_TESTING_IDLE_ECHO_H_
