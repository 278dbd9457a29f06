// The one extension point of the evt core: how a base event takes part in
// sync. Channels, semaphores, alarms, thread death, nacks, fd readiness,
// ports and listeners all implement evt_impl, and so can users (the C++
// counterpart of Racket's prop:evt); sync special-cases none of them.
//
// The protocol follows Concurrent ML's base events (poll, then block by
// enqueueing a waiter, with exactly one commit) and the claim word of
// Reppy, Russo and Xiao, "Parallel Concurrent ML" (ICFP 2009):
//
//   1. try_sync(self): complete now if the event is ready. Commit through
//      `self` (self.claim(), write the result, self.complete()) and return
//      true; otherwise return false. Never blocks, never keeps `self`.
//   2. arm(w): publish the waiter `w` where a later producer will find it
//      (usually a queue under the source's lock), then re-check under that
//      same lock: if the event became ready, commit w's sync through
//      self_ref(w) instead of waiting. Publishing and re-checking under one
//      lock is what makes wakeups impossible to lose.
//   3. disarm(w): after it returns, the source no longer refers to w.
//      Called once for every armed waiter when the sync ends (lost, timed
//      out, killed or unwound by an exception), except for the waiter whose
//      commit ended it: a producer unlinks a waiter before committing it,
//      so the winner needs no disarm. noexcept; cheap when w is already
//      gone from the source.
//
// A producer (a put, a post, a timer, a readiness report) commits someone
// else's waiting sync with claim_waiter(w) followed by complete_waiter(w).
// Each sync has one sync_op, whose state word goes
//     waiting --claim--> claimed --complete--> synced
//                        claimed --unclaim---> waiting
// Exactly one claim ever reaches `synced`; that commit is the sync's result.
// `claimed` is transient: its holder writes the result and publishes
// `synced` (or gives the claim back) without taking a lock or parking, so
// others may spin on it. Rendezvous events (a channel put meeting a get)
// need both syncs at once: claim_pair() claims our own op, then the
// partner's; when the partner is itself mid-claim it gives ours back and
// retries, so two claimers never wait for each other.
//
// Lock order: a source's lock may be held while claiming, completing and
// waking; nothing in the claim/complete path takes a source lock.
//
// Writing a new kind of event (evt/internal/one_shot_evt.h is the smallest
// complete example; docs/ARCHITECTURE.md has the whole picture):
//   - Threads. try_sync, arm and disarm run on the OS thread of the green
//     thread that syncs, and the event may be synced from several OS threads
//     at once; producers (whatever makes the event ready) may run on any OS
//     thread. So the source's state needs its own lock (a spinlock or a
//     mutex), taken in all three methods and by producers.
//   - Under the source's lock, do only what is cheap and non-blocking: read
//     and change the source's state, push or remove waiters, claim,
//     complete and wake (claim_waiter, complete_waiter_with, self.commit).
//     Never park, never call user code (wrap procedures run after the
//     commit, outside), and take no other source's lock unless you write
//     down the order next to both locks.
//   - arm may throw (a system call failed, say): sync then calls disarm on
//     that waiter too, so disarm must cope with a waiter it never queued
//     (waiter_list::remove does). try_sync may throw as well. To report an
//     error as the event's result instead (Racket's deferred error), commit
//     with self.complete_exception() / slot().set_exception(): the sync
//     commits to the event, then raises.
//   - Commit only through claims: self.commit<R>() in try_sync and arm,
//     claim_waiter + complete_waiter_with<R> in producers. A claim that
//     fails means the sync went elsewhere (or its thread is being killed):
//     consume nothing and leave the waiter alone. An event that consumes
//     (a read, an accept) claims before it consumes, and gives the claim
//     back with unclaim() if it then finds nothing to take.
//   - The result type is R of base_evt<R>; store exactly an R.
#ifndef RKT_EVT_EVT_IMPL_H_
#define RKT_EVT_EVT_IMPL_H_

#include <atomic>
#include <cstdint>
#include <exception>
#include <utility>

#include "evt/internal/spinlock.h"
#include "evt/internal/timer_heap.h"
#include "evt/result_slot.h"

namespace rkt {

namespace internal {
class thread_state;
}  // namespace internal

// ---------------------------------------------------------------------------
// Reference-counted event graph nodes.

class evt_node {
 public:
  // sync interprets every kind but `base` structurally; a base node is an
  // evt_impl.
  enum class kind : uint8_t {
    base,
    choice,
    wrap,
    handle,
    guard,
    nack_guard,
    poll_guard,
    replace,
  };

