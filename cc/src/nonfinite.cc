// The non-finite input policy (nonfinite.h, docs/contract.md "Non-finite inputs").
#include "cc/src/nonfinite.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "cc/src/parallel.h"

namespace sattn {
namespace {

using internal::ParallelFor;

float Bf16ToF32(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <typename T>
float ToF32(T x) {
  if constexpr (std::is_same<T, uint16_t>::value) return Bf16ToF32(x);
  else return x;
}

// Sum of squares of a row in float64. Squares of float32 values cannot overflow float64 (and
// neither can D of them), so the sum is finite iff every element is: one pass gives both the
// finiteness and the norm.
template <typename T>
double RowSumSquares64(const T* x, int64_t D) {
  double acc = 0.0;
  for (int64_t d = 0; d < D; ++d) acc += double(ToF32(x[d])) * double(ToF32(x[d]));
  return acc;
}

// The same, fast: float32 partial sums in 16 lanes (vectorised without reassociation), redone in
// float64 only when they come out non-finite (a NaN/Inf element, or squares beyond float32).
template <typename T>
double RowSumSquares(const T* x, int64_t D) {
  float acc[16] = {};
  int64_t d = 0;
  for (; d + 16 <= D; d += 16)
    for (int u = 0; u < 16; ++u) acc[u] += ToF32(x[d + u]) * ToF32(x[d + u]);
  for (; d < D; ++d) acc[0] += ToF32(x[d]) * ToF32(x[d]);
  float sum = 0.0f;
  for (int u = 0; u < 16; ++u) sum += acc[u];
  return std::isfinite(sum) ? double(sum) : RowSumSquares64(x, D);
}

inline double RowSumSquares(ElemType t, const void* base, int64_t row, int64_t D) {
  if (t == ElemType::kBF16) return RowSumSquares(static_cast<const uint16_t*>(base) + row * D, D);
  return RowSumSquares(static_cast<const float*>(base) + row * D, D);
}

// Per chunk of rows: how many were non-finite and the largest finite sum of squares.
struct ChunkStats {
  int64_t bad = 0;
  double max_sq = 0.0, max_sq2 = 0.0;  // max_sq2: v's, for the key scan
};

constexpr int64_t kRowsPerChunk = 512;

// x86-64 builds are baseline SSE2; the scan is a bandwidth-bound pass run on every call, so it
// also gets an AVX2 clone picked at load time (measured 1.8 -> 1.1 ms for 12 MB on one core).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SATTN_SCAN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SATTN_SCAN_CLONES
#endif

SATTN_SCAN_CLONES
void ScanChunk(ElemType t, const void* x, const void* x2, int64_t r0, int64_t r1, int64_t D, uint8_t* bad,
               ChunkStats* cs) {
  for (int64_t r = r0; r < r1; ++r) {
    const double s = RowSumSquares(t, x, r, D);
    const double s2 = x2 ? RowSumSquares(t, x2, r, D) : 0.0;
    if (!std::isfinite(s) || !std::isfinite(s2)) {
      bad[r] = 1;
      ++cs->bad;
    } else {
      cs->max_sq = std::max(cs->max_sq, s);
      cs->max_sq2 = std::max(cs->max_sq2, s2);
    }
  }
}

// Scans `rows` rows of x (and of x2 when non-null, flagging a row if either is non-finite).
void ScanRows(ElemType t, const void* x, const void* x2, int64_t rows, int64_t D, int threads,
              std::vector<uint8_t>* bad, int64_t* n_bad, double* max_sq, double* max_sq2) {
  bad->assign(size_t(rows), 0);
  const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  std::vector<ChunkStats> stats(static_cast<size_t>(chunks));
  // Small inputs are not worth a thread start.
  const int th = rows * D < (int64_t(1) << 16) ? 1 : threads;
  ParallelFor(chunks, th, [&](int64_t c) {
    ScanChunk(t, x, x2, c * kRowsPerChunk, std::min(rows, (c + 1) * kRowsPerChunk), D, bad->data(),
              &stats[size_t(c)]);
  });
  *n_bad = 0;
  *max_sq = *max_sq2 = 0.0;
  for (const auto& cs : stats) {
    *n_bad += cs.bad;
    *max_sq = std::max(*max_sq, cs.max_sq);
    *max_sq2 = std::max(*max_sq2, cs.max_sq2);
  }
}

bool NonFiniteBits(ElemType t, const void* src, int64_t i) {
  if (t == ElemType::kBF16) return (static_cast<const uint16_t*>(src)[i] & 0x7f80u) == 0x7f80u;
  uint32_t u;
  std::memcpy(&u, static_cast<const float*>(src) + i, 4);
  return (u & 0x7f800000u) == 0x7f800000u;
}

}  // namespace

Status ScanNonFinite(const Shape& s, ElemType type, const void* q, const void* k, const void* v,
                     int threads, NonFiniteScan* scan) {
  Status st = ValidateShape(s);
  if (!st.ok()) return st;
  if (q == nullptr) return Status::Invalid("q: null pointer");
  if (k == nullptr) return Status::Invalid("k: null pointer");
  if (v == nullptr) return Status::Invalid("v: null pointer");
  if (threads < 0) return Status::Invalid("num_threads: expected >= 0, got " + std::to_string(threads));
  *scan = NonFiniteScan{};
  const int64_t nq = int64_t(s.B) * s.Hq * s.Lq, nk = int64_t(s.B) * s.Hkv * s.Lk;
  double q_sq, unused, k_sq, v_sq;
  ScanRows(type, q, nullptr, nq, s.D, threads, &scan->bad_q, &scan->bad_q_rows, &q_sq, &unused);
  ScanRows(type, k, v, nk, s.D, threads, &scan->bad_kv, &scan->bad_kv_rows, &k_sq, &v_sq);
  scan->max_q_norm = std::sqrt(q_sq);
  scan->max_k_norm = std::sqrt(k_sq);
  scan->max_v_norm = std::sqrt(v_sq);
  if (!scan->any()) {
    scan->bad_q.clear();
    scan->bad_kv.clear();
  }
  return Status::Ok();
}

Status CheckFloat32Range(const Shape& shape, double scale, const NonFiniteScan& scan) {
  const double limit = double(FLT_MAX) / 2;
  const double bound = std::max(scale, 1.0) * scan.max_q_norm * std::max(scan.max_k_norm, 1.0);
  if (!(bound <= limit))
    return Status::Invalid("scale: the float32 scores would overflow: max(scale, 1) * max ||q_i|| * max(max ||k_j||, 1) = " +
                           std::to_string(bound) + " (scale " + std::to_string(scale) + ", max ||q_i|| " +
                           std::to_string(scan.max_q_norm) + ", max ||k_j|| " + std::to_string(scan.max_k_norm) +
                           ") exceeds FLT_MAX / 2; use a smaller scale or rescale q and k");
  const double vbound = double(shape.Lk) * scan.max_v_norm;
  if (!(vbound <= limit))
    return Status::Invalid("v: the float32 output sums would overflow: Lk * max ||v_j|| = " + std::to_string(vbound) +
                           " exceeds FLT_MAX / 2; rescale v");
  return Status::Ok();
}

void SanitizeCopy(ElemType type, const void* src, int64_t n, void* dst) {
  const size_t bytes = type == ElemType::kBF16 ? 2 : 4;
  std::memcpy(dst, src, size_t(n) * bytes);
  for (int64_t i = 0; i < n; ++i) {
    if (!NonFiniteBits(type, src, i)) continue;
    if (type == ElemType::kBF16) static_cast<uint16_t*>(dst)[i] = 0;
    else static_cast<float*>(dst)[i] = 0.0f;
  }
}

namespace internal {

void MakeSanitized(const Shape& s, ElemType type, const void* q, const void* k, const void* v,
                   SanitizedInputs* out) {
  const int64_t nq = int64_t(s.B) * s.Hq * s.Lq * s.D, nk = int64_t(s.B) * s.Hkv * s.Lk * s.D;
  auto one = [&](const void* src, int64_t n, std::vector<uint16_t>* b16, std::vector<float>* b32) -> const void* {
    if (type == ElemType::kBF16) {
      b16->resize(size_t(n));
      SanitizeCopy(type, src, n, b16->data());
      return b16->data();
    }
    b32->resize(size_t(n));
    SanitizeCopy(type, src, n, b32->data());
    return b32->data();
  };
  out->q = one(q, nq, &out->q16, &out->q32);
  out->k = one(k, nk, &out->k16, &out->k32);
  out->v = one(v, nk, &out->v16, &out->v32);
}

}  // namespace internal

int64_t PoisonRows(const BlockPlan& plan, const Shape& s, const NonFiniteScan& scan, ElemType out_type,
                   void* out, float* lse) {
  if (!scan.any()) return 0;
  const int64_t blk = plan.block, nkb = plan.n_k_blocks, words = plan.words_per_row;
  const int64_t qf = int64_t(s.Lk) - s.Lq, group = s.Hq / s.Hkv;
  // Bad keys per (b, kv head, key block): blocks without one need no bitmap walk.
  std::vector<int32_t> bad_in_block(static_cast<size_t>(int64_t(s.B) * s.Hkv * nkb), 0);
  for (int64_t u = 0; u < int64_t(s.B) * s.Hkv * s.Lk; ++u)
    if (scan.bad_kv[size_t(u)]) ++bad_in_block[size_t((u / s.Lk) * nkb + (u % s.Lk) / blk)];
  std::vector<uint8_t> nonempty(static_cast<size_t>(blk)), sees_bad(static_cast<size_t>(blk));
  int64_t poisoned = 0;
  for (int32_t b = 0; b < s.B; ++b) {
    for (int32_t h = 0; h < s.Hq; ++h) {
      const int64_t bkv = int64_t(b) * s.Hkv + h / group;
      const int64_t qrow0 = (int64_t(b) * s.Hq + h) * s.Lq;  // q row of query row 0
      for (int32_t r = 0; r < plan.n_q_blocks; ++r) {
        const int64_t a = int64_t(r) + plan.q_block_begin;
        const int64_t p0 = std::max(a * blk, qf), p1 = std::min((a + 1) * blk, int64_t(s.Lk)) - 1;
        if (p0 > p1) continue;
        const int64_t prow = plan.row_of(b, h, r);
        const int32_t e0 = plan.row_ptr[prow], e1 = plan.row_ptr[prow + 1];
        bool any_bad_q = false, any_bad_key = false;
        for (int64_t p = p0; p <= p1; ++p) any_bad_q |= scan.bad_q[size_t(qrow0 + p - qf)] != 0;
        for (int32_t e = e0; e < e1; ++e) any_bad_key |= bad_in_block[size_t(bkv * nkb + plan.col_idx[e])] > 0;
        if (!any_bad_q && !any_bad_key) continue;
        std::fill(nonempty.begin(), nonempty.end(), 0);
        std::fill(sees_bad.begin(), sees_bad.end(), 0);
        for (int32_t e = e0; e < e1; ++e) {
          const int64_t c = plan.col_idx[e], j0 = c * blk, cols = std::min<int64_t>(blk, s.Lk - j0);
          const int32_t m = plan.mask_idx[e];
          const bool block_bad = bad_in_block[size_t(bkv * nkb + c)] > 0;
          for (int64_t p = p0; p <= p1; ++p) {
            const int64_t rr = p - a * blk;
            const uint64_t* bits = m < 0 ? nullptr : plan.bitmap(m) + rr * words;
            for (int64_t cc = 0; cc < cols; ++cc) {
              if (bits && !((bits[cc / 64] >> (cc % 64)) & 1)) continue;
              nonempty[size_t(rr)] = 1;
              if (!block_bad) break;  // nothing more to learn from this block for this row
              if (scan.bad_kv[size_t(bkv * s.Lk + j0 + cc)]) {
                sees_bad[size_t(rr)] = 1;
                break;
              }
            }
          }
        }
        for (int64_t p = p0; p <= p1; ++p) {
          const int64_t rr = p - a * blk, row = qrow0 + p - qf;
          if (!nonempty[size_t(rr)] || !(scan.bad_q[size_t(row)] || sees_bad[size_t(rr)])) continue;
          ++poisoned;
          if (out_type == ElemType::kBF16) {
            uint16_t* o = static_cast<uint16_t*>(out) + row * s.D;
            std::fill(o, o + s.D, uint16_t(0x7fc0));
          } else {
            float* o = static_cast<float*>(out) + row * s.D;
            std::fill(o, o + s.D, std::numeric_limits<float>::quiet_NaN());
          }
          if (lse) lse[row] = std::numeric_limits<float>::quiet_NaN();
        }
      }
    }
  }
  return poisoned;
}

}  // namespace sattn
