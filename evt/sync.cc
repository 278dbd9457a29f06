// sync: flatten the event graph into leaves, poll them in a random order,
// otherwise arm them all and park until exactly one commits; then disarm
// the rest, post the nacks of the unchosen, and run the wrap procedures.
//
// Flattening splices choices, pushes a link on the leaf's chain for each
// wrap and handle, runs each guard's maker (once per sync), and opens a nack
// scope for each nack guard. A leaf that sits under a replace_evt commits on
// its own; its result goes to the replace maker, whose event is flattened in
// place of every leaf under that replace, and a new round begins with every
// leaf disarmed. A sync on one base event (channel get and put, semaphore
// wait, sleep) skips all of that. A sync's memory comes from an arena on the
// stack and, beyond it, from the scheduler's pool, so no sync allocates once
// the pool is warm.
#include "evt/sync.h"

#include <cstdint>
#include <memory_resource>

#include "evt/exn.h"
#include "evt/internal/one_shot_evt.h"
#include "evt/internal/scheduler.h"

namespace rkt::internal {
namespace {

struct scope_link {
  one_shot_evt* nack;
  scope_link* up;
  bool chosen;
};

struct chain_link {
  const evt_node* node;  // a wrap, handle or replace node
  chain_link* up;
  scope_link* scope;     // the nack scope around the node
};

struct leaf {
  evt_impl* impl;
  chain_link* chain;
  scope_link* scope;
  waiter w;
  bool armed;
};

// A fast, per-OS-thread generator for the random polling order.
uint32_t next_random() {
  static thread_local uint64_t state = 0;
  if (state == 0) {
    state = static_cast<uint64_t>(scheduler::now_ns()) ^
            reinterpret_cast<uintptr_t>(&state) ^ 0x9e3779b97f4a7c15ull;
  }
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return static_cast<uint32_t>((state * 0x2545f4914f6cdd1dull) >> 32);
}

void on_deadline(timer_node* n) {
  auto* op = static_cast<sync_op*>(n->context);
  if (!op->claim()) return;
  op->slot().reset();
  owner_wake wake = prepare_owner_wake(op->owner());
  op->publish(sync_op::kTimedOut);
  finish_owner_wake(wake);
}

// A kill and a sync (thread.h, "Killing"): a sync that would park in a
// thread that has been asked to die never parks. Outside any unwinding it
// raises thread_killed; while a stack is already unwinding (a destructor
// run by the kill syncs) it fails at once with exn_fail, so that the kill
// finishes in bounded time.
bool dying(const scheduler& sched) {
  return sched.running()->kill_requested.load(std::memory_order_acquire);
}

[[noreturn]] void refuse_to_park() {
  if (std::uncaught_exceptions() == 0) throw thread_killed{};
  throw exn_fail("sync: cannot block in a thread that is being killed");
}

// After a parked sync ends in a thread that was asked to die meanwhile.
// Nothing commits to it after the request (claim_from_producer), so an
// event that committed did so before it, and its result is delivered
// (kill-safety: a semaphore unit or channel value handed over is not lost);
// the kill then lands at the next switch point. Except that an error
// committed is dropped for the kill: a thread parked on a port that the
// shutdown killing it also closed unwinds with the kill, not with "input
// port is closed". An abandoned wait raises the kill, or fails at once
// while the stack is already unwinding.
void after_wait_in_dying_thread(bool committed, result_slot& slot) {
  if (committed && !slot.has_exception()) return;
  if (std::uncaught_exceptions() == 0) {
    slot.reset();
    throw thread_killed{};
  }
  if (!committed) refuse_to_park();
}

// Parks the running thread until `op` is synced: by a commit, by its
// deadline passing (kTimedOut), or, once the thread is asked to die, by
// itself or a producer abandoning it (kAbandoned). Returns whether an event
// committed (a timeout counts); if not, the thread is dying and the caller
// disarms and calls after_wait_in_dying_thread.
[[gnu::always_inline]] inline bool wait_for_commit(scheduler& sched, sync_op& op,
                                                   int64_t deadline_ns) {
  if (!op.synced()) {
    timer_node deadline;
    if (deadline_ns != INT64_MAX) {
      deadline.deadline_ns = deadline_ns;
      deadline.fire = &on_deadline;
      deadline.context = &op;
      sched.add_timer(&deadline);
    }
    thread_state* self = sched.running();
    while (!op.synced()) {
      if (self->kill_requested.load(std::memory_order_acquire)) {
        op.abandon();  // unless a commit got in first
        break;
      }
      sched.park();
    }
    sched.remove_timer(&deadline);
  }
  return op.chosen() != sync_op::kAbandoned;
}

// One base event, no combinators: the common case (channel get and put,
// semaphore wait, sleep, thread wait) without the frame's arena.
[[gnu::always_inline]] inline bool sync_one(scheduler& sched, evt_impl& e, sync_mode mode,
                                            int64_t deadline_ns, result_slot& slot) {
  sync_op op(&slot, sched.running(), &sched.running()->kill_requested);
  self_ref self(op, 0);
  if (!e.try_sync(self)) {
    if (mode == sync_mode::poll) return false;
    if (dying(sched)) [[unlikely]] refuse_to_park();
    waiter w;
    w.op = &op;
    w.leaf = 0;
    bool committed;
    try {
      e.arm(w);
      committed =
          wait_for_commit(sched, op, mode == sync_mode::deadline ? deadline_ns : INT64_MAX);
    } catch (...) {
      e.disarm(w);
      throw;
    }
    // The commit that chose this leaf unlinked its waiter already.
    if (!committed || op.chosen() != 0) e.disarm(w);
    if (dying(sched)) [[unlikely]] after_wait_in_dying_thread(committed, slot);
    if (op.chosen() == sync_op::kTimedOut) return false;
  }
  slot.rethrow_if_exception();
  return true;
}

// How many leaves `n` flattens to, counting each guard as one.
std::size_t estimate_leaves(const evt_node* n) {
  switch (n->node_kind()) {
    case evt_node::kind::choice: {
      std::size_t total = 0;
      for (const any_node& c : static_cast<const choice_node*>(n)->children()) {
        total += estimate_leaves(c.get());
      }
      return total;
    }
    case evt_node::kind::wrap:
    case evt_node::kind::handle:
      return estimate_leaves(static_cast<const wrap_node*>(n)->child());
    case evt_node::kind::replace:
      return estimate_leaves(static_cast<const replace_node*>(n)->child());
    default:
      return 1;
  }
}

class sync_frame {
 public:
  sync_frame(scheduler& sched, sync_op& op, bool is_poll, std::size_t expected_leaves)
      : sched_(sched),
        op_(op),
        is_poll_(is_poll),
        arena_(buffer_, sizeof buffer_, &sched.sync_memory()),
        leaves_(&arena_),
        scopes_(&arena_),
        keep_(&arena_) {
    leaves_.reserve(expected_leaves);
  }

