// copy_port (Racket's copy-port): pumps an input port into output ports
// until EOF, without waiting to fill a buffer first.
#ifndef RKT_PORTS_COPY_PORT_H_
#define RKT_PORTS_COPY_PORT_H_

#include <initializer_list>
#include <span>

#include "ports/port.h"

namespace rkt {

// Reads `in` until EOF, writing each chunk completely to every port of
// `outs` in order, and flushing them after each chunk so that a byte read
// is not held back. Returns at EOF (the output ports stay open).
void copy_port(const input_port& in, std::span<const output_port> outs);
void copy_port(const input_port& in, std::initializer_list<output_port> outs);
inline void copy_port(const input_port& in, const output_port& out) { copy_port(in, {out}); }

}  // namespace rkt

#endif  // RKT_PORTS_COPY_PORT_H_
