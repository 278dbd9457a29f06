// stack_pool: fiber stacks for green threads, each a private anonymous
// mapping with a PROT_NONE guard page below it, so that an overflow faults
// instead of corrupting a neighbour. Freed stacks are cached for reuse.
//
// Each stack costs two kernel mappings (the stack and its guard), which is
// what bounds the number of live green threads by vm.max_map_count (65530
// by default); see DESIGN.md, "Performance targets".
//
// Invariants: owned by one scheduler and used on its OS thread only.
#ifndef RKT_EVT_INTERNAL_STACK_POOL_H_
#define RKT_EVT_INTERNAL_STACK_POOL_H_

#include <cstddef>
#include <vector>

namespace rkt::internal {

struct fiber_stack {
  void* mapping = nullptr;  // lowest address: the guard page
  std::size_t mapping_size = 0;
  std::size_t guard_size = 0;

  // The usable range, for the fiber and the sanitizers.
  void* bottom() const { return static_cast<char*>(mapping) + guard_size; }
  std::size_t usable_size() const { return mapping_size - guard_size; }
  void* top() const { return static_cast<char*>(mapping) + mapping_size; }
};

class stack_pool {
 public:
  // The default usable size of a green thread's stack. Pages are committed
  // only when touched.
  static std::size_t default_stack_size();

  stack_pool() = default;
  stack_pool(const stack_pool&) = delete;
  stack_pool& operator=(const stack_pool&) = delete;
  ~stack_pool();

  // Returns a stack of at least `usable_size` bytes (rounded up to pages),
  // or a stack with mapping == nullptr and errno set when mmap fails.
  fiber_stack acquire(std::size_t usable_size);
  // Takes back a stack whose fiber has finished; `lowest_used` is its final
  // stack pointer (nullptr when unknown).
  void release(fiber_stack s, const void* lowest_used);

 private:
  static constexpr std::size_t kMaxCached = 256;
  std::vector<fiber_stack> cached_;  // all of default_stack_size()
};

}  // namespace rkt::internal

#endif  // RKT_EVT_INTERNAL_STACK_POOL_H_
