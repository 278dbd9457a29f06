// timer_heap: the per-scheduler min-heap of deadlines behind alarm_evt,
// sync_timeout and sleep.
//
// Nodes are intrusive (they live in a waiter or a sync frame), so adding a
// timer allocates only when the heap's array grows. Each node records its
// heap index, so removal is O(log n).
//
// Invariants:
//   - node->index == kNotQueued exactly when the node is not in the heap.
//   - Owned by one scheduler; used only on its OS thread (no lock).
#ifndef RKT_EVT_INTERNAL_TIMER_HEAP_H_
#define RKT_EVT_INTERNAL_TIMER_HEAP_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rkt::internal {

struct timer_node {
  static constexpr std::size_t kNotQueued = static_cast<std::size_t>(-1);

  int64_t deadline_ns = 0;  // absl::ToUnixNanos of the deadline
  std::size_t index = kNotQueued;
  // Called by the scheduler once the deadline has passed, after the node has
  // been removed from the heap.
  void (*fire)(timer_node*) = nullptr;
  void* context = nullptr;

  bool queued() const { return index != kNotQueued; }
};

class timer_heap {
 public:
  bool empty() const { return heap_.empty(); }
  std::size_t size() const { return heap_.size(); }
  // Requires: !empty().
  int64_t next_deadline() const { return heap_.front()->deadline_ns; }

  void push(timer_node* n);
  // No-op when the node is not queued.
  void remove(timer_node* n);
  // Removes and returns the earliest node whose deadline is <= now_ns, or
  // nullptr.
  timer_node* pop_due(int64_t now_ns);

 private:
  void sift_up(std::size_t i);
  void sift_down(std::size_t i);
  void place(std::size_t i, timer_node* n) {
    heap_[i] = n;
    n->index = i;
  }

  std::vector<timer_node*> heap_;
};

}  // namespace rkt::internal

#endif  // RKT_EVT_INTERNAL_TIMER_HEAP_H_
