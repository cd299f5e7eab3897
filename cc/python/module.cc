// sattn._cc: a thin pybind11 layer over the C++ core. Converts arguments, releases the GIL
// around real work, turns Status errors into ValueError. No logic of its own lives here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "cc/cpu/attention.h"
#include "sattn/plan.h"
#include "sattn/plan_io.h"
#include "sattn/spec.h"

namespace py = pybind11;

namespace sattn {
namespace {

void Throw(const Status& st) {
  if (!st.ok()) throw py::value_error(st.message);
}

Spec SpecFromFields(const py::dict& f) {
  Spec s;
  s.kind = SpecKind(f["kind"].cast<int32_t>());
  s.causal = f.contains("causal") && f["causal"].cast<bool>();
  // Absent keys keep the C++ defaults (the contract's).
#define SATTN_GET(name, type) \
  if (f.contains(#name)) s.name = f[#name].cast<type>();
#define SATTN_GET_I32(name) SATTN_GET(name, int32_t)
#define SATTN_GET_F64(name) SATTN_GET(name, double)
#define SATTN_GET_U64(name) SATTN_GET(name, uint64_t)
#define SATTN_GET_SCORE(name) \
  if (f.contains(#name)) s.name = BlockScore(f[#name].cast<int32_t>());
  SATTN_SPEC_FIELDS(SATTN_GET_I32, SATTN_GET_F64, SATTN_GET_U64, SATTN_GET_SCORE)
#undef SATTN_GET_SCORE
#undef SATTN_GET_U64
#undef SATTN_GET_F64
#undef SATTN_GET_I32
#undef SATTN_GET
  Throw(ValidateSpec(s));
  return s;
}

Shape ShapeFromTuple(const py::tuple& t) {
  if (t.size() != 6) throw py::value_error("shape: expected (B, Hq, Hkv, Lq, Lk, D)");
  Shape sh{t[0].cast<int32_t>(), t[1].cast<int32_t>(), t[2].cast<int32_t>(),
           t[3].cast<int32_t>(), t[4].cast<int32_t>(), t[5].cast<int32_t>()};
  Throw(ValidateShape(sh));
  return sh;
}

template <typename T>
std::vector<T> ToVector(const py::handle& h, const char* name) {
  auto a = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(h);
  if (!a) throw py::type_error(std::string(name) + ": expected an array");
  return std::vector<T>(a.data(), a.data() + a.size());
}

template <typename T>
py::array_t<T> ToArray(const std::vector<T>& v) {
  py::array_t<T> a(py::ssize_t(v.size()));
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

BlockPlan PlanFromDict(const py::dict& d) {
  BlockPlan p;
  p.block = d["block"].cast<int32_t>();
  p.B = d["B"].cast<int32_t>();
  p.Hq = d["Hq"].cast<int32_t>();
  p.Lq = d["Lq"].cast<int32_t>();
  p.Lk = d["Lk"].cast<int32_t>();
  p.plan_b = d["plan_b"].cast<int32_t>();
  p.plan_h = d["plan_h"].cast<int32_t>();
  p.q_block_begin = d["q_block_begin"].cast<int32_t>();
  p.n_q_blocks = d["n_q_blocks"].cast<int32_t>();
  p.n_k_blocks = d["n_k_blocks"].cast<int32_t>();
  p.words_per_row = d["words_per_row"].cast<int32_t>();
  p.row_ptr = ToVector<int32_t>(d["row_ptr"], "plan.row_ptr");
  p.col_idx = ToVector<int32_t>(d["col_idx"], "plan.col_idx");
  p.mask_idx = ToVector<int32_t>(d["mask_idx"], "plan.mask_idx");
  p.bitmaps = ToVector<uint64_t>(d["bitmaps"], "plan.bitmaps");
  Throw(ValidatePlan(p));
  return p;
}

py::dict PlanToDict(const BlockPlan& p) {
  py::dict d;
  d["block"] = p.block;
  d["B"] = p.B;
  d["Hq"] = p.Hq;
  d["Lq"] = p.Lq;
  d["Lk"] = p.Lk;
  d["plan_b"] = p.plan_b;
  d["plan_h"] = p.plan_h;
  d["q_block_begin"] = p.q_block_begin;
  d["n_q_blocks"] = p.n_q_blocks;
  d["n_k_blocks"] = p.n_k_blocks;
  d["words_per_row"] = p.words_per_row;
  d["row_ptr"] = ToArray(p.row_ptr);
  d["col_idx"] = ToArray(p.col_idx);
  d["mask_idx"] = ToArray(p.mask_idx);
  d["bitmaps"] = ToArray(p.bitmaps);
  return d;
}

using F32Array = py::array_t<float, py::array::c_style>;

const float* OptionalF32(const py::object& o, int64_t expected, const char* name) {
  if (o.is_none()) return nullptr;
  auto a = o.cast<F32Array>();
  if (a.size() != expected)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(expected) + " float32 values");
  return a.data();
}

py::dict BuildPlanPy(const py::dict& fields, const py::tuple& shape, const py::object& q,
                     const py::object& k, int32_t tile, double scale, int32_t threads) {
  const Spec spec = SpecFromFields(fields);
  const Shape sh = ShapeFromTuple(shape);
  // Keep the arrays alive while the GIL is released.
  F32Array qa = q.is_none() ? F32Array() : q.cast<F32Array>();
  F32Array ka = k.is_none() ? F32Array() : k.cast<F32Array>();
  const float* qp = OptionalF32(q, int64_t(sh.B) * sh.Hq * sh.Lq * sh.D, "q");
  const float* kp = OptionalF32(k, int64_t(sh.B) * sh.Hkv * sh.Lk * sh.D, "k");
  PlanOptions opt;
  opt.tile = tile;
  opt.scale = scale;
  opt.num_threads = threads;
  BlockPlan plan;
  Status st;
  {
    py::gil_scoped_release release;
    st = BuildPlan(spec, sh, qp, kp, opt, &plan);
  }
  Throw(st);
  return PlanToDict(plan);
}

py::tuple AttentionCpu(const py::array& q, const py::array& k, const py::array& v, const py::dict& plan_d,
                       const py::tuple& shape, double scale, const std::string& dtype, int32_t threads,
                       bool want_lse) {
  const Shape sh = ShapeFromTuple(shape);
  const BlockPlan plan = PlanFromDict(plan_d);
  cpu::AttentionArgs args;
  args.shape = sh;
  args.scale = scale;
  args.num_threads = threads;
  py::ssize_t item;
  if (dtype == "float32") {
    args.dtype = cpu::DType::kF32;
    item = 4;
  } else if (dtype == "bfloat16") {
    args.dtype = cpu::DType::kBF16;
    item = 2;
  } else {
    throw py::type_error("dtype: expected 'float32' or 'bfloat16', got '" + dtype + "'");
  }
  for (auto* a : {&q, &k, &v}) {
    if (a->itemsize() != item || !(a->flags() & py::array::c_style))
      throw py::type_error("q, k, v: expected C-contiguous arrays of " + dtype);
  }
  const int64_t nq = int64_t(sh.B) * sh.Hq * sh.Lq * sh.D, nk = int64_t(sh.B) * sh.Hkv * sh.Lk * sh.D;
  if (q.size() != nq) throw py::value_error("q: size does not match the shape");
  if (k.size() != nk) throw py::value_error("k: size does not match the shape");
  if (v.size() != nk) throw py::value_error("v: size does not match the shape");
  py::array out(q.dtype(), std::vector<py::ssize_t>{sh.B, sh.Hq, sh.Lq, sh.D});
  py::array_t<float> lse(std::vector<py::ssize_t>{sh.B, sh.Hq, sh.Lq});
  args.q = q.data();
  args.k = k.data();
  args.v = v.data();
  args.out = out.mutable_data();
  args.lse = want_lse ? lse.mutable_data() : nullptr;
  Status st;
  {
    py::gil_scoped_release release;
    st = cpu::Attention(args, plan);
  }
  Throw(st);
  return py::make_tuple(out, want_lse ? py::object(lse) : py::object(py::none()));
}

py::bytes SerializeProblemPy(const py::dict& fields, const py::tuple& shape, double scale, const py::handle& q,
                             const py::handle& k, const py::handle& v, const py::dict& plan) {
  Problem pr;
  pr.spec = SpecFromFields(fields);
  pr.shape = ShapeFromTuple(shape);
  pr.scale = scale;
  pr.q = ToVector<float>(q, "q");
  pr.k = ToVector<float>(k, "k");
  pr.v = ToVector<float>(v, "v");
  pr.plan = PlanFromDict(plan);
  const auto bytes = SerializeProblem(pr);
  return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

py::tuple ParseResultPy(const py::bytes& data) {
  const std::string s = data;
  Result res;
  Throw(ParseResult(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &res));
  const Shape& sh = res.shape;
  py::array_t<float> out(std::vector<py::ssize_t>{sh.B, sh.Hq, sh.Lq, sh.D});
  py::array_t<float> lse(std::vector<py::ssize_t>{sh.B, sh.Hq, sh.Lq});
  std::memcpy(out.mutable_data(), res.out.data(), res.out.size() * 4);
  std::memcpy(lse.mutable_data(), res.lse.data(), res.lse.size() * 4);
  py::dict counters;
  for (const auto& [name, value] : res.counters) counters[py::str(name)] = value;
  return py::make_tuple(out, lse, counters);
}

py::bytes SerializeResultPy(const py::tuple& shape, const py::handle& out, const py::handle& lse,
                            const py::dict& counters) {
  Result res;
  res.shape = ShapeFromTuple(shape);
  res.out = ToVector<float>(out, "out");
  res.lse = ToVector<float>(lse, "lse");
  for (auto item : counters) res.counters.emplace_back(item.first.cast<std::string>(), item.second.cast<int64_t>());
  const auto bytes = SerializeResult(res);
  return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

py::dict ParseProblemPy(const py::bytes& data) {
  const std::string s = data;
  Problem pr;
  Throw(ParseProblem(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &pr));
  py::dict d;
  d["shape"] = py::make_tuple(pr.shape.B, pr.shape.Hq, pr.shape.Hkv, pr.shape.Lq, pr.shape.Lk, pr.shape.D);
  d["scale"] = pr.scale;
  d["kind"] = int(pr.spec.kind);
  d["q"] = ToArray(pr.q);
  d["k"] = ToArray(pr.k);
  d["v"] = ToArray(pr.v);
  d["plan"] = PlanToDict(pr.plan);
  return d;
}

}  // namespace
}  // namespace sattn

PYBIND11_MODULE(_cc, m) {
  using namespace sattn;
  m.doc() = "sattn's C++ core: planner, CPU kernels and the plan file format.";
  m.def("build_plan", &BuildPlanPy, py::arg("fields"), py::arg("shape"), py::arg("q"), py::arg("k"),
        py::arg("tile") = 64, py::arg("scale") = 0.0, py::arg("threads") = 0);
  m.def("validate_plan", [](const py::dict& d) { PlanFromDict(d); });
  m.def("visible_pairs", [](const py::dict& d) { return PlanFromDict(d).VisiblePairs(); });
  m.def("attention_cpu", &AttentionCpu, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("plan"),
        py::arg("shape"), py::arg("scale"), py::arg("dtype"), py::arg("threads") = 0, py::arg("want_lse") = false);
  m.def("serialize_problem", &SerializeProblemPy);
  m.def("parse_problem", &ParseProblemPy);
  m.def("serialize_result", &SerializeResultPy);
  m.def("parse_result", &ParseResultPy);
  m.def("bigbird_mix", &BigBirdMix);
}
