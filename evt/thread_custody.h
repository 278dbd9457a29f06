// The seam between green threads and the custodian layer. The evt core
// knows nothing of custodians: custodian/ installs these hooks once and
// keeps its per-thread state in these slots, so the dependency runs one
// way (custodian/ -> evt/). Application code uses custodian/custodian.h.
//
// Threading: the hooks run on the OS thread of the call that triggers them;
// the current-custodian slot is touched only by its own thread, the entry
// from any OS thread.
#ifndef RKT_EVT_THREAD_CUSTODY_H_
#define RKT_EVT_THREAD_CUSTODY_H_

#include <memory>

#include "evt/thread.h"

namespace rkt::custody {

struct hooks {
  // Runs on the spawning green thread with the new thread, before it is
  // queued; throwing refuses the spawn (the new thread never runs).
  void (*on_spawn)(const thread& child) = nullptr;
  // Runs at the start of thread::kill(); throws exn_fail_contract to refuse.
  void (*check_kill)(const thread& target) = nullptr;
};

// Installs the hooks; called once, during custodian/'s static
// initialization.
void install(const hooks& h);

// The running green thread's current-custodian slot (Racket's
// parameterization of current-custodian). A new thread starts with a copy
// of its creator's slot.
std::shared_ptr<void>& current_slot();

// What t's managers keep for it. Set by on_spawn; released when t dies.
// Any OS thread.
void set_entry(const thread& t, std::shared_ptr<void> entry);
std::shared_ptr<void> entry(const thread& t);
// The running thread's entry (nullptr before on_spawn set one, and for a
// root thread).
const void* current_entry();

// Asks t to die without waiting and without any custodian check: t unwinds
// with thread_killed from its current or next switch point.
void request_kill(const thread& t);

// When t runs on the calling OS thread, returns once it is dead (it dies
// the next time it runs: a dying thread never parks); otherwise returns at
// once. Works in a dying caller too.
void await_death_if_local(const thread& t);

}  // namespace rkt::custody

#endif  // RKT_EVT_THREAD_CUSTODY_H_
