// make_pipe: two cores over one pipe_state, sharing its mutex and buffer.
// The input end's buffer is the pipe itself, so a peek or a waiting read
// sees the writer's bytes without copying, and pipe_content_length counts
// exactly what is in it.
//
// Room (with a limit): the writer may add bytes while the bytes that are
// neither read nor peeked, size - peeked, are fewer than the limit. Reads
// that wait for more (a line, k bytes) count as having peeked what they
// examined, so a read of more than the limit still completes (Racket).
//
// Invariants (pipe_state::mu): in/out point at the live ends (nullptr once
// destroyed); peeked <= buffer.size(); after in_dirty/out_dirty is set, the
// region's settle serves that end.
#include "ports/pipe.h"

#include <algorithm>

#include "evt/exn.h"
#include "ports/internal/input_core.h"
#include "ports/internal/output_core.h"

namespace rkt {
namespace {

class pipe_input;
class pipe_output;

struct pipe_state {
  explicit pipe_state(std::optional<std::size_t> limit) : limit(limit) {}

  std::mutex mu;
  internal::byte_buffer buffer;
  const std::optional<std::size_t> limit;
  std::size_t peeked = 0;
  bool reader_closed = false;
  bool writer_closed = false;
  pipe_input* in = nullptr;
  pipe_output* out = nullptr;
  bool in_dirty = false;
  bool out_dirty = false;
  bool settling = false;

  std::size_t room() const {
    if (!limit) return SIZE_MAX;
    const std::size_t unpeeked = buffer.size() - peeked;
    return unpeeked >= *limit ? 0 : *limit - unpeeked;
  }
  void settle();
};

class pipe_input final : public internal::input_core {
 public:
  pipe_input(std::shared_ptr<pipe_state> st, std::string name)
      : input_core(std::move(name), st->mu), st_(std::move(st)) {}
  ~pipe_input() override {
    close();
    std::lock_guard<std::mutex> g(st_->mu);
    st_->in = nullptr;
  }

  internal::byte_buffer& buffer() override { return st_->buffer; }
  fill_status fill_locked(int& /*error*/, bool /*fresh*/) override {
    return st_->writer_closed ? fill_status::eof : fill_status::would_block;
  }
  void consumed_locked(std::size_t n) override {
    st_->peeked -= std::min(n, st_->peeked);
    st_->out_dirty = true;
  }
  void examined_locked(std::size_t n) override {
    if (n > st_->peeked) {
      st_->peeked = n;
      st_->out_dirty = true;
    }
  }
  void close_source_locked() override {
    st_->reader_closed = true;
    st_->peeked = 0;
    st_->out_dirty = true;
  }
  void settle_locked() override { st_->settle(); }

  pipe_state& state() const { return *st_; }

 private:
  const std::shared_ptr<pipe_state> st_;
};

class pipe_output final : public internal::output_core {
 public:
  pipe_output(std::shared_ptr<pipe_state> st, std::string name)
      : output_core(std::move(name), st->mu, std::nullopt), st_(std::move(st)) {}
  ~pipe_output() override {
    close_now();
    std::lock_guard<std::mutex> g(st_->mu);
    st_->out = nullptr;
  }

  sink_result sink_write_locked(std::string_view bytes, bool /*fresh*/) override {
    if (st_->reader_closed) return sink_result{bytes.size(), 0};  // nobody will read them
    const std::size_t n = std::min(bytes.size(), st_->room());
    if (n != 0) {
      st_->buffer.append(bytes.substr(0, n));
      st_->in_dirty = true;
    }
    return sink_result{n, 0};
  }
  bool sink_ready_locked(bool /*fresh*/) const override {
    return st_->reader_closed || st_->room() != 0;
  }
  void close_sink_locked() override {
    st_->writer_closed = true;
    st_->in_dirty = true;
  }
  void settle_locked() override { st_->settle(); }

  pipe_state& state() const { return *st_; }

 private:
  const std::shared_ptr<pipe_state> st_;
};

void pipe_state::settle() {
  if (settling) return;  // an outer settle of this region is looping
  settling = true;
  while (in_dirty || out_dirty) {
    if (in_dirty) {
      in_dirty = false;
      if (in != nullptr) in->serve_locked();
    }
    if (out_dirty) {
      out_dirty = false;
      if (out != nullptr) out->serve_locked();
    }
  }
  settling = false;
}

[[noreturn]] void not_a_pipe(const std::string& name) {
  throw exn_fail_contract(
      "pipe-content-length: contract violation\n  expected: pipe port\n  given: #<port:" + name +
      ">");
}

std::size_t content_length(pipe_state& st) {
  std::lock_guard<std::mutex> g(st.mu);
  return st.buffer.size();
}

}  // namespace

std::pair<input_port, output_port> make_pipe(std::optional<std::size_t> limit,
                                             std::string input_name, std::string output_name) {
  if (limit && *limit == 0) {
    throw exn_fail_contract(
        "make-pipe: contract violation\n  expected: exact-positive-integer?\n  given: 0");
  }
  auto st = std::make_shared<pipe_state>(limit);
  auto in = std::make_shared<pipe_input>(st, std::move(input_name));
  auto out = std::make_shared<pipe_output>(st, std::move(output_name));
  st->in = in.get();
  st->out = out.get();
  return {input_port(std::move(in)), output_port(std::move(out))};
}

std::size_t pipe_content_length(const input_port& p) {
  auto* in = dynamic_cast<pipe_input*>(p.core().get());
  if (in == nullptr) not_a_pipe(p.name());
  return content_length(in->state());
}

std::size_t pipe_content_length(const output_port& p) {
  auto* out = dynamic_cast<pipe_output*>(p.core().get());
  if (out == nullptr) not_a_pipe(p.name());
  return content_length(out->state());
}

}  // namespace rkt
