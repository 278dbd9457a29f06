// block_stop_signals: the signal mask and signalfd shared by the examples.
#include "examples/stop_signals.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>

#include <cstdio>
#include <cstring>

namespace rkt::examples {

int block_stop_signals(const char* program) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  const int fd = signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) std::fprintf(stderr, "%s: signalfd: %s\n", program, std::strerror(errno));
  return fd;
}

}  // namespace rkt::examples
