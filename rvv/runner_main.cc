// The RVV runner (docs/backends/rvv.md): reads a Problem file (docs/bsr.md), optionally re-plans
// on target with the shared C++ planner, runs the linked kernels over the plan between the
// instruction-count region markers, and writes a Result file with the driver's counters.
#include "rvv/runner_main.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cc/src/nonfinite.h"
#include "rvv/driver.h"
#include "rvv/kernels/kernels.h"
#include "sattn/plan.h"
#include "sattn/plan_io.h"

namespace sattn {
namespace rvv {
namespace {

int Usage(const char* msg) {
  std::fprintf(stderr,
               "rvv runner (%s kernels): %s\n"
               "usage: runner --problem FILE --result FILE [--dtype fp32|bf16|int8]\n"
               "              [--plan-on-target] [--check-selection] [--chunk-keys N]\n"
               "              [--region attention|selection]\n"
               "       runner --mode backward --problem FILE --forward FILE --upstream FILE\n"
               "              --result FILE --result-dk FILE --result-dv FILE [--dtype fp32|bf16]\n"
               "              [--chunk-keys N]\n"
               "  --region: what runs between the instruction-count markers: the attention over\n"
               "            the plan (default) or the BlockTopK selection (implies --check-selection)\n"
               "  --mode backward: the gradients (docs/backends/rvv.md, \"Backward\"); --forward is\n"
               "            the forward's Result file (out, lse), --upstream a Result file holding\n"
               "            dout in `out` and dlse in `lse`; --result gets dq (delta in `lse`),\n"
               "            --result-dk/--result-dv get dk, dv with shape (B, Hkv, Hkv, Lk, Lk, D)\n",
               sattn_kernel_variant(), msg);
  return 2;
}

int Fail(const std::string& what, const Status& st) {
  std::fprintf(stderr, "rvv runner: %s: %s\n", what.c_str(), st.message.c_str());
  return 1;
}

bool SameShape(const Shape& a, const Shape& b) {
  return a.B == b.B && a.Hq == b.Hq && a.Hkv == b.Hkv && a.Lq == b.Lq && a.Lk == b.Lk && a.D == b.D;
}

void AddStats(const RunStats& stats, const BlockPlan& plan, DType dtype, Result* res) {
  res->counters.emplace_back("visible_pairs", stats.visible_pairs);
  res->counters.emplace_back("computed_slots", stats.computed_slots);
  res->counters.emplace_back("chunks", stats.chunks);
  res->counters.emplace_back("gathered_bytes", stats.gathered_bytes);
  res->counters.emplace_back("empty_rows", stats.empty_rows);
  res->counters.emplace_back("plan_nnz", plan.nnz());
  res->counters.emplace_back("dtype", int64_t(dtype));
}

// --mode backward. No non-finite policy: finite inputs give finite gradients; NaN/Inf values
// propagate through the IEEE arithmetic they meet (docs/backends/rvv.md, "Backward").
int BackwardMain(const std::string& problem_path, const std::string& forward_path, const std::string& upstream_path,
                 const std::string& dq_path, const std::string& dk_path, const std::string& dv_path,
                 RunOptions opt) {
  Problem pb;
  Status st = ReadProblem(problem_path, &pb);
  if (!st.ok()) return Fail("reading " + problem_path, st);
  Result fwd, up;
  st = ReadResult(forward_path, &fwd);
  if (!st.ok()) return Fail("reading " + forward_path, st);
  if (!SameShape(fwd.shape, pb.shape)) return Fail("--forward", Status::Invalid("shape: differs from the problem's"));
  st = ReadResult(upstream_path, &up);
  if (!st.ok()) return Fail("reading " + upstream_path, st);
  if (!SameShape(up.shape, pb.shape)) return Fail("--upstream", Status::Invalid("shape: differs from the problem's"));
  if (opt.dtype == DType::kI8)
    return Fail("--dtype", Status::Invalid("dtype: the backward runs on fp32 or bf16 storage"));
  BackwardInputs in;
  in.out = &fwd.out, in.lse = &fwd.lse, in.dout = &up.out, in.dlse = &up.lse;
  Result dq, dk, dv;
  RunStats stats;
  stats.visible_pairs = pb.plan.VisiblePairs();
  opt.mark_region = true;
  st = RunAttentionBackward(pb, in, opt, &dq.out, &dk.out, &dv.out, &dq.lse, &stats);
  if (!st.ok()) return Fail("backward", st);
  dq.shape = pb.shape;
  Shape kv = pb.shape;  // (B, Hkv, Hkv, Lk, Lk, D): `out` is then exactly (B, Hkv, Lk, D)
  kv.Hq = kv.Hkv, kv.Lq = kv.Lk;
  for (Result* r : {&dk, &dv}) {
    r->shape = kv;
    r->lse.assign(size_t(kv.B) * kv.Hkv * kv.Lk, 0.0f);
  }
  AddStats(stats, pb.plan, opt.dtype, &dq);
  for (const auto& [path, res] : {std::make_pair(dq_path, &dq), std::make_pair(dk_path, &dk), std::make_pair(dv_path, &dv)}) {
    st = WriteResult(path, *res);
    if (!st.ok()) return Fail("writing " + path, st);
  }
  return 0;
}

}  // namespace

int RunnerMain(int argc, char** argv) {
  std::string problem_path, result_path, forward_path, upstream_path, dk_path, dv_path;
  bool backward = false;
  RunOptions opt;
  bool plan_on_target = false, check_selection = false, count_selection = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)name;
      return argv[++i];
    };
    if (a == "--problem" || a == "--result" || a == "--dtype" || a == "--chunk-keys" || a == "--region" ||
        a == "--mode" || a == "--forward" || a == "--upstream" || a == "--result-dk" || a == "--result-dv") {
      const char* v = value(a.c_str());
      if (v == nullptr) return Usage((a + " needs a value").c_str());
      if (a == "--problem") problem_path = v;
      else if (a == "--forward") forward_path = v;
      else if (a == "--upstream") upstream_path = v;
      else if (a == "--result-dk") dk_path = v;
      else if (a == "--result-dv") dv_path = v;
      else if (a == "--mode") {
        if (std::strcmp(v, "forward") != 0 && std::strcmp(v, "backward") != 0)
          return Usage("--mode: expected forward or backward");
        backward = std::strcmp(v, "backward") == 0;
      }
      else if (a == "--result") result_path = v;
      else if (a == "--region") {
        if (std::strcmp(v, "attention") != 0 && std::strcmp(v, "selection") != 0)
          return Usage("--region: expected attention or selection");
        count_selection = std::strcmp(v, "selection") == 0;
      } else if (a == "--dtype") {
        if (!ParseDType(v, &opt.dtype)) return Usage("--dtype: expected fp32, bf16 or int8");
      } else {
        char* end = nullptr;
        const long n = std::strtol(v, &end, 10);
        if (end == v || *end != '\0' || n < 1 || n > (1 << 20)) return Usage("--chunk-keys: expected 1..1048576");
        opt.chunk_keys = int32_t(n);
      }
    } else if (a == "--plan-on-target") {
      plan_on_target = true;
    } else if (a == "--check-selection") {
      check_selection = true;
    } else {
      return Usage(("unknown argument '" + a + "'").c_str());
    }
  }
  if (problem_path.empty() || result_path.empty()) return Usage("--problem and --result are required");
  if (backward) {
    if (forward_path.empty() || upstream_path.empty() || dk_path.empty() || dv_path.empty())
      return Usage("--mode backward: --forward, --upstream, --result-dk and --result-dv are required");
    if (plan_on_target || check_selection || count_selection)
      return Usage("--mode backward: --plan-on-target, --check-selection and --region are forward-only");
    return BackwardMain(problem_path, forward_path, upstream_path, result_path, dk_path, dv_path, opt);
  }
  if (!forward_path.empty() || !upstream_path.empty() || !dk_path.empty() || !dv_path.empty())
    return Usage("--forward, --upstream, --result-dk and --result-dv need --mode backward");

  Problem pb;
  Status st = ReadProblem(problem_path, &pb);
  if (!st.ok()) return Fail("reading " + problem_path, st);

  Result res;
  res.shape = pb.shape;
  if (plan_on_target) {
    // The same planner the host ran, now compiled for RISC-V: must give the same plan.
    PlanOptions po;
    po.tile = pb.plan.block;
    po.scale = pb.scale;
    po.num_threads = 1;
    BlockPlan fresh;
    st = BuildPlan(pb.spec, pb.shape, pb.q.data(), pb.k.data(), po, &fresh);
    if (!st.ok()) return Fail("planning on target", st);
    const bool same = fresh.row_ptr == pb.plan.row_ptr && fresh.col_idx == pb.plan.col_idx &&
                      fresh.mask_idx == pb.plan.mask_idx && fresh.bitmaps == pb.plan.bitmaps;
    res.counters.emplace_back("target_plan_matches_host", same ? 1 : 0);
    pb.plan = std::move(fresh);
  }
  if (check_selection || count_selection) {
    if (pb.spec.kind != SpecKind::kBlockTopK)
      return Fail(count_selection ? "--region selection" : "--check-selection",
                  Status::Invalid("spec.kind: only BlockTopK has a block selection"));
    const int64_t bad = CountSelectionMismatches(pb, &st, /*mark_region=*/count_selection);
    if (!st.ok()) return Fail("--check-selection", st);
    res.counters.emplace_back("selection_mismatched_rows", bad);
  }

  // The contract's non-finite policy (cc/src/nonfinite.h), outside the counted region so normal
  // runs count the same instructions: the plan (and the selection check above) saw the original
  // values; the kernels see NaN/Inf replaced by 0; the rows that saw one are set to NaN after.
  NonFiniteScan scan;
  st = ScanNonFinite(pb.shape, ElemType::kF32, pb.q.data(), pb.k.data(), pb.v.data(), 1, &scan);
  if (st.ok()) st = CheckFloat32Range(pb.shape, pb.scale, scan);
  if (!st.ok()) return Fail("problem", st);
  if (scan.any())
    for (std::vector<float>* x : {&pb.q, &pb.k, &pb.v}) SanitizeCopy(ElemType::kF32, x->data(), int64_t(x->size()), x->data());

  RunStats stats;
  stats.visible_pairs = pb.plan.VisiblePairs();
  opt.mark_region = !count_selection;
  st = RunAttention(pb, opt, &res.out, &res.lse, &stats);
  if (!st.ok()) return Fail("attention", st);
  if (scan.any())
    res.counters.emplace_back("poisoned_rows",
                              PoisonRows(pb.plan, pb.shape, scan, ElemType::kF32, res.out.data(), res.lse.data()));

  AddStats(stats, pb.plan, opt.dtype, &res);
  st = WriteResult(result_path, res);
  if (!st.ok()) return Fail("writing " + result_path, st);
  return 0;
}

}  // namespace rvv
}  // namespace sattn
