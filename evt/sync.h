// sync and sync_timeout: wait for any of several events and commit to
// exactly one of them.
//
//   int v = rkt::sync(ch1, ch2);                        // blocks
//   std::optional<int> w = rkt::sync_timeout(absl::Milliseconds(5), ch1);
//   bool ready = rkt::sync_timeout(absl::ZeroDuration(), sema);  // polls
//
// All events passed to one call share a result type. Guards run once per
// sync, ready events are chosen pseudo-randomly, wrap procedures run after
// the commit, handle procedures after sync has finished, and nack events of
// the unchosen become ready also when sync times out or is left by an
// exception or a kill. The algorithm is in sync.cc; the event protocol in
// evt_impl.h.
#ifndef RKT_EVT_SYNC_H_
#define RKT_EVT_SYNC_H_

#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "evt/evt.h"

namespace rkt {

// sync_timeout's result: std::optional<T>, or bool for evt<void>.
template <class T>
using timeout_result_t = std::conditional_t<std::is_void_v<T>, bool, std::optional<T>>;

namespace internal {

// Trailing handle_evt procedures, run after the sync has finished.
using handle_chain = std::vector<node_ref<const wrap_node>>;

enum class sync_mode : uint8_t { block, poll, deadline };

// Synchronizes on the choice of `roots`. Returns false when a poll found
// nothing ready or the deadline passed. On true, `slot` holds the result of
// everything but `handles`, which the caller applies in order. Raises a
// committed event's deferred error, a wrap's or guard's exception, or the
// kill of the calling thread.
bool sync_nodes(const evt_node* const* roots, std::size_t count, sync_mode mode,
                int64_t deadline_ns, result_slot& slot, handle_chain& handles);

void apply_handles(handle_chain& handles, result_slot& slot);

template <class T, class... Es>
bool sync_any(sync_mode mode, int64_t deadline_ns, result_slot& slot, const Es&... es) {
  any_node keep[sizeof...(Es)];
  std::size_t i = 0;
  const evt_node* roots[] = {node_of(es, keep[i++])...};
  handle_chain handles;
  if (!sync_nodes(roots, sizeof...(Es), mode, deadline_ns, slot, handles)) return false;
  if (!handles.empty()) apply_handles(handles, slot);
  return true;
}

// Runs one blocking sync on a base event that lives on the caller's stack
// (no reference is taken on it): the allocation-free path of channel::put,
// semaphore waits, sleep and thread::wait.
template <class T>
T sync_on_stack(evt_impl& e) {
  result_slot slot;
  handle_chain handles;
  const evt_node* root = &e;
  sync_nodes(&root, 1, sync_mode::block, 0, slot, handles);
  return slot.take<T>();
}

template <class T>
timeout_result_t<T> take_timeout_result(bool ok, result_slot& slot) {
  if constexpr (std::is_void_v<T>) {
    slot.reset();
    return ok;
  } else {
    if (!ok) return std::nullopt;
    return slot.take<T>();
  }
}

}  // namespace internal

// Blocks until one of the events is ready, commits to it, and returns its
// result.
template <class E, class... Es>
  requires(evt_like<E> && (evt_like<Es, evt_result_t<E>> && ...))
evt_result_t<E> sync(const E& e, const Es&... es) {
  using T = evt_result_t<E>;
  result_slot slot;
  internal::sync_any<T>(internal::sync_mode::block, 0, slot, e, es...);
  return slot.take<T>();
}

// Like sync, but gives up after `timeout`: std::nullopt (false for void
// events). A zero or negative timeout polls each event once and never
// blocks.
template <class E, class... Es>
  requires(evt_like<E> && (evt_like<Es, evt_result_t<E>> && ...))
timeout_result_t<evt_result_t<E>> sync_timeout(absl::Duration timeout, const E& e,
                                               const Es&... es) {
  using T = evt_result_t<E>;
  result_slot slot;
  bool ok;
  if (timeout <= absl::ZeroDuration()) {
    ok = internal::sync_any<T>(internal::sync_mode::poll, 0, slot, e, es...);
  } else {
    int64_t deadline = timeout == absl::InfiniteDuration()
                           ? INT64_MAX
                           : absl::ToUnixNanos(absl::Now() + timeout);
    ok = internal::sync_any<T>(internal::sync_mode::deadline, deadline, slot, e, es...);
  }
  return internal::take_timeout_result<T>(ok, slot);
}

// Like sync_timeout, with an absolute deadline.
template <class E, class... Es>
  requires(evt_like<E> && (evt_like<Es, evt_result_t<E>> && ...))
timeout_result_t<evt_result_t<E>> sync_deadline(absl::Time deadline, const E& e,
                                                const Es&... es) {
  using T = evt_result_t<E>;
  result_slot slot;
  bool ok = internal::sync_any<T>(internal::sync_mode::deadline, absl::ToUnixNanos(deadline),
                                  slot, e, es...);
  return internal::take_timeout_result<T>(ok, slot);
}

}  // namespace rkt

#endif  // RKT_EVT_SYNC_H_
