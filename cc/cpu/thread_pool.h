// The CPU backend's per-call threads: fn(thread_index) on up to `threads` threads (the caller is
// thread 0), every thread taking its work from shared atomic counters. A thread the system
// refuses (pthread_create failing, out of memory for the thread's state) is not an error: the
// threads that did start, and the caller, finish the work. Never std::terminate.
#ifndef SATTN_CPU_THREAD_POOL_H_
#define SATTN_CPU_THREAD_POOL_H_

#include <thread>
#include <utility>
#include <vector>

#include "cc/src/parallel.h"

namespace sattn {
namespace cpu {
namespace internal {

// Threads one call uses for `requested` (0 = all cores), capped at kMaxThreads (sattn/spec.h).
inline int ResolveThreads(int requested) { return sattn::internal::ResolveThreads(requested); }

// Runs fn(t) for t = 0 .. n-1 where n <= threads is the number of threads that could be
// started (plus the caller); returns n. `start` makes a std::thread (tests pass one that fails).
template <typename Fn, typename Start = sattn::internal::StartStdThread>
int RunOnThreads(int threads, Fn fn, Start start = {}) {
  threads = ResolveThreads(threads);
  std::vector<std::thread> pool;
  try {
    pool.reserve(size_t(threads > 1 ? threads - 1 : 0));
  } catch (...) {
    threads = 1;  // no room for the handles: run on the caller alone
  }
  for (int t = 1; t < threads; ++t) {
    try {
      pool.push_back(start([&fn, t] { fn(t); }));
    } catch (...) {  // std::system_error (no thread) or std::bad_alloc (no memory for its state)
      break;
    }
  }
  fn(0);
  for (auto& th : pool) th.join();
  return int(pool.size()) + 1;
}

}  // namespace internal
}  // namespace cpu
}  // namespace sattn

#endif  // SATTN_CPU_THREAD_POOL_H_
