// The custodian tree, the current custodian, shutdown, and the registration
// of green threads (through the evt core's spawn hook, so that evt/ does not
// depend on custodian/).
//
// Invariants (custodian_state, under mu):
//   - once shut_down is set it stays set, and resources and children are
//     empty: a shut-down custodian manages nothing and accepts nothing.
//   - A child holds its parent strongly; a parent holds children and
//     resources weakly, so dropping the last handle of either frees it.
// Lock order: mu is a leaf lock; shutdown collects under one custodian's mu
// at a time and shuts resources down with no lock held.
#include "custodian/custodian.h"

#include <exception>
#include <mutex>
#include <string>
#include <utility>

#include "evt/exn.h"
#include "evt/internal/one_shot_evt.h"
#include "evt/internal/scheduler.h"

namespace rkt {
namespace internal {

class custodian_state {
 public:
  explicit custodian_state(std::shared_ptr<custodian_state> parent)
      : parent(std::move(parent)), signal(make_node<one_shot_evt>("custodian-shutdown-evt")) {}

  std::mutex mu;
  const std::shared_ptr<custodian_state> parent;
  std::atomic<bool> shut_down{false};                    // written under mu
  std::vector<std::weak_ptr<custodian_state>> children;  // guarded by mu
  std::vector<std::weak_ptr<managed_resource>> resources;  // guarded by mu
  const node_ref<one_shot_evt> signal;

  // Drops the expired weak entries. Requires: mu held.
  void compact() {
    std::erase_if(children, [](const auto& w) { return w.expired(); });
    std::erase_if(resources, [](const auto& w) { return w.expired(); });
  }
};

namespace {

const std::shared_ptr<custodian_state>& root_state() {
  static const auto* root = new std::shared_ptr<custodian_state>(
      std::make_shared<custodian_state>(nullptr));
  return *root;
}

std::shared_ptr<custodian_state> current_state() {
  thread_state* t = scheduler::current().running();
  if (t->custodian) return std::static_pointer_cast<custodian_state>(t->custodian);
  return root_state();
}

[[noreturn]] void raise_shut_down(const char* who) {
  throw exn_fail_contract(std::string(who) + ": the custodian has been shut down");
}

// A green thread as a custodian sees it. Owned by the thread's
// custodian_entry slot until the thread dies; holds a reference on it.
class thread_entry final : public managed_resource {
 public:
  explicit thread_entry(thread_state* t) : t_(t) { t_->add_ref(); }
  ~thread_entry() override { t_->release(); }
  void shut_down_by_custodian() noexcept override { request_kill(t_); }
  std::string describe() const override { return "thread"; }
  thread_state* thread() const { return t_; }

 private:
  thread_state* const t_;
};

void register_new_thread(thread_state* child) {
  auto entry = std::make_shared<thread_entry>(child);
  std::shared_ptr<custodian_state> st =
      child->custodian ? std::static_pointer_cast<custodian_state>(child->custodian)
                       : root_state();
  custodian(st).manage(entry, "thread");
  child->custodian_entry = entry;
}

// Everything a shutdown must close, gathered from a custodian and its
// descendants, each marked shut down on the way.
void collect(const std::shared_ptr<custodian_state>& st,
             std::vector<std::shared_ptr<managed_resource>>& resources,
             std::vector<std::shared_ptr<custodian_state>>& shut) {
  std::vector<std::shared_ptr<custodian_state>> children;
  {
    std::lock_guard<std::mutex> g(st->mu);
    if (st->shut_down.load(std::memory_order_relaxed)) return;
    st->shut_down.store(true, std::memory_order_release);
    for (const auto& w : st->resources) {
      if (auto r = w.lock()) resources.push_back(std::move(r));
    }
    for (const auto& w : st->children) {
      if (auto c = w.lock()) children.push_back(std::move(c));
    }
    st->resources.clear();
    st->children.clear();
  }
  shut.push_back(st);
  for (const auto& c : children) collect(c, resources, shut);
}

const bool spawn_hook_installed = (set_spawn_hook(&register_new_thread), true);

}  // namespace
}  // namespace internal

custodian custodian::root() { return custodian(internal::root_state()); }

void custodian::manage(const std::shared_ptr<managed_resource>& r, const char* who) const {
  if (!try_manage(r)) internal::raise_shut_down(who);
}

void custodian::check_not_shut_down(const char* who) const {
  if (is_shut_down()) internal::raise_shut_down(who);
}

bool custodian::try_manage(const std::shared_ptr<managed_resource>& r) const {
  std::lock_guard<std::mutex> g(st_->mu);
  if (st_->shut_down.load(std::memory_order_relaxed)) return false;
  if (st_->resources.size() % 64 == 63) st_->compact();
  st_->resources.push_back(r);
  return true;
}

void custodian::shutdown_all() const {
  (void)internal::spawn_hook_installed;
  std::vector<std::shared_ptr<managed_resource>> resources;
  std::vector<std::shared_ptr<internal::custodian_state>> shut;
  internal::collect(st_, resources, shut);
  // The calling thread, if it is managed here, goes last.
  internal::scheduler* here = internal::scheduler::current_if_any();
  const void* self_entry = here != nullptr ? here->running()->custodian_entry.get() : nullptr;
  bool kill_self = false;
  for (const auto& r : resources) {
    if (r.get() == self_entry) {
      kill_self = true;
    } else {
      r->shut_down_by_custodian();
    }
  }
  for (const auto& s : shut) s->signal->post();
  if (kill_self) {
    here->running()->kill_requested.store(true, std::memory_order_release);
    internal::throw_if_killed();
  }
}

bool custodian::is_shut_down() const {
  for (const internal::custodian_state* s = st_.get(); s != nullptr; s = s->parent.get()) {
    if (s->shut_down.load(std::memory_order_acquire)) return true;
  }
  return false;
}

std::vector<std::shared_ptr<managed_resource>> custodian::managed_list() const {
  std::vector<std::shared_ptr<managed_resource>> out;
  std::lock_guard<std::mutex> g(st_->mu);
  for (const auto& w : st_->resources) {
    if (auto r = w.lock(); r != nullptr && r->listed()) out.push_back(std::move(r));
  }
  return out;
}

std::vector<custodian> custodian::children() const {
  std::vector<custodian> out;
  std::lock_guard<std::mutex> g(st_->mu);
  for (const auto& w : st_->children) {
    if (auto c = w.lock()) out.emplace_back(std::move(c));
  }
  return out;
}

evt<void> custodian::shutdown_evt() const { return evt<void>(st_->signal); }

custodian make_custodian(const custodian& parent) {
  (void)internal::spawn_hook_installed;
  auto child = std::make_shared<internal::custodian_state>(parent.state());
  std::lock_guard<std::mutex> g(parent.state()->mu);
  if (parent.state()->shut_down.load(std::memory_order_relaxed)) {
    internal::raise_shut_down("make-custodian");
  }
  if (parent.state()->children.size() % 64 == 63) parent.state()->compact();
  parent.state()->children.push_back(child);
  return custodian(std::move(child));
}

custodian make_custodian() { return make_custodian(current_custodian()); }

custodian current_custodian() { return custodian(internal::current_state()); }

custodian_scope::custodian_scope(const custodian& c) {
  internal::thread_state* t = internal::scheduler::current().running();
  saved_ = std::move(t->custodian);
  t->custodian = c.state();
}

custodian_scope::~custodian_scope() {
  internal::scheduler::current().running()->custodian = std::move(saved_);
}

}  // namespace rkt
