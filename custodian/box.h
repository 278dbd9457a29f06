// custodian_box<T>: holds a value until its custodian is shut down, and is
// an event that becomes ready at that moment (Racket's make-custodian-box).
//
//   rkt::custodian_box<std::string> b(c, "session");
//   b.value();               // "session" until c is shut down, then nullopt
//   rkt::sync(b);            // returns once c is shut down
//
// The custodian holds the box weakly: dropping every copy of the box frees
// the value.
#ifndef RKT_CUSTODIAN_BOX_H_
#define RKT_CUSTODIAN_BOX_H_

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "custodian/custodian.h"
#include "custodian/managed.h"
#include "evt/evt.h"

namespace rkt {

template <class T>
class custodian_box {
 public:
  using result_type = void;

  // A box holding `v` while `c` is not shut down; if it already is, the
  // box starts empty.
  custodian_box(const custodian& c, T v)
      : st_(std::make_shared<state>(std::move(v))), ready_(c.shutdown_evt()) {
    if (!c.try_manage(st_)) st_->shut_down_by_custodian();
  }

  // The value, or std::nullopt once the custodian is shut down.
  std::optional<T> value() const {
    std::lock_guard<std::mutex> g(st_->mu);
    return st_->value;
  }

  operator evt<void>() const { return ready_; }  // NOLINT: a box is an event
  const internal::any_node& node() const { return ready_.node(); }

 private:
  class state final : public managed_resource {
   public:
    explicit state(T v) : value(std::move(v)) {}
    void shut_down_by_custodian() noexcept override {
      std::optional<T> dropped;
      {
        std::lock_guard<std::mutex> g(mu);
        dropped.swap(value);
      }
    }
    std::string describe() const override { return "custodian box"; }
    bool listed() const override { return false; }

    std::mutex mu;
    std::optional<T> value;  // guarded by mu
  };

  std::shared_ptr<state> st_;
  evt<void> ready_;
};

}  // namespace rkt

#endif  // RKT_CUSTODIAN_BOX_H_
