// commit_target: how a port operation that can complete now commits. It
// claims first, writes the result into slot(), then publishes; or it gives
// the claim back (a write that found the destination full after claiming).
// The three ways in: a method call (the result goes to the caller, claims
// always succeed), a sync's poll (self_ref), and a producer completing a
// parked sync's waiter (the port serving its waiters).
#ifndef RKT_PORTS_INTERNAL_COMMIT_H_
#define RKT_PORTS_INTERNAL_COMMIT_H_

#include "evt/evt_impl.h"
#include "evt/result_slot.h"

namespace rkt::internal {

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

}  // namespace rkt::internal

#endif  // RKT_PORTS_INTERNAL_COMMIT_H_
