// sattn._cc: a thin pybind11 layer over the C++ core. Converts arguments, releases the GIL
// around real work, turns Status errors into ValueError. No logic of its own lives here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "cc/cpu/attention.h"
#include "cc/src/nonfinite.h"
#include "sattn/plan.h"
#include "sattn/plan_io.h"
#include "sattn/spec.h"

namespace py = pybind11;

namespace sattn {
namespace {

void Throw(const Status& st) {
  if (!st.ok()) throw py::value_error(st.message);
}

std::string TypeName(py::handle h) { return py::str(py::type::handle_of(h).attr("__name__")); }

// The integer value of `h` (Python or numpy integer, not bool) in [lo, hi]; `what` names it in
// the TypeError/ValueError (never pybind's "Unable to cast").
int64_t IntIn(py::handle h, const std::string& what, int64_t lo, int64_t hi) {
  if (PyBool_Check(h.ptr()) || !PyIndex_Check(h.ptr()))
    throw py::type_error(what + ": expected an integer, got " + TypeName(h));
  const py::int_ i = py::reinterpret_steal<py::int_>(PyNumber_Index(h.ptr()));
  if (!i) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow != 0 || v < lo || v > hi)
    throw py::value_error(what + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                          "], got " + std::string(py::str(i)));
  return v;
}

int32_t I32(py::handle h, const std::string& what) {
  return int32_t(IntIn(h, what, INT32_MIN, INT32_MAX));
}

uint64_t U64(py::handle h, const std::string& what) {
  if (PyBool_Check(h.ptr()) || !PyIndex_Check(h.ptr()))
    throw py::type_error(what + ": expected an integer, got " + TypeName(h));
  const py::int_ i = py::reinterpret_steal<py::int_>(PyNumber_Index(h.ptr()));
  if (!i) throw py::error_already_set();
  const unsigned long long v = PyLong_AsUnsignedLongLong(i.ptr());
  if (PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(what + ": expected an integer in [0, 2^64 - 1], got " + std::string(py::str(i)));
  }
  return v;
}

double F64(py::handle h, const std::string& what) {
  if (PyBool_Check(h.ptr()) || !(PyFloat_Check(h.ptr()) || PyIndex_Check(h.ptr()) ||
                                 py::hasattr(h, "__float__")))
    throw py::type_error(what + ": expected a number, got " + TypeName(h));
  const double v = PyFloat_AsDouble(h.ptr());
  if (PyErr_Occurred()) {
    PyErr_Clear();
    throw py::type_error(what + ": expected a number, got " + TypeName(h));
  }
  return v;
}

bool Bool(py::handle h, const std::string& what) {
  if (!PyBool_Check(h.ptr())) throw py::type_error(what + ": expected a bool, got " + TypeName(h));
  return h.ptr() == Py_True;
}

// d[key], or a KeyError naming `where`.key when it is absent.
py::handle Get(const py::dict& d, const char* key, const std::string& where) {
  PyObject* v = PyDict_GetItemString(d.ptr(), key);
  if (v == nullptr) throw py::key_error(where + "." + key + ": missing");
  return v;
}

Spec SpecFromFields(const py::dict& f) {
  Spec s;
  s.kind = SpecKind(IntIn(Get(f, "kind", "spec"), "spec.kind", 0, 4));
  s.causal = f.contains("causal") && Bool(f["causal"], "spec.causal");
  // Absent keys keep the C++ defaults (the contract's).
#define SATTN_GET(name, conv) \
  if (f.contains(#name)) s.name = conv(f[#name], "spec." #name);
#define SATTN_GET_I32(name) SATTN_GET(name, I32)
#define SATTN_GET_F64(name) SATTN_GET(name, F64)
#define SATTN_GET_U64(name) SATTN_GET(name, U64)
#define SATTN_GET_SCORE(name) \
  if (f.contains(#name)) s.name = BlockScore(IntIn(f[#name], "spec." #name, 0, 1));
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
  Shape sh{I32(t[0], "shape.B"), I32(t[1], "shape.Hq"), I32(t[2], "shape.Hkv"),
           I32(t[3], "shape.Lq"), I32(t[4], "shape.Lk"), I32(t[5], "shape.D")};
  Throw(ValidateShape(sh));
  return sh;
}

std::string DTypeName(const py::array& a) { return py::str(a.dtype()); }

// A copy of the array `h` as T. Integer T: only integer arrays, every value in T's range (a float
// or an out-of-range value is an error naming `name`, never a silent cast); uint64 takes int64
// words as the bit patterns they are (bitmaps). Float T: any real array.
template <typename T>
std::vector<T> ToVector(const py::handle& h, const char* name) {
  const py::array any = py::array::ensure(h);
  if (!any) throw py::type_error(std::string(name) + ": expected an array, got " + TypeName(h));
  const char kind = any.dtype().kind();
  const bool integer = kind == 'i' || kind == 'u';
  if (std::is_integral<T>::value ? !integer : !(integer || kind == 'f'))
    throw py::type_error(std::string(name) + ": expected " + (std::is_integral<T>::value ? "an integer" : "a real") +
                         " array, got dtype " + DTypeName(any));
  if constexpr (std::is_same<T, int32_t>::value) {
    auto a = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(any);
    if (!a) throw py::error_already_set();
    std::vector<T> out(size_t(a.size()));
    for (py::ssize_t i = 0; i < a.size(); ++i) {
      const int64_t x = a.data()[i];
      if (x < INT32_MIN || x > INT32_MAX)
        throw py::value_error(std::string(name) + ": entry " + std::to_string(i) + " = " + std::to_string(x) +
                              " does not fit int32");
      out[size_t(i)] = T(x);
    }
    return out;
  } else {
    auto a = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(any);
    if (!a) throw py::error_already_set();
    return std::vector<T>(a.data(), a.data() + a.size());
  }
}

template <typename T>
py::array_t<T> ToArray(const std::vector<T>& v) {
  py::array_t<T> a(py::ssize_t(v.size()));
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

BlockPlan PlanFromDict(const py::dict& d) {
  BlockPlan p;
#define SATTN_PLAN_I32(name) p.name = I32(Get(d, #name, "plan"), "plan." #name);
  SATTN_PLAN_I32(block) SATTN_PLAN_I32(B) SATTN_PLAN_I32(Hq) SATTN_PLAN_I32(Lq) SATTN_PLAN_I32(Lk)
  SATTN_PLAN_I32(plan_b) SATTN_PLAN_I32(plan_h) SATTN_PLAN_I32(q_block_begin) SATTN_PLAN_I32(n_q_blocks)
  SATTN_PLAN_I32(n_k_blocks) SATTN_PLAN_I32(words_per_row)
#undef SATTN_PLAN_I32
  p.row_ptr = ToVector<int32_t>(Get(d, "row_ptr", "plan"), "plan.row_ptr");
  p.col_idx = ToVector<int32_t>(Get(d, "col_idx", "plan"), "plan.col_idx");
  p.mask_idx = ToVector<int32_t>(Get(d, "mask_idx", "plan"), "plan.mask_idx");
  p.bitmaps = ToVector<uint64_t>(Get(d, "bitmaps", "plan"), "plan.bitmaps");
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

// sattn.normalizers' names as cpu::Normalizer.
cpu::Normalizer NormalizerOf(const std::string& name) {
  if (name == "softmax") return cpu::Normalizer::kSoftmax;
  if (name == "sigmoid") return cpu::Normalizer::kSigmoid;
  if (name == "relu2") return cpu::Normalizer::kRelu2;
  throw py::value_error("normalizer: expected 'softmax', 'sigmoid' or 'relu2', got '" + name + "'");
}

py::tuple AttentionCpu(const py::array& q, const py::array& k, const py::array& v, const py::dict& plan_d,
                       const py::tuple& shape, double scale, const std::string& dtype, int32_t threads,
                       bool want_lse, const std::string& normalizer) {
  const Shape sh = ShapeFromTuple(shape);
  const BlockPlan plan = PlanFromDict(plan_d);
  cpu::AttentionArgs args;
  args.shape = sh;
  args.scale = scale;
  args.num_threads = threads;
  args.normalizer = NormalizerOf(normalizer);
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

// The quantized forward (cpu::AttentionQuant): fp32 q, k, v in, fp32 out; the scheme's fields
// as sattn.Quant names them (granularity, block, smooth_k, pv) plus v_qmax (0: V unquantized);
// clip_q/k/v: the static clips of a sattn.Scales as float64 arrays, or None (dynamic scales);
// isa: "" for the best kernel here, or one kernel set by name (tests run each).
py::tuple AttentionCpuQuant(const py::array& q, const py::array& k, const py::array& v, const py::dict& plan_d,
                            const py::tuple& shape, double scale, int32_t threads, bool want_lse,
                            const std::string& granularity, int32_t block, bool smooth_k, const std::string& pv,
                            int32_t v_qmax, const py::object& clip_q, const py::object& clip_k,
                            const py::object& clip_v, const std::string& isa) {
  const Shape sh = ShapeFromTuple(shape);
  const BlockPlan plan = PlanFromDict(plan_d);
  cpu::QuantArgs args;
  args.shape = sh;
  args.scale = scale;
  args.num_threads = threads;
  if (granularity == "block") args.granularity = cpu::QuantGranularity::kBlock;
  else if (granularity == "token") args.granularity = cpu::QuantGranularity::kToken;
  else if (granularity == "channel") args.granularity = cpu::QuantGranularity::kChannel;
  else throw py::value_error("quant.granularity: expected 'block', 'token' or 'channel', got '" + granularity + "'");
  if (pv == "fp32") args.pv = cpu::PvFormat::kF32;
  else if (pv == "bf16") args.pv = cpu::PvFormat::kBF16;
  else throw py::value_error("quant.pv: the cpu backend runs 'fp32' or 'bf16', got '" + pv + "'");
  args.block = block;
  args.smooth_k = smooth_k;
  args.v_qmax = v_qmax;
  args.isa = isa.empty() ? nullptr : isa.c_str();
  auto f32 = [](const py::array& a, const char* name, int64_t n) {
    if (a.dtype().kind() != 'f' || a.itemsize() != 4 || !(a.flags() & py::array::c_style))
      throw py::type_error(std::string(name) + ": expected a C-contiguous float32 array");
    if (a.size() != n) throw py::value_error(std::string(name) + ": size does not match the shape");
  };
  const int64_t nq = int64_t(sh.B) * sh.Hq * sh.Lq * sh.D, nk = int64_t(sh.B) * sh.Hkv * sh.Lk * sh.D;
  f32(q, "q", nq);
  f32(k, "k", nk);
  f32(v, "v", nk);
  const bool channel = args.granularity == cpu::QuantGranularity::kChannel;
  const int64_t per_kv = channel ? int64_t(sh.Hkv) * sh.D : sh.Hkv;
  std::vector<py::array_t<double, py::array::c_style | py::array::forcecast>> keep;
  auto clips = [&](const py::object& o, const char* name, int64_t n) -> const double* {
    if (o.is_none()) return nullptr;
    keep.emplace_back(py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(o));
    if (!keep.back() || keep.back().size() != n)
      throw py::value_error(std::string("scales.") + name + ": expected " + std::to_string(n) + " clip values");
    return keep.back().data();
  };
  args.clip_q = clips(clip_q, "q", sh.Hq);
  args.clip_k = clips(clip_k, "k", per_kv);
  args.clip_v = clips(clip_v, "v", per_kv);
  py::array_t<float> out(std::vector<py::ssize_t>{sh.B, sh.Hq, sh.Lq, sh.D});
  py::array_t<float> lse(std::vector<py::ssize_t>{sh.B, sh.Hq, sh.Lq});
  args.q = static_cast<const float*>(q.data());
  args.k = static_cast<const float*>(k.data());
  args.v = static_cast<const float*>(v.data());
  args.out = out.mutable_data();
  args.lse = want_lse ? lse.mutable_data() : nullptr;
  Status st;
  {
    py::gil_scoped_release release;
    st = cpu::AttentionQuant(args, plan);
  }
  Throw(st);
  return py::make_tuple(out, want_lse ? py::object(lse) : py::object(py::none()));
}

// Gradients of attention_cpu over the same plan (cpu::AttentionBackward): fp32 arrays in, fp32
// (dq, dk, dv) out; dlse may be None.
py::tuple AttentionBackwardCpu(const py::array& q, const py::array& k, const py::array& v, const py::array& out,
                               const py::array& lse, const py::array& dout, const py::object& dlse,
                               const py::dict& plan_d, const py::tuple& shape, double scale, int32_t threads,
                               const std::string& normalizer) {
  const Shape sh = ShapeFromTuple(shape);
  const BlockPlan plan = PlanFromDict(plan_d);
  const int64_t nq = int64_t(sh.B) * sh.Hq * sh.Lq, nk = int64_t(sh.B) * sh.Hkv * sh.Lk;
  auto f32 = [](const py::handle& h, const char* name, int64_t n) {
    auto a = py::array::ensure(h);
    if (!a || a.dtype().kind() != 'f' || a.itemsize() != 4 || !(a.flags() & py::array::c_style))
      throw py::type_error(std::string(name) + ": expected a C-contiguous float32 array");
    if (a.size() != n) throw py::value_error(std::string(name) + ": size does not match the shape");
    return a;
  };
  const py::array qa = f32(q, "q", nq * sh.D), ka = f32(k, "k", nk * sh.D), va = f32(v, "v", nk * sh.D);
  const py::array oa = f32(out, "out", nq * sh.D), la = f32(lse, "lse", nq), da = f32(dout, "dout", nq * sh.D);
  py::array dla;
  if (!dlse.is_none()) dla = f32(dlse, "dlse", nq);
  py::array_t<float> dq(std::vector<py::ssize_t>{sh.B, sh.Hq, sh.Lq, sh.D});
  py::array_t<float> dk(std::vector<py::ssize_t>{sh.B, sh.Hkv, sh.Lk, sh.D});
  py::array_t<float> dv(std::vector<py::ssize_t>{sh.B, sh.Hkv, sh.Lk, sh.D});
  cpu::BackwardArgs a;
  a.shape = sh;
  a.scale = scale;
  a.num_threads = threads;
  a.normalizer = NormalizerOf(normalizer);
  a.q = static_cast<const float*>(qa.data()), a.k = static_cast<const float*>(ka.data());
  a.v = static_cast<const float*>(va.data()), a.out = static_cast<const float*>(oa.data());
  a.lse = static_cast<const float*>(la.data()), a.dout = static_cast<const float*>(da.data());
  a.dlse = dlse.is_none() ? nullptr : static_cast<const float*>(dla.data());
  a.dq = dq.mutable_data(), a.dk = dk.mutable_data(), a.dv = dv.mutable_data();
  Status st;
  {
    py::gil_scoped_release release;
    st = cpu::AttentionBackward(a, plan);
  }
  Throw(st);
  return py::make_tuple(dq, dk, dv);
}

using F32In = py::array_t<float, py::array::c_style | py::array::forcecast>;
using U8In = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// The contract's non-finite policy (cc/src/nonfinite.h) for backends whose kernel runs outside
// cpu::Attention (RoCC): raises ValueError when float32 scores could overflow; returns None when
// every value is finite, else (q, k, v with NaN/Inf -> 0, bad_q rows, bad_kv keys) as uint8 flags.
py::object NonFinitePreparePy(const F32In& q, const F32In& k, const F32In& v, const py::tuple& shape, double scale,
                              int32_t threads) {
  const Shape sh = ShapeFromTuple(shape);
  const int64_t nq = int64_t(sh.B) * sh.Hq * sh.Lq * sh.D, nk = int64_t(sh.B) * sh.Hkv * sh.Lk * sh.D;
  if (q.size() != nq) throw py::value_error("q: size does not match the shape");
  if (k.size() != nk) throw py::value_error("k: size does not match the shape");
  if (v.size() != nk) throw py::value_error("v: size does not match the shape");
  NonFiniteScan scan;
  Status st;
  {
    py::gil_scoped_release release;
    st = ScanNonFinite(sh, ElemType::kF32, q.data(), k.data(), v.data(), threads, &scan);
  }
  Throw(st);
  Throw(CheckFloat32Range(sh, scale, scan));
  if (!scan.any()) return py::none();
  auto clean = [](const F32In& x) {
    F32Array c(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    SanitizeCopy(ElemType::kF32, x.data(), x.size(), c.mutable_data());
    return c;
  };
  return py::make_tuple(clean(q), clean(k), clean(v), ToArray(scan.bad_q), ToArray(scan.bad_kv));
}

// Sets out = NaN and lse = NaN (in place) on the rows the policy poisons; returns their number.
int64_t NonFinitePoisonPy(py::array_t<float, py::array::c_style> out, const py::object& lse, const py::dict& plan_d,
                          const py::tuple& shape, const U8In& bad_q, const U8In& bad_kv) {
  const Shape sh = ShapeFromTuple(shape);
  const BlockPlan plan = PlanFromDict(plan_d);
  if (plan.B != sh.B || plan.Hq != sh.Hq || plan.Lq != sh.Lq || plan.Lk != sh.Lk)
    throw py::value_error("plan: built for another (B, Hq, Lq, Lk) than shape");
  const int64_t nq = int64_t(sh.B) * sh.Hq * sh.Lq;
  if (out.size() != nq * sh.D) throw py::value_error("out: size does not match the shape");
  if (bad_q.size() != nq) throw py::value_error("bad_q: expected one flag per q row");
  if (bad_kv.size() != int64_t(sh.B) * sh.Hkv * sh.Lk) throw py::value_error("bad_kv: expected one flag per key");
  float* lse_p = nullptr;
  py::array_t<float, py::array::c_style> lse_a;
  if (!lse.is_none()) {
    lse_a = lse.cast<py::array_t<float, py::array::c_style>>();
    if (lse_a.size() != nq) throw py::value_error("lse: size does not match the shape");
    lse_p = lse_a.mutable_data();
  }
  NonFiniteScan scan;
  scan.bad_q.assign(bad_q.data(), bad_q.data() + bad_q.size());
  scan.bad_kv.assign(bad_kv.data(), bad_kv.data() + bad_kv.size());
  for (uint8_t f : scan.bad_q) scan.bad_q_rows += f != 0;
  for (uint8_t f : scan.bad_kv) scan.bad_kv_rows += f != 0;
  return PoisonRows(plan, sh, scan, ElemType::kF32, out.mutable_data(), lse_p);
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
        py::arg("shape"), py::arg("scale"), py::arg("dtype"), py::arg("threads") = 0, py::arg("want_lse") = false,
        py::arg("normalizer") = "softmax");
  m.def("attention_cpu_quant", &AttentionCpuQuant, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("plan"),
        py::arg("shape"), py::arg("scale"), py::arg("threads"), py::arg("want_lse"), py::arg("granularity"),
        py::arg("block"), py::arg("smooth_k"), py::arg("pv"), py::arg("v_qmax"), py::arg("clip_q"),
        py::arg("clip_k"), py::arg("clip_v"), py::arg("isa") = "");
  m.def("quant_cpu_isa", [] { return std::string(cpu::QuantIsaName()); });
  m.def("attention_backward_cpu", &AttentionBackwardCpu, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
        py::arg("lse"), py::arg("dout"), py::arg("dlse"), py::arg("plan"), py::arg("shape"), py::arg("scale"),
        py::arg("threads") = 0, py::arg("normalizer") = "softmax");
  m.def("serialize_problem", &SerializeProblemPy);
  m.def("parse_problem", &ParseProblemPy);
  m.def("serialize_result", &SerializeResultPy);
  m.def("parse_result", &ParseResultPy);
  m.def("bigbird_mix", &BigBirdMix);
  m.def("limits", [] {  // the size limits of spec.h, mirrored by python/sattn/_limits.py
    py::dict d;
    d["max_tensor_elements"] = kMaxTensorElements;
    d["max_plan_entries"] = kMaxPlanEntries;
    d["max_threads"] = kMaxThreads;
    return d;
  });
  m.def("nonfinite_prepare", &NonFinitePreparePy, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("shape"),
        py::arg("scale"), py::arg("threads") = 0);
  m.def("nonfinite_poison", &NonFinitePoisonPy, py::arg("out"), py::arg("lse"), py::arg("plan"), py::arg("shape"),
        py::arg("bad_q"), py::arg("bad_kv"));
}
