// The sanitizer annotations around one fiber switch, in one place. ASan must
// be told which stack the switch goes to (and that a dying fiber's fake stack
// can go); TSan keeps one shadow context per fiber. Without RKT_ASAN or
// RKT_TSAN every function here is empty. Included by scheduler.h once
// thread_state is defined.
#ifndef RKT_EVT_INTERNAL_FIBER_SWITCH_H_
#define RKT_EVT_INTERNAL_FIBER_SWITCH_H_

#include <cstddef>

#if defined(RKT_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(RKT_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace rkt::internal {

// Before jumping from `from` to `to`. A dying `from` passes dying = true.
inline void before_switch(thread_state* from, thread_state* to, bool dying) {
#if defined(RKT_ASAN)
  __sanitizer_start_switch_fiber(dying ? nullptr : &from->asan_fake_stack, to->asan_bottom,
                                 to->asan_size);
#else
  (void)dying;
#endif
#if defined(RKT_TSAN)
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
  (void)from;
  (void)to;
}

// First thing on `self` after a jump arrived from `from`.
inline void after_switch(thread_state* self, thread_state* from) {
#if defined(RKT_ASAN)
  const void* from_bottom = nullptr;
  std::size_t from_size = 0;
  __sanitizer_finish_switch_fiber(self->asan_fake_stack, &from_bottom, &from_size);
  // The root's stack bounds are learned the first time it is left.
  if (from != nullptr && from->is_root) {
    from->asan_bottom = from_bottom;
    from->asan_size = from_size;
  }
#endif
  (void)self;
  (void)from;
}

inline void on_fiber_created(thread_state* t) {
#if defined(RKT_ASAN)
  t->asan_bottom = t->stack.bottom();
  t->asan_size = t->stack.usable_size();
#endif
#if defined(RKT_TSAN)
  t->tsan_fiber = t->is_root ? __tsan_get_current_fiber() : __tsan_create_fiber(0);
#endif
  (void)t;
}

inline void on_fiber_destroyed(thread_state* t) {
#if defined(RKT_TSAN)
  if (!t->is_root) __tsan_destroy_fiber(t->tsan_fiber);
#endif
  (void)t;
}

}  // namespace rkt::internal

#endif  // RKT_EVT_INTERNAL_FIBER_SWITCH_H_
