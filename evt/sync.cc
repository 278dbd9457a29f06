// sync: flatten the event graph into leaves, poll them in a random order,
// otherwise arm them all and park until exactly one commits; then disarm
// the rest, post the nacks of the unchosen, and run the wrap procedures.
//
// Flattening splices choices, pushes a link on the leaf's chain for each
// wrap and handle, runs each guard's maker (once per sync), and opens a nack
// scope for each nack guard. A leaf that sits under a replace_evt commits on
// its own; its result goes to the replace maker, whose event is flattened in
// place of every leaf under that replace, and a new round begins with every
// leaf disarmed.
//
// The poll order is Racket's: a choice is spliced into the choice (or the
// sync's argument list) it appears in, and every other event there counts
// as one unit, whatever it holds: a wrap, handle, guard, nack guard, poll
// guard or replace of a choice is one unit, and the choice inside it is
// polled as a group of its own. Polling visits the units of a group from a
// random one onwards, wrapping around, and a nested group's units the same
// way when its turn comes. So in sync(guard_evt(-> choice_evt(A, B)), C)
// with all three ready, C wins half the time and A and B a quarter each.
// When no such nesting occurs the group is just the leaves, and the order is
// a rotation of them; the group tree is built only once a nested group is
// met. A replace's contents are a group, and its replacement takes its
// place there and is polled first in the next round. (Racket polls the
// choice inside a replace_evt in its given order, so that its first ready
// event always wins; rkt rotates there too.)
//
// A sync on one base event (channel get and put, semaphore wait, sleep)
// skips all of that. A sync's memory comes from an arena on the stack and,
// beyond it, from the scheduler's pool, so no sync allocates once the pool
// is warm.
#include "evt/sync.h"

#include <algorithm>
#include <cstdint>
#include <memory_resource>
#include <new>
#include <type_traits>
#include <utility>

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

struct poll_group;

struct chain_link {
  const evt_node* node;  // a wrap, handle or replace node
  chain_link* up;
  scope_link* scope;     // the nack scope around the node
  poll_group* group;     // a replace's contents; nullptr otherwise
};

// A stretch of a poll group's units: a nested group (one unit), or leaves
// first .. first + count - 1 (one unit each), which is how a choice of base
// events is kept whatever its size.
struct poll_segment {
  poll_group* group;  // nullptr for a run of leaves
  uint32_t first;
  uint32_t count;
  poll_segment* next;
};

// The units of one choice that is not spliced into an enclosing one, in
// order.
struct poll_group {
  poll_segment* head = nullptr;
  poll_segment* tail = nullptr;
  uint32_t units = 0;
};

struct leaf {
  leaf(evt_impl* i, chain_link* c, scope_link* s) : impl(i), chain(c), scope(s) {}

  // Built when the leaf is armed; raw bytes until then, so that flattening
  // a large choice does not initialize a waiter per leaf.
  waiter& w() { return *std::launder(reinterpret_cast<waiter*>(w_storage)); }

