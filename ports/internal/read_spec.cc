// scan(): Racket's read semantics over a buffer (ports.txt, 13.2 and 13.1.10.3).
#include "ports/internal/read_spec.h"

#include <algorithm>

namespace rkt::internal {
namespace {

read_take at_eof(const read_spec& spec) {
  return read_take{.eof = true, .consume_eof = !spec.peek};
}

// Where the line ends in `data`: the result length and the bytes dropped
// with the separator; nullopt when the separator may still come.
std::optional<read_take> scan_line(line_mode mode, std::string_view data, bool at_end) {
  std::size_t pos = std::string_view::npos;
  std::size_t sep = 1;
  switch (mode) {
    case line_mode::linefeed:
      pos = data.find('\n');
      break;
    case line_mode::return_:
      pos = data.find('\r');
      break;
    case line_mode::return_linefeed:
      pos = data.find("\r\n");
      sep = 2;
      break;
    case line_mode::any_one:
      pos = data.find_first_of("\r\n");
      break;
    case line_mode::any:
      pos = data.find_first_of("\r\n");
      if (pos != std::string_view::npos && data[pos] == '\r') {
        if (pos + 1 < data.size()) {
          if (data[pos + 1] == '\n') sep = 2;
        } else if (!at_end) {
          return std::nullopt;  // a \n may follow and join the \r
        }
      }
      break;
  }
  if (pos != std::string_view::npos) return read_take{.bytes = pos, .consume = pos + sep};
  if (!at_end) return std::nullopt;
  if (data.empty()) return read_take{.eof = true, .consume_eof = true};
  return read_take{.bytes = data.size(), .consume = data.size()};
}

}  // namespace

std::optional<read_take> scan(const read_spec& spec, std::string_view data, bool at_end) {
  const std::size_t skip = std::min(spec.skip, data.size());
  const std::string_view region = data.substr(skip);
  switch (spec.what) {
    case read_spec::op::avail: {
      if (spec.want == 0) return read_take{};
      if (!region.empty()) {
        const std::size_t n = std::min(spec.want, region.size());
        return read_take{.bytes = n, .consume = spec.peek ? 0 : n};
      }
      if (at_end) return at_eof(spec);
      return std::nullopt;
    }
    case read_spec::op::exact: {
      if (spec.want == 0) return read_take{};
      if (region.size() >= spec.want) {
        return read_take{.bytes = spec.want, .consume = spec.peek ? 0 : spec.want};
      }
      if (!at_end) return std::nullopt;
      if (region.empty()) return at_eof(spec);
      // Fewer bytes before EOF: the EOF stays for the next read.
      return read_take{.bytes = region.size(), .consume = spec.peek ? 0 : region.size()};
    }
    case read_spec::op::line:
      return scan_line(spec.mode, data, at_end);
    case read_spec::op::eof:
      if (data.empty() && at_end) return at_eof(spec);
      return std::nullopt;
    case read_spec::op::ready:
      if (!data.empty() || at_end) return read_take{};
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace rkt::internal
