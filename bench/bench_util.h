// Helpers shared by the microbenchmarks in bench/: the allocs/op counter
// every benchmark reports, the ns-per-operation counter for benchmarks
// whose iteration is several operations, and a way to keep a value alive
// that sidesteps a miscompile seen with benchmark 1.7.1 and g++ 12.
#ifndef RKT_BENCH_BENCH_UTIL_H_
#define RKT_BENCH_BENCH_UTIL_H_

#include <benchmark/benchmark.h>

#include <cstdint>
#include <utility>

#include "bench/alloc_counter.h"

namespace rkt::bench {

// Measures the calls to operator new made between construction and
// report(), and publishes them as state.counters["allocs/op"], averaged over
// the iterations. Construct it right before the timed loop and call
// report() right after it.
class alloc_probe {
 public:
  alloc_probe() : start_(allocations()) {}
  void report(benchmark::State& state) const {
    const uint64_t delta = allocations() - start_;
    state.counters["allocs/op"] =
        benchmark::Counter(static_cast<double>(delta), benchmark::Counter::kAvgIterations);
  }

 private:
  uint64_t start_;
};

// Publishes `name` = CPU time per operation when each iteration performs
// `ops_per_iteration` operations (two one-way switches per ping-pong round,
// say). Benchmark derives it from the same CPU time it reports (value *
// iterations / time, inverted), so it is in seconds and prints with an SI
// prefix: "per_switch=6.3ns".
inline void report_time_per(benchmark::State& state, const char* name, double ops_per_iteration) {
  state.counters[name] = benchmark::Counter(
      ops_per_iteration,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// Keeps `v` observable without letting the compiler assume it was changed.
// The non-const benchmark::DoNotOptimize(T&) of benchmark 1.7.1 can corrupt
// a small value that is later read by reference when built with g++ 12 at
// -O1 and above; the const overload plus a memory clobber does not.
template <class T>
inline void keep(const T& v) {
  benchmark::DoNotOptimize(std::as_const(v));
  benchmark::ClobberMemory();
}

}  // namespace rkt::bench

#endif  // RKT_BENCH_BENCH_UTIL_H_
