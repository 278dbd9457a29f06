// Channel, semaphore, choice, poll and spawn costs of the evt core
// (issue 3), each next to a baseline run in the same binary:
//
//   BM_RoundTrip/*   main sends, a partner answers, main receives: rkt
//                    channels and semaphores, Boost.Fiber's
//                    unbuffered_channel, and two bare Boost.Context
//                    switches (the least any round trip between two
//                    fibers can cost).
//   BM_SemaPostWait  an uncontended post+wait pair, rkt::semaphore vs
//                    std::counting_semaphore and a bare atomic counter.
//   BM_Choice/*/N    sync on a choice of N channels (N = 1, 2, 10, 100,
//                    1000; 2 to compare with docs/PERFORMANCE.md's peers) of which
//                    exactly one is ready: a partner green thread is parked
//                    in put on one channel, picked pseudo-randomly each
//                    iteration from a fixed table. Each iteration is the
//                    sync plus a yield that lets the partner put again, so
//                    N=1 is the fixed part and the growth with N is the
//                    choice's cost.
//   BM_Poll/*        a zero-timeout poll of an event that is never ready.
//   BM_SpawnJoin/*   spawn an empty green thread / fiber and join it.
//
// Every benchmark reports allocs/op, the calls to operator new per
// iteration (bench/alloc_counter.h).
#include <benchmark/benchmark.h>

#include <boost/context/fiber.hpp>
#include <boost/fiber/buffered_channel.hpp>
#include <boost/fiber/channel_op_status.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/unbuffered_channel.hpp>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <semaphore>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "bench/bench_util.h"
#include "evt/channel.h"
#include "evt/evt.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"

