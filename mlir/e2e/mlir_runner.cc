// Runs functions compiled by sattn-opt -> mlir-translate -> clang (riscv64) on a problem file.
//
//   mlir_runner --case NAME --problem IN --result OUT                 (forward cases)
//   mlir_runner --case NAME --problem IN --grad GIN --grad-out GOUT   (backward cases)
//
// The problem file (cc/include/sattn/plan_io.h) carries q, k, v and a plan. "spec" cases take
// (q, k, v, out) and plan inside the generated code; "plan" cases take the problem's plan as
// arguments, so their instruction-count region covers attention only, like rvv/runner's.
// Backward cases (sattn.attention_grad) also read GIN, raw little-endian float32 out (B,Hq,Lq,D),
// lse (B,Hq,Lq) and dout (B,Hq,Lq,D) one after the other, and write dq (B,Hq,Lq,D), dk and dv
// (B,Hkv,Lk,D) the same way to GOUT; "grad_plan" cases take the problem's plan, so their region
// covers the backward only.
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
using M3 = MemRef<float, 3>;
using MI32 = MemRef<int32_t, 1>;
using MI64 = MemRef<int64_t, 1>;

}  // namespace

using SpecFn = void (*)(M4*, M4*, M4*, M4*);
using PlanFn = void (*)(M4*, M4*, M4*, MI32*, MI32*, MI32*, MI64*, M4*);
using GradFn = void (*)(M4*, M4*, M4*, M4*, M3*, M4*, M4*, M4*, M4*);
using GradPlanFn = void (*)(M4*, M4*, M4*, M4*, M3*, M4*, MI32*, MI32*, MI32*, MI64*, M4*, M4*, M4*);

#define SPEC_CASE(n) extern "C" void _mlir_ciface_##n(M4*, M4*, M4*, M4*);
#define PLAN_CASE(n) extern "C" void _mlir_ciface_##n(M4*, M4*, M4*, MI32*, MI32*, MI32*, MI64*, M4*);
#define GRAD_CASE(n) extern "C" void _mlir_ciface_##n(M4*, M4*, M4*, M4*, M3*, M4*, M4*, M4*, M4*);
#define GRAD_PLAN_CASE(n) \
  extern "C" void _mlir_ciface_##n(M4*, M4*, M4*, M4*, M3*, M4*, MI32*, MI32*, MI32*, MI64*, M4*, M4*, M4*);
#include SATTN_CASES_INC
#undef SPEC_CASE
#undef PLAN_CASE
#undef GRAD_CASE
#undef GRAD_PLAN_CASE

namespace {

struct Case {
  const char* name;
  SpecFn spec;
  PlanFn plan;
  GradFn grad;
  GradPlanFn gradPlan;
};

const Case kCases[] = {
#define SPEC_CASE(n) {#n, _mlir_ciface_##n, nullptr, nullptr, nullptr},
#define PLAN_CASE(n) {#n, nullptr, _mlir_ciface_##n, nullptr, nullptr},
#define GRAD_CASE(n) {#n, nullptr, nullptr, _mlir_ciface_##n, nullptr},
#define GRAD_PLAN_CASE(n) {#n, nullptr, nullptr, nullptr, _mlir_ciface_##n},
#include SATTN_CASES_INC
#undef SPEC_CASE
#undef PLAN_CASE
#undef GRAD_CASE
#undef GRAD_PLAN_CASE
};

M4 View4(float* p, int64_t a, int64_t b, int64_t c, int64_t d) {
  return M4{p, p, 0, {a, b, c, d}, {b * c * d, c * d, d, 1}};
}

template <typename T>
MemRef<T, 1> View1(std::vector<T>& v) {
  return MemRef<T, 1>{v.data(), v.data(), 0, {int64_t(v.size())}, {1}};
}

M3 View3(float* p, int64_t a, int64_t b, int64_t c) { return M3{p, p, 0, {a, b, c}, {b * c, c, 1}}; }

int Usage() {
  std::fprintf(stderr,
               "usage: mlir_runner --case NAME --problem IN --result OUT\n"
               "       mlir_runner --case NAME --problem IN --grad GIN --grad-out GOUT\ncases:");
  for (const Case& c : kCases) std::fprintf(stderr, " %s", c.name);
  std::fprintf(stderr, "\n");
  return 2;
}

bool ReadFloats(const std::string& path, std::vector<float>* all) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  float buf[4096];
  size_t n;
  while ((n = std::fread(buf, sizeof(float), 4096, f)) > 0) all->insert(all->end(), buf, buf + n);
  std::fclose(f);
  return true;
}

