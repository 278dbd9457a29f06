// Green-thread stacks (evt/thread.h, thread_options): a stack overflow
// faults in the overflowing stack's guard region and never writes into the
// stack of the green thread mapped below it, whatever the frame size; and
// stack_size has a minimum that small requests are rounded up to.
//
// Each overflow runs in a child process (a gtest death test in the
// "threadsafe" style: the test binary re-executed, running only this test).
// The child spawns several green threads with the same stack size, each
// parked with a canary in its outermost frame, near its stack's top: where
// a frame that jumps the guard of the stack above lands. From
// /proc/self/maps it picks one whose guard has another of the stacks right
// below it (mmap places new mappings top-down, next to one another once the
// small holes are used up) and lets it recurse without end; just before the
// bottom, it moves its stack pointer down so that the frame that crosses
// the bottom reaches as far below it as the frame's size allows.
//
// Where the guard is: with guard pages (rkt::stack_guard_name() ==
// "guard-pages", madvise MADV_GUARD_INSTALL) the guard is inside the
// stacks' one mapping, found from the guard bit of /proc/self/pagemap; with
// mprotect guards (the fallback, forced by RKT_STACK_GUARD=mprotect in the
// evt_stack_mprotect_test target) it is a no-access mapping of its own in
// /proc/self/maps. The same tests run both ways.
//
// The child's SIGSEGV handler runs on an alternate signal stack: it checks
// every other thread's canary and that the fault was in the overflowing
// stack's guard, writes its verdict to stderr, restores the default action
// and returns, so the faulting access repeats and kills the child by
// SIGSEGV. The parent asserts both: the signal and the verdict.
//
// Per build: under ASan and TSan the child runs with
// allow_user_segv_handler=1 (their default), so the test's handler replaces
// the sanitizer's and the expectation is the same. Under ASan a write into
// a neighbour's frames would also be reported by ASan itself (exit status
// 1, not SIGSEGV), which fails the test as well. Under TSan each fiber's
// TSan state is mapped right below its stack, so no stack has another below
// it; there the test shows only that the overflow faults in the guard and
// that parked threads are intact (the plain and ASan runs cover the
// neighbour).
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "evt/channel.h"
#include "evt/exn.h"
#include "evt/semaphore.h"
#include "evt/sync.h"
#include "evt/thread.h"
#include "gtest/gtest.h"
#include "tests/testing/green_threads.h"
#include "tests/testing/sync_within.h"

namespace {

using ::rkt::test::sync_within;

constexpr std::size_t kKiB = 1024;

// What the documentation of thread_options promises.
#if defined(RKT_ASAN) || defined(RKT_TSAN)
constexpr std::size_t kDocumentedMinimum = 256 * kKiB;
#else
constexpr std::size_t kDocumentedMinimum = 64 * kKiB;
#endif
constexpr std::size_t kDocumentedGuard = 256 * kKiB;

// ---------------------------------------------------------------------------
// The child's side of an overflow test. Globals, so that the signal handler
// can reach them.

constexpr uint64_t kCanaryWord = 0x5ca1ab1e0ddba11full;
constexpr int kCanaryWords = 64;
// Green threads spawned with the same stack size, one after the other; once
// the holes in the address space are used up, their mappings follow one
// another downwards.
constexpr int kThreads = 16;

volatile uint64_t* canaries[kThreads] = {};
int overflowing = -1;    // which of them overflows
uintptr_t guard_lo = 0;  // its guard: [guard_lo, guard_hi); guard_hi is the
uintptr_t guard_hi = 0;  // bottom of its usable stack
// Never equal to a depth; keeps the recursion formally finite.
volatile std::size_t unreachable_depth = SIZE_MAX;

void write_stderr(const char* s) {
  std::size_t left = std::strlen(s);
  while (left > 0) {
    ssize_t n = write(STDERR_FILENO, s, left);
    if (n <= 0) return;
    s += n;
    left -= static_cast<std::size_t>(n);
  }
}

// Async-signal-safe: loads, write(2) and sigaction(2) only.
void on_segv(int, siginfo_t* info, void*) {
  bool intact = true;
  for (int t = 0; t < kThreads; ++t) {
    if (t == overflowing) continue;
    for (int i = 0; i < kCanaryWords; ++i) intact = intact && canaries[t][i] == kCanaryWord;
  }
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  const bool in_guard = addr >= guard_lo && addr < guard_hi;
  write_stderr(in_guard ? "fault in the guard: yes; " : "fault in the guard: no; ");
  write_stderr(intact ? "parked canaries: intact\n" : "parked canaries: CORRUPTED\n");
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGSEGV, &dfl, nullptr);
}