namespace rkt::bench {
namespace {

namespace bctx = boost::context;
namespace bf = boost::fibers;

// ---------------------------------------------------------------------------
// Round trips.

// Main puts on `ping`; an echo green thread gets it and puts it on `pong`;
// main gets it. A negative value stops the echo thread.
void BM_RoundTrip_rkt_channel(benchmark::State& state) {
  rkt::channel<int> ping;
  rkt::channel<int> pong;
  rkt::thread echo([&] {
    for (;;) {
      int v = ping.get();
      if (v < 0) return;
      pong.put(v);
    }
  });
  int i = 0;
  int64_t wrong = 0;
  alloc_probe allocs;
  for (auto _ : state) {
    ping.put(i);
    int v = pong.get();
    wrong += v != i;
    keep(v);
    i = (i + 1) & 0x3fffffff;
  }
  allocs.report(state);
  ping.put(-1);
  echo.wait();
  if (wrong != 0) state.SkipWithError("the echo thread returned a wrong value");
}

// The same exchange between two Boost.Fiber fibers (main's own fiber and
// one spawned) on the default round-robin scheduler.
void BM_RoundTrip_boost_fiber_channel(benchmark::State& state) {
  bf::unbuffered_channel<int> ping;
  bf::unbuffered_channel<int> pong;
  bf::fiber echo([&] {
    int v;
    while (ping.pop(v) == bf::channel_op_status::success) pong.push(v);
  });
  int i = 0;
  int64_t wrong = 0;
  alloc_probe allocs;
  for (auto _ : state) {
    ping.push(i);
    int v = -1;
    pong.pop(v);
    wrong += v != i;
    keep(v);
    i = (i + 1) & 0x3fffffff;
  }
  allocs.report(state);
  ping.close();
  echo.join();
  if (wrong != 0) state.SkipWithError("the echo fiber returned a wrong value");
}

// The floor: control goes to the partner and back, nothing else.
void BM_RoundTrip_boost_context_2switch(benchmark::State& state) {
  bool stop = false;
  bctx::fiber f([&stop](bctx::fiber&& main) {
    while (!stop) main = std::move(main).resume();
    return std::move(main);
  });
  f = std::move(f).resume();
  alloc_probe allocs;
  for (auto _ : state) f = std::move(f).resume();
  allocs.report(state);
  stop = true;
  f = std::move(f).resume();
}

// Two semaphores between two green threads: main posts `ping` and waits on
// `pong`; the partner waits on `ping` and posts `pong`.
void BM_RoundTrip_rkt_semaphore(benchmark::State& state) {
  rkt::semaphore ping(0);
  rkt::semaphore pong(0);
  bool stop = false;
  rkt::thread echo([&] {
    for (;;) {
      ping.wait();
      if (stop) return;
      pong.post();
    }
  });
  alloc_probe allocs;
  for (auto _ : state) {
    ping.post();
    pong.wait();
  }
  allocs.report(state);
  stop = true;
  ping.post();
  echo.wait();
}

BENCHMARK(BM_RoundTrip_rkt_channel)->Name("BM_RoundTrip/rkt_channel");
BENCHMARK(BM_RoundTrip_boost_fiber_channel)->Name("BM_RoundTrip/boost_fiber_channel");
BENCHMARK(BM_RoundTrip_boost_context_2switch)->Name("BM_RoundTrip/boost_context_2switch");
BENCHMARK(BM_RoundTrip_rkt_semaphore)->Name("BM_RoundTrip/rkt_semaphore");

// ---------------------------------------------------------------------------
// Uncontended semaphore.

void BM_SemaPostWait_rkt_semaphore(benchmark::State& state) {
  rkt::semaphore s(0);
  alloc_probe allocs;
  for (auto _ : state) {
    s.post();
    s.wait();
  }
  allocs.report(state);
}

// libstdc++ 12 makes a futex wake system call in every release(), waiters
// or not, so this baseline is slow; atomic_floor below is the other bound.
void BM_SemaPostWait_std_counting_semaphore(benchmark::State& state) {
  std::counting_semaphore<> s(0);
  alloc_probe allocs;
  for (auto _ : state) {
    s.release();
    s.acquire();
  }
  allocs.report(state);
}

// The least a counting semaphore can do: an atomic increment, then a
// compare-and-swap decrement that never takes the count below zero.
void BM_SemaPostWait_atomic_floor(benchmark::State& state) {
  std::atomic<uint64_t> count{0};
  alloc_probe allocs;
  for (auto _ : state) {
    count.fetch_add(1, std::memory_order_release);
    uint64_t c = count.load(std::memory_order_relaxed);
    while (c == 0 ||
           !count.compare_exchange_weak(c, c - 1, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
      if (c == 0) c = count.load(std::memory_order_relaxed);
    }
  }
  allocs.report(state);
  keep(count);
}

BENCHMARK(BM_SemaPostWait_rkt_semaphore)->Name("BM_SemaPostWait/rkt_semaphore");
BENCHMARK(BM_SemaPostWait_std_counting_semaphore)
    ->Name("BM_SemaPostWait/std_counting_semaphore");
BENCHMARK(BM_SemaPostWait_atomic_floor)->Name("BM_SemaPostWait/atomic_floor");

// ---------------------------------------------------------------------------
// sync on a choice of N channels, exactly one ready.

// N channels and a partner green thread that puts on them in the order of
// a fixed pseudo-random table, parking in each put until main takes it.
class choice_fixture {
 public:
  static constexpr std::size_t kPicks = 4096;  // a power of two

  explicit choice_fixture(int n) : channels_(static_cast<std::size_t>(n)) {
    std::mt19937 rng(20240601);
    std::uniform_int_distribution<int> dist(0, n - 1);
    picks_.resize(kPicks);
    for (int& p : picks_) p = dist(rng);
    evts_.reserve(channels_.size());
    for (const rkt::channel<int>& ch : channels_) evts_.push_back(ch);
    partner_.emplace([this] {
      for (std::size_t i = 0;; ++i) {
        int k = picks_[i & (kPicks - 1)];
        channels_[static_cast<std::size_t>(k)].put(k);
        if (stop_) return;
      }
    });
    rkt::yield();  // the partner parks in its first put
  }

  const std::vector<rkt::channel<int>>& channels() const { return channels_; }
  const std::vector<rkt::evt<int>>& evts() const { return evts_; }

  // The channel the partner is parked on for the `i`th sync.
  int expected(std::size_t i) const { return picks_[i & (kPicks - 1)]; }

  // Call after the timed loop, with the partner parked in a put: takes that
  // last value with `sync_once` and lets the partner finish.
  template <class F>
  void stop(F&& sync_once) {
    stop_ = true;
    sync_once();
    partner_->wait();
  }

 private:
  std::vector<rkt::channel<int>> channels_;
  std::vector<rkt::evt<int>> evts_;
  std::vector<int> picks_;
  bool stop_ = false;
  std::optional<rkt::thread> partner_;
};

// The timed loop shared by the choice benchmarks: sync_once() takes the
// ready value, then a yield lets the partner park in its next put.
template <class F>
void run_choice_loop(benchmark::State& state, choice_fixture& fx, F&& sync_once) {
  std::size_t i = 0;
  int64_t wrong = 0;
  alloc_probe allocs;
  for (auto _ : state) {
    int v = sync_once();
    wrong += v != fx.expected(i++);
    keep(v);
    rkt::yield();
  }
  allocs.report(state);
  fx.stop(sync_once);
  if (wrong != 0) state.SkipWithError("sync returned a value from the wrong channel");
}

// The choice is built once, outside the loop, with choice_evt over a
// std::vector<rkt::evt<int>>.
void BM_Choice_rkt_prebuilt(benchmark::State& state) {
  choice_fixture fx(static_cast<int>(state.range(0)));
  const rkt::evt<int> choice = rkt::choice_evt(fx.evts());
  run_choice_loop(state, fx, [&] { return rkt::sync(choice); });
}

// The choice is built from the vector on every sync, as code that selects
// over a changing set of channels would.
void BM_Choice_rkt_vector(benchmark::State& state) {
  choice_fixture fx(static_cast<int>(state.range(0)));
  run_choice_loop(state, fx, [&] { return rkt::sync(rkt::choice_evt(fx.evts())); });
}

template <std::size_t... I>
int sync_variadic(const std::vector<rkt::channel<int>>& chs, std::index_sequence<I...>) {
  return rkt::sync(chs[I]...);
}

// The channels passed straight to the variadic sync: no choice node.
template <std::size_t N>
void BM_Choice_rkt_variadic(benchmark::State& state) {
  choice_fixture fx(static_cast<int>(N));
  run_choice_loop(state, fx,
                  [&] { return sync_variadic(fx.channels(), std::make_index_sequence<N>()); });
}

BENCHMARK(BM_Choice_rkt_prebuilt)
    ->Name("BM_Choice/rkt_prebuilt")
    ->Arg(1)
    ->Arg(2)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000);
BENCHMARK(BM_Choice_rkt_vector)->Name("BM_Choice/rkt_vector")->Arg(1)->Arg(10)->Arg(100)->Arg(1000);
BENCHMARK_TEMPLATE(BM_Choice_rkt_variadic, 1)->Name("BM_Choice/rkt_variadic/1");
BENCHMARK_TEMPLATE(BM_Choice_rkt_variadic, 2)->Name("BM_Choice/rkt_variadic/2");
BENCHMARK_TEMPLATE(BM_Choice_rkt_variadic, 10)->Name("BM_Choice/rkt_variadic/10");
BENCHMARK_TEMPLATE(BM_Choice_rkt_variadic, 100)->Name("BM_Choice/rkt_variadic/100");
BENCHMARK_TEMPLATE(BM_Choice_rkt_variadic, 1000)->Name("BM_Choice/rkt_variadic/1000");

// ---------------------------------------------------------------------------
// Polling an event that is never ready.

// A channel nobody puts on, polled with a zero timeout.
void BM_Poll_rkt_never_ready(benchmark::State& state) {
  rkt::channel<int> never;
  int64_t got = 0;
  alloc_probe allocs;
  for (auto _ : state) {
    std::optional<int> r = rkt::sync_timeout(absl::ZeroDuration(), never);
    got += r.has_value();
    keep(r);
  }
  allocs.report(state);
  if (got != 0) state.SkipWithError("a never-ready channel produced a value");
}

// Boost.Fiber's nearest operation: try_pop on an empty buffered_channel
// (unbuffered_channel has no non-blocking pop).
void BM_Poll_boost_fiber_try_pop(benchmark::State& state) {
  bf::buffered_channel<int> never(2);
  int64_t got = 0;
  alloc_probe allocs;
  for (auto _ : state) {
    int v = 0;
    got += never.try_pop(v) == bf::channel_op_status::success;
    keep(v);
  }
  allocs.report(state);
  if (got != 0) state.SkipWithError("an empty channel produced a value");
}

BENCHMARK(BM_Poll_rkt_never_ready)->Name("BM_Poll/rkt_never_ready");
BENCHMARK(BM_Poll_boost_fiber_try_pop)->Name("BM_Poll/boost_fiber_try_pop");

// ---------------------------------------------------------------------------
// Spawn and join.

void BM_SpawnJoin_rkt_thread(benchmark::State& state) {
  alloc_probe allocs;
  for (auto _ : state) {
    rkt::thread t([] {});
    t.wait();
  }
  allocs.report(state);
}

void BM_SpawnJoin_boost_fiber(benchmark::State& state) {
  alloc_probe allocs;
  for (auto _ : state) {
    bf::fiber f([] {});
    f.join();
  }
  allocs.report(state);
}

BENCHMARK(BM_SpawnJoin_rkt_thread)->Name("BM_SpawnJoin/rkt_thread");
BENCHMARK(BM_SpawnJoin_boost_fiber)->Name("BM_SpawnJoin/boost_fiber");

}  // namespace
}  // namespace rkt::bench