  explicit evt_node(kind k) : kind_(k) {}
  evt_node(const evt_node&) = delete;
  evt_node& operator=(const evt_node&) = delete;
  virtual ~evt_node() = default;

  kind node_kind() const { return kind_; }

  void add_ref() const { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() const {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  mutable std::atomic<uint32_t> refs_{0};
  const kind kind_;
};

// An intrusive strong reference to an evt_node (or a subclass).
template <class N>
class node_ref {
 public:
  node_ref() = default;
  node_ref(N* n) : p_(n) {  // NOLINT: implicit from a fresh node
    if (p_ != nullptr) p_->add_ref();
  }
  node_ref(const node_ref& o) : node_ref(o.p_) {}
  node_ref(node_ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  template <class M>
  node_ref(const node_ref<M>& o) : node_ref(o.get()) {}  // NOLINT
  node_ref& operator=(node_ref o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~node_ref() {
    if (p_ != nullptr) p_->release();
  }

  N* get() const { return p_; }
  N* operator->() const { return p_; }
  N& operator*() const { return *p_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  N* p_ = nullptr;
};

template <class N, class... Args>
node_ref<N> make_node(Args&&... args) {
  return node_ref<N>(new N(std::forward<Args>(args)...));
}

// ---------------------------------------------------------------------------
// The claim word of one sync.

class sync_op {
 public:
  static constexpr uint32_t kWaiting = 0;
  static constexpr uint32_t kClaimed = 1;
  static constexpr uint32_t kSynced = 2;

  // Values of `chosen` that are not leaf indices.
  static constexpr uint32_t kNone = 0xffffffffu;
  static constexpr uint32_t kTimedOut = 0xfffffffeu;
  static constexpr uint32_t kAbandoned = 0xfffffffdu;  // killed while parked

  // `owner_dying` is the owner's kill flag (thread_state::kill_requested).
  sync_op(result_slot* slot, internal::thread_state* owner, const std::atomic<bool>* owner_dying)
      : slot_(slot), owner_(owner), owner_dying_(owner_dying) {}
  sync_op(const sync_op&) = delete;
  sync_op& operator=(const sync_op&) = delete;

  uint32_t state() const { return state_.load(std::memory_order_acquire); }
  bool synced() const { return state() == kSynced; }
  // Valid once synced() has been observed.
  uint32_t chosen() const { return chosen_; }
  result_slot& slot() { return *slot_; }
  internal::thread_state* owner() const { return owner_; }

  // waiting -> claimed. Spins while another party holds the claim. Returns
  // false once the op is synced.
  bool claim() {
    internal::backoff b;
    for (;;) {
      uint32_t s = kWaiting;
      // Acquire on failure too: a caller that sees `synced` reads chosen().
      if (state_.compare_exchange_weak(s, kClaimed, std::memory_order_acquire,
                                       std::memory_order_acquire)) {
        return true;
      }
      if (s == kSynced) return false;
      b.pause();
    }
  }
  // A producer's claim (claim_waiter, and claim_pair for the partner): as
  // claim(), except that the op of a thread that has been asked to die is
  // abandoned instead (synced with kAbandoned), so that nothing commits to
  // a dying thread's sync after the kill request; the producer's value or
  // unit then goes to another waiter. Returns false in both cases.
  bool claim_from_producer() {
    if (owner_dying()) [[unlikely]] {
      abandon();
      return false;
    }
    return claim();
  }
  bool owner_dying() const { return owner_dying_->load(std::memory_order_acquire); }
  // Syncs the op with kAbandoned unless it is synced already.
  void abandon() {
    if (claim()) publish(kAbandoned);
  }
  // One attempt: waiting -> claimed. Returns the state seen on failure
  // through `seen`.
  bool try_claim_once(uint32_t& seen) {
    seen = kWaiting;
    return state_.compare_exchange_strong(seen, kClaimed, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  // claimed -> waiting.
  void unclaim() { state_.store(kWaiting, std::memory_order_release); }
  // claimed -> synced, recording which leaf committed. The result must be in
  // slot() already.
  void publish(uint32_t chosen) {
    chosen_ = chosen;
    state_.store(kSynced, std::memory_order_release);
  }
  // Starts a new round (after a replace_evt commit). Requires: nothing armed.
  void reset_for_round() {
    chosen_ = kNone;
    state_.store(kWaiting, std::memory_order_relaxed);
  }

 private:
  std::atomic<uint32_t> state_{kWaiting};
  uint32_t chosen_ = kNone;
  result_slot* const slot_;
  internal::thread_state* const owner_;
  const std::atomic<bool>* const owner_dying_;
};

// ---------------------------------------------------------------------------
// Waiters: what an armed leaf leaves in a source.

struct waiter {
  sync_op* op = nullptr;
  uint32_t leaf = 0;
  // Intrusive links for the source's queue; only the source touches them,
  // under its lock. `queued` says whether w is currently linked.
  waiter* prev = nullptr;
  waiter* next = nullptr;
  bool queued = false;
  // For sources that wait for a time (alarm_evt).
  internal::timer_node timer;
  // For the source's own use while armed.
  void* data = nullptr;
};

// A FIFO of waiters, protected by the owning source's lock.
class waiter_list {
 public:
  bool empty() const { return head_ == nullptr; }
  waiter* front() const { return head_; }

  void push_back(waiter* w) {
    w->prev = tail_;
    w->next = nullptr;
    if (tail_ != nullptr) {
      tail_->next = w;
    } else {
      head_ = w;
    }
    tail_ = w;
    w->queued = true;
  }
  // No-op when w is not queued.
  void remove(waiter* w) {
    if (!w->queued) return;
    if (w->prev != nullptr) {
      w->prev->next = w->next;
    } else {
      head_ = w->next;
    }
    if (w->next != nullptr) {
      w->next->prev = w->prev;
    } else {
      tail_ = w->prev;
    }
    w->prev = w->next = nullptr;
    w->queued = false;
  }
  waiter* pop_front() {
    waiter* w = head_;
    if (w != nullptr) remove(w);
    return w;
  }

 private:
  waiter* head_ = nullptr;
  waiter* tail_ = nullptr;
};

namespace internal {
// Wakes the owner of an op that a producer has just committed. Defined by
// the scheduler; safe from any OS thread. `prepare` runs before the op is
// published (after which the owner may return and free the op), and pins
// the owner when it lives on another OS thread.
struct owner_wake {
  thread_state* owner;
  bool pinned;
};
owner_wake prepare_owner_wake(thread_state* owner);
void finish_owner_wake(owner_wake w);
}  // namespace internal

// ---------------------------------------------------------------------------
// The syncing side's view of its own op, for one leaf.

class self_ref {
 public:
  // Poll phase: nothing is armed yet, so no other party can see the op and
  // claiming is free.
  self_ref(sync_op& op, uint32_t leaf) : op_(&op), leaf_(leaf), armed_(false) {}
  // Arm phase: other parties may commit the op concurrently.
  explicit self_ref(waiter& w) : op_(w.op), leaf_(w.leaf), armed_(true) {}

  sync_op& op() const { return *op_; }
  uint32_t leaf() const { return leaf_; }
  bool armed() const { return armed_; }

  // Returns false when the op was committed elsewhere (armed only).
  bool claim() { return !armed_ || op_->claim(); }
  void unclaim() {
    if (armed_) op_->unclaim();
  }
  // Requires a claim. Stores the result and publishes the commit.
  template <class R, class... Args>
  void complete(Args&&... args) {
    op_->slot().emplace<R>(std::forward<Args>(args)...);
    op_->publish(leaf_);
  }
  // Requires a claim. Commits with an error that sync raises afterwards.
  void complete_exception(std::exception_ptr e) {
    op_->slot().set_exception(std::move(e));
    op_->publish(leaf_);
  }
  // claim() then complete<R>(); false when the op was already committed.
  template <class R, class... Args>
  bool commit(Args&&... args) {
    if (!claim()) return false;
    complete<R>(std::forward<Args>(args)...);
    return true;
  }

 private:
  sync_op* op_;
  uint32_t leaf_;
  bool armed_;
};

// Producer side: claims the sync that armed w. Spins through a transient
// claim; false when that sync is already committed (w lost elsewhere).
// Never commits to the sync of a thread that is being killed (see
// sync_op::claim_from_producer).
inline bool claim_waiter(waiter& w) { return w.op->claim_from_producer(); }

// Producer side. Requires claim_waiter(w). Writes the result with
// fill(result_slot&), publishes the commit, and wakes w's thread.
template <class Fill>
void complete_waiter(waiter& w, Fill&& fill) {
  sync_op* op = w.op;
  fill(op->slot());
  internal::owner_wake wake = internal::prepare_owner_wake(op->owner());
  op->publish(w.leaf);
  internal::finish_owner_wake(wake);
}

// Producer side: complete a claimed waiter with a value of type R.
template <class R, class... Args>
void complete_waiter_with(waiter& w, Args&&... args) {
  complete_waiter(w, [&](result_slot& s) { s.emplace<R>(std::forward<Args>(args)...); });
}

enum class pair_claim { ok, self_done, partner_done };

// Rendezvous: claims both `self`'s op and `partner`'s. On ok, both are
// claimed and the caller must complete both. On self_done our sync was
// committed elsewhere; on partner_done the partner's was, or the partner's
// thread is being killed (drop it).
// Requires: partner.op != &self.op().
inline pair_claim claim_pair(self_ref& self, waiter& partner) {
  internal::backoff b;
  for (;;) {
    if (!self.claim()) return pair_claim::self_done;
    if (partner.op->owner_dying()) [[unlikely]] {
      self.unclaim();
      partner.op->abandon();
      return pair_claim::partner_done;
    }
    uint32_t seen;
    if (partner.op->try_claim_once(seen)) return pair_claim::ok;
    self.unclaim();
    if (seen == sync_op::kSynced) return pair_claim::partner_done;
    b.pause();  // the partner is mid-claim; it resolves without our help
  }
}

// ---------------------------------------------------------------------------
// commit_target: one way to write an operation that can complete now,
// whoever runs it. An event that consumes (a port read, an accept) claims
// first, writes the result into slot(), then publishes; or gives the claim
// back (it found nothing to take after claiming). The three ways in: a
// plain method call (the result goes to the caller, claims always succeed),
// a sync's own poll or arm (self_ref), and a producer completing a parked
// sync's waiter.

class commit_target {
 public:
  // False when the sync was committed elsewhere: then nothing may be
  // consumed or written.
  virtual bool claim() = 0;
  // Requires a claim.
  virtual void unclaim() = 0;
  virtual result_slot& slot() = 0;
  // Requires a claim and a result in slot().
  virtual void publish() = 0;

 protected:
  ~commit_target() = default;
};

// A method call: the caller reads the result from the slot.
class direct_commit final : public commit_target {
 public:
  bool claim() override { return true; }
  void unclaim() override {}
  result_slot& slot() override { return slot_; }
  void publish() override {}

 private:
  result_slot slot_;
};

// The poll or arm of a sync, through its own op.
class self_commit final : public commit_target {
 public:
  explicit self_commit(self_ref& self) : self_(self) {}
  bool claim() override { return self_.claim(); }
  void unclaim() override { self_.unclaim(); }
  result_slot& slot() override { return self_.op().slot(); }
  void publish() override { self_.op().publish(self_.leaf()); }

 private:
  self_ref& self_;
};

// A producer completing a parked sync's waiter, queued in `queue` under the
// port's lock. claim() unlinks the waiter first (after publish() its memory
// may be gone; if the claim fails its sync was committed elsewhere and has
// no use for it); unclaim() queues it again at the back.
class waiter_commit final : public commit_target {
 public:
  waiter_commit(waiter& w, waiter_list& queue) : w_(w), queue_(queue) {}
  bool claim() override {
    queue_.remove(&w_);
    return claim_waiter(w_);
  }
  void unclaim() override {
    w_.op->unclaim();
    queue_.push_back(&w_);
  }
  result_slot& slot() override { return w_.op->slot(); }
  void publish() override {
    complete_waiter(w_, [](result_slot&) {});
  }

 private:
  waiter& w_;
  waiter_list& queue_;
};

// ---------------------------------------------------------------------------
// Base events.

class evt_impl : public evt_node {
 public:
  evt_impl() : evt_node(kind::base) {}

  // See the protocol at the top of this file.
  virtual bool try_sync(self_ref& self) = 0;
  virtual void arm(waiter& w) = 0;
  virtual void disarm(waiter& w) noexcept = 0;

  // Used in error messages and custodian listings.
  virtual const char* name() const { return "evt"; }
};

// A base event whose synchronization result is an R: commits must store an
// R (self.complete<R>(...), complete_waiter_with<R>(...)). Derive from this
// to define a new kind of event.
template <class R>
class base_evt : public evt_impl {
 public:
  using result_type = R;
};

}  // namespace rkt

#endif  // RKT_EVT_EVT_IMPL_H_
