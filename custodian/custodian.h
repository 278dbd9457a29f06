// Custodians: Racket's tree of resource managers. Every green thread (and,
// as they arrive, every fd port, listener and connection) registers with the
// custodian current when it is created; shutdown_all() closes everything a
// custodian and its descendants manage and kills their threads.
//
//   rkt::custodian c = rkt::make_custodian();
//   {
//     rkt::custodian_scope in(c);          // parameterize current-custodian
//     rkt::thread worker([] { ... });      // managed by c
//   }
//   c.shutdown_all();                      // worker unwinds with thread_killed
//
// A custodian holds what it manages weakly: a resource whose last handle is
// dropped closes itself and leaves. Custodians work from any OS thread.
// Semantics: Racket's custodians (reference section 14.7).
#ifndef RKT_CUSTODIAN_CUSTODIAN_H_
#define RKT_CUSTODIAN_CUSTODIAN_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "custodian/managed.h"
#include "evt/evt.h"
#include "evt/thread.h"

namespace rkt {
namespace internal {
class custodian_state;
}  // namespace internal

class custodian {
 public:
  // The process's root custodian, the current one where no other was set.
  static custodian root();

  custodian(const custodian&) = default;
  custodian& operator=(const custodian&) = default;

  // Closes every resource this custodian and its descendants manage, kills
  // the green threads they alone manage (a thread that gained another
  // manager through thread_resume loses this one and lives on), empties
  // their custodian boxes, and marks them all shut down (Racket's
  // custodian-shutdown-all). Idempotent; any green thread on any OS thread.
  //
  // Threads are asked to die before anything else is closed, so that a
  // thread parked on a port this shutdown closes unwinds with thread_killed.
  // When it returns, every thread it killed that runs on the calling OS
  // thread is dead (running() false, dead_evt() ready, the nacks of its
  // syncs posted): each dies the first time it runs, since a dying thread
  // never parks. It does not wait for threads of other OS threads: those
  // die as soon as their scheduler runs them (wait on their dead_evt() to
  // know). When the calling thread is itself killed here, it goes last,
  // after everything else was shut down: shutdown_all then raises
  // thread_killed in it.
  void shutdown_all() const;

  // True once this custodian, or one of its ancestors, was shut down.
  bool is_shut_down() const;

  // What this custodian manages directly (custodian boxes left out); empty
  // once shut down. Racket's custodian-managed-list: raises
  // exn_fail_contract ("the second custodian does not manage the first
  // custodian") unless this custodian is a strict subordinate of `super`.
  // The subordinate custodians are in children().
  std::vector<std::shared_ptr<managed_resource>> managed_list(const custodian& super) const;
  // The same, without the check.
  std::vector<std::shared_ptr<managed_resource>> managed_list() const;
  std::vector<custodian> children() const;

  // Ready once the custodian is shut down; the result is void.
  evt<void> shutdown_evt() const;

  // Registers `r`, held weakly, for `who`'s error message. Raises
  // exn_fail_contract "<who>: the custodian has been shut down" (with a
  // "custodian: #<custodian>" line, as Racket's) when it is.
  void manage(const std::shared_ptr<managed_resource>& r, const char* who) const;
  // Raises what manage() raises for `who` when the custodian is shut down:
  // for constructors that check before acquiring their OS resource.
  void check_not_shut_down(const char* who) const;
  // As manage(), but returns false instead of raising.
  bool try_manage(const std::shared_ptr<managed_resource>& r) const;

  bool operator==(const custodian& o) const { return st_ == o.st_; }

  explicit custodian(std::shared_ptr<internal::custodian_state> st) : st_(std::move(st)) {}
  const std::shared_ptr<internal::custodian_state>& state() const { return st_; }

 private:
  std::shared_ptr<internal::custodian_state> st_;
};

// A new custodian under `parent`. Raises exn_fail_contract when the parent
// is shut down.
custodian make_custodian(const custodian& parent);
custodian make_custodian();

// The calling green thread's current custodian; new green threads inherit
// their creator's.
custodian current_custodian();

// Racket's thread-resume with a benefactor (rkt has no suspended threads,
// so only the custody part applies): `benefactor` becomes one more manager
// of t, unless it is shut down or it or a superior manages t already; any
// manager that is a subordinate of it is dropped as redundant. t then
// survives the shutdown of its first custodian and dies only when every
// manager has been shut down. No-op on a dead thread.
void thread_resume(const thread& t, const custodian& benefactor);
// Every current manager of `benefactor` becomes a manager of t, and so does
// every custodian `benefactor` gains later (through thread_resume).
void thread_resume(const thread& t, const thread& benefactor);

// Makes `c` the calling green thread's current custodian for a scope
// (Racket's parameterize of current-custodian).
class custodian_scope {
 public:
  explicit custodian_scope(const custodian& c);
  ~custodian_scope();
  custodian_scope(const custodian_scope&) = delete;
  custodian_scope& operator=(const custodian_scope&) = delete;

 private:
  std::shared_ptr<void> saved_;
};

}  // namespace rkt

#endif  // RKT_CUSTODIAN_CUSTODIAN_H_