  sync_frame(const sync_frame&) = delete;
  sync_frame& operator=(const sync_frame&) = delete;

  // Left by an exception or a kill: nothing was chosen.
  ~sync_frame() {
    if (finished_) return;
    disarm_all();
    post_unchosen_nacks();
  }

  void flatten(const evt_node* n, chain_link* chain, scope_link* scope) {
    switch (n->node_kind()) {
      case evt_node::kind::base:
        leaves_.push_back(leaf{const_cast<evt_impl*>(static_cast<const evt_impl*>(n)), chain,
                               scope, waiter{}, false});
        break;
      case evt_node::kind::choice:
        for (const any_node& c : static_cast<const choice_node*>(n)->children()) {
          flatten(c.get(), chain, scope);
        }
        break;
      case evt_node::kind::wrap:
      case evt_node::kind::handle:
        flatten(static_cast<const wrap_node*>(n)->child(), link(n, chain, scope), scope);
        break;
      case evt_node::kind::replace:
        flatten(static_cast<const replace_node*>(n)->child(), link(n, chain, scope), scope);
        break;
      case evt_node::kind::guard:
      case evt_node::kind::poll_guard: {
        any_node made = static_cast<const guard_node*>(n)->make(guard_input{is_poll_, {}});
        keep_.push_back(made);
        flatten(made.get(), chain, scope);
        break;
      }
      case evt_node::kind::nack_guard: {
        node_ref<one_shot_evt> nack = make_node<one_shot_evt>("nack-evt");
        keep_.push_back(nack);
        auto* s = new (arena_.allocate(sizeof(scope_link), alignof(scope_link)))
            scope_link{nack.get(), scope, false};
        scopes_.push_back(s);
        any_node made = static_cast<const guard_node*>(n)->make(guard_input{is_poll_, nack});
        keep_.push_back(made);
        flatten(made.get(), chain, s);
        break;
      }
    }
  }

