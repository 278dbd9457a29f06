// result_slot: where a committed event leaves its synchronization result.
//
// One slot belongs to each sync. The event that commits writes the value
// (or an exception to be raised after the commit) while it holds the sync's
// claim; the syncing thread reads it after it has seen the commit. Values of
// up to kInlineSize bytes live inside the slot, so a channel round trip of a
// small value allocates nothing.
#ifndef RKT_EVT_RESULT_SLOT_H_
#define RKT_EVT_RESULT_SLOT_H_

#include <cstddef>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

namespace rkt {

class result_slot {
 public:
  static constexpr std::size_t kInlineSize = 48;

  result_slot() = default;
  result_slot(const result_slot&) = delete;
  result_slot& operator=(const result_slot&) = delete;
  ~result_slot() { reset(); }

  bool has_value() const { return state_ == state::value; }
  bool has_exception() const { return state_ == state::exception; }
  bool empty() const { return state_ == state::empty; }

  // Stores a T (a void result stores nothing but marks the slot full).
  template <class T, class... Args>
  void emplace(Args&&... args) {
    reset();
    if constexpr (!std::is_void_v<T>) {
      if constexpr (fits_inline<T>()) {
        ptr_ = ::new (static_cast<void*>(buf_)) T(std::forward<Args>(args)...);
      } else {
        ptr_ = new T(std::forward<Args>(args)...);
      }
      destroy_ = &destroy_as<T>;
    }
    state_ = state::value;
  }

  // The sync raises `e` once it has finished committing (Racket's deferred
  // error result: a poller that fails still commits, then reports).
  void set_exception(std::exception_ptr e) {
    reset();
    error_ = std::move(e);
    state_ = state::exception;
  }

  // Rethrows a stored exception; no-op otherwise.
  void rethrow_if_exception() {
    if (state_ == state::exception) {
      std::exception_ptr e = std::move(error_);
      reset();
      std::rethrow_exception(e);
    }
  }

  template <class T>
  T& get() {
    return *static_cast<T*>(ptr_);
  }

  // Moves the value out and empties the slot. Requires has_value().
  template <class T>
  T take() {
    if constexpr (std::is_void_v<T>) {
      reset();
    } else {
      T v(std::move(get<T>()));
      reset();
      return v;
    }
  }

  void reset() {
    if (destroy_ != nullptr) {
      destroy_(*this);
      destroy_ = nullptr;
      ptr_ = nullptr;
    }
    if (state_ == state::exception) error_ = nullptr;
    state_ = state::empty;
  }

 private:
  enum class state : unsigned char { empty, value, exception };

  template <class T>
  static constexpr bool fits_inline() {
    return sizeof(T) <= kInlineSize && alignof(T) <= alignof(std::max_align_t) &&
           std::is_nothrow_move_constructible_v<T>;
  }

  template <class T>
  static void destroy_as(result_slot& s) {
    if constexpr (fits_inline<T>()) {
      static_cast<T*>(s.ptr_)->~T();
    } else {
      delete static_cast<T*>(s.ptr_);
    }
  }

  alignas(std::max_align_t) unsigned char buf_[kInlineSize];
  void* ptr_ = nullptr;
  void (*destroy_)(result_slot&) = nullptr;
  std::exception_ptr error_;
  state state_ = state::empty;
};

}  // namespace rkt

#endif  // RKT_EVT_RESULT_SLOT_H_