  evt_impl* impl;  // nullptr once a replace has dropped the leaf
  chain_link* chain;
  scope_link* scope;
  bool armed = false;
  alignas(waiter) unsigned char w_storage[sizeof(waiter)];
};
static_assert(std::is_trivially_destructible_v<waiter>);

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
        total += c->node_kind() == evt_node::kind::base ? 1 : estimate_leaves(c.get());
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

  // Flattens one of the sync's arguments.
  void flatten_root(const evt_node* n) { flatten(n, nullptr, nullptr, &root_, true); }

  // Flattens `n` into the poll group `into`. `spliced`: n's parent is a
  // choice (or the argument list) whose units n's own choice children join.
  void flatten(const evt_node* n, chain_link* chain, scope_link* scope, poll_group* into,
               bool spliced) {
    switch (n->node_kind()) {
      case evt_node::kind::base:
        add_leaf(into, n, chain, scope);
        break;
      case evt_node::kind::choice: {
        const auto& children = static_cast<const choice_node*>(n)->children();
        if (!spliced && children.size() > 1) {
          into = open_group(into);
          spliced = true;
        }
        for (const any_node& c : children) {
          const evt_node* child = c.get();
          if (child->node_kind() == evt_node::kind::base) {  // the common case, inline
            add_leaf(into, child, chain, scope);
          } else {
            flatten(child, chain, scope, into, spliced);
          }
        }
        break;
      }
      case evt_node::kind::wrap:
      case evt_node::kind::handle:
        flatten(static_cast<const wrap_node*>(n)->child(), link(n, chain, scope), scope, into,
                false);
        break;
      case evt_node::kind::replace: {
        // Its contents are a group of their own, so that the replacement
        // can take their place in the poll order.
        chain_link* r = link(n, chain, scope);
        r->group = open_group(into);
        flatten(static_cast<const replace_node*>(n)->child(), r, scope, r->group, true);
        break;
      }
      case evt_node::kind::guard:
      case evt_node::kind::poll_guard: {
        any_node made = static_cast<const guard_node*>(n)->make(guard_input{is_poll_, {}});
        keep_.push_back(made);
        reserve_for(made.get());
        flatten(made.get(), chain, scope, into, false);
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
        reserve_for(made.get());
        flatten(made.get(), chain, s, into, false);
        break;
      }
    }
  }

  // Polls each leaf once, in the order the file comment describes. Returns
  // the committed leaf.
  uint32_t poll_all() {
    if (replaced_ != nullptr) {
      // The replacement goes first, as though it had taken the replace's
      // place in the poll that found the replace ready.
      const poll_group* first = std::exchange(replaced_, nullptr);
      uint32_t got = poll_group_of(*first);
      if (got != sync_op::kNone) return got;
    }
    if (nested_) return poll_group_of(root_);
    // The root group is every leaf, in order.
    const uint32_t n = static_cast<uint32_t>(leaves_.size());
    if (n == 0) return sync_op::kNone;
    const uint32_t start = n == 1 ? 0 : next_random() % n;
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t idx = start + i < n ? start + i : start + i - n;
      if (try_leaf(idx)) return idx;
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
      if (l.impl == nullptr) continue;
      waiter* w = new (l.w_storage) waiter{};
      w->op = &op_;
      w->leaf = idx;
      l.armed = true;
      any_armed_ = true;
      l.impl->arm(*w);
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
  // splices its event in place of every leaf under that replace (the leaves
  // stay in leaves_, dropped, so that indices stay valid). Returns false
  // when `chosen` is a final commit.
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
    for (leaf& dropped : leaves_) {
      if (dropped.impl != nullptr && under(dropped, r)) dropped.impl = nullptr;
    }
    *r->group = poll_group{};
    flatten(made.get(), r->up, r->scope, r->group, true);
    replaced_ = r->group;
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
        chain_link{n, up, scope, nullptr};
  }

  // Makes room for the leaves of `made`, which the estimate before the
  // sync counted as one (a guard's event is not known until it runs).
  void reserve_for(const evt_node* made) {
    const std::size_t needed = leaves_.size() + estimate_leaves(made);
    if (needed > leaves_.capacity()) leaves_.reserve(std::max(needed, 2 * leaves_.capacity()));
  }

  [[gnu::always_inline]] void add_leaf(poll_group* into, const evt_node* base, chain_link* chain,
                                      scope_link* scope) {
    const auto idx = static_cast<uint32_t>(leaves_.size());
    leaves_.emplace_back(const_cast<evt_impl*>(static_cast<const evt_impl*>(base)), chain, scope);
    if (nested_) append_leaf(into, idx);
  }

  // Opens a nested group as the next unit of `into`. The first one turns
  // the implicit root group (every leaf so far) into an explicit one.
  poll_group* open_group(poll_group* into) {
    if (!nested_) {
      nested_ = true;
      if (!leaves_.empty()) {
        append_segment(&root_, nullptr, 0, static_cast<uint32_t>(leaves_.size()));
      }
    }
    auto* g = new (arena_.allocate(sizeof(poll_group), alignof(poll_group))) poll_group{};
    append_segment(into, g, 0, 1);
    return g;
  }

  void append_leaf(poll_group* g, uint32_t idx) {
    poll_segment* t = g->tail;
    if (t != nullptr && t->group == nullptr && t->first + t->count == idx) {
      ++t->count;
      ++g->units;
    } else {
      append_segment(g, nullptr, idx, 1);
    }
  }

  void append_segment(poll_group* g, poll_group* sub, uint32_t first, uint32_t count) {
    auto* seg = new (arena_.allocate(sizeof(poll_segment), alignof(poll_segment)))
        poll_segment{sub, first, count, nullptr};
    if (g->tail != nullptr) {
      g->tail->next = seg;
    } else {
      g->head = seg;
    }
    g->tail = seg;
    g->units += count;
  }

  bool try_leaf(uint32_t idx) {
    self_ref self(op_, idx);
    return leaves_[idx].impl->try_sync(self);
  }

  // Polls units [from, to) of `seg`.
  uint32_t poll_segment_units(const poll_segment& seg, uint32_t from, uint32_t to) {
    if (seg.group != nullptr) return from < to ? poll_group_of(*seg.group) : sync_op::kNone;
    for (uint32_t i = from; i < to; ++i) {
      if (try_leaf(seg.first + i)) return seg.first + i;
    }
    return sync_op::kNone;
  }

  // Polls the units of `g` from a random one onwards, wrapping around.
  uint32_t poll_group_of(const poll_group& g) {
    if (g.units == 0) return sync_op::kNone;
    // The segment and offset of the starting unit.
    const poll_segment* start = g.head;
    uint32_t offset = g.units == 1 ? 0 : next_random() % g.units;
    while (offset >= start->count) {
      offset -= start->count;
      start = start->next;
    }
    uint32_t got = poll_segment_units(*start, offset, start->count);
    for (const poll_segment* seg = start->next; got == sync_op::kNone && seg != nullptr;
         seg = seg->next) {
      got = poll_segment_units(*seg, 0, seg->count);
    }
    for (const poll_segment* seg = g.head; got == sync_op::kNone && seg != start;
         seg = seg->next) {
      got = poll_segment_units(*seg, 0, seg->count);
    }
    if (got == sync_op::kNone) got = poll_segment_units(*start, 0, offset);
    return got;
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
        l.impl->disarm(l.w());
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
  // Whether a nested poll group exists; until then root_ is implicit.
  bool nested_ = false;
  poll_group root_;
  // The group a replace has just refilled, polled first in the next round.
  const poll_group* replaced_ = nullptr;
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
  for (std::size_t i = 0; i < count; ++i) frame.flatten_root(roots[i]);
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
