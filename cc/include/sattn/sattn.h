/* sattn C API: sparse attention on the CPU from plain C.
 *
 * Thin wrapper over the C++ core (planner + cc/cpu kernels). Every function returns 0 on success
 * or a non-zero sattn_status; sattn_last_error() then names the offending argument.
 * Spec fields and their meaning: docs/contract.md. */
#ifndef SATTN_SATTN_H_
#define SATTN_SATTN_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sattn_kind {
  SATTN_DENSE = 0,
  SATTN_SLIDING_WINDOW = 1,
  SATTN_BLOCK_TOPK = 2,
  SATTN_BIGBIRD = 3,
  SATTN_TOPK_PER_QUERY = 4
} sattn_kind;

typedef enum sattn_status {
  SATTN_OK = 0,
  SATTN_INVALID_ARGUMENT = 1,
  SATTN_INTERNAL = 2
} sattn_status;

typedef struct sattn_spec {
  int32_t kind;          /* sattn_kind */
  int32_t causal;        /* 0 or 1 */
  int32_t window, dilation, global_tokens;                    /* SlidingWindow */
  int32_t block;                                              /* BlockTopK, BigBird */
  double keep;                                                /* BlockTopK */
  int32_t global_blocks, local_blocks, score_max;             /* BlockTopK (score_max: 0 mean, 1 max) */
  int32_t window_blocks, random_blocks;                       /* BigBird */
  uint64_t seed;                                              /* BigBird */
  int32_t topk;                                               /* TopKPerQuery */
} sattn_spec;

/* Fills `spec` with the contract's defaults for `kind` (e.g. BlockTopK: block 64, keep 0.125). */
void sattn_spec_init(sattn_spec* spec, sattn_kind kind);

/* out (B,Hq,Lq,D) = attention of q (B,Hq,Lq,D) over k, v (B,Hkv,Lk,D) restricted to `spec`.
 * All float32, row-major, contiguous. lse (B,Hq,Lq) is optional (NULL). scale <= 0 means
 * 1/sqrt(D), otherwise it must be in [2^-126, 2^127] (a normal float32). tile: block edge for specs
 * without one (0 means 64, else 1..4096). threads: 0 means all cores, at most 1024. Sizes are
 * limited as docs/contract.md ("Limits") says; every bad argument is SATTN_INVALID_ARGUMENT with a
 * message naming it, before anything is allocated. */
int sattn_attention_f32(const sattn_spec* spec, int32_t B, int32_t Hq, int32_t Hkv, int32_t Lq, int32_t Lk,
                        int32_t D, const float* q, const float* k, const float* v, float* out, float* lse,
                        double scale, int32_t tile, int32_t threads);

/* The message of the last failed call on this thread ("" if none). */
const char* sattn_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* SATTN_SATTN_H_ */
