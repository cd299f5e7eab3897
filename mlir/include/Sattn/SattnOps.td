// sattn operations, from the spec-level `sattn.attention` down to the per-tile ops that
// `--sattn-tile` produces and `--sattn-lower-to-rvv` turns into vector code.
//
// Everything works on memrefs (destination style): the compiler path targets bare-metal-like
// RISC-V programs where buffers come from the caller, so there is no bufferization step.
#ifndef SATTN_OPS_TD
#define SATTN_OPS_TD

include "Sattn/SattnDialect.td"
include "Sattn/SattnAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Sattn_F32Tensor4 : MemRefRankOf<[F32], [4]>;
def Sattn_F32Tensor3 : MemRefRankOf<[F32], [3]>;
def Sattn_I32Vector : MemRefRankOf<[I32], [1]>;
def Sattn_I64Vector : MemRefRankOf<[I64], [1]>;
def Sattn_F32Matrix : MemRefRankOf<[F32], [2]>;
def Sattn_F32Vector : MemRefRankOf<[F32], [1]>;

//===----------------------------------------------------------------------===//
// Spec level
//===----------------------------------------------------------------------===//

def Sattn_AttentionOp : Sattn_Op<"attention"> {
  let summary = "Sparse attention out = softmax(scale * q k^T restricted to the spec) v";
  let description = [{
    q and out are (B, Hq, Lq, D), k and v are (B, Hkv, Lk, D), float32, static shapes.
    Query row i sits at absolute position i + Lk - Lq; query head h reads kv head h / (Hq/Hkv).
    `spec` may be left out: `--sattn-select-spec` then picks one for the target profile,
    keeping roughly `density` of the key blocks (default: dense). `scale` defaults to 1/sqrt(D).

    ```mlir
    sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 64, keep = 0.125>}
        : memref<1x2x128x64xf32>, memref<1x1x128x64xf32>, memref<1x1x128x64xf32>,
          memref<1x2x128x64xf32>
    ```
  }];
  let arguments = (ins
    Arg<Sattn_F32Tensor4, "queries", [MemRead]>:$q,
    Arg<Sattn_F32Tensor4, "keys", [MemRead]>:$k,
    Arg<Sattn_F32Tensor4, "values", [MemRead]>:$v,
    Arg<Sattn_F32Tensor4, "output", [MemWrite]>:$out,
    OptionalAttr<Sattn_AnySpecAttr>:$spec,
    OptionalAttr<F64Attr>:$scale,
    OptionalAttr<F64Attr>:$density,
    UnitAttr:$causal);
  let assemblyFormat = [{
    $q `,` $k `,` $v `,` $out attr-dict `:` type($q) `,` type($k) `,` type($v) `,` type($out)
  }];
  let hasVerifier = 1;
}