template <std::size_t Frame>
std::size_t recurse(std::size_t depth);

// Moves the stack pointer down to just above the bottom (guard_hi), then
// recurses: the frame that crosses the bottom then reaches as far below it
// as its size allows, whatever the stack size and the frames' alignment.
// The padding is not written: a call in between (a sanitizer's memset, say)
// could have a frame large enough to cross the bottom first.
template <std::size_t Frame>
[[gnu::noinline]] std::size_t descend_then_recurse(std::size_t depth) {
  const auto here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  const std::size_t room = here - guard_hi;
  const std::size_t pad = room > 1024 ? room - 768 : 1;
  auto* p = static_cast<char*>(__builtin_alloca(pad));
  asm volatile("" : : "r"(p) : "memory");
  return recurse<Frame>(depth + 1) + reinterpret_cast<uintptr_t>(p) % 2;
}

// One recursion level with a frame of `Frame` bytes, written from its lowest
// byte up (as a frame that jumped a small guard would first write below it).
template <std::size_t Frame>
[[gnu::noinline]] std::size_t recurse(std::size_t depth) {
  if (depth == unreachable_depth) return 0;
  char frame[Frame];
  std::memset(frame, static_cast<int>(depth & 0x7f), Frame);
  asm volatile("" : : "r"(frame) : "memory");
  // Not tail calls: the frame is read after the call returns.
  const auto low = reinterpret_cast<uintptr_t>(frame);
  if (low - guard_hi < Frame + 4 * kKiB) {
    return descend_then_recurse<Frame>(depth) + static_cast<std::size_t>(frame[depth % Frame]);
  }
  return recurse<Frame>(depth + 1) + static_cast<std::size_t>(frame[depth % Frame]);
}

std::size_t overflow_with_frames_of(std::size_t kib) {
  switch (kib) {
    case 1: return recurse<1 * kKiB>(0);
    case 6: return recurse<6 * kKiB>(0);
    case 10: return recurse<10 * kKiB>(0);
    case 20: return recurse<20 * kKiB>(0);
    case 40: return recurse<40 * kKiB>(0);
    case 64: return recurse<64 * kKiB>(0);
    case 128: return recurse<128 * kKiB>(0);
    case 512: return recurse<512 * kKiB>(0);
    default: std::abort();
  }
}

struct mapping {
  uintptr_t lo = 0;
  uintptr_t hi = 0;
  bool no_access = false;
};

std::vector<mapping> read_mappings() {
  std::vector<mapping> out;
  FILE* f = std::fopen("/proc/self/maps", "r");
  if (f == nullptr) return out;
  char line[512];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long lo = 0, hi = 0;
    char perms[8] = {};
    if (std::sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) {
      out.push_back({lo, hi, std::strncmp(perms, "---", 3) == 0});
    }
  }
  std::fclose(f);
  return out;
}

const mapping* mapping_containing(const std::vector<mapping>& maps, const volatile void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  for (const mapping& m : maps) {
    if (a >= m.lo && a < m.hi) return &m;
  }
  return nullptr;
}

const mapping* mapping_ending_at(const std::vector<mapping>& maps, uintptr_t a) {
  for (const mapping& m : maps) {
    if (m.hi == a) return &m;
  }
  return nullptr;
}

std::size_t page_bytes() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

bool guard_pages() { return std::strcmp(rkt::stack_guard_name(), "guard-pages") == 0; }

// Whether the page at `a` is a guard page (bit 58 of its /proc/self/pagemap
// entry, Linux 6.14 and later; MADV_GUARD_INSTALL came in 6.13).
bool is_guard_page(uintptr_t a) {
  static const int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  uint64_t entry = 0;
  const off_t at = static_cast<off_t>(a / page_bytes() * sizeof entry);
  if (fd < 0 || pread(fd, &entry, sizeof entry, at) != static_cast<ssize_t>(sizeof entry)) {
    return false;
  }
  return ((entry >> 58) & 1) != 0;
}

