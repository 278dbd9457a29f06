// evt<T>: a typed, copyable handle to a synchronizable event whose
// synchronization result is a T (evt<void> when there is none), and the
// combinators that build events out of events: choice_evt, wrap_evt,
// handle_evt, guard_evt, nack_guard_evt, poll_guard_evt, replace_evt,
// always_evt, never_evt. sync and sync_timeout are in sync.h.
//
// Anything with a `result_type` that converts to evt<result_type> is
// "evt-like" (channels, semaphores, ports, listeners), and every function
// here accepts it where it takes an event. Mixing result types in a choice
// is a compile error; to_any_evt erases the type for heterogeneous choices.
#ifndef RKT_EVT_EVT_H_
#define RKT_EVT_EVT_H_

#include <any>
#include <concepts>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>

#include "evt/evt_impl.h"
#include "evt/internal/nodes.h"

namespace rkt {

template <class T>
class evt;

template <class E>
using evt_result_t = typename std::decay_t<E>::result_type;

// E is evt-like with result type T.
template <class E, class T = evt_result_t<E>>
concept evt_like = std::convertible_to<const std::decay_t<E>&, evt<T>>;

template <class T>
class evt {
 public:
  using result_type = T;

  explicit evt(internal::any_node node) : node_(std::move(node)) {}
  // A base event written for this result type.
  template <class N>
    requires std::derived_from<N, base_evt<T>>
  evt(node_ref<N> node) : node_(std::move(node)) {}  // NOLINT

  const internal::any_node& node() const { return node_; }

 private:
  internal::any_node node_;
};

using any_evt = evt<std::any>;

namespace internal {

// The graph node behind an evt-like value without touching its reference
// count when the value is an evt already.
template <class E>
const evt_node* node_of(const E& e, internal::any_node& keep) {
  if constexpr (requires { e.node(); }) {
    return e.node().get();
  } else {
    keep = evt<evt_result_t<E>>(e).node();
    return keep.get();
  }
}

template <class T>
any_node node_from(const evt<T>& e) {
  return e.node();
}

// Calls f with the value of type U taken from `slot` (no argument for void).
template <class U, class F>
decltype(auto) invoke_on_slot(F& f, result_slot& slot) {
  if constexpr (std::is_void_v<U>) {
    slot.reset();
    return std::invoke(f);
  } else {
    return std::invoke(f, slot.take<U>());
  }
}

// What f returns when called on a U result (with no argument for void).
template <class U, class F>
struct wrap_result {
  using type = std::invoke_result_t<F&, U>;
};
template <class F>
struct wrap_result<void, F> {
  using type = std::invoke_result_t<F&>;
};
template <class U, class F>
using wrap_result_t = typename wrap_result<U, F>::type;

template <class U, class T, class F>
class typed_wrap_node final : public wrap_node {
 public:
  typed_wrap_node(kind k, any_node child, F f) : wrap_node(k, std::move(child)), f_(std::move(f)) {}
  void apply(result_slot& slot) const override {
    if constexpr (std::is_void_v<T>) {
      invoke_on_slot<U>(f_, slot);
      slot.emplace<void>();
    } else {
      T v = invoke_on_slot<U>(f_, slot);
      slot.emplace<T>(std::move(v));
    }
  }

 private:
  mutable F f_;
};

template <class T, class F, evt_node::kind K>
class typed_guard_node final : public guard_node {
 public:
  explicit typed_guard_node(F f) : guard_node(K), f_(std::move(f)) {}
  any_node make(const guard_input& in) const override {
    if constexpr (K == evt_node::kind::nack_guard) {
      return evt<T>(std::invoke(f_, evt<void>(in.nack))).node();
    } else if constexpr (K == evt_node::kind::poll_guard) {
      return evt<T>(std::invoke(f_, in.is_poll)).node();
    } else {
      return evt<T>(std::invoke(f_)).node();
    }
  }

 private:
  mutable F f_;
};

template <class U, class T, class F>
class typed_replace_node final : public replace_node {
 public:
  typed_replace_node(any_node child, F f) : replace_node(std::move(child)), f_(std::move(f)) {}
  any_node make(result_slot& slot) const override {
    return evt<T>(invoke_on_slot<U>(f_, slot)).node();
  }

 private:
  mutable F f_;
};

template <class T>
class always_node final : public base_evt<T> {
 public:
  template <class... A>
  explicit always_node(A&&... a) : value_(std::forward<A>(a)...) {}
  bool try_sync(self_ref& self) override { return self.commit<T>(value_); }
  void arm(waiter& w) override {
    self_ref self(w);
    self.commit<T>(value_);
  }
  void disarm(waiter&) noexcept override {}
  const char* name() const override { return "always-evt"; }

