// Runs functions compiled by sattn-opt -> mlir-translate -> clang (riscv64) on a problem file.
//
//   mlir_runner --case NAME --problem IN --result OUT
//
// The problem file (cc/include/sattn/plan_io.h) carries q, k, v and a plan. "spec" cases take
// (q, k, v, out) and plan inside the generated code; "plan" cases take the problem's plan as
// arguments, so their instruction-count region covers attention only, like rvv/runner's.
// The region markers of rvv/plugin surround the call. Exit codes: 0 ok, 1 bad input, 2 usage.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "mlir/runtime/sattn_rt.h"
#include "sattn/plan_io.h"

namespace {

// MLIR's C interface for ranked memrefs (llvm.emit_c_interface).
template <typename T, int N>
struct MemRef {
  T* allocated;
  T* aligned;
  int64_t offset;
  int64_t sizes[N];
  int64_t strides[N];
};
using M4 = MemRef<float, 4>;
using MI32 = MemRef<int32_t, 1>;
using MI64 = MemRef<int64_t, 1>;

}  // namespace

#define SPEC_CASE(n) extern "C" void _mlir_ciface_##n(M4*, M4*, M4*, M4*);
#define PLAN_CASE(n) extern "C" void _mlir_ciface_##n(M4*, M4*, M4*, MI32*, MI32*, MI32*, MI64*, M4*);
#include SATTN_CASES_INC
#undef SPEC_CASE
#undef PLAN_CASE

namespace {

struct Case {
  const char* name;
  void (*spec)(M4*, M4*, M4*, M4*);
  void (*plan)(M4*, M4*, M4*, MI32*, MI32*, MI32*, MI64*, M4*);
};

const Case kCases[] = {
#define SPEC_CASE(n) {#n, _mlir_ciface_##n, nullptr},
#define PLAN_CASE(n) {#n, nullptr, _mlir_ciface_##n},
#include SATTN_CASES_INC
#undef SPEC_CASE
#undef PLAN_CASE
};

M4 View4(float* p, int64_t a, int64_t b, int64_t c, int64_t d) {
  return M4{p, p, 0, {a, b, c, d}, {b * c * d, c * d, d, 1}};
}

template <typename T>
MemRef<T, 1> View1(std::vector<T>& v) {
  return MemRef<T, 1>{v.data(), v.data(), 0, {int64_t(v.size())}, {1}};
}

int Usage() {
  std::fprintf(stderr, "usage: mlir_runner --case NAME --problem IN --result OUT\ncases:");
  for (const Case& c : kCases) std::fprintf(stderr, " %s", c.name);
  std::fprintf(stderr, "\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name, in, out;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--case") name = argv[i + 1];
    else if (a == "--problem") in = argv[i + 1];
    else if (a == "--result") out = argv[i + 1];
    else return Usage();
  }
  if (name.empty() || in.empty() || out.empty()) return Usage();
  const Case* c = nullptr;
  for (const Case& x : kCases)
    if (name == x.name) c = &x;
  if (!c) {
    std::fprintf(stderr, "mlir_runner: --case: unknown case '%s'\n", name.c_str());
    return Usage();
  }
  sattn::Problem pb;
  sattn::Status st = sattn::ReadProblem(in, &pb);
  if (!st.ok()) {
    std::fprintf(stderr, "mlir_runner: reading %s: %s\n", in.c_str(), st.message.c_str());
    return 1;
  }
  const sattn::Shape& s = pb.shape;
  std::vector<float> o(size_t(s.B) * s.Hq * s.Lq * s.D, 0.0f);
  M4 q = View4(pb.q.data(), s.B, s.Hq, s.Lq, s.D), k = View4(pb.k.data(), s.B, s.Hkv, s.Lk, s.D),
     v = View4(pb.v.data(), s.B, s.Hkv, s.Lk, s.D), om = View4(o.data(), s.B, s.Hq, s.Lq, s.D);
  std::vector<int64_t> bits(pb.plan.bitmaps.begin(), pb.plan.bitmaps.end());
  MI32 rp = View1(pb.plan.row_ptr), ci = View1(pb.plan.col_idx), mi = View1(pb.plan.mask_idx);
  MI64 bm = View1(bits);
  sattn_rt_region_begin();
  if (c->spec) c->spec(&q, &k, &v, &om);
  else c->plan(&q, &k, &v, &rp, &ci, &mi, &bm, &om);
  sattn_rt_region_end();
  sattn::Result res;
  res.shape = s;
  res.out = std::move(o);
  // LSE is not produced by the compiled path: report it as NaN so no one mistakes it for data.
  res.lse.assign(size_t(s.B) * s.Hq * s.Lq, __builtin_nanf(""));
  res.counters.emplace_back("plan_nnz", pb.plan.nnz());
  st = sattn::WriteResult(out, res);
  if (!st.ok()) {
    std::fprintf(stderr, "mlir_runner: writing %s: %s\n", out.c_str(), st.message.c_str());
    return 1;
  }
  return 0;
}