  // Polls each leaf once, from a random start. Returns the committed leaf.
  uint32_t poll_all() {
    const uint32_t n = static_cast<uint32_t>(leaves_.size());
    if (n == 0) return sync_op::kNone;
    const uint32_t start = n == 1 ? 0 : next_random() % n;
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t idx = start + i < n ? start + i : start + i - n;
      self_ref self(op_, idx);
      if (leaves_[idx].impl->try_sync(self)) return idx;
    }
    return sync_op::kNone;
  }

  // Arms every leaf and parks until one commits, the deadline passes
  // (kTimedOut) or the thread is killed (thread_killed). Everything is
  // disarmed again on return.
  uint32_t arm_and_wait(int64_t deadline_ns) {
    const uint32_t n = static_cast<uint32_t>(leaves_.size());
    const uint32_t start = n <= 1 ? 0 : next_random() % n;
    for (uint32_t i = 0; i < n && !op_.synced(); ++i) {
      uint32_t idx = start + i < n ? start + i : start + i - n;
      leaf& l = leaves_[idx];
      l.w.op = &op_;
      l.w.leaf = idx;
      l.armed = true;
      any_armed_ = true;
      l.impl->arm(l.w);
    }
    const bool committed = wait_for_commit(sched_, op_, deadline_ns);
    // The commit that chose a leaf unlinked its waiter already.
    if (committed && op_.chosen() < n) leaves_[op_.chosen()].armed = false;
    disarm_all();
    if (dying(sched_)) [[unlikely]] {
      // A leaf that committed counts as chosen (its nack stays unposted)
      // even when the kill wins over its error.
      if (committed && op_.chosen() < n && op_.slot().has_exception() &&
          std::uncaught_exceptions() == 0) {
        finish(op_.chosen());
      }
      after_wait_in_dying_thread(committed, op_.slot());
    }
    return op_.chosen();
  }

  // When `chosen` sits under a replace_evt, runs the replace maker and
  // splices its event in place of every leaf under that replace. Returns
  // false when `chosen` is a final commit.
  bool replace(uint32_t chosen) {
    leaf& l = leaves_[chosen];
    chain_link* r = l.chain;
    while (r != nullptr && r->node->node_kind() != evt_node::kind::replace) r = r->up;
    if (r == nullptr) return false;
    // The leaf's own nack scopes were chosen even if a wrap below throws.
    for (scope_link* s = l.scope; s != r->scope; s = s->up) s->chosen = true;
    result_slot& slot = op_.slot();
    for (chain_link* c = l.chain; c != r; c = c->up) {
      static_cast<const wrap_node*>(c->node)->apply(slot);
    }
    any_node made = static_cast<const replace_node*>(r->node)->make(slot);
    slot.reset();
    keep_.push_back(made);
    std::size_t kept = 0;
    for (std::size_t i = 0; i < leaves_.size(); ++i) {
      if (!under(leaves_[i], r)) leaves_[kept++] = leaves_[i];
    }
    leaves_.resize(kept);
    flatten(made.get(), r->up, r->scope);
    op_.reset_for_round();
    return true;
  }

  // Ends the sync with `chosen` (kNone when nothing was): marks its nack
  // scopes chosen and posts every other nack.
  void finish(uint32_t chosen) {
    finished_ = true;
    disarm_all();
    if (chosen < leaves_.size()) {
      for (scope_link* s = leaves_[chosen].scope; s != nullptr; s = s->up) s->chosen = true;
    }
    post_unchosen_nacks();
  }

