// byte_buffer: a FIFO of bytes kept contiguous, so that scanning for a line
// separator or handing out a prefix is a string_view. Appends go to the
// tail; reads drop from the head; the bytes slide down to the start when
// that makes room. Storage is allocated by the first append and may be
// given back whenever the buffer is empty (release_if_empty). Not
// thread-safe: its owner's lock guards it.
#ifndef RKT_PORTS_INTERNAL_BYTE_BUFFER_H_
#define RKT_PORTS_INTERNAL_BYTE_BUFFER_H_

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace rkt::internal {

class byte_buffer {
 public:
  byte_buffer() = default;
  byte_buffer(const byte_buffer&) = delete;
  byte_buffer& operator=(const byte_buffer&) = delete;

  std::size_t size() const { return tail_ - head_; }
  bool empty() const { return tail_ == head_; }
  std::string_view view() const { return std::string_view(data_.get() + head_, size()); }

  void append(std::string_view bytes) {
    if (bytes.empty()) return;
    std::memcpy(prepare(bytes.size()), bytes.data(), bytes.size());
    tail_ += bytes.size();
  }

  // Room for at least `n` more bytes at the tail: write them at the
  // returned pointer, then commit(k) the k <= n bytes written.
  char* prepare(std::size_t n) {
    if (cap_ - tail_ < n) make_room(n);
    return data_.get() + tail_;
  }
  void commit(std::size_t k) { tail_ += k; }

  // Drops the first n bytes. Requires n <= size().
  void consume(std::size_t n) {
    head_ += n;
    if (head_ == tail_) head_ = tail_ = 0;
  }

  void clear() { head_ = tail_ = 0; }

  // Frees the storage of an empty buffer, so that a port with nothing in
  // flight holds no buffer (an idle connection costs no buffer memory); the
  // next prepare() or append() allocates again. No-op when bytes are held.
  void release_if_empty() {
    if (tail_ != head_ || data_ == nullptr) return;
    data_.reset();
    cap_ = head_ = tail_ = 0;
  }
  std::size_t capacity() const { return cap_; }

 private:
  void make_room(std::size_t n) {
    const std::size_t used = size();
    if (used + n <= cap_ / 2 + cap_ / 4 && head_ != 0) {
      std::memmove(data_.get(), data_.get() + head_, used);  // slide down
    } else {
      std::size_t cap = cap_ < 64 ? 64 : cap_;
      while (cap < used + n) cap *= 2;
      std::unique_ptr<char[]> bigger(new char[cap]);
      if (used != 0) std::memcpy(bigger.get(), data_.get() + head_, used);
      data_ = std::move(bigger);
      cap_ = cap;
    }
    head_ = 0;
    tail_ = used;
  }

  std::unique_ptr<char[]> data_;
  std::size_t cap_ = 0;
  std::size_t head_ = 0;  // data_[head_, tail_) are the bytes
  std::size_t tail_ = 0;
};

}  // namespace rkt::internal

#endif  // RKT_PORTS_INTERNAL_BYTE_BUFFER_H_