int RunGrad(const Case& c, sattn::Problem& pb, M4& q, M4& k, M4& v, MI32& rp, MI32& ci, MI32& mi, MI64& bm,
            const std::string& gin, const std::string& gout) {
  const sattn::Shape& s = pb.shape;
  const size_t nq = size_t(s.B) * s.Hq * s.Lq * s.D, nl = size_t(s.B) * s.Hq * s.Lq;
  const size_t nk = size_t(s.B) * s.Hkv * s.Lk * s.D;
  std::vector<float> in;
  if (!ReadFloats(gin, &in)) {
    std::fprintf(stderr, "mlir_runner: --grad: cannot read %s\n", gin.c_str());
    return 1;
  }
  if (in.size() != 2 * nq + nl) {
    std::fprintf(stderr, "mlir_runner: --grad: expected %zu float32 values (out, lse, dout), got %zu\n",
                 2 * nq + nl, in.size());
    return 1;
  }
  std::vector<float> g(nq + 2 * nk, 0.0f);
  M4 om = View4(in.data(), s.B, s.Hq, s.Lq, s.D), dom = View4(in.data() + nq + nl, s.B, s.Hq, s.Lq, s.D);
  M3 lm = View3(in.data() + nq, s.B, s.Hq, s.Lq);
  M4 dq = View4(g.data(), s.B, s.Hq, s.Lq, s.D), dk = View4(g.data() + nq, s.B, s.Hkv, s.Lk, s.D),
     dv = View4(g.data() + nq + nk, s.B, s.Hkv, s.Lk, s.D);
  sattn_rt_region_begin();
  if (c.grad) c.grad(&q, &k, &v, &om, &lm, &dom, &dq, &dk, &dv);
  else c.gradPlan(&q, &k, &v, &om, &lm, &dom, &rp, &ci, &mi, &bm, &dq, &dk, &dv);
  sattn_rt_region_end();
  std::FILE* f = std::fopen(gout.c_str(), "wb");
  if (!f || std::fwrite(g.data(), sizeof(float), g.size(), f) != g.size() || std::fclose(f) != 0) {
    std::fprintf(stderr, "mlir_runner: --grad-out: cannot write %s\n", gout.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name, in, out, gin, gout;
  if (argc % 2 != 1) return Usage();
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--case") name = argv[i + 1];
    else if (a == "--problem") in = argv[i + 1];
    else if (a == "--result") out = argv[i + 1];
    else if (a == "--grad") gin = argv[i + 1];
    else if (a == "--grad-out") gout = argv[i + 1];
    else return Usage();
  }
  if (name.empty() || in.empty()) return Usage();
  const Case* c = nullptr;
  for (const Case& x : kCases)
    if (name == x.name) c = &x;
  if (!c) {
    std::fprintf(stderr, "mlir_runner: --case: unknown case '%s'\n", name.c_str());
    return Usage();
  }
  const bool grad = c->grad || c->gradPlan;
  if (grad ? (gin.empty() || gout.empty() || !out.empty()) : (out.empty() || !gin.empty() || !gout.empty())) {
    std::fprintf(stderr, "mlir_runner: case '%s' takes %s\n", name.c_str(),
                 grad ? "--grad and --grad-out (a backward case)" : "--result (a forward case)");
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
  if (grad) return RunGrad(*c, pb, q, k, v, rp, ci, mi, bm, gin, gout);
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
