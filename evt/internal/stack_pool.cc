// stack_pool: mmap'd fiber stacks with guard pages; see stack_pool.h.
#include "evt/internal/stack_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

namespace rkt::internal {
namespace {

std::size_t page_size() {
  static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

}  // namespace

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
}

fiber_stack stack_pool::acquire(std::size_t usable_size) {
  const std::size_t page = page_size();
  usable_size = round_up(usable_size == 0 ? default_stack_size() : usable_size, page);
  if (usable_size == default_stack_size() && !cached_.empty()) {
    fiber_stack s = cached_.back();
    cached_.pop_back();
    return s;
  }
  fiber_stack s;
  s.guard_size = page;
  s.mapping_size = usable_size + page;
  // MAP_NORESERVE: only touched pages count against memory; MAP_STACK is a
  // hint for the kernel (mmap(2)).
  void* m = mmap(nullptr, s.mapping_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (m == MAP_FAILED) return fiber_stack{};
  if (mprotect(m, page, PROT_NONE) != 0) {
    int saved = errno;
    munmap(m, s.mapping_size);
    errno = saved;
    return fiber_stack{};
  }
  s.mapping = m;
  return s;
}

void stack_pool::release(fiber_stack s) {
  if (s.mapping == nullptr) return;
  if (s.usable_size() == default_stack_size() && cached_.size() < kMaxCached) {
    cached_.push_back(s);
    return;
  }
  munmap(s.mapping, s.mapping_size);
}

}  // namespace rkt::internal
