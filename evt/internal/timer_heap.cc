// timer_heap: binary min-heap on deadline_ns; see timer_heap.h.
#include "evt/internal/timer_heap.h"

namespace rkt::internal {

void timer_heap::push(timer_node* n) {
  heap_.push_back(n);
  n->index = heap_.size() - 1;
  sift_up(n->index);
}

void timer_heap::remove(timer_node* n) {
  if (!n->queued()) return;
  std::size_t i = n->index;
  n->index = timer_node::kNotQueued;
  timer_node* last = heap_.back();
  heap_.pop_back();
  if (last == n) return;
  place(i, last);
  sift_up(i);
  sift_down(last->index);
}

timer_node* timer_heap::pop_due(int64_t now_ns) {
  if (heap_.empty() || heap_.front()->deadline_ns > now_ns) return nullptr;
  timer_node* n = heap_.front();
  remove(n);
  return n;
}

void timer_heap::sift_up(std::size_t i) {
  timer_node* n = heap_[i];
  while (i > 0) {
    std::size_t parent = (i - 1) / 2;
    if (heap_[parent]->deadline_ns <= n->deadline_ns) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, n);
}

void timer_heap::sift_down(std::size_t i) {
  timer_node* n = heap_[i];
  const std::size_t size = heap_.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= size) break;
    if (child + 1 < size && heap_[child + 1]->deadline_ns < heap_[child]->deadline_ns) {
      ++child;
    }
    if (n->deadline_ns <= heap_[child]->deadline_ns) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, n);
}

}  // namespace rkt::internal
