// A minimal parallel-for used by the planner: work items handed out over std::thread.
#ifndef SATTN_SRC_PARALLEL_H_
#define SATTN_SRC_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "sattn/spec.h"

namespace sattn {
namespace internal {

// requested > 0: that many (callers validate it against kMaxThreads; larger values are capped
// here too); 0: the hardware's count, capped at kMaxThreads.
inline int ResolveThreads(int requested) {
  if (requested > 0) return std::min(requested, int(kMaxThreads));
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : int(std::min<unsigned>(hc, unsigned(kMaxThreads)));
}

// Starts a worker thread; ParallelFor's default. Tests substitute one that fails.
struct StartStdThread {
  template <typename Worker>
  std::thread operator()(Worker&& worker) const {
    return std::thread(std::forward<Worker>(worker));
  }
};

// Calls fn(i) for i in [0, n) from up to `threads` threads; items are handed out one at a time
// from an atomic counter so uneven items balance. If a thread cannot be created (the system is out
// of threads or memory), the threads already running and the calling thread finish every item:
// each item is computed the same way whichever thread takes it, so the result does not change.
template <typename Fn, typename Start = StartStdThread>
void ParallelFor(int64_t n, int threads, Fn fn, Start start = {}) {
  threads = int(std::min<int64_t>(ResolveThreads(threads), n));
  if (threads <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  auto worker = [&] {
    for (int64_t i; (i = next.fetch_add(1)) < n;) fn(i);
  };
  std::vector<std::thread> pool;
  pool.reserve(size_t(threads - 1));
  for (int t = 1; t < threads; ++t) {
    try {
      pool.push_back(start(worker));
    } catch (const std::system_error&) {
      break;  // run with the threads we have
    }
  }
  worker();
  for (auto& th : pool) th.join();
}

}  // namespace internal
}  // namespace sattn

#endif  // SATTN_SRC_PARALLEL_H_
