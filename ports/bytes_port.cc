// Byte-string ports: an input core whose buffer holds the whole string and
// whose source is already at EOF, and an output core whose sink appends to
// a string and is never full.
#include "ports/bytes_port.h"

#include "evt/exn.h"
#include "ports/internal/input_core.h"
#include "ports/internal/output_core.h"

namespace rkt {
namespace {

class bytes_input final : public internal::input_core {
 public:
  bytes_input(std::string_view bytes, std::string name) : input_core(std::move(name), mu_) {
    buffer_.append(bytes);
  }
  internal::byte_buffer& buffer() override { return buffer_; }
  fill_status fill_locked(int& /*error*/, bool /*fresh*/) override { return fill_status::eof; }

 private:
  std::mutex mu_;  // constructed before use: the base only stores a reference
  internal::byte_buffer buffer_;
};

class bytes_output final : public internal::output_core {
 public:
  explicit bytes_output(std::string name) : output_core(std::move(name), mu_, std::nullopt) {}

  sink_result sink_write_locked(std::string_view bytes, bool /*fresh*/) override {
    bytes_.append(bytes);
    return sink_result{bytes.size(), 0};
  }
  bool sink_ready_locked(bool /*fresh*/) const override { return true; }

  // get_output_bytes; mu held.
  std::string take(bool reset, std::size_t start, std::optional<std::size_t> end) {
    const std::size_t stop = end.value_or(bytes_.size());
    if (start > stop || stop > bytes_.size()) {
      throw exn_fail_contract("get-output-bytes: index range out of range\n  starting index: " +
                              std::to_string(start) + "\n  ending index: " +
                              std::to_string(stop) + "\n  valid range: [0, " +
                              std::to_string(bytes_.size()) + "]");
    }
    std::string out = bytes_.substr(start, stop - start);
    if (reset) bytes_.clear();
    return out;
  }

 private:
  std::mutex mu_;
  std::string bytes_;  // guarded by mu_
};

}  // namespace

input_port open_input_bytes(std::string_view bytes, std::string name) {
  return input_port(std::make_shared<bytes_input>(bytes, std::move(name)));
}

output_port open_output_bytes(std::string name) {
  return output_port(std::make_shared<bytes_output>(std::move(name)));
}

std::string get_output_bytes(const output_port& out, bool reset, std::size_t start,
                             std::optional<std::size_t> end) {
  auto* core = dynamic_cast<bytes_output*>(out.core().get());
  if (core == nullptr) {
    throw exn_fail_contract(
        "get-output-bytes: contract violation\n  expected: (and/c output-port? string-port?)\n  "
        "given: #<output-port:" + out.name() + ">");
  }
  std::lock_guard<std::mutex> g(core->mu());
  return core->take(reset, start, end);
}

}  // namespace rkt
