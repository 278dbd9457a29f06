// Green-thread switch cost (issue 3): two rkt green threads ping-ponging
// with rkt::yield(), against the same ping-pong on bare Boost.Context, both
// through boost::context::fiber and through the raw jump_fcontext it is
// built on, the latter also from under 1 and 3 call frames (the cost of
// call depth across a switch). One iteration is one round: two one-way
// switches. The "per_switch" counter is CPU time per one-way switch;
// docs/PERFORMANCE.md's target is rkt within 2x of boost_context_fiber.
#include <benchmark/benchmark.h>

#include <boost/context/detail/fcontext.hpp>
#include <boost/context/fiber.hpp>
#include <cstddef>
#include <memory>
#include <utility>

#include "bench/bench_util.h"
#include "evt/thread.h"

namespace rkt::bench {
namespace {

namespace bctx = boost::context;

// Main and one green thread take turns through rkt::yield(): each yield
// queues the caller behind the other and switches to it.
void BM_Switch_rkt_yield(benchmark::State& state) {
  bool stop = false;
  rkt::thread partner([&stop] {
    while (!stop) rkt::yield();
  });
  rkt::yield();  // start the partner outside the timed loop
  alloc_probe allocs;
  for (auto _ : state) rkt::yield();
  allocs.report(state);
  stop = true;
  partner.wait();
  report_time_per(state, "per_switch", 2);
}

// boost::context::fiber: each resume() is one one-way switch.
void BM_Switch_boost_context_fiber(benchmark::State& state) {
  bool stop = false;
  bctx::fiber f([&stop](bctx::fiber&& main) {
    while (!stop) main = std::move(main).resume();
    return std::move(main);
  });
  f = std::move(f).resume();  // start it; it hands control straight back
  alloc_probe allocs;
  for (auto _ : state) f = std::move(f).resume();
  allocs.report(state);
  stop = true;
  f = std::move(f).resume();  // the fiber returns and is destroyed
  report_time_per(state, "per_switch", 2);
}

// The partner of the jump_fcontext ping-pong: jumps straight back to
// whoever jumped to it, forever. Its stack is dropped while it is suspended
// here, which is safe since nothing on it has a destructor.
void fcontext_echo(bctx::detail::transfer_t t) {
  for (;;) t = bctx::detail::jump_fcontext(t.fctx, nullptr);
}

// The raw jump_fcontext under Boost.Context's fiber, with no bookkeeping.
void BM_Switch_boost_fcontext(benchmark::State& state) {
  constexpr std::size_t kStackSize = 64 * 1024;
  auto stack = std::make_unique<char[]>(kStackSize);
  bctx::detail::fcontext_t c =
      bctx::detail::make_fcontext(stack.get() + kStackSize, kStackSize, &fcontext_echo);
  c = bctx::detail::jump_fcontext(c, nullptr).fctx;  // start it
  alloc_probe allocs;
  for (auto _ : state) c = bctx::detail::jump_fcontext(c, nullptr).fctx;
  allocs.report(state);
  report_time_per(state, "per_switch", 2);
}

// The same raw jump_fcontext ping-pong, but each side jumps from under
// three non-inlined calls, the depth of rkt::yield() -> scheduler::yield()
// -> scheduler::switch_to(). After a switch, each return address on the
// resumed side's stack was pushed by the other fiber, so the CPU's return
// predictor misses once per frame: this row prices that depth alone.
bctx::detail::fcontext_t g_deep_other = nullptr;

template <int Frames>
__attribute__((noinline)) void deep_switch() {
  if constexpr (Frames == 1) {
    g_deep_other = bctx::detail::jump_fcontext(g_deep_other, nullptr).fctx;
  } else {
    deep_switch<Frames - 1>();
    asm volatile("");  // not a tail call: keep this frame
  }
}

template <int Frames>
void deep_echo(bctx::detail::transfer_t t) {
  g_deep_other = t.fctx;
  for (;;) deep_switch<Frames>();
}

template <int Frames>
void BM_Switch_boost_fcontext_frames(benchmark::State& state) {
  constexpr std::size_t kStackSize = 64 * 1024;
  auto stack = std::make_unique<char[]>(kStackSize);
  g_deep_other =
      bctx::detail::make_fcontext(stack.get() + kStackSize, kStackSize, &deep_echo<Frames>);
  g_deep_other = bctx::detail::jump_fcontext(g_deep_other, nullptr).fctx;  // start it
  alloc_probe allocs;
  for (auto _ : state) deep_switch<Frames>();
  allocs.report(state);
  report_time_per(state, "per_switch", 2);
}

BENCHMARK(BM_Switch_rkt_yield)->Name("BM_Switch/rkt_yield");
BENCHMARK(BM_Switch_boost_context_fiber)->Name("BM_Switch/boost_context_fiber");
BENCHMARK(BM_Switch_boost_fcontext)->Name("BM_Switch/boost_fcontext");
BENCHMARK_TEMPLATE(BM_Switch_boost_fcontext_frames, 1)->Name("BM_Switch/boost_fcontext_1frame");
BENCHMARK_TEMPLATE(BM_Switch_boost_fcontext_frames, 3)->Name("BM_Switch/boost_fcontext_3frames");

}  // namespace
}  // namespace rkt::bench
