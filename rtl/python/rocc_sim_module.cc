// Python binding of the simulated accelerator (thin: converts arguments, calls the runner).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "rocc_bwd_model.h"
#include "rocc_model.h"
#include "runner.h"
#include "sattn_rocc_cmds.h"

namespace py = pybind11;
using namespace sattn;
using namespace sattn::rocc;

namespace {

template <typename T>
std::vector<T> Vec(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw std::invalid_argument(std::string("plan: missing field '") + key + "'");
  auto a = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(d[key]);
  if (!a) throw std::invalid_argument(std::string("plan.") + key + ": expected an array");
  return std::vector<T>(a.data(), a.data() + a.size());
}

int32_t Int(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw std::invalid_argument(std::string("plan: missing field '") + key + "'");
  return d[key].cast<int32_t>();
}

BlockPlan PlanFromDict(const py::dict& d) {
  BlockPlan p;
  p.block = Int(d, "block");
  p.B = Int(d, "B");
  p.Hq = Int(d, "Hq");
  p.Lq = Int(d, "Lq");
  p.Lk = Int(d, "Lk");
  p.plan_b = Int(d, "plan_b");
  p.plan_h = Int(d, "plan_h");
  p.q_block_begin = Int(d, "q_block_begin");
  p.n_q_blocks = Int(d, "n_q_blocks");
  p.n_k_blocks = Int(d, "n_k_blocks");
  p.words_per_row = Int(d, "words_per_row");
  p.row_ptr = Vec<int32_t>(d, "row_ptr");
  p.col_idx = Vec<int32_t>(d, "col_idx");
  p.mask_idx = Vec<int32_t>(d, "mask_idx");
  p.bitmaps = Vec<uint64_t>(d, "bitmaps");
  Status st = ValidatePlan(p);
  if (!st.ok()) throw std::invalid_argument("plan: " + st.message);
  return p;
}

using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;

using F64 = py::array_t<double, py::array::c_style | py::array::forcecast>;

// A static clip array (one per head) or None: the pointer StaticClips takes, after its length check.
const double* ClipPtr(const py::object& obj, py::ssize_t n, const char* name, F64* keep) {
  if (obj.is_none()) return nullptr;
  *keep = F64::ensure(obj);
  if (!*keep || keep->ndim() != 1 || keep->shape(0) != n)
    throw std::invalid_argument(std::string(name) + ": expected one clip per head (" + std::to_string(n) + " values)");
  return keep->data();
}

Problem MakeProblem(const F32& q, const F32& k, const F32& v, const py::dict& plan, double scale,
                    const py::object& q_clip = py::none(), const py::object& k_clip = py::none(),
                    const py::object& v_clip = py::none()) {
  if (q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4) throw std::invalid_argument("q, k, v: expected 4-D arrays");
  const int32_t B = int32_t(q.shape(0)), Hq = int32_t(q.shape(1)), Lq = int32_t(q.shape(2)), D = int32_t(q.shape(3));
  const int32_t Hkv = int32_t(k.shape(1)), Lk = int32_t(k.shape(2));
  F64 kq, kk, kv;
  StaticClips clips;
  clips.q = ClipPtr(q_clip, Hq, "q_clip", &kq);
  clips.k = ClipPtr(k_clip, Hkv, "k_clip", &kk);
  clips.v = ClipPtr(v_clip, Hkv, "v_clip", &kv);
  Problem p;
  const std::string err = Quantize(q.data(), k.data(), v.data(), B, Hq, Hkv, Lq, Lk, D, scale, PlanFromDict(plan), &p,
                                   clips);
  if (!err.empty()) throw std::invalid_argument(err);
  return p;
}

py::tuple ToFloat(const Problem& p, const Output& o) {
  py::array_t<float> out({p.B, p.Hq, p.Lq, p.D_orig});
  py::array_t<float> lse({p.B, p.Hq, p.Lq});
  Dequantize(p, o, out.mutable_data(), lse.mutable_data());
  return py::make_tuple(out, lse);
}

py::dict RunSim(const F32& q, const F32& k, const F32& v, const py::dict& plan, double scale,
                const std::string& path, int latency, double bytes_per_cycle, bool check_golden,
                uint64_t watchdog_cycles, const py::object& q_clip, const py::object& k_clip,
                const py::object& v_clip) {
  if (path != "fused" && path != "unfused") throw std::invalid_argument("path: expected 'fused' or 'unfused', got '" + path + "'");
  if (!(bytes_per_cycle > 0 && bytes_per_cycle <= SATTN_ROCC_BUS_BYTES))
    throw std::invalid_argument("bytes_per_cycle: expected (0, " + std::to_string(SATTN_ROCC_BUS_BYTES) + "]");
  if (latency < 1) throw std::invalid_argument("latency: expected >= 1 cycle");
  if (watchdog_cycles < 1) throw std::invalid_argument("watchdog_cycles: expected >= 1 cycle");
  Problem p = MakeProblem(q, k, v, plan, scale, q_clip, k_clip, v_clip);
  MemConfig mc;
  mc.latency = latency;
  mc.bytes_per_cycle = bytes_per_cycle;
  mc.watchdog_cycles = watchdog_cycles;
  RunResult r;
  {
    py::gil_scoped_release nogil;
    Sim sim(mc);
    r = Run(p, path == "fused" ? Path::kFused : Path::kUnfused, &sim);
  }
  py::dict res;
  // An error answer comes back as its code (sattn.backends.rocc raises RoccFault naming it).
  res["error"] = r.error;
  if (r.error != 0) return res;
  // Every refused access is an error answer now: a fault without one is a harness bug.
  if (r.sim_faults != 0) throw std::logic_error("rocc sim: memory faults counted under an OK answer");
  py::tuple f = ToFloat(p, r.output);
  res["out"] = f[0];
  res["lse"] = f[1];
  py::dict c;
  for (const auto& kv : r.counters) c[py::str(kv.first)] = kv.second;
  res["counters"] = c;
  if (check_golden) {
    const Output g = Golden(p);
    res["golden_match"] = (g.out == r.output.out && g.stats == r.output.stats);
  }
  return res;
}

py::tuple GoldenAttention(const F32& q, const F32& k, const F32& v, const py::dict& plan, double scale,
                          const py::object& q_clip, const py::object& k_clip, const py::object& v_clip) {
  Problem p = MakeProblem(q, k, v, plan, scale, q_clip, k_clip, v_clip);
  return ToFloat(p, Golden(p));
}

void CheckShape(const F32& a, std::vector<py::ssize_t> want, const char* name) {
  bool ok = a.ndim() == py::ssize_t(want.size());
  for (size_t i = 0; ok && i < want.size(); ++i) ok = a.shape(i) == want[i];
  if (!ok) throw std::invalid_argument(std::string(name) + ": shape does not match q/k");
}

py::dict RunSimBwd(const F32& q, const F32& k, const F32& v, const py::dict& plan, double scale, const F32& out,
                   const F32& lse, const F32& dout, const py::object& dlse_obj, int latency, double bytes_per_cycle,
                   bool check_golden, uint64_t watchdog_cycles) {
  if (!(bytes_per_cycle > 0 && bytes_per_cycle <= SATTN_ROCC_BUS_BYTES))
    throw std::invalid_argument("bytes_per_cycle: expected (0, " + std::to_string(SATTN_ROCC_BUS_BYTES) + "]");
  if (latency < 1) throw std::invalid_argument("latency: expected >= 1 cycle");
  if (watchdog_cycles < 1) throw std::invalid_argument("watchdog_cycles: expected >= 1 cycle");
  Problem p = MakeProblem(q, k, v, plan, scale);
  CheckShape(out, {p.B, p.Hq, p.Lq, p.D_orig}, "out");
  CheckShape(dout, {p.B, p.Hq, p.Lq, p.D_orig}, "dout");
  CheckShape(lse, {p.B, p.Hq, p.Lq}, "lse");
  F32 dlse;
  if (!dlse_obj.is_none()) {
    dlse = F32::ensure(dlse_obj);
    if (!dlse) throw std::invalid_argument("dlse: expected an array");
    CheckShape(dlse, {p.B, p.Hq, p.Lq}, "dlse");
  }
  BwdProblem bp;
  const std::string err = QuantizeBwd(p, out.data(), lse.data(), dout.data(), dlse_obj.is_none() ? nullptr : dlse.data(),
                                      scale, &bp);
  if (!err.empty()) throw std::invalid_argument(err);
  MemConfig mc;
  mc.latency = latency;
  mc.bytes_per_cycle = bytes_per_cycle;
  mc.watchdog_cycles = watchdog_cycles;
  BwdRunResult r;
  {
    py::gil_scoped_release nogil;
    Sim sim(mc);
    r = RunBwd(bp, &sim);
  }
  py::dict res;
  res["error"] = r.error;
  if (r.error != 0) return res;
  if (r.sim_faults != 0) throw std::logic_error("rocc sim: memory faults counted under an OK answer");
  py::array_t<float> dq({p.B, p.Hq, p.Lq, p.D_orig});
  py::array_t<float> dk({p.B, p.Hkv, p.Lk, p.D_orig});
  py::array_t<float> dv({p.B, p.Hkv, p.Lk, p.D_orig});
  DequantizeBwd(bp, r.output, dq.mutable_data(), dk.mutable_data(), dv.mutable_data());
  res["dq"] = dq;
  res["dk"] = dk;
  res["dv"] = dv;
  py::dict c;
  for (const auto& kv : r.counters) c[py::str(kv.first)] = kv.second;
  c["t_nnz"] = bp.t_nnz();
  res["counters"] = c;
  if (check_golden) {
    const BwdOutput g = GoldenBwd(bp);
    res["golden_match"] = (g.ds == r.output.ds && g.ds_shift == r.output.ds_shift && g.dq == r.output.dq &&
                           g.dk == r.output.dk && g.dv == r.output.dv);
  }
  return res;
}

}  // namespace

