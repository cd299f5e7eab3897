// RunOnThreads (cc/cpu/thread_pool.h): the threads the system refuses are not an error (the
// others finish the work, no std::terminate), the count is capped at kMaxThreads, and the forward
// and backward entry points refuse num_threads outside 0 .. kMaxThreads.
#include "cc/cpu/thread_pool.h"

#include <atomic>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#include "cc/cpu/attention.h"
#include "cc/testing/check.h"

namespace {

using sattn::cpu::internal::ResolveThreads;
using sattn::cpu::internal::RunOnThreads;

// Starts `allowed` threads, then fails: as pthread_create when out of threads (system_error) or
// as the allocation of a thread's state (bad_alloc).
struct FailAfter {
  int* allowed;
  bool bad_alloc;
  template <typename Worker>
  std::thread operator()(Worker&& w) const {
    if ((*allowed)-- <= 0) {
      if (bad_alloc) throw std::bad_alloc();
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
    }
    return std::thread(w);
  }
};

// The work pattern of the CPU kernels: items from a shared counter, so any number of threads
// finishes all of them.
void TestRefusedThreadsFinishTheWork() {
  for (bool bad_alloc : {false, true}) {
    for (int allowed : {0, 1, 3}) {
      const int64_t n = 500;
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int64_t> next{0};
      int budget = allowed;
      const int ran = RunOnThreads(
          8,
          [&](int) {
            for (int64_t i; (i = next.fetch_add(1)) < n;) hits[size_t(i)].fetch_add(1);
          },
          FailAfter{&budget, bad_alloc});
      SATTN_CHECK_EQ(ran, allowed + 1);
      int64_t once = 0;
      for (auto& h : hits) once += h.load() == 1;
      SATTN_CHECK_EQ(once, n);
    }
  }
}

void TestThreadIndicesAndCap() {
  std::vector<std::atomic<int>> seen(4);
  SATTN_CHECK_EQ(RunOnThreads(4, [&](int t) { seen[size_t(t)].fetch_add(1); }), 4);
  for (auto& s : seen) SATTN_CHECK_EQ(s.load(), 1);
  SATTN_CHECK_EQ(ResolveThreads(1 << 30), sattn::kMaxThreads);
  SATTN_CHECK(ResolveThreads(0) >= 1 && ResolveThreads(0) <= sattn::kMaxThreads);
}

void TestEntryPointsRefuseTooManyThreads() {
  sattn::Shape s;
  s.B = s.Hq = s.Hkv = s.Lq = s.Lk = 1, s.D = 4;
  sattn::BlockPlan pl;
  pl.block = 1, pl.B = pl.Hq = pl.Lq = pl.Lk = 1, pl.n_q_blocks = pl.n_k_blocks = 1;
  pl.row_ptr = {0, 1}, pl.col_idx = {0}, pl.mask_idx = {-1};
  float q[4] = {1, 2, 3, 4}, out[4], lse[1], dq[4], dk[4], dv[4];
  sattn::cpu::AttentionArgs a;
  a.shape = s, a.scale = 0.5, a.q = q, a.k = q, a.v = q, a.out = out, a.lse = lse;
  a.num_threads = sattn::kMaxThreads;
  SATTN_CHECK(sattn::cpu::Attention(a, pl).ok());
  a.num_threads = sattn::kMaxThreads + 1;
  SATTN_CHECK(sattn::cpu::Attention(a, pl).message.rfind("num_threads:", 0) == 0);
  sattn::cpu::BackwardArgs b;
  b.shape = s, b.scale = 0.5, b.q = q, b.k = q, b.v = q, b.out = out, b.lse = lse, b.dout = q;
  b.dq = dq, b.dk = dk, b.dv = dv, b.num_threads = sattn::kMaxThreads;
  SATTN_CHECK(sattn::cpu::AttentionBackward(b, pl).ok());
  b.num_threads = -1;
  SATTN_CHECK(sattn::cpu::AttentionBackward(b, pl).message.rfind("num_threads:", 0) == 0);
}

}  // namespace

int main() {
  TestRefusedThreadsFinishTheWork();
  TestThreadIndicesAndCap();
  TestEntryPointsRefuseTooManyThreads();
  return sattn_testing::Finish("thread_pool_test");
}
