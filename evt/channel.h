// channel<T>: Racket's synchronous channel. A put and a get meet, and the
// value passes from one thread to the other in a single commit that involves
// both syncs, so a value is never lost or duplicated even when either side
// is one event in a choice that might commit elsewhere. Works across OS
// threads.
//
//   rkt::channel<int> ch;
//   rkt::thread t([&] { ch.put(42); });
//   int v = ch.get();                       // or rkt::sync(ch)
//   rkt::sync(ch.put_evt(7), other_evt);    // a put inside a choice
//
// The channel is itself the event for receiving; put_evt(v) is the event
// for sending (result void). Values are copied from a put_evt at commit;
// put(v) moves its value.
//
// Invariants (channel_state, under mu_):
//   - getters_ and putters_ hold the waiters of armed syncs; a waiter's
//     `data` is its put event (putters_) so the value can be read.
//   - has_getters_/has_putters_ equal !getters_.empty()/!putters_.empty()
//     whenever mu_ is free.
//   - A get and a put of the same sync never match each other.
#ifndef RKT_EVT_CHANNEL_H_
#define RKT_EVT_CHANNEL_H_

#include <atomic>
#include <optional>
#include <type_traits>
#include <utility>

#include "evt/evt.h"
#include "evt/sync.h"

namespace rkt {
namespace internal {

template <class T>
class channel_put_evt;

// Matches `self` against the waiters in `partners`, in FIFO order. On a
// match, removes the partner from the list and calls commit(partner) with
// both syncs claimed; commit must complete both. Returns true when `self`
// committed; false when no partner could be had or self was committed
// elsewhere. Requires: the channel's lock held.
template <class Commit>
bool rendezvous(self_ref& self, waiter_list& partners, Commit&& commit) {
  waiter* w = partners.front();
  while (w != nullptr) {
    waiter* next = w->next;
    if (w->op != &self.op()) {
      switch (claim_pair(self, *w)) {
        case pair_claim::ok:
          partners.remove(w);
          commit(*w);
          return true;
        case pair_claim::self_done:
          return false;
        case pair_claim::partner_done:
          partners.remove(w);  // its sync committed elsewhere
          break;
      }
    }
    w = next;
  }
  return false;
}

template <class T>
class channel_state final : public base_evt<T> {
 public:
  // The get side. A poll that finds no putter queued returns without the
  // lock; it is then ordered before any putter still arming, and a blocking
  // sync re-checks under the lock when it arms.
  bool try_sync(self_ref& self) override {
    if (!has_putters_.load(std::memory_order_acquire)) return false;
    locked g(*this);
    return take_from_putter(self);
  }
  void arm(waiter& w) override {
    locked g(*this);
    self_ref self(w);
    if (!take_from_putter(self) && !w.op->synced()) getters_.push_back(&w);
  }
  void disarm(waiter& w) noexcept override {
    locked g(*this);
    getters_.remove(&w);
  }
  const char* name() const override { return "channel"; }

 private:
  friend class channel_put_evt<T>;

  // Requires: mu_ held.
  bool take_from_putter(self_ref& self) {
    return rendezvous(self, putters_, [&](waiter& putter) {
      auto* put = static_cast<channel_put_evt<T>*>(putter.data);
      self.template complete<T>(put->hand_over());
      complete_waiter_with<void>(putter);
    });
  }

  // Requires: mu_ held.
  bool give_to_getter(self_ref& self, channel_put_evt<T>& put) {
    return rendezvous(self, getters_, [&](waiter& getter) {
      complete_waiter(getter, [&](result_slot& s) { s.emplace<T>(put.hand_over()); });
      self.complete<void>();
    });
  }

  // Holds mu_ and, on the way out, publishes whether each queue is empty
  // for the lock-free polls.
  class locked {
   public:
    explicit locked(channel_state& ch) : ch_(ch) { ch_.mu_.lock(); }
    ~locked() {
      ch_.has_getters_.store(!ch_.getters_.empty(), std::memory_order_release);
      ch_.has_putters_.store(!ch_.putters_.empty(), std::memory_order_release);
      ch_.mu_.unlock();
    }
    locked(const locked&) = delete;
    locked& operator=(const locked&) = delete;

   private:
    channel_state& ch_;
  };

  spinlock mu_;
  waiter_list getters_;  // guarded by mu_
  waiter_list putters_;  // guarded by mu_
  // Mirrors of !getters_.empty() and !putters_.empty(), written under mu_.
  std::atomic<bool> has_getters_{false};
  std::atomic<bool> has_putters_{false};
};

template <class T>
class channel_put_evt final : public base_evt<void> {
 public:
  // A reusable event (put_evt): each commit copies the value.
  channel_put_evt(node_ref<channel_state<T>> ch, T value)
      : ch_(ch.get()), keep_(std::move(ch)), value_(std::move(value)), moves_(false) {}
  // A one-shot put (channel::put) that lives on the putting thread's stack
  // and moves its value at the commit.
  channel_put_evt(channel_state<T>* ch, T&& value, bool)
      : ch_(ch), value_(std::move(value)), moves_(true) {}

  bool try_sync(self_ref& self) override {
    if (!ch_->has_getters_.load(std::memory_order_acquire)) return false;
    typename channel_state<T>::locked g(*ch_);
    return ch_->give_to_getter(self, *this);
  }
  void arm(waiter& w) override {
    w.data = this;
    typename channel_state<T>::locked g(*ch_);
    self_ref self(w);
    if (!ch_->give_to_getter(self, *this) && !w.op->synced()) ch_->putters_.push_back(&w);
  }
  void disarm(waiter& w) noexcept override {
    typename channel_state<T>::locked g(*ch_);
    ch_->putters_.remove(&w);
  }
  const char* name() const override { return "channel-put-evt"; }

  // The value for the getter. Requires: the channel's lock and a claim.
  T hand_over() {
    if constexpr (std::is_copy_constructible_v<T>) {
      if (!moves_) return value_;
    }
    return std::move(value_);
  }

 private:
  channel_state<T>* const ch_;
  const node_ref<channel_state<T>> keep_;
  T value_;
  const bool moves_;
};

}  // namespace internal

template <class T>
class channel {
 public:
  using result_type = T;

  channel() : st_(make_node<internal::channel_state<T>>()) {}

  // Blocks until a putter hands over a value.
  T get() const { return sync(*this); }
  // A value if a putter is ready now, else std::nullopt (never blocks).
  std::optional<T> try_get() const { return sync_timeout(absl::ZeroDuration(), *this); }
  // Blocks until a getter takes `v`.
  void put(T v) const {
    internal::channel_put_evt<T> e(st_.get(), std::move(v), true);
    internal::sync_on_stack<void>(e);
  }
  // An event ready when a getter is; committing it hands a copy of `v`
  // over (each time the event is synced).
  evt<void> put_evt(T v) const
    requires std::is_copy_constructible_v<T>
  {
    return evt<void>(make_node<internal::channel_put_evt<T>>(st_, std::move(v)));
  }

  operator evt<T>() const { return evt<T>(st_); }  // NOLINT: a channel is an event
  const node_ref<internal::channel_state<T>>& node() const { return st_; }

  bool operator==(const channel& o) const { return st_.get() == o.st_.get(); }

 private:
  node_ref<internal::channel_state<T>> st_;
};

}  // namespace rkt

#endif  // RKT_EVT_CHANNEL_H_
