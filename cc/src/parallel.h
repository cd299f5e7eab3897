// A minimal parallel-for used by the planner: static chunks over std::thread.
#ifndef SATTN_SRC_PARALLEL_H_
#define SATTN_SRC_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace sattn {
namespace internal {

inline int ResolveThreads(int requested) {
  if (requested > 0) return requested;
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : int(hc);
}

// Calls fn(i) for i in [0, n) from up to `threads` threads; items are handed out one at a time
// from an atomic counter so uneven items balance.
template <typename Fn>
void ParallelFor(int64_t n, int threads, Fn fn) {
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
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
}

}  // namespace internal
}  // namespace sattn

#endif  // SATTN_SRC_PARALLEL_H_
