// ParallelFor: every item exactly once, bounded thread counts, and no std::terminate when the
// system refuses a thread (the work finishes on the threads that exist).
#include "cc/src/parallel.h"

#include <atomic>
#include <system_error>
#include <thread>
#include <vector>

#include "cc/testing/check.h"

namespace {

using sattn::internal::ParallelFor;
using sattn::internal::ResolveThreads;

// Starts `allowed` threads, then fails as pthread_create does when out of resources.
struct FailAfter {
  int* allowed;
  template <typename Worker>
  std::thread operator()(Worker&& w) const {
    if ((*allowed)-- <= 0) throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
    return std::thread(w);
  }
};

void TestThreadCreationFailureFallsBack() {
  for (int allowed : {0, 1, 3}) {
    const int64_t n = 1000;
    std::vector<std::atomic<int>> hits(n);
    int budget = allowed;
    ParallelFor(n, 8, [&](int64_t i) { hits[size_t(i)].fetch_add(1); }, FailAfter{&budget});
    int64_t once = 0;
    for (auto& h : hits) once += h.load() == 1;
    SATTN_CHECK_EQ(once, n);
  }
}

void TestThreadBounds() {
  SATTN_CHECK_EQ(ResolveThreads(5), 5);
  SATTN_CHECK_EQ(ResolveThreads(1 << 30), sattn::kMaxThreads);
  SATTN_CHECK(ResolveThreads(0) >= 1 && ResolveThreads(0) <= sattn::kMaxThreads);
  SATTN_CHECK(sattn::ValidateThreads(1025, "threads").message.rfind("threads:", 0) == 0);
  SATTN_CHECK(sattn::ValidateThreads(-1, "threads").message.rfind("threads:", 0) == 0);
  SATTN_CHECK(sattn::ValidateThreads(0, "threads").ok());
  SATTN_CHECK(sattn::ValidateThreads(1024, "threads").ok());
}

}  // namespace

int main() {
  TestThreadCreationFailureFallsBack();
  TestThreadBounds();
  return sattn_testing::Finish("parallel_test");
}
