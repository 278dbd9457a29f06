// The custodian tree, the current custodian, shutdown, and the custody of
// green threads: registration at spawn, the managers a thread gains through
// thread_resume, and the kill permission check (all through the evt core's
// custody hooks, evt/thread_custody.h, so that evt/ does not depend on
// custodian/).
//
// Invariants (custodian_state, under mu):
//   - once shut_down is set it stays set, and resources and children are
//     empty: a shut-down custodian manages nothing and accepts nothing.
//   - A child holds its parent strongly; a parent holds children and
//     resources weakly, so dropping the last handle of either frees it.
// Invariants (thread_entry, under its mu): managers holds no custodian
// together with one of its subordinates (Racket drops the redundant
// subordinate); the entry is in the resources of each live manager.
// Lock order: resume_mu (thread_resume only) -> thread_entry::mu ->
// custodian_state::mu. Shutdown collects under one custodian's mu at a time
// and shuts resources down with no lock held.
#include "custodian/custodian.h"

#include <algorithm>
#include <exception>
#include <mutex>
#include <string>
#include <utility>

#include "evt/exn.h"
#include "evt/semaphore.h"
#include "evt/thread_custody.h"

namespace rkt {
namespace internal {

class custodian_state {
 public:
  explicit custodian_state(std::shared_ptr<custodian_state> parent)
      : parent(std::move(parent)), signal_evt(signal.peek_evt()) {}

  std::mutex mu;
  const std::shared_ptr<custodian_state> parent;
  std::atomic<bool> shut_down{false};                      // written under mu
  std::vector<std::weak_ptr<custodian_state>> children;    // guarded by mu
  std::vector<std::weak_ptr<managed_resource>> resources;  // guarded by mu
  // Posted once, by the shutdown that marked this custodian.
  const semaphore signal;
  const evt<void> signal_evt;

  // Appends `w` to `list` (children or resources), first dropping the
  // list's expired entries once it has reached `compact_at`, which is then
  // set to twice what survived: registering stays amortized O(1) however
  // many live entries there are (compacting every 64 appends made 100,000
  // live connections quadratic). Requires: mu held.
  template <class T>
  static void append(std::vector<std::weak_ptr<T>>& list, std::size_t& compact_at,
                     std::weak_ptr<T> w) {
    if (list.size() >= compact_at) {
      std::erase_if(list, [](const auto& e) { return e.expired(); });
      compact_at = 2 * list.size() + 64;
    }
    list.push_back(std::move(w));
  }
  std::size_t children_compact_at = 64;   // guarded by mu
  std::size_t resources_compact_at = 64;  // guarded by mu

