// A program that uses fd ports over the descriptors it inherited, run as a
// child process by ports_inherited_fd_test (with stdout and stderr on
// /dev/null, a file, a pipe or a terminal, under either reactor):
//
//   ports_fd_child log        reads fd 0 to EOF through a port, then writes
//                             "out 0" .. "out 99" and "stdin: N bytes" to
//                             fd 1 (block mode) and "err: <reactor>" and
//                             "err: done" to fd 2 (line mode), and closes
//                             the three ports
//   ports_fd_child echo-line  reads one line from fd 0 and writes
//                             "got: LINE" to fd 1
//
// Exit status: 0 when all went well; 3 when the file status flags of fd 0,
// 1 or 2 changed while it ran (rkt must leave them as it found them); 4
// when an operation raised (the text goes to fd 2 if it can).
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "evt/thread.h"
#include "ports/fd_port.h"
#include "ports/port.h"

namespace {

// The status flags of fds 0-2, or -1 for a closed one.
std::array<int, 3> std_flags() {
  std::array<int, 3> f{};
  for (int fd = 0; fd < 3; ++fd) f[fd] = ::fcntl(fd, F_GETFL);
  return f;
}

int run_log(const std::array<int, 3>& before) {
  rkt::input_port in = rkt::make_fd_input_port(0, "stdin");
  rkt::output_port out = rkt::make_fd_output_port(1, "stdout");
  rkt::output_port err = rkt::make_fd_output_port(2, "stderr");
  err.set_buffer_mode(rkt::buffer_mode::line);
  err.write_bytes(std::string("err: ") + rkt::reactor_name() + "\n");
  std::size_t n = 0;
  char buf[512];
  while (rkt::or_eof<std::size_t> got = in.read_bytes_avail(buf)) n += *got;
  for (int i = 0; i < 100; ++i) out.write_bytes("out " + std::to_string(i) + "\n");
  out.write_bytes("stdin: " + std::to_string(n) + " bytes\n");
  err.write_bytes("err: done\n");
  if (std_flags() != before) return 3;
  in.close();
  out.close();
  err.close();
  return 0;
}

int run_echo_line(const std::array<int, 3>& before) {
  rkt::input_port in = rkt::make_fd_input_port(0, "stdin");
  rkt::output_port out = rkt::make_fd_output_port(1, "stdout");
  rkt::or_eof<std::string> line = in.read_line(rkt::line_mode::any);
  out.write_bytes("got: " + line.value_or("<eof>") + "\n");
  out.flush();
  if (std_flags() != before) return 3;
  out.close();
  in.close();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const std::array<int, 3> before = std_flags();
  int status = 2;
  // A descriptor of our own, so a failure can still be reported once fd 2
  // belongs to a closed port.
  const int report = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
  try {
    if (mode == "log") {
      status = run_log(before);
    } else if (mode == "echo-line") {
      status = run_echo_line(before);
    } else {
      std::fprintf(stderr, "usage: ports_fd_child log|echo-line\n");
      return 2;
    }
  } catch (const std::exception& e) {
    const std::string text = std::string("ports_fd_child: ") + e.what() + "\n";
    if (report >= 0) (void)!::write(report, text.data(), text.size());
    return 4;
  }
  // The ports closed fds 0-2: the parent checks its own copies of their
  // open file descriptions after the exit.
  return status;
}