// The guard below the stack that holds `p`: [*lo, *hi), *hi being the
// stack's bottom. False when there is none within `max_stack` bytes below.
bool find_guard_below(const std::vector<mapping>& maps, const volatile void* p,
                      std::size_t max_stack, uintptr_t* lo, uintptr_t* hi) {
  const mapping* stack = mapping_containing(maps, p);
  if (stack == nullptr) return false;
  if (!guard_pages()) {
    const mapping* guard = mapping_ending_at(maps, stack->lo);
    if (guard == nullptr || !guard->no_access) return false;
    *lo = guard->lo;
    *hi = guard->hi;
    return true;
  }
  const std::size_t page = page_bytes();
  uintptr_t a = reinterpret_cast<uintptr_t>(p) / page * page;
  const uintptr_t floor = a - std::min<uintptr_t>(a, max_stack);
  while (a > stack->lo && a > floor && !is_guard_page(a - page)) a -= page;
  if (a <= stack->lo || a <= floor) return false;
  *hi = a;
  while (a > stack->lo && is_guard_page(a - page)) a -= page;
  *lo = a;
  return true;
}

// Whether `p` lies in a stack whose top is `top`: the same mapping, with no
// guard page between.
bool in_stack_ending_at(const std::vector<mapping>& maps, const volatile void* p, uintptr_t top) {
  const mapping* m = mapping_containing(maps, p);
  if (m == nullptr) return false;
  if (!guard_pages()) return m->hi == top;
  const auto a = reinterpret_cast<uintptr_t>(p);
  if (a >= top || top > m->hi) return false;
  const std::size_t page = page_bytes();
  for (uintptr_t q = a / page * page; q < top; q += page) {
    if (is_guard_page(q)) return false;
  }
  return true;
}

[[noreturn]] void fail_child(const char* why) {
  write_stderr(why);
  write_stderr("\n");
  _exit(3);
}

// Runs in the child: never returns.
[[noreturn]] void overflow_above_a_parked_neighbour(std::size_t frame_kib) {
  const rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);

  // Each thread parks with a canary in its outermost frame, near its stack's
  // top: where a frame that jumps the guard of the stack above lands. The
  // stacks hold at least one whole frame, and are not of the default size,
  // so that each is a fresh mapping.
  const std::size_t frame = frame_kib * kKiB;
  const rkt::thread_options options{
      .stack_size = std::max(rkt::thread_options::min_stack_size(), frame) + 64 * kKiB};
  rkt::semaphore ready;
  std::vector<rkt::semaphore> go(kThreads);
  std::vector<rkt::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(
        [&, t] {
          volatile uint64_t canary[kCanaryWords];
          for (int i = 0; i < kCanaryWords; ++i) canary[i] = kCanaryWord;
          canaries[t] = canary;
          ready.post();
          go[t].wait();
          std::printf("%zu\n", overflow_with_frames_of(frame_kib));
        },
        options);
  }
  for (int t = 0; t < kThreads; ++t) sync_within(ready);

  // Pick a thread whose stack has, below its guard, another one's stack.
  const std::vector<mapping> maps = read_mappings();
  uintptr_t lo = 0, hi = 0;
  for (int t = 0; t < kThreads && overflowing < 0; ++t) {
    if (!find_guard_below(maps, canaries[t], options.stack_size + 2 * page_bytes(), &lo, &hi)) {
      fail_child("layout: a stack without a guard");
    }
    if (hi - lo < kDocumentedGuard) fail_child("layout: a guard smaller than documented");
    for (int below = 0; below < kThreads; ++below) {
      if (below != t && in_stack_ending_at(maps, canaries[below], lo)) {
        overflowing = t;
        guard_lo = lo;
        guard_hi = hi;
      }
    }
  }
#if defined(RKT_TSAN)
  // TSan maps each fiber's own state right after its stack, so what lies
  // below a guard is that, never another stack: overflow any of them.
  if (overflowing < 0) {
    overflowing = 0;
    find_guard_below(maps, canaries[0], options.stack_size + 2 * page_bytes(), &guard_lo,
                     &guard_hi);
  }
