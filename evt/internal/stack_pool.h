// stack_pool: fiber stacks for green threads, each a private anonymous
// mapping whose lowest kGuardSize bytes are a guard region, so that a stack
// overflow faults instead of writing into whatever lies below. Freed stacks
// of the default size are cached for reuse.
//
// Layout of one mapping, lowest address first:
//
//   [ guard: kGuardSize, no access ][ usable stack, read-write ] <- top
//
// Why one guard, below: stacks grow down, so an overflow leaves its stack
// through the bottom. Mappings are placed next to one another, so what lies
// below a stack's guard is often another stack's top, i.e. the oldest live
// frames of another green thread. A frame or alloca smaller than the guard
// that crosses the bottom lands in the guard. Larger ones are caught
// because rkt's own code is built with -fstack-clash-protection (copts.bzl),
// which touches every page of a large frame from the top down, so the first
// touch past the bottom is in the guard; the guard's size is the margin left
// for code built without it (system libraries: glibc's alloca is capped at
// 64 KiB). Nothing needs a guard above a stack: the mapping above is either
// another stack (whose own guard is its lowest part) or memory that does
// not grow down into this one.
//
// How the guard is made (install_guard(), decided once per process):
//   - guard pages (madvise MADV_GUARD_INSTALL, Linux 6.13 and later): the
//     guard is a range of page-table markers that fault like PROT_NONE but
//     leave the mapping whole. The stacks' mappings all have the same flags,
//     and mmap places each new one right below the last, so the kernel
//     merges them: 100,000 stacks are about one line of /proc/self/maps,
//     and vm.max_map_count does not bound the number of green threads.
//   - mprotect(PROT_NONE), where the kernel refuses the above (EINVAL): the
//     guard splits the mapping, so each stack costs two kernel mappings and
//     the number of live green threads stops at about vm.max_map_count / 2
//     (32,765 with the default 65530; `sysctl vm.max_map_count=262144`
//     raises it). Setting RKT_STACK_GUARD=mprotect in the environment picks
//     this way even where guard pages work (for tests).
// Either way the guard takes address space only (never touched: no memory,
// no page tables beyond the markers). The sizes are documented for users in
// evt/thread.h (thread_options).
//
// Invariants: owned by one scheduler and used on its OS thread only.
#ifndef RKT_EVT_INTERNAL_STACK_POOL_H_
#define RKT_EVT_INTERNAL_STACK_POOL_H_

#include <cstddef>
#include <vector>

namespace rkt::internal {

struct fiber_stack {
  void* mapping = nullptr;  // lowest address: the guard region
  std::size_t mapping_size = 0;
  std::size_t guard_size = 0;

  // The usable range, for the fiber and the sanitizers.
  void* bottom() const { return static_cast<char*>(mapping) + guard_size; }
  std::size_t usable_size() const { return mapping_size - guard_size; }
  void* top() const { return static_cast<char*>(mapping) + mapping_size; }
};

// How this process makes the guard regions (see above).
enum class guard_kind { guard_pages, mprotect };
guard_kind stack_guard_kind();

class stack_pool {
 public:
  // The guard region below every stack (a multiple of any page size).
  static constexpr std::size_t kGuardSize = 256 * 1024;

  // The default usable size of a green thread's stack. Pages are committed
  // only when touched.
  static std::size_t default_stack_size();
  // The smallest usable size handed out; smaller requests are rounded up.
  static std::size_t min_stack_size();

  stack_pool() = default;
  stack_pool(const stack_pool&) = delete;
  stack_pool& operator=(const stack_pool&) = delete;
  ~stack_pool();

  // Returns a stack of at least `usable_size` bytes (0: the default; at
  // least min_stack_size(); rounded up to pages), or a stack with
  // mapping == nullptr and errno set when it cannot be mapped.
  fiber_stack acquire(std::size_t usable_size);
  // Takes back a stack whose fiber has finished; `lowest_used` is its final
  // stack pointer (nullptr when unknown).
  void release(fiber_stack s, const void* lowest_used);

 private:
  static constexpr std::size_t kMaxCached = 256;
  // Stacks beyond the cache are unmapped kUnmapBatch at a time, adjacent
  // ones in one munmap: each munmap flushes the TLB (on a virtual machine,
  // an interrupt to every CPU the process ran on), and the stacks of
  // threads that die together (a custodian shutdown) are usually adjacent.
  static constexpr std::size_t kUnmapBatch = 64;
  void unmap_pending();

  std::vector<fiber_stack> cached_;   // all of default_stack_size()
  std::vector<fiber_stack> to_unmap_;  // released, not cached; < kUnmapBatch
};

}  // namespace rkt::internal

#endif  // RKT_EVT_INTERNAL_STACK_POOL_H_