  // Applies the chosen leaf's wraps; leaves the trailing handles to run
  // after the sync (those not wrapped by anything but other handles).
  void apply_chain(uint32_t chosen, handle_chain& handles) {
    chain_link* top_wrap = nullptr;  // outermost link that is not a handle
    for (chain_link* c = leaves_[chosen].chain; c != nullptr; c = c->up) {
      if (c->node->node_kind() != evt_node::kind::handle) top_wrap = c;
    }
    result_slot& slot = op_.slot();
    chain_link* c = leaves_[chosen].chain;
    if (top_wrap != nullptr) {
      for (;; c = c->up) {
        static_cast<const wrap_node*>(c->node)->apply(slot);
        if (c == top_wrap) {
          c = c->up;
          break;
        }
      }
    }
    for (; c != nullptr; c = c->up) {
      handles.emplace_back(static_cast<const wrap_node*>(c->node));
    }
  }

 private:
  chain_link* link(const evt_node* n, chain_link* up, scope_link* scope) {
    return new (arena_.allocate(sizeof(chain_link), alignof(chain_link)))
        chain_link{n, up, scope};
  }

  static bool under(const leaf& l, const chain_link* r) {
    for (const chain_link* c = l.chain; c != nullptr; c = c->up) {
      if (c == r) return true;
    }
    return false;
  }

  void disarm_all() noexcept {
    if (!any_armed_) return;
    any_armed_ = false;
    for (leaf& l : leaves_) {
      if (l.armed) {
        l.impl->disarm(l.w);
        l.armed = false;
      }
    }
  }


  void post_unchosen_nacks() noexcept {
    for (scope_link* s : scopes_) {
      if (!s->chosen) s->nack->post();
    }
  }

  scheduler& sched_;
  sync_op& op_;
  const bool is_poll_;
  bool finished_ = false;
  bool any_armed_ = false;
  alignas(std::max_align_t) unsigned char buffer_[1536];
  std::pmr::monotonic_buffer_resource arena_;
  std::pmr::vector<leaf> leaves_;
  std::pmr::vector<scope_link*> scopes_;
  std::pmr::vector<any_node> keep_;
};

}  // namespace

bool sync_general(scheduler& sched, const evt_node* const* roots, std::size_t count,
                  sync_mode mode, int64_t deadline_ns, result_slot& slot, handle_chain& handles);

bool sync_nodes(const evt_node* const* roots, std::size_t count, sync_mode mode,
                int64_t deadline_ns, result_slot& slot, handle_chain& handles) {
  scheduler& sched = scheduler::current();
  throw_if_killed();
  if (count == 1 && roots[0]->node_kind() == evt_node::kind::base) {
    auto* e = const_cast<evt_impl*>(static_cast<const evt_impl*>(roots[0]));
    return sync_one(sched, *e, mode, deadline_ns, slot);
  }
  return sync_general(sched, roots, count, mode, deadline_ns, slot, handles);
}

// Kept out of line so that the one-event path does not pay for the frame.
[[gnu::noinline]] bool sync_general(scheduler& sched, const evt_node* const* roots,
                                    std::size_t count, sync_mode mode, int64_t deadline_ns,
                                    result_slot& slot, handle_chain& handles) {
  std::size_t expected = 0;
  for (std::size_t i = 0; i < count; ++i) expected += estimate_leaves(roots[i]);
  sync_op op(&slot, sched.running(), &sched.running()->kill_requested);
  sync_frame frame(sched, op, mode == sync_mode::poll, expected);
  for (std::size_t i = 0; i < count; ++i) frame.flatten(roots[i], nullptr, nullptr);
  for (;;) {
    uint32_t chosen = frame.poll_all();
    if (chosen == sync_op::kNone) {
      if (mode == sync_mode::poll) {
        frame.finish(sync_op::kNone);
        return false;
      }
      if (dying(sched)) [[unlikely]] refuse_to_park();
      chosen = frame.arm_and_wait(mode == sync_mode::deadline ? deadline_ns : INT64_MAX);
      if (chosen == sync_op::kTimedOut) {
        frame.finish(sync_op::kNone);
        return false;
      }
    }
    if (!slot.has_exception() && frame.replace(chosen)) continue;
    frame.finish(chosen);
    slot.rethrow_if_exception();
    frame.apply_chain(chosen, handles);
    return true;
  }
}

void apply_handles(handle_chain& handles, result_slot& slot) {
  for (const node_ref<const wrap_node>& h : handles) h->apply(slot);
}

}  // namespace rkt::internal