#endif
  if (overflowing < 0) fail_child("layout: no stack lies directly below another's guard");

  static char alt_stack[256 * kKiB];
  stack_t ss = {};
  ss.ss_sp = alt_stack;
  ss.ss_size = sizeof alt_stack;
  if (sigaltstack(&ss, nullptr) != 0) fail_child("sigaltstack failed");
  struct sigaction sa = {};
  sa.sa_sigaction = &on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, nullptr) != 0) fail_child("sigaction failed");

  go[static_cast<std::size_t>(overflowing)].post();
  sync_within(threads[static_cast<std::size_t>(overflowing)].dead_evt());
  fail_child("the overflowing thread finished without a fault");
}

[[maybe_unused]] void add_sanitizer_option(const char* var, const std::string& option) {
  std::string options = std::getenv(var) != nullptr ? std::getenv(var) : "";
  if (!options.empty()) options += ":";
  setenv(var, (options + option).c_str(), 1);
}

// Lets the child's SIGSEGV handler replace the sanitizer's own, and keeps
// ASan's frames on the real stack (no fake stacks for use-after-return).
void set_sanitizer_options_for_children() {
  static bool done = false;
  if (std::exchange(done, true)) return;
#if defined(RKT_ASAN)
  add_sanitizer_option("ASAN_OPTIONS", "allow_user_segv_handler=1");
  add_sanitizer_option("ASAN_OPTIONS", "detect_stack_use_after_return=0");
#elif defined(RKT_TSAN)
  add_sanitizer_option("TSAN_OPTIONS", "allow_user_segv_handler=1");
#endif
}

class EvtStackOverflowTest : public rkt::test::clean_test,
                             public ::testing::WithParamInterface<std::size_t> {};

TEST_P(EvtStackOverflowTest, FaultsInItsGuardAndLeavesParkedThreadsIntact) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  set_sanitizer_options_for_children();
  EXPECT_EXIT(overflow_above_a_parked_neighbour(GetParam()), ::testing::KilledBySignal(SIGSEGV),
              "fault in the guard: yes; parked canaries: intact");
}

// Frame sizes in KiB: below a page, between one page and the guard (which a
// one-page guard let through), the guard's size and more, which only the
// probes of -fstack-clash-protection catch.
INSTANTIATE_TEST_SUITE_P(FrameKiB, EvtStackOverflowTest,
                         ::testing::Values(1, 6, 10, 20, 40, 64, 128, 2 * kDocumentedGuard / kKiB),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return std::to_string(info.param) + "KiB";
                         });

// ---------------------------------------------------------------------------
// How the guards are made, and what that costs in kernel mappings.

class EvtStackGuardTest : public rkt::test::clean_test {};

std::size_t maps_lines() {
  FILE* f = std::fopen("/proc/self/maps", "r");
  if (f == nullptr) return 0;
  std::size_t n = 0;
  for (int c; (c = std::fgetc(f)) != EOF;) n += c == '\n';
  std::fclose(f);
  return n;
}

// What this kernel and environment should give: guard pages where
// MADV_GUARD_INSTALL (102) works, unless the environment asks for mprotect.
std::string expected_guard_name() {
  const char* forced = std::getenv("RKT_STACK_GUARD");
  if (forced != nullptr && std::string(forced) == "mprotect") return "mprotect";
  const std::size_t page = page_bytes();
  void* m = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
  const bool works = madvise(m, page, 102) == 0;
  munmap(m, 2 * page);
  return works ? "guard-pages" : "mprotect";
}

TEST_F(EvtStackGuardTest, KindIsTheOneThisKernelAndEnvironmentGive) {
  EXPECT_EQ(rkt::stack_guard_name(), expected_guard_name());
}

