// The structural nodes that sync interprets: choice, wrap/handle, guard
// (plain, nack and poll), and replace. Their typed subclasses, which hold the
// user's procedures, are in evt.h; sync.cc only sees these interfaces.
#ifndef RKT_EVT_INTERNAL_NODES_H_
#define RKT_EVT_INTERNAL_NODES_H_

#include <vector>

#include "evt/evt_impl.h"

namespace rkt::internal {

using any_node = node_ref<evt_node>;

class choice_node final : public evt_node {
 public:
  explicit choice_node(std::vector<any_node> children)
      : evt_node(kind::choice), children_(std::move(children)) {}
  const std::vector<any_node>& children() const { return children_; }

 private:
  const std::vector<any_node> children_;
};

// wrap_evt and handle_evt: one child, one procedure applied to its result.
class wrap_node : public evt_node {
 public:
  wrap_node(kind k, any_node child) : evt_node(k), child_(std::move(child)) {}
  const evt_node* child() const { return child_.get(); }
  // Replaces the child's result in `slot` with this node's result.
  virtual void apply(result_slot& slot) const = 0;

 private:
  const any_node child_;
};

// What a guard's maker is given: whether the sync is a poll (poll_guard_evt)
// and the nack event (nack_guard_evt).
struct guard_input {
  bool is_poll;
  any_node nack;
};

class guard_node : public evt_node {
 public:
  explicit guard_node(kind k) : evt_node(k) {}
  // Runs the maker; called at most once per sync.
  virtual any_node make(const guard_input& in) const = 0;
};

class replace_node : public evt_node {
 public:
  explicit replace_node(any_node child) : evt_node(kind::replace), child_(std::move(child)) {}
  const evt_node* child() const { return child_.get(); }
  // Consumes the child's result from `slot` and returns the replacement.
  virtual any_node make(result_slot& slot) const = 0;

 private:
  const any_node child_;
};

}  // namespace rkt::internal

#endif  // RKT_EVT_INTERNAL_NODES_H_
