// copy_port: read what is available, write it to each output, repeat.
#include "ports/copy_port.h"

#include <memory>
#include <string_view>

namespace rkt {

void copy_port(const input_port& in, std::span<const output_port> outs) {
  constexpr std::size_t kChunk = 64 * 1024;
  std::unique_ptr<char[]> buf(new char[kChunk]);
  for (;;) {
    or_eof<std::size_t> n = in.read_bytes_avail(std::span<char>(buf.get(), kChunk));
    if (!n) return;
    const std::string_view chunk(buf.get(), *n);
    for (const output_port& out : outs) {
      out.write_bytes(chunk);
      out.flush();
    }
  }
}

void copy_port(const input_port& in, std::initializer_list<output_port> outs) {
  copy_port(in, std::span<const output_port>(outs.begin(), outs.size()));
}

}  // namespace rkt
