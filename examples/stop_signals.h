// The examples' servers stop on SIGINT, SIGTERM and SIGHUP (a closed
// terminal, or a service manager's reload request: these servers have no
// configuration to reload, so they stop as on SIGTERM), delivered through a
// signalfd that a green thread reads (so no handler runs in signal context).
#ifndef RKT_EXAMPLES_STOP_SIGNALS_H_
#define RKT_EXAMPLES_STOP_SIGNALS_H_

namespace rkt::examples {

// Blocks SIGINT, SIGTERM and SIGHUP in the calling OS thread (call it before any
// other OS thread or child process exists, so that every OS thread inherits
// the mask; children get an empty one) and returns a non-blocking,
// close-on-exec signalfd for them; on failure prints "<program>: signalfd:
// <error>" and returns -1.
int block_stop_signals(const char* program);

}  // namespace rkt::examples

#endif  // RKT_EXAMPLES_STOP_SIGNALS_H_
