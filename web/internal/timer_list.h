// An intrusive FIFO of connection deadlines. Every node on one list was
// given the same timeout when it was appended, so deadlines rise from front
// to back and the front is always the earliest: appending, unlinking and
// finding the earliest are O(1) and allocate nothing.
//
// Not locked: every list and node of a server is used only from green
// threads of the server's OS thread.
#ifndef RKT_WEB_INTERNAL_TIMER_LIST_H_
#define RKT_WEB_INTERNAL_TIMER_LIST_H_

#include "absl/time/time.h"

namespace rkt::web::internal {

class connection;
class timer_list;

struct timer_node {
  timer_node* prev = nullptr;
  timer_node* next = nullptr;
  timer_list* on = nullptr;  // the list holding this node, or nullptr
  absl::Time deadline;
  connection* owner = nullptr;
};

class timer_list {
 public:
  timer_list() = default;
  timer_list(const timer_list&) = delete;
  timer_list& operator=(const timer_list&) = delete;

  bool empty() const { return head_ == nullptr; }
  timer_node* front() const { return head_; }

  // Appends `n` (taken off any list first) with `deadline`, which must not
  // be earlier than the back's. Returns true when the list was empty.
  bool push_back(timer_node& n, absl::Time deadline) {
    unlink(n);
    n.deadline = deadline;
    n.prev = tail_;
    n.next = nullptr;
    n.on = this;
    const bool was_empty = tail_ == nullptr;
    if (tail_ != nullptr) {
      tail_->next = &n;
    } else {
      head_ = &n;
    }
    tail_ = &n;
    return was_empty;
  }

  // Takes `n` off whatever list holds it; no-op when none does.
  static void unlink(timer_node& n) {
    timer_list* l = n.on;
    if (l == nullptr) return;
    (n.prev != nullptr ? n.prev->next : l->head_) = n.next;
    (n.next != nullptr ? n.next->prev : l->tail_) = n.prev;
    n.prev = n.next = nullptr;
    n.on = nullptr;
  }

 private:
  timer_node* head_ = nullptr;
  timer_node* tail_ = nullptr;
};

}  // namespace rkt::web::internal

#endif  // RKT_WEB_INTERNAL_TIMER_LIST_H_
