// stack_pool: mmap'd fiber stacks with a guard region below each; see
// stack_pool.h.
#include "evt/internal/stack_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(RKT_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace rkt::internal {
namespace {

std::size_t page_size() {
  static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// Linux 6.13's value; older headers lack the name.
#if !defined(MADV_GUARD_INSTALL)
#define MADV_GUARD_INSTALL 102
#endif

// 0: not decided yet; else 1 + guard_kind. Decided by the first stack any
// scheduler maps; a race between two first stacks decides the same way.
std::atomic<int> decided_kind{0};

bool forced_mprotect() {
  const char* v = std::getenv("RKT_STACK_GUARD");
  return v != nullptr && std::strcmp(v, "mprotect") == 0;
}

// Makes [lowest, lowest + size) fault on any access. It stays inside the
// stack's mapping, so munmap of the mapping removes it too. The first call
// in the process tries guard pages; EINVAL (a kernel without them) makes
// this and every later call use mprotect.
bool install_guard(void* lowest, std::size_t size) {
  int kind = decided_kind.load(std::memory_order_relaxed);
  if (kind == 0) {
    kind = 1 + static_cast<int>(forced_mprotect() ? guard_kind::mprotect : guard_kind::guard_pages);
  }
  if (kind == 1 + static_cast<int>(guard_kind::guard_pages)) {
    if (madvise(lowest, size, MADV_GUARD_INSTALL) == 0) {
      decided_kind.store(kind, std::memory_order_relaxed);
      return true;
    }
    if (errno != EINVAL) return false;
    kind = 1 + static_cast<int>(guard_kind::mprotect);
  }
  if (mprotect(lowest, size, PROT_NONE) != 0) return false;
  decided_kind.store(kind, std::memory_order_relaxed);
  return true;
}

// A dead fiber never returned from the frames it had when it switched away
// for the last time, so ASan still has their redzones poisoned: clean them
// before the stack is reused or unmapped (an unmapped range keeps its
// shadow, and a later mapping may land there). Only [lowest_used, top) is
// touched, so the shadow of the untouched rest stays unmapped.
void unpoison(const fiber_stack& s, const void* lowest_used) {
#if defined(RKT_ASAN)
  char* from = static_cast<char*>(s.bottom());
  if (lowest_used != nullptr) {
    // Frames below the final stack pointer returned normally, and were
    // unpoisoned by their own epilogues; a small margin covers the switch.
    char* sp = static_cast<char*>(const_cast<void*>(lowest_used)) - 1024;
    if (sp > from) from = sp;
  }
  __asan_unpoison_memory_region(from, static_cast<char*>(s.top()) - from);
#else
  (void)s;
  (void)lowest_used;
#endif
}

}  // namespace

guard_kind stack_guard_kind() {
  int kind = decided_kind.load(std::memory_order_relaxed);
  if (kind == 0) {
    // No stack yet: decide now, on a page of address space of our own.
    const std::size_t page = page_size();
    void* m = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED) {
      install_guard(m, page);
      munmap(m, page);
    }
    kind = decided_kind.load(std::memory_order_relaxed);
    if (kind == 0) return guard_kind::mprotect;  // no memory to try with
  }
  return static_cast<guard_kind>(kind - 1);
}

// What a green thread needs at the least: rkt's switch path, a sync that
// parks, a throw caught in the thread (the unwinder's frames), the kill
// unwinding, and the report of an uncaught exception (fprintf), with room
// left for the thread's own frames. Sanitizer frames are several times
// larger.
std::size_t stack_pool::min_stack_size() {
#if defined(RKT_ASAN) || defined(RKT_TSAN)
  return 256 * 1024;
#else
  return 64 * 1024;
#endif
}

std::size_t stack_pool::default_stack_size() {
#if defined(RKT_ASAN) || defined(RKT_TSAN)
  // Sanitizer frames are several times larger.
  return 1024 * 1024;
#else
  return 256 * 1024;
#endif
}

stack_pool::~stack_pool() {
  for (const fiber_stack& s : cached_) munmap(s.mapping, s.mapping_size);
  unmap_pending();
}

void stack_pool::unmap_pending() {
  std::sort(to_unmap_.begin(), to_unmap_.end(),
            [](const fiber_stack& a, const fiber_stack& b) { return a.mapping < b.mapping; });
  std::size_t i = 0;
  while (i < to_unmap_.size()) {
    char* const lo = static_cast<char*>(to_unmap_[i].mapping);
    char* hi = lo + to_unmap_[i].mapping_size;
    for (++i; i < to_unmap_.size() && to_unmap_[i].mapping == hi; ++i) {
      hi += to_unmap_[i].mapping_size;
    }
    munmap(lo, static_cast<std::size_t>(hi - lo));
  }
  to_unmap_.clear();
}

fiber_stack stack_pool::acquire(std::size_t usable_size) {
  const std::size_t page = page_size();
  if (usable_size == 0) usable_size = default_stack_size();
  if (usable_size < min_stack_size()) usable_size = min_stack_size();
  const std::size_t guard = round_up(kGuardSize, page);
  if (usable_size > SIZE_MAX - guard - page) {
    errno = ENOMEM;  // what mmap would say; also keeps the sums below exact
    return fiber_stack{};
  }
  usable_size = round_up(usable_size, page);
  if (usable_size == default_stack_size() && !cached_.empty()) {
    fiber_stack s = cached_.back();
    cached_.pop_back();
    return s;
  }
  fiber_stack s;
  s.guard_size = guard;
  s.mapping_size = usable_size + s.guard_size;
  // MAP_NORESERVE: only touched pages count against memory; MAP_STACK is a
  // hint for the kernel (mmap(2)).
  void* m = mmap(nullptr, s.mapping_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (m == MAP_FAILED) return fiber_stack{};
  if (!install_guard(m, s.guard_size)) {
    int saved = errno;
    munmap(m, s.mapping_size);
    errno = saved;
    return fiber_stack{};
  }
  s.mapping = m;
  return s;
}

void stack_pool::release(fiber_stack s, const void* lowest_used) {
  if (s.mapping == nullptr) return;
  unpoison(s, lowest_used);
  if (s.usable_size() == default_stack_size() && cached_.size() < kMaxCached) {
    cached_.push_back(s);
    return;
  }
  to_unmap_.push_back(s);
  if (to_unmap_.size() >= kUnmapBatch) unmap_pending();
}

}  // namespace rkt::internal
