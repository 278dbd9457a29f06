// Resident memory of this process, read from /proc/self/statm: what the
// idle-connection test and bench/idle_scaling measure per connection. Not
// test-only, so that the benchmark shares it.
#ifndef RKT_TESTS_TESTING_RESIDENT_MEMORY_H_
#define RKT_TESTS_TESTING_RESIDENT_MEMORY_H_

#include <unistd.h>

#include <cstddef>
#include <cstdio>

namespace rkt::test {

// Resident bytes of the process (statm's second field, in pages); 0 if
// statm cannot be read.
inline std::size_t resident_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int got = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return got == 2 ? resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// The growth from `before` to `after` spread over `n` things (0 if it
// shrank).
inline double resident_bytes_each(std::size_t before, std::size_t after, std::size_t n) {
  return static_cast<double>(after > before ? after - before : 0) / static_cast<double>(n);
}

}  // namespace rkt::test

#endif  // RKT_TESTS_TESTING_RESIDENT_MEMORY_H_
