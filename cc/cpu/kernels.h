// Internal interface between the CPU backend's driver (attention.cc: validation, K/V staging,
// threading) and its per-ISA kernels (kernel_<isa>.cc, all built from kernel.inc).
#ifndef SATTN_CPU_KERNELS_H_
#define SATTN_CPU_KERNELS_H_

#include <cstdint>
#include <string>

#include "cc/cpu/attention.h"
#include "sattn/plan.h"

namespace sattn {
namespace cpu {
namespace internal {

// Everything a kernel needs to process one work item (b, h, query block row of the plan).
struct Problem {
  const BlockPlan* plan = nullptr;
  int32_t B = 0, Hq = 0, Hkv = 0, Lq = 0, Lk = 0, D = 0;
  int32_t Dp = 0;     // D rounded up to the kernel's lane count: row stride of the O scratch
  int32_t group = 1;  // Hq / Hkv
  float qscale = 0;   // scale * log2(e): q is pre-scaled so the kernel works in base 2
  // Normalizer (attention.h) as its int value; for sigmoid, bias2 = -log2(Lk) (the bias in base
  // 2 units); out_scale multiplies the unnormalised sums of the non-softmax normalizers (1 for
  // sigmoid, ln(2)^2 / Lk for relu2 on base-2 scores).
  int32_t normalizer = 0;
  float bias2 = 0;
  float out_scale = 1;
  bool bf16 = false;  // q and out are bf16 bit patterns (k and v are always staged as fp32 here)
  const void* q = nullptr;
  void* out = nullptr;
  float* lse = nullptr;
  // Staged K: for kv head bh = b*Hkv + hkv and key block c, the block's keys are cut into chunks
  // of `ksub` keys; chunk t is D rows of `kt_w` floats (key-major inside a row, zero padded) at
  // kt + (bh*n_k_blocks + c)*kt_block_stride + t*D*kt_w.
  const float* kt = nullptr;
  int32_t kt_w = 0;
  int64_t kt_block_stride = 0;
  // When kt is null, keys are read in row-major layout instead: k_rows + bh*k_head_stride +
  // j*k_ld, rows readable in whole vectors up to Dp (the caller's fp32 array when D is a
  // multiple of the lane count, a staged padded copy otherwise).
  const float* k_rows = nullptr;
  int64_t k_ld = 0;
  int64_t k_head_stride = 0;
  // V rows: v + bh*v_head_stride + j*v_ld (the caller's array for fp32 when no padding is
  // needed, a staged fp32 copy otherwise).
  const float* v = nullptr;
  int64_t v_ld = 0;
  int64_t v_head_stride = 0;
};

// Per-thread scratch, sized by the driver from the ISA constants below.
struct Scratch {
  float* qs;     // block * Dp: pre-scaled fp32 query rows of the current block, zero padded
  float* o;      // block * Dp: unnormalised output accumulators
  float* m;      // block: running max (base-2 units)
  float* l;      // block: running sum of exp2(s - m)
  float* p;      // rmax * ksub: probabilities of the current row group and key chunk
  float* alpha;  // rmax: per-row rescale factors of the current step
};

// A slice of one work item's plan entries (key-split decode): Row walks entries [e_begin, e_end)
// of the item's plan row and leaves its unnormalised state in o (rows x Dp), m and l (base-2
// running max and sum per row) instead of writing out/lse; Merge combines an item's slices.
struct Partial {
  int32_t e_begin = 0, e_end = 0;
  float* o = nullptr;
  float* m = nullptr;
  float* l = nullptr;
};

// The backward's inputs, staged by attention_backward.cc (all fp32; see kernel_bwd.inc).
struct BwdProblem {
  const BlockPlan* plan = nullptr;
  int32_t B = 0, Hq = 0, Hkv = 0, Lq = 0, Lk = 0, D = 0;
  int32_t Dp = 0;     // D rounded up to the lane count: row stride of qs, dos and the accumulators
  int32_t group = 1;  // Hq / Hkv
  const float* qs = nullptr;     // (B*Hq*Lq) rows of Dp: q * scale * log2(e), zero padded
  const float* dos = nullptr;    // (B*Hq*Lq) rows of Dp: dout, zero padded
  const float* lse2 = nullptr;   // B*Hq*Lq: lse * log2(e); +inf where the row contributes nothing
  const float* delta = nullptr;  // B*Hq*Lq: sum_d dout*out - dlse
  // Staged K and V, each in the layout of Problem::kt (chunks of D rows of kt_w keys).
  const float* kt = nullptr;
  const float* vt = nullptr;
  int32_t kt_w = 0;
  int64_t kt_block_stride = 0;
  // Row-major K (rows readable up to Dp): k_rows + bkv*k_head_stride + j*k_ld.
  const float* k_rows = nullptr;
  int64_t k_ld = 0;
  int64_t k_head_stride = 0;
  // The plan transposed: for key (pb*plan_h + ph)*n_k_blocks + c, entries t_ptr[key] ..
  // t_ptr[key+1] of (plan row r = t_row[t], entry index t_ent[t]), ascending r.
  const int32_t* t_ptr = nullptr;
  const int32_t* t_row = nullptr;
  const int32_t* t_ent = nullptr;
  float* dq = nullptr;  // (B,Hq,Lq,D)
  float* dk = nullptr;  // (B,Hkv,Lk,D)
  float* dv = nullptr;
  float dq_scale = 0;   // scale
  float dk_scale = 0;   // ln 2 (qs carries scale*log2(e))
  // As Problem: the normalizer; bias2 for sigmoid; for relu2 the weight is relu(s2)^2 * w_scale
  // and its derivative relu(s2) * dw_scale (s2: base-2 score).
  int32_t normalizer = 0;
  float bias2 = 0;
  float w_scale = 1;
  float dw_scale = 1;
};

// Per-thread scratch of the backward: acc/acc2 (acc_n floats each: n_chunks*ksub rows of Dp),
// p and ds (block * ksub each).
struct BwdScratch {
  float* acc;
  float* acc2;
  float* p;
  float* ds;
  int64_t acc_n;
};

struct Isa {
  const char* name;
  int32_t lanes;  // floats per vector register
  int32_t ksub;   // keys per inner chunk (divides 64, so a chunk never straddles a bitmap word)
  int32_t rmax;   // query rows per register tile
  // One work item (b, h, query block): all its entries when part is null, else one slice.
  void (*row)(const Problem& pr, int64_t item, const Scratch& sc, const Partial* part);
  // out/lse of one item from its n slices (LSE-weighted).
  void (*merge)(const Problem& pr, int64_t item, const Partial* parts, int n);
  float (*exp2)(float x);  // the kernel's vector exp2 on one value (for the accuracy test)
  // Backward: dq rows of one (b, h, query block) item; dk/dv rows of one (b, kv head, key block).
  void (*bwd_dq)(const BwdProblem& pr, int64_t item, const BwdScratch& sc);
  void (*bwd_dkdv)(const BwdProblem& pr, int64_t item, const BwdScratch& sc);
};

// The quantized forward (kernel_int8.inc, driver attention_quant.cc). The driver quantizes q,
// k (and v) per call and stages them; the kernel computes int8 Q K^T, fp32 softmax and P V in
// fp32 or bf16 over the same plan rows as Row.
struct QuantProblem {
  Problem base;  // plan, shape, Dp, group, out (fp32), lse; base.v/v_ld/v_head_stride: fp32 V rows
  // q codes: row (b*Hq + h)*Lq + i is nq int32 words (4 codes each, channel 4t at the low byte)
  // at qw + row*nq, each code plus the ISA's q_offset (stored as a byte).
  const int32_t* qw = nullptr;
  int32_t nq = 0;               // ceil(D / 4)
  const float* qrs = nullptr;   // per q row: its scale * softmax scale * log2(e)
  // K codes of block u = bkv*n_k_blocks + c: chunk t (KSUB keys, the last narrower) at
  // kc + u*kc_block_stride + t*nq*W*4, quad i of key j at byte (i*W + j)*4.
  const int8_t* kc = nullptr;
  int64_t kc_block_stride = 0;
  int32_t W = 0;
  int32_t keys_per_block = 0;   // n_chunks * W: stride of the per-key arrays below
  const float* ks = nullptr;    // per key (u*keys_per_block + key in block): its K scale
  const int32_t* kcorr = nullptr;  // per key: q_offset * sum of its codes (subtracted from the dot)
  bool p_bf16 = false;          // pv = bf16: P rounded to bf16 before P V
  // bf16 V in key pairs (ISAs with a bf16 pair dot, pv = bf16): for kv head bkv and key j,
  // channel d at vp + bkv*vp_head_stride + (j/2)*2*Dp + 2*d + j%2.
  const uint16_t* vp = nullptr;
  int64_t vp_head_stride = 0;
};

struct QuantScratch {
  float* o;       // block * Dp
  float* m;       // block
  float* l;       // block
  float* p;       // rmax * ksub
  float* alpha;   // rmax
  uint16_t* pb;   // rmax * ksub: P as bf16 (bf16 pair dot)
};

struct QuantIsa {
  const char* name;
  int32_t lanes, ksub, rmax;
  int32_t q_offset;  // added to every q code (vpdpbusd multiplies unsigned by signed bytes)
  bool bf16_pairs;   // pv = bf16 runs a bf16 pair dot over QuantProblem::vp
  void (*row)(const QuantProblem& pr, int64_t item, const QuantScratch& sc, const Partial* part);
  void (*merge)(const Problem& pr, int64_t item, const Partial* parts, int n);
};

// Quantized kernels built into this binary (null where not compiled in), the CPU feature the
// AVX-512 one needs (AVX-512 F/BW/VNNI/BF16), and the one AttentionQuant uses: the best
// supported, or SATTN_CPU_ISA's (avx512, avx2, portable) when supported.
const QuantIsa* QuantIsaAvx512();
const QuantIsa* QuantIsaAvx2();
const QuantIsa* QuantIsaPortable();
bool CpuHasAvx512Vnni();
const QuantIsa* SelectQuantIsa();

Status AttentionQuantWithIsa(const QuantArgs& args, const BlockPlan& plan, const QuantIsa* isa,
                             int64_t serial_below = int64_t(1) << 20);

// Kernels built into this binary; null where the ISA is not compiled in (non-x86 hosts).
const Isa* IsaAvx512();
const Isa* IsaAvx2();
const Isa* IsaPortable();

// Which ISAs the running CPU supports (compiled in and reported by cpuid / the OS).
bool CpuHasAvx512();
bool CpuHasAvx2();

// The ISA Attention() uses: the best supported one, or the one named by the environment
// variable SATTN_CPU_ISA (avx512, avx2 or portable) when that one is supported.
const Isa* SelectIsa();

// SATTN_CPU_ISA's value ("" when unset): the kernel set SelectIsa and SelectQuantIsa prefer.
std::string ForcedIsaName();

// The checks the forward and the backward share once their pointers and dtype are checked:
// scale, thread count, and a plan that was built for this (B, Hq, Lq, Lk) and is well formed.
Status ValidateCallCommon(double scale, int num_threads, const Shape& s, const BlockPlan& plan);

// How keys reach the kernel. kTransposed stages each referenced key block as D x W chunks (the
// fast layout for Q K^T); kRows reads keys row-major (no transposition: cheaper when only a few
// query rows read each key block, as in decode). kAuto picks by the plan's rows per key block.
enum class KeyLayout { kAuto, kTransposed, kRows };

// Problems with fewer multiply-adds (Q K^T, per the cost model in attention.cc) than this run on
// the calling thread: starting threads costs tens of microseconds. 1M: on the 2-core dev VM a
// 1-head D=128 decode at Lk=8192 (1M) took 0.367 ms on 2 threads vs 0.405 ms on 1 (0.422 ms with
// the former 2M cut, which kept it serial); at Lk=4096 (0.5M) 2 threads were no faster.
constexpr int64_t kSerialBelow = int64_t(1) << 20;

// Attention with an explicit kernel set and key layout (tests run every combination, and pass
// serial_below = 0 so that small problems exercise the threads too).
Status AttentionWithIsa(const AttentionArgs& args, const BlockPlan& plan, const Isa* isa,
                        KeyLayout layout = KeyLayout::kAuto, int64_t serial_below = kSerialBelow);

// The backward with an explicit kernel set (tests run every ISA, with serial_below = 0).
Status AttentionBackwardWithIsa(const BackwardArgs& args, const BlockPlan& plan, const Isa* isa,
                                int64_t serial_below = kSerialBelow);

}  // namespace internal
}  // namespace cpu
}  // namespace sattn

#endif  // SATTN_CPU_KERNELS_H_