 private:
  const T value_;
};

template <>
class always_node<void> final : public base_evt<void> {
 public:
  bool try_sync(self_ref& self) override { return self.commit<void>(); }
  void arm(waiter& w) override {
    self_ref self(w);
    self.commit<void>();
  }
  void disarm(waiter&) noexcept override {}
  const char* name() const override { return "always-evt"; }
};

template <class T>
class never_node final : public base_evt<T> {
 public:
  bool try_sync(self_ref&) override { return false; }
  void arm(waiter&) override {}
  void disarm(waiter&) noexcept override {}
  const char* name() const override { return "never-evt"; }
};

template <class T, class E>
any_node node_for_choice(const E& e) {
  return evt<T>(e).node();
}

}  // namespace internal

// An event ready when any of `es` is; its result is the chosen one's.
template <class E, class... Es>
  requires(evt_like<E> && (evt_like<Es, evt_result_t<E>> && ...))
evt<evt_result_t<E>> choice_evt(const E& e, const Es&... es) {
  using T = evt_result_t<E>;
  std::vector<internal::any_node> children;
  children.reserve(1 + sizeof...(Es));
  children.push_back(internal::node_for_choice<T>(e));
  (children.push_back(internal::node_for_choice<T>(es)), ...);
  return evt<T>(make_node<internal::choice_node>(std::move(children)));
}

template <class T>
evt<T> choice_evt(const std::vector<evt<T>>& es) {
  std::vector<internal::any_node> children;
  children.reserve(es.size());
  for (const evt<T>& e : es) children.push_back(e.node());
  return evt<T>(make_node<internal::choice_node>(std::move(children)));
}

namespace internal {
// wrap_evt and handle_evt differ only in the node's kind.
template <evt_node::kind K, class E, class F>
auto make_wrap(const E& e, F f) {
  using U = evt_result_t<E>;
  using T = wrap_result_t<U, F>;
  return evt<T>(make_node<typed_wrap_node<U, T, F>>(K, evt<U>(e).node(), std::move(f)));
}
}  // namespace internal

// Ready when `e` is; the result is f(result of e), computed by the syncing
// thread after the commit.
template <class E, class F>
  requires evt_like<E>
auto wrap_evt(const E& e, F f) {
  return internal::make_wrap<evt_node::kind::wrap>(e, std::move(f));
}

// Like wrap_evt, but f runs after sync has finished (in tail position),
// unless the handle event is itself wrapped.
template <class E, class F>
  requires evt_like<E>
auto handle_evt(const E& e, F f) {
  return internal::make_wrap<evt_node::kind::handle>(e, std::move(f));
}

// An event maker: each sync calls maker() at most once and uses its result.
template <class F>
  requires evt_like<std::invoke_result_t<F&>>
auto guard_evt(F maker) {
  using T = evt_result_t<std::invoke_result_t<F&>>;
  return evt<T>(
      make_node<internal::typed_guard_node<T, F, evt_node::kind::guard>>(std::move(maker)));
}

// Like guard_evt; maker receives an event that becomes ready when the event
// it returns is not the one chosen (another won, the sync timed out, or an
// exception or a kill left the sync).
template <class F>
  requires evt_like<std::invoke_result_t<F&, evt<void>>>
auto nack_guard_evt(F maker) {
  using T = evt_result_t<std::invoke_result_t<F&, evt<void>>>;
  return evt<T>(
      make_node<internal::typed_guard_node<T, F, evt_node::kind::nack_guard>>(std::move(maker)));
}

// Like guard_evt; maker is told whether the sync is a poll (sync_timeout
// with a zero timeout).
template <class F>
  requires evt_like<std::invoke_result_t<F&, bool>>
auto poll_guard_evt(F maker) {
  using T = evt_result_t<std::invoke_result_t<F&, bool>>;
  return evt<T>(
      make_node<internal::typed_guard_node<T, F, evt_node::kind::poll_guard>>(std::move(maker)));
}

// When `e` is ready, its result goes to maker, and maker's event takes its
// place in the sync. `e` commits on its own: sync commits to at most one
// event of the rest of the choice and maker's result.
template <class E, class F>
  requires evt_like<E>
auto replace_evt(const E& e, F maker) {
  using U = evt_result_t<E>;
  using T = evt_result_t<internal::wrap_result_t<U, F>>;
  return evt<T>(
      make_node<internal::typed_replace_node<U, T, F>>(evt<U>(e).node(), std::move(maker)));
}

// Always ready; the result is void, or `value`.
evt<void> always_evt();
template <class T>
evt<std::decay_t<T>> always_evt(T&& value) {
  return evt<std::decay_t<T>>(
      make_node<internal::always_node<std::decay_t<T>>>(std::forward<T>(value)));
}

// Never ready.
evt<void> never_evt();
template <class T>
evt<T> never_evt_of() {
  return evt<T>(make_node<internal::never_node<T>>());
}

// The same event with its result as a std::any (empty for void), for
// choices among events of different result types.
template <class E>
  requires evt_like<E>
any_evt to_any_evt(const E& e) {
  using U = evt_result_t<E>;
  if constexpr (std::is_void_v<U>) {
    return wrap_evt(e, [] { return std::any(); });
  } else {
    return wrap_evt(e, [](U v) { return std::any(std::move(v)); });
  }
}

}  // namespace rkt

#endif  // RKT_EVT_EVT_H_
