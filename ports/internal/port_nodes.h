// The event nodes of ports: read_node<R> for every input event and write_node<R>
// for every output event, typed by their synchronization result. A method
// that must wait (read_bytes on an empty pipe, say) syncs on one of these
// made on its own stack, so the wait allocates nothing.
#ifndef RKT_PORTS_INTERNAL_PORT_NODES_H_
#define RKT_PORTS_INTERNAL_PORT_NODES_H_

#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "evt/evt_impl.h"
#include "ports/internal/input_core.h"
#include "ports/internal/output_core.h"
#include "ports/port.h"

namespace rkt::internal {

// R is or_eof<std::string> (the bytes), or_eof<std::size_t> (the count,
// copied into dst), void (eof_evt), or input_port (the port as an event).
template <class R>
class read_node final : public base_evt<R>, public read_request {
 public:
  // `keep` holds the port for an event node (a port event: never ready on
  // a closed port); a node on a method's stack passes nullptr (the method
  // holds the port, and its read raises on a closed port).
  read_node(std::shared_ptr<input_core> keep, input_core& core, read_spec spec, const char* who,
            char* dst = nullptr)
      : read_request(spec, who, /*port_event=*/keep != nullptr),
        keep_(std::move(keep)),
        core_(core),
        dst_(dst) {}

  bool try_sync(self_ref& self) override {
    if (std::exchange(skip_poll_, false)) return false;
    input_core::lock l(core_);
    self_commit c(self);
    bool may_fill = true;
    return core_.attempt_locked(*this, c, may_fill) == input_core::attempt::done;
  }
  // The re-check before parking may trust the source's readiness record:
  // a report after it serves the parked waiter. Under a method's still-held
  // lock (park_under) there is nothing to re-check: nobody could change the
  // port since the method's own attempt.
  void arm(waiter& w) override {
    if (input_core::lock* held = std::exchange(held_, nullptr)) {
      core_.park_locked(w, *this);
      held->release();
      return;
    }
    input_core::lock l(core_);
    self_ref self(w);
    self_commit c(self);
    bool may_fill = true;
    if (core_.attempt_locked(*this, c, may_fill, false) == input_core::attempt::not_ready) {
      core_.park_locked(w, *this);
    }
  }
  void disarm(waiter& w) noexcept override {
    std::lock_guard<std::mutex> g(core_.mu());
    core_.unpark_locked(w);
  }
  const char* name() const override { return who(); }

  // For a method's node: the method has just tried and failed under `l`,
  // which it still holds and syncs on this node next. The sync skips its
  // poll, and arm() parks at once and releases `l`. The sync must come
  // before anything else takes the port's lock on this OS thread.
  void park_under(input_core::lock& l) {
    skip_poll_ = true;
    held_ = &l;
  }

  char* dst() const override {
    if constexpr (std::is_same_v<R, or_eof<std::size_t>>) {
      return dst_;
    } else {
      return nullptr;
    }
  }

  void deliver(result_slot& slot, const read_outcome& o) const override {
    if constexpr (std::is_void_v<R>) {
      slot.emplace<void>();
    } else if constexpr (std::is_same_v<R, input_port>) {
      slot.emplace<input_port>(keep_);
    } else if constexpr (std::is_same_v<R, or_eof<std::size_t>>) {
      if (o.eof) {
        slot.emplace<R>(eof);
      } else {
        if (!o.in_place && !o.bytes.empty()) std::memcpy(dst_, o.bytes.data(), o.bytes.size());
        slot.emplace<R>(o.bytes.size());
      }
    } else {
      static_assert(std::is_same_v<R, or_eof<std::string>>);
      if (o.eof) {
        slot.emplace<R>(eof);
      } else {
        slot.emplace<R>(std::string(o.bytes));
      }
    }
  }

 private:
  const std::shared_ptr<input_core> keep_;
  input_core& core_;
  char* const dst_;
  bool skip_poll_ = false;
  input_core::lock* held_ = nullptr;  // park_under's lock, until arm() releases it
};

// R is std::size_t (write_bytes_avail_evt) or output_port (the port as an
// event). The bytes to write are copied into the node unless `borrowed`
// (a method's stack node, whose caller keeps them alive).
template <class R>
class write_node final : public base_evt<R>, public write_request {
 public:
  write_node(std::shared_ptr<output_core> keep, output_core& core, write_request::op what,
             const char* who, std::string owned = {}, std::string_view borrowed = {})
      : write_request(what, who),
        keep_(std::move(keep)),
        core_(core),
        owned_(std::move(owned)),
        data_(owned_.empty() ? borrowed : std::string_view(owned_)) {}

  bool try_sync(self_ref& self) override {
    if (std::exchange(skip_poll_, false)) return false;
    output_core::lock l(core_);
    self_commit c(self);
    return core_.attempt_locked(*this, c) == output_core::attempt::done;
  }
  void arm(waiter& w) override {
    output_core::lock l(core_);
    self_ref self(w);
    self_commit c(self);
    if (core_.attempt_locked(*this, c, false) == output_core::attempt::not_ready) {
      core_.park_locked(w, *this);
    }
  }
  void disarm(waiter& w) noexcept override {
    std::lock_guard<std::mutex> g(core_.mu());
    core_.unpark_locked(w);
  }
  const char* name() const override { return who(); }

  // For a method's node: the method has just tried and failed under the
  // port's lock, so the sync's poll would only repeat it.
  void skip_next_poll() { skip_poll_ = true; }

  std::string_view data() const override { return data_; }
  void deliver(result_slot& slot, std::size_t written) const override {
    if constexpr (std::is_same_v<R, output_port>) {
      slot.emplace<output_port>(keep_);
    } else {
      static_assert(std::is_same_v<R, std::size_t>);
      slot.emplace<std::size_t>(written);
    }
  }

 private:
  const std::shared_ptr<output_core> keep_;
  output_core& core_;
  const std::string owned_;
  const std::string_view data_;
  bool skip_poll_ = false;
};

}  // namespace rkt::internal

#endif  // RKT_PORTS_INTERNAL_PORT_NODES_H_
