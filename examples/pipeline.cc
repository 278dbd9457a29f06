// A small tour of rkt: green threads joined by channels, a choice with a
// timeout, a semaphore, and a kill that unwinds a parked thread. It prints
// what happens as it goes. This is the README's main job until the echo
// server arrives.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "evt/alarm.h"
#include "evt/channel.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"

namespace {

// Prints when a thread's stack unwinds.
struct announce_unwind {
  const char* who;
  ~announce_unwind() { std::printf("  %s: stack unwound\n", who); }
};

}  // namespace

int main() {
  constexpr int kWorkers = 4;
  constexpr int kJobs = 20;

  rkt::channel<int> jobs;
  rkt::channel<std::string> results;
  rkt::semaphore done(0);

  std::printf("spawning %d workers\n", kWorkers);
  std::vector<rkt::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([=] {
      for (;;) {
        int job = jobs.get();
        if (job < 0) break;
        results.put("worker " + std::to_string(w) + " squared " + std::to_string(job) + " = " +
                    std::to_string(job * job));
      }
      done.post();
    });
  }

  rkt::thread producer([=] {
    for (int i = 1; i <= kJobs; ++i) jobs.put(i);
    for (int w = 0; w < kWorkers; ++w) jobs.put(-1);
  });

  // Collect results; a 1-second alarm in the same sync guards against a hang.
  absl::Time give_up = absl::Now() + absl::Seconds(1);
  int received = 0;
  while (received < kJobs) {
    std::optional<std::string> r = rkt::sync(
        rkt::wrap_evt(results, [](std::string s) { return std::optional<std::string>(s); }),
        rkt::wrap_evt(rkt::alarm_evt(give_up), [] { return std::optional<std::string>(); }));
    if (!r) {
      std::printf("gave up after %d results\n", received);
      return 1;
    }
    std::printf("  %s\n", r->c_str());
    ++received;
  }
  for (int w = 0; w < kWorkers; ++w) done.wait();
  producer.wait();
  std::printf("all %d jobs done by %d workers\n", kJobs, kWorkers);

  // A thread parked on a channel nobody writes is woken by kill, and its
  // destructors run.
  rkt::channel<int> never_written;
  rkt::thread sleeper([=] {
    announce_unwind guard{"sleeper"};
    never_written.get();
  });
  rkt::yield();
  std::printf("killing a thread parked in sync\n");
  sleeper.kill();
  std::printf("sleeper running: %s\n", sleeper.running() ? "yes" : "no");

  // sync_timeout with zero polls: nothing is ready, so it returns at once.
  bool polled = rkt::sync_timeout(absl::ZeroDuration(), never_written).has_value();
  std::printf("poll of an empty channel: %s\n", polled ? "ready" : "not ready");
  return 0;
}