// Many parked green threads: with guard pages their stacks merge into a
// handful of mappings; with mprotect guards each costs two.
TEST_F(EvtStackGuardTest, ParkedThreadsCostMappingsOnlyWithMprotectGuards) {
#if defined(RKT_TSAN)
  // TSan maps each fiber's state (about 900 KiB, set up in some 20 ms) next
  // to its stack, which keeps the stacks' mappings apart.
  constexpr int kParked = 500;
#elif defined(RKT_ASAN)
  // Sanitizer stacks are 1 MiB.
  constexpr int kParked = 10'000;
#else
  // Past vm.max_map_count / 2 (65530 / 2 by default) only with guard pages.
  const int kParked = guard_pages() ? 100'000 : 10'000;
#endif
  const std::size_t before = maps_lines();
  rkt::semaphore release;
  rkt::semaphore parked;
  std::vector<rkt::thread> threads;
  threads.reserve(static_cast<std::size_t>(kParked));
  for (int i = 0; i < kParked; ++i) {
    threads.emplace_back([&] {
      parked.post();
      release.wait();
    });
  }
  for (int i = 0; i < kParked; ++i) sync_within(parked);
  const std::size_t during = maps_lines();
  for (int i = 0; i < kParked; ++i) release.post();
  for (const rkt::thread& t : threads) rkt::test::await(t);
  const std::size_t added = during > before ? during - before : 0;
  if (guard_pages()) {
#if defined(RKT_TSAN)
    // TSan's own mappings for each fiber (several) are counted here too:
    // nothing to assert. The overflow tests above still check, under TSan,
    // that each guard lies inside its stack's mapping.
    (void)added;
#else
    // The parked threads' heap may add a few mappings, the stacks about one.
    EXPECT_LE(added, 100u) << kParked << " parked threads";
#endif
  } else {
    // Each new stack is two mappings (the stack pool may reuse up to 256).
    EXPECT_GE(added, 2 * static_cast<std::size_t>(std::max(kParked - 256, 0)))
        << kParked << " parked threads";
  }
}

// ---------------------------------------------------------------------------
// The minimum stack size.

class EvtStackSizeTest : public rkt::test::clean_test {};

// Uses about `bytes` of the calling stack, in 1 KiB frames.
[[gnu::noinline]] std::size_t use_stack(std::size_t bytes) {
  char frame[kKiB];
  std::memset(frame, 1, sizeof frame);
  asm volatile("" : : "r"(frame) : "memory");
  if (bytes <= sizeof frame) return static_cast<std::size_t>(frame[0]);
  return use_stack(bytes - sizeof frame) + static_cast<std::size_t>(frame[1]);
}

TEST_F(EvtStackSizeTest, MinimumIsTheDocumentedOne) {
  EXPECT_EQ(rkt::thread_options::min_stack_size(), kDocumentedMinimum);
}

TEST_F(EvtStackSizeTest, TinyRequestIsRoundedUpToTheMinimum) {
  // A one-byte request gets the minimum: half of it is there to use.
  std::size_t used = 0;
  rkt::thread t([&] { used = use_stack(kDocumentedMinimum / 2); }, {.stack_size = 1});
  rkt::test::await(t);
  EXPECT_EQ(used, kDocumentedMinimum / 2 / kKiB);
}

TEST_F(EvtStackSizeTest, ThreadAtTheMinimumSyncsThrowsCatchesAndIsKilled) {
  const rkt::thread_options at_minimum{.stack_size = rkt::thread_options::min_stack_size()};
  rkt::channel<int> in;
  rkt::channel<std::string> out;
  std::atomic<int> unwound{0};
  rkt::thread t(
      [&] {
        rkt::test::unwind_counter on_unwind(unwound);
        // A sync that parks, woken by another green thread.
        const int n = in.get();
        // A throw caught in the thread.
        std::string caught;
        try {
          throw rkt::exn_fail("thrown at the minimum: " + std::to_string(n));
        } catch (const rkt::exn_fail& e) {
          caught = e.what();
        }
        // A timed park (an alarm in the reactor's wait) on this stack: the
        // behaviour under test, not a wait for another thread.
        rkt::sleep(absl::Milliseconds(1));
        out.put(caught);
        // Parks until killed: the kill unwinds this stack.
        in.get();
      },
      at_minimum);
  in.put(7);
  EXPECT_EQ(sync_within(out), "thrown at the minimum: 7");
  t.kill();
  EXPECT_TRUE(t.dead());
  EXPECT_EQ(unwound.load(), 1);
}

TEST_F(EvtStackSizeTest, ImpossibleSizeIsRefusedWithAnError) {
  EXPECT_THROW(rkt::thread([] {}, {.stack_size = SIZE_MAX}), std::system_error);
  EXPECT_THROW(rkt::thread([] {}, {.stack_size = SIZE_MAX - 4096}), std::system_error);
}

}  // namespace
