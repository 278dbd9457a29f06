// A count of heap allocations for the microbenchmarks: alloc_counter.cc
// replaces every standard global operator new and operator delete (plain,
// array, nothrow, sized, aligned) with versions that count each call to an
// operator new, then allocate with malloc / aligned_alloc as usual.
//
// Linking this library into a binary changes the allocator of the whole
// process, so only the benchmark binaries in bench/ depend on it; tests
// never do. Only operator new is counted: memory taken with malloc or mmap
// directly (Boost.Context's fixedsize_stack, rkt's stack pool, Abseil's
// internal allocators) does not show up.
#ifndef RKT_BENCH_ALLOC_COUNTER_H_
#define RKT_BENCH_ALLOC_COUNTER_H_

#include <cstdint>

namespace rkt::bench {

// Calls to any operator new so far, on every OS thread of the process. The
// counter is a relaxed atomic: read it on the thread that did the work, or
// after synchronizing with the threads that did.
uint64_t allocations();

}  // namespace rkt::bench

#endif  // RKT_BENCH_ALLOC_COUNTER_H_