def Sattn_AttentionGradOp : Sattn_Op<"attention_grad"> {
  let summary = "Gradients dq, dk, dv of sattn.attention for an output gradient dout";
  let description = [{
    The backward of `sattn.attention` with the same spec and scale: given the forward's `out`
    (B, Hq, Lq, D) and `lse` (B, Hq, Lq; log-sum-exp of each row's scaled visible scores, -inf for
    rows that see no key) and the output gradient `dout`, with P = exp(S - lse) on the visible
    pairs and delta_i = dout_i . out_i:
      dv_j = sum_i P_ij dout_i,  dS_ij = P_ij (dout_i . v_j - delta_i),
      dq_i = scale sum_j dS_ij k_j,  dk_j = scale sum_i dS_ij q_i,
    dk and dv summed over each query group (GQA); rows that see no key get zero gradients. dq, dk
    and dv are overwritten. `spec` is required (select-spec chooses forward specs only).

    ```mlir
    sattn.attention_grad %q, %k, %v, %o, %lse, %do into %dq, %dk, %dv
        {spec = #sattn.block_topk<block = 64, keep = 0.125>}
        : memref<1x2x128x64xf32>, memref<1x1x128x64xf32>, memref<1x1x128x64xf32>,
          memref<1x2x128x64xf32>, memref<1x2x128xf32>, memref<1x2x128x64xf32>,
          memref<1x2x128x64xf32>, memref<1x1x128x64xf32>, memref<1x1x128x64xf32>
    ```
  }];
  let arguments = (ins
    Arg<Sattn_F32Tensor4, "queries", [MemRead]>:$q,
    Arg<Sattn_F32Tensor4, "keys", [MemRead]>:$k,
    Arg<Sattn_F32Tensor4, "values", [MemRead]>:$v,
    Arg<Sattn_F32Tensor4, "forward output", [MemRead]>:$out,
    Arg<Sattn_F32Tensor3, "forward log-sum-exp", [MemRead]>:$lse,
    Arg<Sattn_F32Tensor4, "output gradient", [MemRead]>:$dout,
    Arg<Sattn_F32Tensor4, "query gradient", [MemWrite]>:$dq,
    Arg<Sattn_F32Tensor4, "key gradient", [MemWrite]>:$dk,
    Arg<Sattn_F32Tensor4, "value gradient", [MemWrite]>:$dv,
    Sattn_AnySpecAttr:$spec,
    OptionalAttr<F64Attr>:$scale);
  let assemblyFormat = [{
    $q `,` $k `,` $v `,` $out `,` $lse `,` $dout `into` $dq `,` $dk `,` $dv attr-dict `:`
    type($q) `,` type($k) `,` type($v) `,` type($out) `,` type($lse) `,` type($dout) `,`
    type($dq) `,` type($dk) `,` type($dv)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Block plan (docs/bsr.md, cc/include/sattn/plan.h)
//===----------------------------------------------------------------------===//

def Sattn_BuildPlanOp : Sattn_Op<"build_plan"> {
  let summary = "Computes the block plan (CSR of key blocks per query block) of a spec";
  let description = [{
    Results are the plan's row_ptr, col_idx, mask_idx and bitmaps arrays with the layout of
    `sattn::BlockPlan`. Rows are (plan_b, plan_h, query block); data-dependent specs
    (block_topk, topk_per_query) read q and k and have plan_b = B, plan_h = Hq, the others are
    planned once and broadcast. `--sattn-materialize-indices` folds data-independent plans into
    constants; the rest lower to a call of the shared C++ planner at run time, so selection is
    never re-implemented in generated code.
  }];
  let arguments = (ins
    Arg<Sattn_F32Tensor4, "queries", [MemRead]>:$q,
    Arg<Sattn_F32Tensor4, "keys", [MemRead]>:$k,
    Sattn_AnySpecAttr:$spec,
    I64Attr:$block,
    F64Attr:$scale);
  let results = (outs Sattn_I32Vector:$row_ptr, Sattn_I32Vector:$col_idx,
                      Sattn_I32Vector:$mask_idx, Sattn_I64Vector:$bitmaps);
  let assemblyFormat = [{
    $q `,` $k attr-dict `:` type($q) `,` type($k) `->` type(results)
  }];
  let hasVerifier = 1;
}

def Sattn_BlockSparseAttentionOp : Sattn_Op<"block_sparse_attention"> {
  let summary = "Attention over a materialised block plan";
  let arguments = (ins
    Arg<Sattn_F32Tensor4, "queries", [MemRead]>:$q,
    Arg<Sattn_F32Tensor4, "keys", [MemRead]>:$k,
    Arg<Sattn_F32Tensor4, "values", [MemRead]>:$v,
    Arg<Sattn_I32Vector, "row_ptr", [MemRead]>:$row_ptr,
    Arg<Sattn_I32Vector, "col_idx", [MemRead]>:$col_idx,
    Arg<Sattn_I32Vector, "mask_idx", [MemRead]>:$mask_idx,
    Arg<Sattn_I64Vector, "bitmaps", [MemRead]>:$bitmaps,
    Arg<Sattn_F32Tensor4, "output", [MemWrite]>:$out,
    I64Attr:$block,
    I64Attr:$plan_b,
    I64Attr:$plan_h,
    F64Attr:$scale);
  let assemblyFormat = [{
    $q `,` $k `,` $v `plan` `(` $row_ptr `,` $col_idx `,` $mask_idx `,` $bitmaps `)` `into` $out
    attr-dict `:` type($q) `,` type($k) `,` type($v) `,` type($row_ptr) `,` type($col_idx) `,`
    type($mask_idx) `,` type($bitmaps) `,` type($out)
  }];
  let hasVerifier = 1;
}

def Sattn_BlockSparseAttentionGradOp : Sattn_Op<"block_sparse_attention_grad"> {
  let summary = "sattn.attention_grad over a materialised block plan";
  let description = [{
    Lowered directly by `--sattn-lower-to-rvv` (loops over the plan as the forward's tiles are,
    then per tile: scores and dout . v rows, P and dS over the row, dq rows, dk and dv rows).
  }];
  let arguments = (ins
    Arg<Sattn_F32Tensor4, "queries", [MemRead]>:$q,
    Arg<Sattn_F32Tensor4, "keys", [MemRead]>:$k,
    Arg<Sattn_F32Tensor4, "values", [MemRead]>:$v,
    Arg<Sattn_F32Tensor4, "forward output", [MemRead]>:$out,
    Arg<Sattn_F32Tensor3, "forward log-sum-exp", [MemRead]>:$lse,
    Arg<Sattn_F32Tensor4, "output gradient", [MemRead]>:$dout,
    Arg<Sattn_I32Vector, "row_ptr", [MemRead]>:$row_ptr,
    Arg<Sattn_I32Vector, "col_idx", [MemRead]>:$col_idx,
    Arg<Sattn_I32Vector, "mask_idx", [MemRead]>:$mask_idx,
    Arg<Sattn_I64Vector, "bitmaps", [MemRead]>:$bitmaps,
    Arg<Sattn_F32Tensor4, "query gradient", [MemWrite]>:$dq,
    Arg<Sattn_F32Tensor4, "key gradient", [MemWrite]>:$dk,
    Arg<Sattn_F32Tensor4, "value gradient", [MemWrite]>:$dv,
    I64Attr:$block,
    I64Attr:$plan_b,
    I64Attr:$plan_h,
    F64Attr:$scale);
  let assemblyFormat = [{
    $q `,` $k `,` $v `,` $out `,` $lse `,` $dout `plan` `(` $row_ptr `,` $col_idx `,` $mask_idx `,` $bitmaps `)`
    `into` $dq `,` $dk `,` $dv attr-dict `:` type($q) `,` type($k) `,` type($v) `,` type($out) `,`
    type($lse) `,` type($dout) `,` type($row_ptr) `,` type($col_idx) `,` type($mask_idx) `,` type($bitmaps) `,`
    type($dq) `,` type($dk) `,` type($dv)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Tile level: one (batch, query head, query block) x one key block. Scratch buffers: acc is
// block x D, m and l are the running row max and row sum (block), s is block x block.
//===----------------------------------------------------------------------===//

def Sattn_TileInitOp : Sattn_Op<"tile_init"> {
  let summary = "acc = 0, m = -inf, l = 0";
  let arguments = (ins Arg<Sattn_F32Matrix, "", [MemWrite]>:$acc,
                       Arg<Sattn_F32Vector, "", [MemWrite]>:$m,
                       Arg<Sattn_F32Vector, "", [MemWrite]>:$l);
  let assemblyFormat = "$acc `,` $m `,` $l attr-dict `:` type($acc) `,` type($m) `,` type($l)";
  let hasVerifier = 1;
}

def Sattn_TileScoresOp : Sattn_Op<"tile_scores"> {
  let summary = "s = scale * q_tile k_tile^T, -inf where the plan entry hides the pair";
  let description = [{
    Query block `qblock` of (b, h) against key block `kblock` of kv head `kvh`. `mask` is the
    plan entry's mask_idx: -1 means every in-range pair is visible, otherwise row i of bitmap
    `mask` says which keys query i sees. Keys at or beyond Lk score -inf.
  }];
  let arguments = (ins
    Arg<Sattn_F32Tensor4, "", [MemRead]>:$q,
    Arg<Sattn_F32Tensor4, "", [MemRead]>:$k,
    Arg<Sattn_I64Vector, "", [MemRead]>:$bitmaps,
    Arg<Sattn_F32Matrix, "", [MemWrite]>:$s,
    Index:$b, Index:$h, Index:$kvh, Index:$qblock, Index:$kblock, Index:$mask,
    I64Attr:$block, F64Attr:$scale);
  let assemblyFormat = [{
    $q `,` $k `,` $bitmaps `into` $s `at` `[` $b `,` $h `,` $kvh `,` $qblock `,` $kblock `,` $mask `]`
    attr-dict `:` type($q) `,` type($k) `,` type($bitmaps) `,` type($s)
  }];
  let hasVerifier = 1;
}

def Sattn_TileSoftmaxOp : Sattn_Op<"tile_softmax"> {
  let summary = "Online softmax step: new row max, rescale acc and l, s := exp(s - m)";
  let arguments = (ins
    Arg<Sattn_F32Matrix, "", [MemRead, MemWrite]>:$s,
    Arg<Sattn_F32Vector, "", [MemRead, MemWrite]>:$m,
    Arg<Sattn_F32Vector, "", [MemRead, MemWrite]>:$l,
    Arg<Sattn_F32Matrix, "", [MemRead, MemWrite]>:$acc);
  let assemblyFormat = [{
    $s `,` $m `,` $l `,` $acc attr-dict `:` type($s) `,` type($m) `,` type($l) `,` type($acc)
  }];
  let hasVerifier = 1;
}

def Sattn_TilePVOp : Sattn_Op<"tile_pv"> {
  let summary = "acc += p_tile v_tile (keys beyond Lk are never read)";
  let arguments = (ins
    Arg<Sattn_F32Matrix, "", [MemRead]>:$p,
    Arg<Sattn_F32Tensor4, "", [MemRead]>:$v,
    Arg<Sattn_F32Matrix, "", [MemRead, MemWrite]>:$acc,
    Index:$b, Index:$kvh, Index:$kblock,
    I64Attr:$block);
  let assemblyFormat = [{
    $p `,` $v `into` $acc `at` `[` $b `,` $kvh `,` $kblock `]` attr-dict `:` type($p) `,` type($v) `,` type($acc)
  }];
  let hasVerifier = 1;
}

def Sattn_TileStoreOp : Sattn_Op<"tile_store"> {
  let summary = "out rows of the query block = acc / l (zeros where no key was visible)";
  let arguments = (ins
    Arg<Sattn_F32Matrix, "", [MemRead]>:$acc,
    Arg<Sattn_F32Vector, "", [MemRead]>:$l,
    Arg<Sattn_F32Tensor4, "", [MemWrite]>:$out,
    Index:$b, Index:$h, Index:$qblock,
    I64Attr:$block, I64Attr:$lk);
  let assemblyFormat = [{
    $acc `,` $l `into` $out `at` `[` $b `,` $h `,` $qblock `]` attr-dict `:` type($acc) `,` type($l) `,` type($out)
  }];
  let hasVerifier = 1;
}

def Sattn_TileFusedOp : Sattn_Op<"tile_fused"> {
  let summary = "tile_scores + tile_softmax + tile_pv in one loop nest, one query row at a time";
  let description = [{
    Produced by `--sattn-fuse-softmax`. Same semantics as the three-op sequence, but the score
    row lives in a block-sized buffer instead of a block x block tile, and q and the acc row
    stay in registers across the key loop.
  }];
  let arguments = (ins
    Arg<Sattn_F32Tensor4, "", [MemRead]>:$q,
    Arg<Sattn_F32Tensor4, "", [MemRead]>:$k,
    Arg<Sattn_F32Tensor4, "", [MemRead]>:$v,
    Arg<Sattn_I64Vector, "", [MemRead]>:$bitmaps,
    Arg<Sattn_F32Vector, "", [MemRead, MemWrite]>:$m,
    Arg<Sattn_F32Vector, "", [MemRead, MemWrite]>:$l,
    Arg<Sattn_F32Matrix, "", [MemRead, MemWrite]>:$acc,
    Index:$b, Index:$h, Index:$kvh, Index:$qblock, Index:$kblock, Index:$mask,
    I64Attr:$block, F64Attr:$scale);
  let assemblyFormat = [{
    $q `,` $k `,` $v `,` $bitmaps `into` $m `,` $l `,` $acc
    `at` `[` $b `,` $h `,` $kvh `,` $qblock `,` $kblock `,` $mask `]`
    attr-dict `:` type($q) `,` type($k) `,` type($v) `,` type($bitmaps) `,` type($m) `,` type($l) `,` type($acc)
  }];
  let hasVerifier = 1;
}

#endif  // SATTN_OPS_TD