  // Whether `this` is `other` or one of its (indirect) subordinates.
  bool within(const custodian_state* other) const {
    for (const custodian_state* s = this; s != nullptr; s = s->parent.get()) {
      if (s == other) return true;
    }
    return false;
  }
};

namespace {

const std::shared_ptr<custodian_state>& root_state() {
  static const auto* root = new std::shared_ptr<custodian_state>(
      std::make_shared<custodian_state>(nullptr));
  return *root;
}

std::shared_ptr<custodian_state> current_state() {
  std::shared_ptr<void>& slot = custody::current_slot();
  if (slot) return std::static_pointer_cast<custodian_state>(slot);
  return root_state();
}

// Racket prints a custodian as #<custodian>, in messages too.
constexpr const char* kCustodianField = "\n  custodian: #<custodian>";

[[noreturn]] void raise_shut_down(const char* who) {
  throw exn_fail_contract(std::string(who) + ": the custodian has been shut down" +
                          kCustodianField);
}

bool shut_down_here_or_above(const custodian_state* st) {
  for (const custodian_state* s = st; s != nullptr; s = s->parent.get()) {
    if (s->shut_down.load(std::memory_order_acquire)) return true;
  }
  return false;
}

// A green thread as its custodians see it. The thread's entry slot owns it
// until the thread dies; each live manager lists it (weakly).
class thread_entry final : public managed_resource,
                           public std::enable_shared_from_this<thread_entry> {
 public:
  thread_entry(rkt::thread t, std::shared_ptr<custodian_state> first)
      : thread_(std::move(t)), managers_{std::move(first)} {}

  // One of the managers is shutting down (it and its subordinates are
  // marked already): the thread dies once no manager is left. May run once
  // per manager.
  void shut_down_by_custodian() noexcept override {
    if (!has_live_manager()) {
      killed_.store(true, std::memory_order_release);
      custody::request_kill(thread_);
    }
  }
  std::string describe() const override { return thread_.describe(); }

  const rkt::thread& thread() const { return thread_; }
  bool killed() const { return killed_.load(std::memory_order_acquire); }

  bool has_live_manager() const {
    std::lock_guard<std::mutex> g(mu_);
    return std::any_of(managers_.begin(), managers_.end(),
                       [](const auto& m) { return !shut_down_here_or_above(m.get()); });
  }

  // Whether every live manager is `c` or one of its subordinates.
  bool solely_managed_by(const custodian_state* c) const {
    std::lock_guard<std::mutex> g(mu_);
    return std::all_of(managers_.begin(), managers_.end(), [c](const auto& m) {
      return shut_down_here_or_above(m.get()) || m->within(c);
    });
  }

  // Adds `c` as a manager (Racket's thread-resume with a custodian).
  // Returns false when nothing changed: c is shut down, or c or one of its
  // superiors manages the thread already. Requires resume_mu.
  bool add_manager(const std::shared_ptr<custodian_state>& c);

  // Threads that asked, through thread_resume, to gain this one's future
  // managers. Guarded by resume_mu.
  std::vector<std::weak_ptr<thread_entry>> dependents;

  std::vector<std::shared_ptr<custodian_state>> managers() const {
    std::lock_guard<std::mutex> g(mu_);
    return managers_;
  }

 private:
  const rkt::thread thread_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<custodian_state>> managers_;  // guarded by mu_
  std::atomic<bool> killed_{false};
};

// Serializes thread_resume, which walks entries and their dependents.
std::mutex resume_mu;

bool thread_entry::add_manager(const std::shared_ptr<custodian_state>& c) {
  std::vector<std::shared_ptr<custodian_state>> dropped;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (thread_.dead()) return false;
    for (const auto& m : managers_) {
      if (c->within(m.get())) return false;  // already managed by m, a superior
    }
    std::erase_if(managers_, [&](const std::shared_ptr<custodian_state>& m) {
      if (!m->within(c.get())) return false;
      dropped.push_back(m);
      return true;
    });
    managers_.push_back(c);
  }
  for (const auto& m : dropped) {
    std::lock_guard<std::mutex> g(m->mu);
    std::erase_if(m->resources, [this](const std::weak_ptr<managed_resource>& w) {
      return w.lock().get() == this;
    });
  }
  if (!custodian(c).try_manage(shared_from_this())) {
    // Shut down meanwhile: that shutdown did not see this entry.
    shut_down_by_custodian();
  }
  return true;
}

// nullptr once t is dead (or before its spawn registered it).
std::shared_ptr<thread_entry> entry_of(const rkt::thread& t) {
  return std::static_pointer_cast<thread_entry>(custody::entry(t));
}

void register_new_thread(const rkt::thread& child) {
  std::shared_ptr<void>& slot = custody::current_slot();
  std::shared_ptr<custodian_state> st =
      slot ? std::static_pointer_cast<custodian_state>(slot) : root_state();
  auto entry = std::make_shared<thread_entry>(child, st);
  custodian(st).manage(entry, "thread");
  custody::set_entry(child, entry);
}

void check_kill(const rkt::thread& target) {
  auto entry = entry_of(target);
  if (entry == nullptr || entry->solely_managed_by(current_state().get())) return;
  throw exn_fail_contract(
      "kill-thread: the current custodian does not solely manage the specified thread\n"
      "  thread: " +
      target.describe());
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

const bool hooks_installed = [] {
  custody::install(custody::hooks{&register_new_thread, &check_kill});
  return true;
}();

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
  st_->append(st_->resources, st_->resources_compact_at, std::weak_ptr<managed_resource>(r));
  return true;
}

void custodian::shutdown_all() const {
  (void)internal::hooks_installed;
  std::vector<std::shared_ptr<managed_resource>> resources;
  std::vector<std::shared_ptr<internal::custodian_state>> shut;
  internal::collect(st_, resources, shut);
  // Threads first: a thread parked on a port that this shutdown closes must
  // find itself killed when it wakes, not the port closed. The calling
  // thread, if it dies here, goes last.
  const void* self_entry = custody::current_entry();
  bool kill_self = false;
  std::vector<std::shared_ptr<internal::thread_entry>> killed;
  for (auto& r : resources) {
    auto* entry = dynamic_cast<internal::thread_entry*>(r.get());
    if (entry == nullptr) continue;
    if (entry == self_entry) {
      kill_self = !entry->has_live_manager();
    } else {
      entry->shut_down_by_custodian();
      if (entry->killed()) killed.push_back(std::static_pointer_cast<internal::thread_entry>(r));
    }
    r.reset();
  }
  for (const auto& r : resources) {
    if (r != nullptr) r->shut_down_by_custodian();
  }
  for (const auto& s : shut) s->signal.post();
  // Racket's guarantee: the threads this shutdown killed are dead when it
  // returns. Those of this OS thread die the next time they run (a dying
  // thread never parks), so wait for them; those of other OS threads die
  // when their scheduler next runs them.
  for (const auto& e : killed) custody::await_death_if_local(e->thread());
  if (kill_self) {
    custody::request_kill(current_thread());
    current_thread().kill();  // throws thread_killed here, at once
  }
}

bool custodian::is_shut_down() const { return internal::shut_down_here_or_above(st_.get()); }

std::vector<std::shared_ptr<managed_resource>> custodian::managed_list() const {
  std::vector<std::shared_ptr<managed_resource>> out;
  std::lock_guard<std::mutex> g(st_->mu);
  for (const auto& w : st_->resources) {
    if (auto r = w.lock(); r != nullptr && r->listed()) out.push_back(std::move(r));
  }
  return out;
}

std::vector<std::shared_ptr<managed_resource>> custodian::managed_list(
    const custodian& super) const {
  // Racket checks the tree as it was built: a shutdown empties a custodian
  // but does not unlink it from its superiors.
  if (st_ == super.st_ || !st_->within(super.st_.get())) {
    throw exn_fail_contract(
        "custodian-managed-list: the second custodian does not manage the first custodian\n"
        "  first custodian: #<custodian>\n"
        "  second custodian: #<custodian>");
  }
  return managed_list();
}

std::vector<custodian> custodian::children() const {
  std::vector<custodian> out;
  std::lock_guard<std::mutex> g(st_->mu);
  for (const auto& w : st_->children) {
    if (auto c = w.lock()) out.emplace_back(std::move(c));
  }
  return out;
}

evt<void> custodian::shutdown_evt() const { return st_->signal_evt; }

custodian make_custodian(const custodian& parent) {
  (void)internal::hooks_installed;
  auto child = std::make_shared<internal::custodian_state>(parent.state());
  std::lock_guard<std::mutex> g(parent.state()->mu);
  if (parent.state()->shut_down.load(std::memory_order_relaxed)) {
    internal::raise_shut_down("make-custodian");
  }
  internal::custodian_state& p = *parent.state();
  p.append(p.children, p.children_compact_at, std::weak_ptr<internal::custodian_state>(child));
  return custodian(std::move(child));
}

custodian make_custodian() { return make_custodian(current_custodian()); }

custodian current_custodian() { return custodian(internal::current_state()); }

custodian_scope::custodian_scope(const custodian& c) {
  std::shared_ptr<void>& slot = custody::current_slot();
  saved_ = std::move(slot);
  slot = c.state();
}

custodian_scope::~custodian_scope() { custody::current_slot() = std::move(saved_); }

namespace {

// Adds `c` to t's managers and, transitively, to those of the threads that
// follow t's (thread_resume with t as benefactor). Requires resume_mu.
void add_manager_following(const std::shared_ptr<internal::thread_entry>& t,
                           const std::shared_ptr<internal::custodian_state>& c) {
  if (!t->add_manager(c)) return;
  std::erase_if(t->dependents, [](const auto& w) { return w.expired(); });
  for (const auto& w : std::vector(t->dependents)) {
    if (auto d = w.lock()) add_manager_following(d, c);
  }
}

}  // namespace

void thread_resume(const thread& t, const custodian& benefactor) {
  std::lock_guard<std::mutex> g(internal::resume_mu);
  auto entry = internal::entry_of(t);
  if (entry == nullptr || t.dead()) return;
  add_manager_following(entry, benefactor.state());
}

void thread_resume(const thread& t, const thread& benefactor) {
  std::lock_guard<std::mutex> g(internal::resume_mu);
  auto entry = internal::entry_of(t);
  auto from = internal::entry_of(benefactor);
  if (entry == nullptr || from == nullptr || t.dead() || entry == from) return;
  from->dependents.push_back(entry);
  for (const auto& c : from->managers()) {
    if (!internal::shut_down_here_or_above(c.get())) add_manager_following(entry, c);
  }
}

}  // namespace rkt