PYBIND11_MODULE(sattn_rocc_sim, m) {
  m.doc() = "Cycle-accurate Verilator model of the sattn RoCC sparse-attention accelerator";
  m.def("run", &RunSim, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("plan"), py::arg("scale"),
        py::arg("path") = "fused", py::arg("latency") = 40, py::arg("bytes_per_cycle") = 16.0,
        py::arg("check_golden") = false, py::arg("watchdog_cycles") = MemConfig().watchdog_cycles,
        py::arg("q_clip") = py::none(), py::arg("k_clip") = py::none(), py::arg("v_clip") = py::none(),
        "Quantises (dynamic per-block scales, or static clips per head: q_clip[Hq], k_clip[Hkv], "
        "v_clip[Hkv]), runs the plan on the simulated accelerator through the C driver, returns "
        "{error: 0, out, lse, counters[, golden_match]}, or {error: code} when the accelerator "
        "answered an error code of rtl/spec/commands.json.");
  m.def("run_bwd", &RunSimBwd, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("plan"), py::arg("scale"),
        py::arg("out"), py::arg("lse"), py::arg("dout"), py::arg("dlse") = py::none(), py::arg("latency") = 40,
        py::arg("bytes_per_cycle") = 16.0, py::arg("check_golden") = false,
        py::arg("watchdog_cycles") = MemConfig().watchdog_cycles,
        "ATTN_BWD on the simulated accelerator for the forward (out, lse) of the same q, k, v and plan: "
        "{error: 0, dq, dk, dv, counters[, golden_match]} or {error: code}.");
  m.def("golden", &GoldenAttention, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("plan"), py::arg("scale"),
        py::arg("q_clip") = py::none(), py::arg("k_clip") = py::none(), py::arg("v_clip") = py::none(),
        "The bit-exact golden model's (out, lse), dequantised (clips as for run).");
}
