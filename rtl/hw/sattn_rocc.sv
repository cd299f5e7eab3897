// sattn RoCC sparse-attention accelerator (top level).
//
// Commands arrive on the RoCC command interface (funct7 from sattn_rocc_pkg, generated from
// rtl/spec/commands.json). The three attention commands take a descriptor address in rs1; the unit
// fetches and validates the descriptor, then two engines run concurrently:
//   * the loader walks the block plan in memory (row_ptr, col_idx, mask_idx, bitmaps, scales) and
//     gathers only the kept Q/K/V blocks (or score tiles) into double-buffered scratchpads: a Q
//     buffer pair and a two-slot K/V tile ring, so DMA of the next tile overlaps compute;
//   * the compute engine runs, per query block: Q.K^T on the MAC array (scores scaled to the base-2
//     fixed-point domain, masked, kept on chip), the softmax unit (row max, exp by table, row sum),
//     P.V on the same MAC array accumulating into an on-chip output tile, a sequential reciprocal
//     per row, and normalised int16 output written to memory.
// SOFTMAX_FUSED never writes scores; SPDOT_BSR writes them (int32 BSR tiles) and stops; SPMM_BSR
// reads them back instead of computing Q.K^T. Numerics are defined bit for bit by
// rtl/model/golden.cc; docs/backends/rocc.md documents formats and error bounds.
//
// This is a cycle-accurate model written for Verilator: scratchpads are plain arrays read with
// several ports per cycle (a physical design would bank them), and shape checks use dividers.
module sattn_rocc
  import sattn_rocc_pkg::*;
#(
    // MAC array shape; the table's MAC_ROWS x MAC_COLS unless overridden at Verilation (-GR= -GC=).
    // Both must divide 16 (blocks and D are multiples of 16).
    parameter int R = MAC_ROWS,
    parameter int C = MAC_COLS
) (
    input  logic        clk,
    input  logic        rst,
    // RoCC command
    input  logic        cmd_valid,
    output logic        cmd_ready,
    input  logic [6:0]  cmd_funct7,
    input  logic [4:0]  cmd_rd,
    input  logic [63:0] cmd_rs1,
    input  logic [63:0] cmd_rs2,
    // RoCC response
    output logic        resp_valid,
    input  logic        resp_ready,
    output logic [4:0]  resp_rd,
    output logic [63:0] resp_data,
    output logic        busy,
    // Memory port: one request channel (reads and posted writes), in-order read responses.
    output logic        mem_req_valid,
    input  logic        mem_req_ready,
    output logic [63:0] mem_req_addr,
    output logic        mem_req_write,
    output logic [127:0] mem_req_wdata,
    output logic [15:0] mem_req_wstrb,
    input  logic        mem_resp_valid,
    input  logic [127:0] mem_resp_rdata,
    // Bus errors: the read answered this cycle was refused (no memory there; the data is junk),
    // and the write accepted this cycle (with mem_req_ready) was refused.
    input  logic        mem_resp_err,
    input  logic        mem_wr_err
);
  localparam int NE = MAX_ROW_ENTRIES;
  localparam logic signed [31:0] NEG = 32'sh80000000;  // masked score / empty row maximum
  localparam logic signed [63:0] YHI = 64'(Y_MAX);
  localparam logic signed [63:0] YLO = -64'(Y_MAX) - 64'sd1;

  initial begin
    if (BUS_BYTES != 16) $fatal(1, "sattn_rocc: this RTL's beat packing assumes BUS_BYTES = 16");
    if (16 % R != 0 || 16 % C != 0) $fatal(1, "sattn_rocc: MAC array rows and columns must divide 16");
  end

  typedef enum logic [2:0] {MODE_SPDOT, MODE_FUSED, MODE_SPMM, MODE_GATHER, MODE_SCATTER, MODE_BWD} mode_e;
  // The descriptor register holds the longest descriptor of the table.
  localparam int NDESC = BDESC_WORDS > DESC_WORDS ? BDESC_WORDS : DESC_WORDS;

  // ---------------------------------------------------------------- descriptor and configuration
  logic [63:0] desc [NDESC];
  mode_e       mode;
  logic [15:0] cfg_B, cfg_Hq, cfg_Hkv, cfg_group, cfg_nkb, cfg_nqb, cfg_qbb;
  logic [7:0]  cfg_D;
  logic [6:0]  cfg_blk;
  logic [31:0] cfg_nnz, cfg_nbm, cfg_Lk;
  logic [5:0]  cfg_shift;
  logic [31:0] cfg_head_rows;
  logic [63:0] cfg_prows;          // plan rows: plan_b * plan_h * n_q_blocks
  logic        cfg_pb1, cfg_ph1;
  logic [31:0] cfg_tnnz;          // ATTN_BWD: transposed plan entries
  logic [63:0] cfg_ncols, cfg_ntiles;  // ATTN_BWD: key blocks walked (B*Hkv*n_k_blocks), dS tiles

  // ---------------------------------------------------------------- scratchpads
  logic signed [7:0]  qbuf     [2][MAX_BLK][MAX_D];   // Q blocks (double-buffered)
  logic        [1:0]  qfull;
  logic        [31:0] qmul_r   [2];
  logic        [31:0] qn       [2];                   // entries of the row the Q slot belongs to
  logic        [31:0] qebase   [2];                   // its first plan entry
  logic signed [7:0]  ring     [2][MAX_BLK][MAX_D];   // K or V tiles (two-slot ring)
  logic        [63:0] ring_bm  [2][MAX_BLK];          // visibility bitmap rows of a K tile
  logic        [1:0]  ring_full;
  logic        [15:0] ring_col [2];
  logic        [1:0]  ring_hasmask;
  logic        [31:0] ring_kmul[2];
  logic signed [31:0] ysram    [MAX_BLK][NE][MAX_BLK]; // scores of one query block row (on chip)
  logic        [7:0]  psram    [MAX_BLK][NE][MAX_BLK]; // softmax weights P
  logic signed [31:0] osram    [MAX_BLK][MAX_D];       // P.V accumulators
  logic signed [31:0] rowmax   [MAX_BLK];
  logic        [31:0] rowsum   [MAX_BLK];
  logic        [32:0] rc       [MAX_BLK];              // floor(2^32 / rowsum)
  logic               sbuf_full;                       // SPMM: loader filled ysram for a row
  logic        [31:0] sbuf_n, sbuf_ebase;

  // ---------------------------------------------------------------- perf counters
  logic [63:0] cnt [N_STATUS_REGS];
  logic [7:0]  last_error;

  // ---------------------------------------------------------------- memory arbitration
  logic        ld_rd_valid;
  logic [63:0] ld_rd_addr;
  logic        cw_valid;           // compute write request
  logic [63:0] cw_addr;
  logic [127:0] cw_data;
  logic        lock, lock_w, sel_w;
  logic        rd_fire, wr_fire;
  logic        wr_in_range;

  // Writes go first, except in ATTN_BWD where they are posted tiles that drain between the
  // loader's reads (the next key block's K/V must not wait behind a 32 KiB gradient tile).
  assign sel_w = lock ? lock_w : (cw_valid && !(mode == MODE_BWD && ld_rd_valid));
  assign mem_req_valid = sel_w ? cw_valid : ld_rd_valid;
  assign mem_req_write = sel_w;
  assign mem_req_addr  = sel_w ? cw_addr : ld_rd_addr;
  assign mem_req_wdata = cw_data;
  assign mem_req_wstrb = (sel_w && wr_in_range) ? 16'hffff : 16'h0000;
  assign rd_fire = mem_req_valid && mem_req_ready && !sel_w;
  assign wr_fire = mem_req_valid && mem_req_ready && sel_w;

  // [a, a+16) inside [base, base+bytes), without forming a sum that could wrap past 2^64.
  function automatic logic beat_in(input logic [63:0] a, input logic [63:0] base, input logic [63:0] bytes);
    return base != 64'd0 && bytes >= 64'd16 && a >= base && a - base <= bytes - 64'd16;
  endfunction
  // A buffer of `ext` bytes at `ptr` runs past the top of the address space (ptr + ext > 2^64).
  function automatic logic wraps(input logic [63:0] ptr, input logic [63:0] ext);
    return ptr != 64'd0 && ext > 64'd0 - ptr;
  endfunction
  always_comb begin
    wr_in_range = 1'b0;
    if (mode == MODE_GATHER || mode == MODE_SCATTER)
      wr_in_range = beat_in(cw_addr, desc[CDESC_DST_PTR], desc[CDESC_DST_BYTES]);
    else if (mode == MODE_BWD)
      wr_in_range = beat_in(cw_addr, desc[BDESC_DS_PTR], desc[BDESC_DS_BYTES]) ||
                    beat_in(cw_addr, desc[BDESC_DQ_PTR], desc[BDESC_DQ_BYTES]) ||
                    beat_in(cw_addr, desc[BDESC_DK_PTR], desc[BDESC_DK_BYTES]) ||
                    beat_in(cw_addr, desc[BDESC_DV_PTR], desc[BDESC_DV_BYTES]);
    else if (mode == MODE_SPDOT) wr_in_range = beat_in(cw_addr, desc[DESC_SCORES_PTR], desc[DESC_SCORES_BYTES]);
    else wr_in_range = beat_in(cw_addr, desc[DESC_OUT_PTR], desc[DESC_OUT_BYTES]) ||
                       beat_in(cw_addr, desc[DESC_STATS_PTR], desc[DESC_STATS_BYTES]);
  end

  // ---------------------------------------------------------------- DMA job engine
  // A job reads `nbeats` consecutive beats and scatters them into one destination; the loader
  // (and the descriptor fetch) run one job at a time, with all of a job's beats in flight.
  typedef enum logic [3:0] {J_DESC, J_SCALAR, J_QTILE, J_KVTILE, J_BITMAP, J_STILE,
                          J_BEAT, J_T8, J_RS, J_BBM, J_DST} jkind_e;
  jkind_e      job_kind;
  logic        job_busy;
  logic [63:0] job_addr;
  logic [15:0] job_issue, job_recv;
  logic [1:0]  job_sel;
  logic [15:0] job_row, job_col;
  logic signed [31:0] scalar;
  logic        job_err;           // a beat of the current job came back with mem_resp_err
  logic [15:0] stale;             // reads of jobs killed by the watchdog still to come back (discarded)
  logic        resp_stale, resp_take;
  logic        job_slot;          // destination Q slot / ring slot
  logic [31:0] job_e;             // destination entry (score tiles)

  assign ld_rd_valid = job_busy && job_issue != 16'd0;
  assign resp_stale = mem_resp_valid && stale != 16'd0;
  assign resp_take = mem_resp_valid && stale == 16'd0 && job_busy;
  assign ld_rd_addr  = job_addr;

  // ---------------------------------------------------------------- main FSM
  typedef enum logic [2:0] {M_IDLE, M_FETCH, M_CHECK, M_RUN, M_DRAIN, M_RESP} mstate_e;
  mstate_e     m_state;
  logic [7:0]  m_err;
  logic        abort;
  logic [63:0] resp_data_r;
  logic [4:0]  resp_rd_r;
  // Watchdog: cycles since the command was accepted; at wd_limit the command is aborted with
  // ERR_WATCHDOG and the job engine stops waiting for its reads.
  logic [63:0] wd_cnt, wd_limit;
  logic        wd_fire, wd_kill;
  logic        wr_fault;          // a write of this command was refused (reported if nothing else failed)
  assign wd_fire = (m_state == M_FETCH || m_state == M_CHECK || m_state == M_RUN || m_state == M_DRAIN) &&
                   wd_cnt >= wd_limit;

  assign cmd_ready  = (m_state == M_IDLE);
  assign busy       = (m_state != M_IDLE);
  assign resp_valid = (m_state == M_RESP);
  assign resp_data  = resp_data_r;
  assign resp_rd    = resp_rd_r;

  // Descriptor checks (combinational over the fetched descriptor).
  logic [7:0] chk_err;
  always_comb begin
    logic need_q, need_v, need_out, need_scores;
    logic [63:0] B, Hq, Hkv, D, blk, nkb, nqb, qbb, nnz, nbm, Lk, reps, prows;
    B = desc[DESC_B]; Hq = desc[DESC_HQ]; Hkv = desc[DESC_HKV]; D = desc[DESC_D];
    blk = desc[DESC_BLOCK]; nkb = desc[DESC_N_K_BLOCKS]; nqb = desc[DESC_N_Q_BLOCKS];
    qbb = desc[DESC_Q_BLOCK_BEGIN]; nnz = desc[DESC_NNZ]; nbm = desc[DESC_N_BITMAPS]; Lk = desc[DESC_LK];
    need_q = (mode != MODE_SPMM);
    need_v = (mode != MODE_SPDOT);
    need_out = (mode != MODE_SPDOT);
    need_scores = (mode != MODE_FUSED);
    reps = (desc[DESC_PLAN_B] == 64'd1 ? B : 64'd1) * (desc[DESC_PLAN_H] == 64'd1 ? Hq : 64'd1);
    prows = desc[DESC_PLAN_B] * desc[DESC_PLAN_H] * nqb;  // plan rows (plan_b, plan_h already 1 or B, Hq)
    chk_err = ERR_OK;
    if (desc[DESC_ROW_PTR_PTR] == 0 || desc[DESC_COL_IDX_PTR] == 0 || desc[DESC_MASK_IDX_PTR] == 0 ||
        (need_q && (desc[DESC_Q_PTR] == 0 || desc[DESC_K_PTR] == 0 || desc[DESC_QMUL_PTR] == 0 ||
                    desc[DESC_KMUL_PTR] == 0)) ||
        (need_v && desc[DESC_V_PTR] == 0) ||
        (need_out && (desc[DESC_OUT_PTR] == 0 || desc[DESC_STATS_PTR] == 0)) ||
        (need_scores && desc[DESC_SCORES_PTR] == 0) ||
        (nbm != 0 && desc[DESC_BITMAPS_PTR] == 0))
      chk_err = ERR_NULL_PTR;
    else if (desc[DESC_ROW_PTR_PTR][3:0] != 0 || desc[DESC_COL_IDX_PTR][3:0] != 0 ||
             desc[DESC_MASK_IDX_PTR][3:0] != 0 || desc[DESC_Q_PTR][3:0] != 0 ||
             desc[DESC_K_PTR][3:0] != 0 || desc[DESC_V_PTR][3:0] != 0 ||
             desc[DESC_OUT_PTR][3:0] != 0 || desc[DESC_STATS_PTR][3:0] != 0 ||
             desc[DESC_SCORES_PTR][3:0] != 0 || desc[DESC_BITMAPS_PTR][3:0] != 0 ||
             desc[DESC_QMUL_PTR][3:0] != 0 || desc[DESC_KMUL_PTR][3:0] != 0)
      chk_err = ERR_MISALIGNED;
    else if (B == 0 || Hq == 0 || Hkv == 0 || D == 0 || blk == 0 || nkb == 0 || nqb == 0)
      chk_err = ERR_ZERO_DIM;
    else if (D > MAX_D || blk > MAX_BLK || desc[DESC_SCORE_SHIFT] > 63 || B > 4096 || Hq > 4096 ||
             Hkv > 4096 || nkb > 65535 || nnz >= 64'h1000000 || nbm >= 64'h1000000)
      chk_err = ERR_OVERSIZE_DIM;
    else if (D % 16 != 0 || D % C != 0 || blk % 16 != 0 || blk % R != 0 || blk % C != 0 ||
             Hq % Hkv != 0 || (desc[DESC_PLAN_B] != 1 && desc[DESC_PLAN_B] != B) ||
             (desc[DESC_PLAN_H] != 1 && desc[DESC_PLAN_H] != Hq) || qbb >= nkb || nqb > nkb || qbb + nqb != nkb ||
             Lk > nkb * blk || Lk <= (nkb - 1) * blk)
      chk_err = ERR_BAD_SHAPE;
    else if ((need_out && (desc[DESC_OUT_BYTES] < B * Hq * nkb * blk * D * 2 ||
                           desc[DESC_STATS_BYTES] < B * Hq * nkb * blk * 8)) ||
             (need_scores && desc[DESC_SCORES_BYTES] < reps * nnz * blk * blk * 4))
      chk_err = ERR_BUFFER_SIZE;
    else if ((need_q && (wraps(desc[DESC_Q_PTR], B * Hq * nkb * blk * D) || wraps(desc[DESC_K_PTR], B * Hkv * nkb * blk * D) ||
                         wraps(desc[DESC_QMUL_PTR], B * Hq * nkb * 4) || wraps(desc[DESC_KMUL_PTR], B * Hkv * nkb * 4))) ||
             (need_v && wraps(desc[DESC_V_PTR], B * Hkv * nkb * blk * D)) ||
             (need_out && (wraps(desc[DESC_OUT_PTR], desc[DESC_OUT_BYTES]) || wraps(desc[DESC_STATS_PTR], desc[DESC_STATS_BYTES]))) ||
             (need_scores && wraps(desc[DESC_SCORES_PTR], desc[DESC_SCORES_BYTES])) ||
             wraps(desc[DESC_ROW_PTR_PTR], (prows + 64'd1) * 4) || wraps(desc[DESC_COL_IDX_PTR], nnz * 4) ||
             wraps(desc[DESC_MASK_IDX_PTR], nnz * 4) || (nbm != 0 && wraps(desc[DESC_BITMAPS_PTR], nbm * blk * 8)))
      chk_err = ERR_ADDR_RANGE;
  end

  // Copy-descriptor checks (GATH2D / SCAT2D).
  logic [7:0] chk_copy_err;
  always_comb begin
    logic [63:0] n, rb, ss, ds, last, src_last;
    n = desc[CDESC_N_ROWS]; rb = desc[CDESC_ROW_BYTES];
    ss = desc[CDESC_SRC_STRIDE]; ds = desc[CDESC_DST_STRIDE];
    last = (mode == MODE_GATHER) ? n : desc[CDESC_DST_ROWS];  // destination rows that can be written
    src_last = (mode == MODE_GATHER) ? desc[CDESC_SRC_ROWS] : n;  // source rows that can be read
    chk_copy_err = ERR_OK;
    if (desc[CDESC_SRC_PTR] == 0 || desc[CDESC_DST_PTR] == 0 || desc[CDESC_IDX_PTR] == 0)
      chk_copy_err = ERR_NULL_PTR;
    else if (desc[CDESC_SRC_PTR][3:0] != 0 || desc[CDESC_DST_PTR][3:0] != 0 || desc[CDESC_IDX_PTR][3:0] != 0 ||
             ss[3:0] != 0 || ds[3:0] != 0)
      chk_copy_err = ERR_MISALIGNED;
    else if (rb == 0)
      chk_copy_err = ERR_ZERO_DIM;
    else if (rb > 64'(MAX_BLK * MAX_D) || n >= 64'h1000000 || ss >= 64'h100000000 || ds >= 64'h100000000 ||
             desc[CDESC_SRC_ROWS] >= 64'h80000000 || desc[CDESC_DST_ROWS] >= 64'h80000000)
      chk_copy_err = ERR_OVERSIZE_DIM;
    else if (rb[3:0] != 0)
      chk_copy_err = ERR_BAD_SHAPE;
    else if (last != 0 && (last - 64'd1) * ds + rb > desc[CDESC_DST_BYTES])
      chk_copy_err = ERR_BUFFER_SIZE;
    else if (wraps(desc[CDESC_IDX_PTR], n * 4) || wraps(desc[CDESC_DST_PTR], desc[CDESC_DST_BYTES]) ||
             (src_last != 0 && wraps(desc[CDESC_SRC_PTR], (src_last - 64'd1) * ss + rb)))
      chk_copy_err = ERR_ADDR_RANGE;
  end

  // Backward-descriptor checks (ATTN_BWD), in the forward's order.
  logic [7:0] chk_bwd_err;
  always_comb begin
    logic [63:0] B, Hq, Hkv, D, blk, nkb, nqb, qbb, nnz, nbm, tnnz, Lk, reps, prows, rows, ptrs_or;
    logic nullp;
    B = desc[BDESC_B]; Hq = desc[BDESC_HQ]; Hkv = desc[BDESC_HKV]; D = desc[BDESC_D];
    blk = desc[BDESC_BLOCK]; nkb = desc[BDESC_N_K_BLOCKS]; nqb = desc[BDESC_N_Q_BLOCKS];
    qbb = desc[BDESC_Q_BLOCK_BEGIN]; nnz = desc[BDESC_NNZ]; nbm = desc[BDESC_N_BITMAPS];
    tnnz = desc[BDESC_T_NNZ]; Lk = desc[BDESC_LK];
    reps = (desc[BDESC_PLAN_B] == 64'd1 ? B : 64'd1) * (desc[BDESC_PLAN_H] == 64'd1 ? Hq : 64'd1);
    prows = desc[BDESC_PLAN_B] * desc[BDESC_PLAN_H] * nqb;
    rows = nkb * blk;
    nullp = 1'b0;
    ptrs_or = 64'd0;
    for (int i = 0; i <= BDESC_DV_PTR; i++) begin
      if (i != BDESC_BITMAPS_PTR && desc[i] == 64'd0) nullp = 1'b1;
      ptrs_or = ptrs_or | desc[i];
    end
    if (nbm != 0 && desc[BDESC_BITMAPS_PTR] == 64'd0) nullp = 1'b1;
    chk_bwd_err = ERR_OK;
    if (nullp) chk_bwd_err = ERR_NULL_PTR;
    else if (ptrs_or[3:0] != 4'd0) chk_bwd_err = ERR_MISALIGNED;
    else if (B == 0 || Hq == 0 || Hkv == 0 || D == 0 || blk == 0 || nkb == 0 || nqb == 0)
      chk_bwd_err = ERR_ZERO_DIM;
    else if (D > MAX_D || blk > MAX_BLK || desc[BDESC_SCORE_SHIFT] > 63 || B > 4096 || Hq > 4096 ||
             Hkv > 4096 || nkb > 65535 || nnz >= 64'h1000000 || nbm >= 64'h1000000 || tnnz >= 64'h1000000)
      chk_bwd_err = ERR_OVERSIZE_DIM;
    else if (D % 16 != 0 || D % C != 0 || blk % 16 != 0 || blk % R != 0 || blk % C != 0 ||
             Hq % Hkv != 0 || (desc[BDESC_PLAN_B] != 1 && desc[BDESC_PLAN_B] != B) ||
             (desc[BDESC_PLAN_H] != 1 && desc[BDESC_PLAN_H] != Hq) || qbb >= nkb || nqb > nkb || qbb + nqb != nkb ||
             Lk > nkb * blk || Lk <= (nkb - 1) * blk)
      chk_bwd_err = ERR_BAD_SHAPE;
    else if (desc[BDESC_DS_BYTES] < reps * nnz * (blk * blk * 2 + 16) || desc[BDESC_DQ_BYTES] < B * Hq * rows * D * 8 ||
             desc[BDESC_DK_BYTES] < B * Hkv * rows * D * 8 || desc[BDESC_DV_BYTES] < B * Hkv * rows * D * 8)
      chk_bwd_err = ERR_BUFFER_SIZE;
    else if (wraps(desc[BDESC_Q_PTR], B * Hq * rows * D) || wraps(desc[BDESC_DO_PTR], B * Hq * rows * D) ||
             wraps(desc[BDESC_K_PTR], B * Hkv * rows * D) || wraps(desc[BDESC_V_PTR], B * Hkv * rows * D) ||
             wraps(desc[BDESC_RS_PTR], B * Hq * rows * 8) || wraps(desc[BDESC_EMUL_PTR], B * Hq * nkb * 16) ||
             wraps(desc[BDESC_KMUL_PTR], B * Hkv * nkb * 4) || wraps(desc[BDESC_ROW_PTR_PTR], (prows + 64'd1) * 4) ||
             wraps(desc[BDESC_COL_IDX_PTR], nnz * 4) || wraps(desc[BDESC_T_ROW_PTR_PTR], (B * Hkv * nkb + 64'd1) * 4) ||
             wraps(desc[BDESC_T_ENT_PTR], tnnz * 16) || (nbm != 0 && wraps(desc[BDESC_BITMAPS_PTR], nbm * blk * 8)) ||
             wraps(desc[BDESC_DS_PTR], desc[BDESC_DS_BYTES]) || wraps(desc[BDESC_DQ_PTR], desc[BDESC_DQ_BYTES]) ||
             wraps(desc[BDESC_DK_PTR], desc[BDESC_DK_BYTES]) || wraps(desc[BDESC_DV_PTR], desc[BDESC_DV_BYTES]))
      chk_bwd_err = ERR_ADDR_RANGE;
  end

  // ---------------------------------------------------------------- backward engine state (ATTN_BWD)
  // Phase 1 walks the transposed plan: per key block (b, kv head g, c) the loader fetches K_c, V_c
  // once, then per entry (query head h, query block a) Q_a, dO_a, the rows' (L, delta), the block's
  // multipliers and the bitmap into a two-slot ring; the compute engine runs S = Q.K^T, dP = dO.V^T,
  // the softmax lanes (P, dS), quantises dS to a 9-bit block-floating-point tile that the dS writer
  // stores, and accumulates dV += P^T.dO and dK += dS^T.Q on chip (int64). Phase 2 walks the
  // forward plan: per query block, dQ += dS.K from the stored tiles. A tile writer stores each
  // finished dK/dV (and dQ) tile while the next one computes.
  typedef enum logic [4:0] {
    K_IDLE, K_COL, K_TR0W, K_TR1W, K_KMW, K_KTW, K_VTW, K_ENT, K_ENTW, K_EMW, K_EBMW, K_EQW, K_EDW,
    K_ERSW, K_NCOL, K_P2W, K_ROW, K_RP0W, K_RP1W, K_RQ, K_QCOL, K_QCW, K_QKMW, K_QKTW, K_QDSW,
    K_NROW, K_DONE, K_ERR
  } kstate_e;
  kstate_e     k_state;
  logic [7:0]  k_err;
  logic [15:0] k_b, k_g, k_c, k_h, k_r;
  logic signed [31:0] k_rp0;
  logic [31:0] k_n, k_e;
  logic signed [31:0] k_eh, k_ea, k_em, k_et;
  logic        k_es, k_qs, k_rq;
  logic [127:0] beat;
  logic [2:0]  job_dst;           // J_T8 destination: 0 K, 1 V, 2 Q slot, 3 dO slot, 4 phase-2 K slot
  // column buffers and the entry ring
  logic signed [7:0]  bk   [2][MAX_BLK][MAX_D];      // K/V of a key block, double-buffered
  logic signed [7:0]  bv   [2][MAX_BLK][MAX_D];
  logic        [1:0]  kv_full;
  logic [31:0]        kv_n [2], kv_kmul [2];
  logic               k_kvs, b_kvs;
  logic signed [7:0]  eq   [2][MAX_BLK][MAX_D];
  logic signed [7:0]  edo  [2][MAX_BLK][MAX_D];
  logic signed [31:0] erl  [2][MAX_BLK];             // L per row
  logic signed [31:0] erd  [2][MAX_BLK];             // delta per row
  logic        [63:0] ebm  [2][MAX_BLK];
  logic        [1:0]  es_full, es_hasmask;
  logic        [31:0] es_qmul [2], es_dkmul [2], es_dvmul [2], es_tile [2];
  // phase-2 ring: K tile, dS tile and its shift
  logic signed [7:0]  qk   [2][MAX_BLK][MAX_D];
  logic signed [8:0]  qds  [2][MAX_BLK][MAX_BLK];
  logic        [4:0]  qds_sh [2];
  logic        [31:0] qs_kmul [2];
  logic        [1:0]  qs_full;
  logic        [1:0]  rq_full;
  logic        [31:0] rq_n [2];
  logic        [15:0] rq_b [2], rq_h [2], rq_r [2];   // the row a queued row count belongs to
  logic        [15:0] kv_b [2], kv_g [2], kv_c [2];   // the key block in bk/bv
  logic               p1_done;
  // compute-side tiles
  logic signed [31:0] by   [MAX_BLK][MAX_BLK];       // y (masked = NEG)
  logic signed [31:0] bdp  [MAX_BLK][MAX_BLK];       // dP
  logic signed [31:0] bds  [MAX_BLK][MAX_BLK];       // dS = P (dP - delta)
  logic        [7:0]  bp   [MAX_BLK][MAX_BLK];       // P
  logic signed [8:0]  bdq  [MAX_BLK][MAX_BLK];       // dS mantissas
  logic signed [63:0] acc_a [MAX_BLK][MAX_D];        // dK (phase 1) or dQ (phase 2)
  logic signed [63:0] acc_b [MAX_BLK][MAX_D];        // dV
  typedef enum logic [4:0] {
    B_IDLE, B_COL, B_EW, B_S, B_DP, B_DR1, B_SM, B_QZ, B_DSW, B_DV, B_DK, B_DR2, B_KVOUT, B_P1END,
    B_ROW, B_QW, B_QM, B_DR3, B_QOUT, B_FLUSH, B_DONE
  } bstate_e;
  bstate_e     b_state;
  logic [15:0] b_b, b_g, b_c, b_h, b_r, b_t1, b_t2, b_k, b_i;
  logic [31:0] b_n, b_e;
  logic        b_es, b_qs, b_rq;
  logic [31:0] b_amax;
  logic [4:0]  b_sh;
  // MAC write-back of the backward (one tile behind the issue stage)
  logic        wbb_v;
  logic [2:0]  wbb_kind;           // 0 S, 1 dP, 2 dV, 3 dK, 4 dQ
  logic [15:0] wbb_t1, wbb_t2;
  logic [31:0] wbb_mul;
  logic [4:0]  wbb_sh;
  logic        wbb_es;
  // dS writer and tile writer
  typedef enum logic [0:0] {S_IDLE, S_W} sstate_e;
  sstate_e     s_state;
  logic [15:0] s_row, s_col;
  logic [63:0] s_addr;
  logic [4:0]  s_sh;
  logic signed [8:0]  sw   [MAX_BLK][MAX_BLK];
  typedef enum logic [0:0] {T_IDLE, T_W} tstate_e;
  tstate_e     t_state;
  logic [15:0] t_row, t_col;
  logic        t_which, t_two;
  logic [63:0] t_addr0, t_addr1;
  logic signed [63:0] tw_a [MAX_BLK][MAX_D];
  logic signed [63:0] tw_b [MAX_BLK][MAX_D];
  logic        bw_ds, bw_ds_q;     // the write port serves the dS writer (else the tile writer)

  // ---------------------------------------------------------------- copy engine state
  typedef enum logic [2:0] {X_IDLE, X_IDX, X_IDXW, X_RDW, X_WR, X_DONE} xstate_e;
  xstate_e     x_state;
  logic [31:0] x_r, x_i;
  logic [15:0] x_beat;
  logic [7:0]  x_err;

  // ---------------------------------------------------------------- loader state
  typedef enum logic [4:0] {
    L_IDLE, L_ROW, L_RP0W, L_RP1W, L_QWAIT, L_QMULW, L_QTW, L_ECOL, L_ECOLW, L_EMASKW, L_EKMULW,
    L_ESLOT, L_EBMW, L_EKTW, L_VSLOT, L_VTW, L_SWAIT, L_SCOLW, L_STW, L_NEXT, L_DONE, L_ERR
  } lstate_e;
  lstate_e     l_state;
  logic [7:0]  l_err;
  logic [15:0] l_b, l_h, l_r;
  logic        l_qs, l_rs;
  logic signed [31:0] l_rp0, l_col, l_mask;
  logic [31:0] l_n, l_e, l_kmul;
  logic [15:0] ent_col [NE];

  // ---------------------------------------------------------------- compute state
  typedef enum logic [4:0] {
    C_IDLE, C_ROW, C_QWAIT, C_QK, C_QKDRAIN, C_SWRITE, C_SWAIT, C_MAX, C_EXP, C_PV, C_PVDRAIN,
    C_RWAIT, C_NEXT, C_FLUSH, C_DONE
  } cstate_e;
  cstate_e     c_state;
  logic [15:0] c_b, c_h, c_r;
  logic        c_qs, c_rs;
  logic [31:0] c_n, c_e, c_ebase, c_qmul;
  logic [15:0] c_t1, c_t2, c_k, c_i, c_beat;
  // write-back stage of the MAC array (one tile behind the issue stage)
  logic        wb_v, wb_pv;
  logic [31:0] wb_e;
  logic [15:0] wb_t1, wb_t2, wb_col;
  logic [31:0] wb_kq;
  logic        wb_hasmask;
  logic [63:0] wb_bm [R];
  // output writer: takes a finished query block (accumulators, row stats, reciprocals) and writes
  // it while the compute engine already runs the next block
  typedef enum logic [1:0] {W_IDLE, W_OUT, W_STATS} wstate_e;
  wstate_e     w_state;
  logic [15:0] w_i, w_beat;
  logic [63:0] w_bh, w_a;
  logic signed [31:0] wbuf [MAX_BLK][MAX_D];
  logic signed [31:0] wmax [MAX_BLK];
  logic        [31:0] wsum [MAX_BLK];
  logic        [32:0] wrc  [MAX_BLK];
  // reciprocal sequencing
  logic        rc_run, rc_wait, rc_done_all;
  logic [15:0] rc_i;
  logic        rcp_start, rcp_busy, rcp_done;
  logic [32:0] rcp_q;

  // ---------------------------------------------------------------- address helpers
  function automatic logic [15:0] plan_rep_b(input logic [15:0] b);
    return cfg_pb1 ? 16'd0 : b;
  endfunction
  logic [63:0] l_row, l_bh, l_bkv, l_a;
  always_comb begin
    l_row = (64'(plan_rep_b(l_b)) * (cfg_ph1 ? 64'd1 : 64'(cfg_Hq)) + (cfg_ph1 ? 64'd0 : 64'(l_h))) * 64'(cfg_nqb) + 64'(l_r);
    l_bh  = 64'(l_b) * 64'(cfg_Hq) + 64'(l_h);
    l_bkv = 64'(l_b) * 64'(cfg_Hkv) + 64'(l_h / cfg_group);
    l_a   = 64'(l_r) + 64'(cfg_qbb);
  end
  logic [63:0] c_bh, c_a, c_rep;
  always_comb begin
    c_bh  = 64'(c_b) * 64'(cfg_Hq) + 64'(c_h);
    c_a   = 64'(c_r) + 64'(cfg_qbb);
    c_rep = (cfg_pb1 ? 64'(c_b) : 64'd0) * (cfg_ph1 ? 64'(cfg_Hq) : 64'd1) + (cfg_ph1 ? 64'(c_h) : 64'd0);
  end

  // ---------------------------------------------------------------- MAC array
  logic signed [8:0]  mac_a [R];
  logic signed [7:0]  mac_b [C];
  logic signed [31:0] mac_acc [R][C];
  logic               mac_en, mac_first, mac_last, in_pv;
  assign in_pv = (c_state == C_PV);
  logic b_mac, b_red_blk;
  assign b_mac = (b_state == B_S || b_state == B_DP || b_state == B_DV || b_state == B_DK || b_state == B_QM) && !abort;
  assign b_red_blk = (b_state == B_DV || b_state == B_DK || b_state == B_QM);  // reduction over block rows
  assign mac_en = ((c_state == C_QK || c_state == C_PV) && ring_full[c_rs] && !abort) || b_mac;
  assign mac_first = b_mac ? (b_k == 16'd0) : (c_k == 16'd0);
  assign mac_last = b_mac ? (b_red_blk ? (b_k == 16'(cfg_blk) - 16'd1) : (b_k == 16'(cfg_D) - 16'd1)) :
                    in_pv ? (c_k == 16'(cfg_blk) - 16'd1) : (c_k == 16'(cfg_D) - 16'd1);
  always_comb begin
    if (b_mac) begin
      for (int r = 0; r < R; r++)
        case (b_state)
          B_S: mac_a[r] = 9'(eq[b_es][b_t1 * R + r][b_k]);
          B_DP: mac_a[r] = 9'(edo[b_es][b_t1 * R + r][b_k]);
          B_DV: mac_a[r] = $signed({1'b0, bp[b_k[5:0]][b_t1 * R + r]});
          B_DK: mac_a[r] = bdq[b_k[5:0]][b_t1 * R + r];
          default: mac_a[r] = qds[b_qs][b_t1 * R + r][b_k[5:0]];
        endcase
      for (int c = 0; c < C; c++)
        case (b_state)
          B_S: mac_b[c] = bk[b_kvs][b_t2 * C + c][b_k];
          B_DP: mac_b[c] = bv[b_kvs][b_t2 * C + c][b_k];
          B_DV: mac_b[c] = edo[b_es][b_k[5:0]][b_t2 * C + c];
          B_DK: mac_b[c] = eq[b_es][b_k[5:0]][b_t2 * C + c];
          default: mac_b[c] = qk[b_qs][b_k[5:0]][b_t2 * C + c];
        endcase
    end else begin
    for (int r = 0; r < R; r++) begin
      if (in_pv) mac_a[r] = $signed({1'b0, psram[c_t1 * R + r][c_e[5:0]][c_k]});
      else mac_a[r] = 9'(qbuf[c_qs][c_t1 * R + r][c_k]);
    end
    for (int c = 0; c < C; c++) begin
      if (in_pv) mac_b[c] = ring[c_rs][c_k][c_t2 * C + c];
      else mac_b[c] = ring[c_rs][c_t2 * C + c][c_k];
    end
    end
  end
  mac_array #(.ROWS(R), .COLS(C)) u_mac (
      .clk(clk), .en(mac_en), .first(mac_first), .a(mac_a), .b(mac_b), .acc(mac_acc));

  // ---------------------------------------------------------------- softmax lanes
  logic [7:0]  lane_p   [MAX_BLK];
  logic        lane_vis [MAX_BLK];
  logic [32:0] lane_d   [MAX_BLK];
  logic signed [31:0] lane_y [MAX_BLK];
  logic signed [31:0] lane_max;     // max over the visible scores of ysram[c_i][c_e][*]
  logic [31:0] lane_sum;
  genvar gj;
  generate
    for (gj = 0; gj < MAX_BLK; gj++) begin : g_lane
      assign lane_y[gj] = ysram[c_i[5:0]][c_e[5:0]][gj];
      assign lane_vis[gj] = (gj < 32'(cfg_blk)) && (lane_y[gj] != NEG);
      assign lane_d[gj] = 33'({rowmax[c_i[5:0]][31], rowmax[c_i[5:0]]} - {lane_y[gj][31], lane_y[gj]});
      softmax_lane u_lane (.valid(lane_vis[gj] && rowmax[c_i[5:0]] != NEG), .d(lane_d[gj]), .p(lane_p[gj]));
    end
  endgenerate
  always_comb begin
    lane_max = NEG;
    lane_sum = 32'd0;
    for (int j = 0; j < MAX_BLK; j++) begin
      if (lane_vis[j] && lane_y[j] > lane_max) lane_max = lane_y[j];
      lane_sum = lane_sum + 32'(lane_p[j]);
    end
  end

  // ---------------------------------------------------------------- reciprocal unit
  recip_unit u_recip (
      .clk(clk), .rst(rst || m_state == M_IDLE), .start(rcp_start), .s(rowsum[rc_i[5:0]]),
      .busy(rcp_busy), .done(rcp_done), .q(rcp_q));
  assign rcp_start = rc_run && !rc_wait && !rcp_busy && m_state != M_IDLE;

  // ---------------------------------------------------------------- backward softmax lanes
  // Row b_i of the entry: P = 2^((y - L)/256) from the row's LSE (no row maximum pass: L >= y up
  // to rounding, clamped at 0), dS = P * clamp(dP - delta), and the row's largest |dS|.
  logic [7:0]  blane_p  [MAX_BLK];
  logic        blane_v  [MAX_BLK];
  logic [32:0] blane_d  [MAX_BLK];
  logic signed [31:0] blane_ds [MAX_BLK];
  logic [31:0] blane_amax;
  logic signed [31:0] b_L, b_delta;
  assign b_L = erl[b_es][b_i[5:0]];
  assign b_delta = erd[b_es][b_i[5:0]];
  generate
    for (gj = 0; gj < MAX_BLK; gj++) begin : g_blane
      logic signed [33:0] dd, diff;
      assign dd = 34'(b_L) - 34'(by[b_i[5:0]][gj]);
      assign blane_v[gj] = (gj < 32'(cfg_blk)) && (by[b_i[5:0]][gj] != NEG) && (b_L != NEG);
      assign blane_d[gj] = dd[33] ? 33'd0 : dd[32:0];
      softmax_lane u_blane (.valid(blane_v[gj]), .d(blane_d[gj]), .p(blane_p[gj]));
      assign diff = 34'(bdp[b_i[5:0]][gj]) - 34'(b_delta);
      assign blane_ds[gj] = 32'($signed({1'b0, blane_p[gj]}) *
                                (diff > 34'sd8388607 ? 34'sd8388607 : diff < -34'sd8388607 ? -34'sd8388607 : diff));
    end
  endgenerate
  always_comb begin
    blane_amax = b_amax;
    for (int j = 0; j < MAX_BLK; j++) begin
      logic [31:0] m;
      m = blane_ds[j][31] ? 32'(-blane_ds[j]) : 32'(blane_ds[j]);
      if (m > blane_amax) blane_amax = m;
    end
  end
  // The tile's shift: the fewest right shifts that bring max |dS| below 2^8.
  function automatic logic [4:0] tile_shift(input logic [31:0] amax);
    logic [5:0] bits;
    bits = 6'd0;
    for (int i = 0; i < 32; i++) if (amax[i]) bits = 6'(i + 1);
    return bits > 6'd8 ? 5'(bits - 6'd8) : 5'd0;
  endfunction
  function automatic logic signed [8:0] mantissa(input logic signed [31:0] x, input logic [4:0] sh);
    logic signed [32:0] r;
    r = (sh == 5'd0) ? 33'(x) : (33'(x) + (33'sd1 <<< (sh - 5'd1))) >>> sh;
    return r > 33'sd255 ? 9'sd255 : r < -33'sd255 ? -9'sd255 : 9'(r);
  endfunction
  function automatic logic signed [63:0] sat_add(input logic signed [63:0] a, input logic signed [63:0] t);
    logic signed [64:0] s;
    s = 65'(a) + 65'(t);
    if (s[64] != s[63]) return s[64] ? 64'sh8000000000000000 : 64'sh7fffffffffffffff;
    return s[63:0];
  endfunction
  logic [63:0] b_bkv, b_bh, b_rep, k_bkv, k_col, k_row, k_bh, k_rep;
  always_comb begin
    b_bkv = 64'(b_b) * 64'(cfg_Hkv) + 64'(b_g);
    b_bh  = 64'(b_b) * 64'(cfg_Hq) + 64'(b_h);
    b_rep = (cfg_pb1 ? 64'(b_b) : 64'd0) * (cfg_ph1 ? 64'(cfg_Hq) : 64'd1) + (cfg_ph1 ? 64'(b_h) : 64'd0);
    k_bkv = 64'(k_b) * 64'(cfg_Hkv) + 64'(k_g);   // phase 1 key head; phase 2: k_g = k_h / group
    k_col = k_bkv * 64'(cfg_nkb) + 64'(k_c);
    k_row = (64'(plan_rep_b(k_b)) * (cfg_ph1 ? 64'd1 : 64'(cfg_Hq)) + (cfg_ph1 ? 64'd0 : 64'(k_h))) * 64'(cfg_nqb) + 64'(k_r);
    k_bh  = 64'(k_b) * 64'(cfg_Hq) + 64'(k_h);
    k_rep = (cfg_pb1 ? 64'(k_b) : 64'd0) * (cfg_ph1 ? 64'(cfg_Hq) : 64'd1) + (cfg_ph1 ? 64'(k_h) : 64'd0);
  end
  logic [63:0] k_ebh, k_qbkv;
  assign k_ebh = 64'(k_b) * 64'(cfg_Hq) + 64'(k_eh);        // phase 1: the entry's query head
  assign k_qbkv = 64'(k_b) * 64'(cfg_Hkv) + 64'(k_h / cfg_group);  // phase 2: the row's key head
  logic [31:0] tile_bytes;
  assign tile_bytes = 32'(cfg_blk) * 32'(cfg_blk) * 2 + 32'd16;

  // ---------------------------------------------------------------- compute write requests
  logic c_writing;
  // At most one writer is active: score tiles (SPDOT_BSR), the output writer, or the copy engine.
  assign c_writing = (c_state == C_SWRITE || w_state != W_IDLE || x_state == X_WR || s_state != S_IDLE ||
                      t_state != T_IDLE);
  assign bw_ds = (lock && lock_w) ? bw_ds_q : (s_state != S_IDLE);
  assign cw_valid = c_writing && (!abort || (lock && lock_w));
  always_comb begin
    cw_addr = 64'd0;
    cw_data = 128'd0;
    case (c_state)
      C_SWRITE: begin
        cw_addr = desc[DESC_SCORES_PTR] +
                  (((c_rep * 64'(cfg_nnz) + 64'(c_ebase) + 64'(c_e)) * 64'(cfg_blk) + 64'(c_i)) * 64'(cfg_blk) +
                   64'(c_beat) * 64'd4) * 64'd4;
        for (int u = 0; u < 4; u++) cw_data[32 * u +: 32] = ysram[c_i[5:0]][c_e[5:0]][c_beat * 4 + u];
      end
      default: ;
    endcase
    if (w_state == W_OUT) begin
      cw_addr = desc[DESC_OUT_PTR] +
                ((w_bh * 64'(cfg_head_rows) + w_a * 64'(cfg_blk) + 64'(w_i)) * 64'(cfg_D) + 64'(w_beat) * 64'd8) * 64'd2;
      for (int u = 0; u < 8; u++) begin
        logic signed [63:0] prod, sh;
        prod = 64'(wbuf[w_i[5:0]][w_beat * 8 + u]) * $signed({31'd0, wrc[w_i[5:0]]});
        sh = (prod + 64'sd8388608) >>> 24;
        if (sh > 64'sd32767) cw_data[16 * u +: 16] = 16'h7fff;
        else if (sh < -64'sd32768) cw_data[16 * u +: 16] = 16'h8000;
        else cw_data[16 * u +: 16] = sh[15:0];
      end
    end
    if (w_state == W_STATS) begin
      cw_addr = desc[DESC_STATS_PTR] + (w_bh * 64'(cfg_head_rows) + w_a * 64'(cfg_blk) + 64'(w_beat) * 64'd2) * 64'd8;
      cw_data = {wsum[w_beat * 2 + 1], wmax[w_beat * 2 + 1], wsum[w_beat * 2], wmax[w_beat * 2]};
    end
    if (s_state != S_IDLE && bw_ds) begin
      cw_addr = s_addr;
      if (s_row == 16'(cfg_blk)) cw_data = 128'(s_sh);
      else for (int u = 0; u < 8; u++) cw_data[16 * u +: 16] = 16'(sw[s_row[5:0]][s_col + u]);
    end
    if (t_state != T_IDLE && !bw_ds) begin
      cw_addr = (t_which ? t_addr1 : t_addr0) + (64'(t_row) * 64'(cfg_D) + 64'(t_col)) * 64'd8;
      cw_data = t_which ? {tw_b[t_row[5:0]][t_col + 1], tw_b[t_row[5:0]][t_col]}
                        : {tw_a[t_row[5:0]][t_col + 1], tw_a[t_row[5:0]][t_col]};
    end
    if (x_state == X_WR) begin
      // The staging row lives in ring slot 0, 128 bytes per scratchpad row.
      cw_addr = desc[CDESC_DST_PTR] +
                64'(mode == MODE_GATHER ? x_r : x_i) * desc[CDESC_DST_STRIDE] + 64'(x_beat) * 64'd16;
      for (int u = 0; u < 16; u++) cw_data[8 * u +: 8] = ring[0][x_beat[8:3]][{x_beat[2:0], 4'b0} + u];
    end
  end

  // ---------------------------------------------------------------- sequential logic
  `define JOB(kind, addr, nb) begin job_kind <= kind; job_addr <= (addr); job_issue <= 16'(nb); \
      job_recv <= 16'(nb); job_busy <= 1'b1; job_err <= 1'b0; job_row <= 16'd0; job_col <= 16'd0; end
  `define SCALAR(addr) begin `JOB(J_SCALAR, {addr[63:4], 4'b0}, 1) job_sel <= addr[3:2]; end
  `define FAIL(code) begin resp_data_r <= 64'(code); last_error <= (code); m_state <= M_RESP; end

  always_ff @(posedge clk) begin
    logic [63:0] a;
    logic signed [31:0] tmax;
    if (rst) begin
      m_state <= M_IDLE;
      l_state <= L_IDLE;
      c_state <= C_IDLE;
      x_state <= X_IDLE;
      w_state <= W_IDLE;
      k_state <= K_IDLE;
      b_state <= B_IDLE;
      s_state <= S_IDLE;
      t_state <= T_IDLE;
      wbb_v <= 1'b0;
      x_err <= ERR_OK;
      job_busy <= 1'b0;
      job_err <= 1'b0;
      stale <= 16'd0;
      wd_cnt <= 64'd0;
      wd_limit <= 64'(WATCHDOG_DEFAULT);
      wd_kill <= 1'b0;
      wr_fault <= 1'b0;
      lock <= 1'b0;
      abort <= 1'b0;
      wb_v <= 1'b0;
      rc_run <= 1'b0;
      rc_wait <= 1'b0;
      last_error <= ERR_OK;
      mode <= MODE_FUSED;
      for (int i = 0; i < N_STATUS_REGS; i++) cnt[i] = 64'd0;
    end else begin
      // ---------------- arbitration lock: a refused request stays presented unchanged
      lock <= mem_req_valid && !mem_req_ready;
      lock_w <= sel_w;
      bw_ds_q <= bw_ds;

      // ---------------- job engine: issue and receive
      if (rd_fire) begin
        job_addr <= job_addr + 64'd16;
        job_issue <= job_issue - 16'd1;
      end
      if (resp_stale) stale <= stale - 16'd1;
      if (resp_take && mem_resp_err) job_err <= 1'b1;
      if (wr_fire && mem_wr_err) wr_fault <= 1'b1;
      wd_cnt <= (m_state == M_IDLE || m_state == M_RESP) ? 64'd0 : wd_cnt + 64'd1;
      if (resp_take) begin
        case (job_kind)
          J_DESC: begin
            if (32'(job_row) * 2 < NDESC) desc[job_row * 2] = mem_resp_rdata[63:0];
            if (32'(job_row) * 2 + 1 < NDESC) desc[job_row * 2 + 1] = mem_resp_rdata[127:64];
            job_row <= job_row + 16'd1;
          end
          J_SCALAR: scalar <= mem_resp_rdata[32 * job_sel +: 32];
          J_QTILE, J_KVTILE: begin
            for (int u = 0; u < 16; u++) begin
              if (job_kind == J_QTILE) qbuf[job_slot][job_row[5:0]][job_col + u] = mem_resp_rdata[8 * u +: 8];
              else ring[job_slot][job_row[5:0]][job_col + u] = mem_resp_rdata[8 * u +: 8];
            end
            if (job_col + 16'd16 == 16'(cfg_D)) begin job_col <= 16'd0; job_row <= job_row + 16'd1; end
            else job_col <= job_col + 16'd16;
          end
          J_BITMAP: begin
            ring_bm[job_slot][job_row * 2] = mem_resp_rdata[63:0];
            ring_bm[job_slot][job_row * 2 + 1] = mem_resp_rdata[127:64];
            job_row <= job_row + 16'd1;
          end
          J_BEAT: beat <= mem_resp_rdata;
          J_T8: begin
            for (int u = 0; u < 16; u++)
              case (job_dst)
                3'd0: bk[k_kvs][job_row[5:0]][job_col + u] = mem_resp_rdata[8 * u +: 8];
                3'd1: bv[k_kvs][job_row[5:0]][job_col + u] = mem_resp_rdata[8 * u +: 8];
                3'd2: eq[job_slot][job_row[5:0]][job_col + u] = mem_resp_rdata[8 * u +: 8];
                3'd3: edo[job_slot][job_row[5:0]][job_col + u] = mem_resp_rdata[8 * u +: 8];
                default: qk[job_slot][job_row[5:0]][job_col + u] = mem_resp_rdata[8 * u +: 8];
              endcase
            if (job_col + 16'd16 == 16'(cfg_D)) begin job_col <= 16'd0; job_row <= job_row + 16'd1; end
            else job_col <= job_col + 16'd16;
          end
          J_RS: begin
            erl[job_slot][job_row * 2] = mem_resp_rdata[31:0];
            erd[job_slot][job_row * 2] = mem_resp_rdata[63:32];
            erl[job_slot][job_row * 2 + 1] = mem_resp_rdata[95:64];
            erd[job_slot][job_row * 2 + 1] = mem_resp_rdata[127:96];
            job_row <= job_row + 16'd1;
          end
          J_BBM: begin
            ebm[job_slot][job_row * 2] = mem_resp_rdata[63:0];
            ebm[job_slot][job_row * 2 + 1] = mem_resp_rdata[127:64];
            job_row <= job_row + 16'd1;
          end
          J_DST: begin
            if (job_row == 16'(cfg_blk)) qds_sh[job_slot] <= mem_resp_rdata[4:0];
            else begin
              for (int u = 0; u < 8; u++) qds[job_slot][job_row[5:0]][job_col + u] = mem_resp_rdata[16 * u +: 9];
              if (job_col + 16'd8 == 16'(cfg_blk)) begin job_col <= 16'd0; job_row <= job_row + 16'd1; end
              else job_col <= job_col + 16'd8;
            end
          end
          J_STILE: begin
            for (int u = 0; u < 4; u++) ysram[job_row[5:0]][job_e[5:0]][job_col + u] = mem_resp_rdata[32 * u +: 32];
            if (job_col + 16'd4 == 16'(cfg_blk)) begin job_col <= 16'd0; job_row <= job_row + 16'd1; end
            else job_col <= job_col + 16'd4;
          end
          default: ;
        endcase
        job_recv <= job_recv - 16'd1;
        if (job_recv == 16'd1) job_busy <= 1'b0;
        cnt[STAT_DMA_RD_BYTES] = cnt[STAT_DMA_RD_BYTES] + 64'd16;
      end
      if (wr_fire) cnt[STAT_DMA_WR_BYTES] = cnt[STAT_DMA_WR_BYTES] + 64'd16;
      if (mem_req_valid && !mem_req_ready && sel_w) cnt[STAT_STALL_WRITE] = cnt[STAT_STALL_WRITE] + 64'd1;
      if (m_state != M_IDLE && m_state != M_RESP) cnt[STAT_CYCLES] = cnt[STAT_CYCLES] + 64'd1;
      if (mac_en) begin
        cnt[STAT_MAC_BUSY] = cnt[STAT_MAC_BUSY] + 64'd1;
        cnt[STAT_MACS] = cnt[STAT_MACS] + 64'(R * C);
      end
      if (c_state == C_QK || c_state == C_QKDRAIN) begin
        cnt[STAT_SPDOT_CYCLES] = cnt[STAT_SPDOT_CYCLES] + 64'd1;
        if (mac_en) cnt[STAT_SPDOT_MAC_BUSY] = cnt[STAT_SPDOT_MAC_BUSY] + 64'd1;
      end
      if ((c_state == C_QK || c_state == C_PV) && !ring_full[c_rs]) cnt[STAT_STALL_DMA] = cnt[STAT_STALL_DMA] + 64'd1;
      if ((c_state == C_QWAIT && !qfull[c_qs]) || (c_state == C_SWAIT && !sbuf_full))
        cnt[STAT_STALL_DMA] = cnt[STAT_STALL_DMA] + 64'd1;
      if ((c_state == C_RWAIT && rc_done_all && w_state != W_IDLE) || (c_state == C_FLUSH && w_state != W_IDLE))
        cnt[STAT_STALL_WRITE] = cnt[STAT_STALL_WRITE] + 64'd1;
      if (c_state == C_MAX || c_state == C_EXP || (c_state == C_RWAIT && !rc_done_all))
        cnt[STAT_STALL_SOFTMAX] = cnt[STAT_STALL_SOFTMAX] + 64'd1;
      if ((b_state == B_COL && !kv_full[b_kvs]) || (b_state == B_EW && !es_full[b_es]) ||
          (b_state == B_ROW && !rq_full[b_rq]) || (b_state == B_QW && !qs_full[b_qs]))
        cnt[STAT_STALL_DMA] = cnt[STAT_STALL_DMA] + 64'd1;
      if (b_state == B_DR1 || b_state == B_SM || b_state == B_QZ)
        cnt[STAT_STALL_SOFTMAX] = cnt[STAT_STALL_SOFTMAX] + 64'd1;
      if ((b_state == B_DSW && s_state != S_IDLE) || ((b_state == B_KVOUT || b_state == B_QOUT) && t_state != T_IDLE) ||
          (b_state == B_P1END && s_state != S_IDLE) || b_state == B_FLUSH)
        cnt[STAT_STALL_WRITE] = cnt[STAT_STALL_WRITE] + 64'd1;

      // ---------------- main FSM
      case (m_state)
        M_IDLE: if (cmd_valid) begin
          resp_rd_r <= cmd_rd;
          wr_fault <= 1'b0;
          wd_kill <= 1'b0;
          case (cmd_funct7)
            FUNCT_CONFIGURE: begin
              if (cmd_rs1[63:2] != 62'd0) begin
                `FAIL(ERR_BAD_ARG)
              end else begin
                if (cmd_rs1[0]) for (int i = 0; i < N_STATUS_REGS; i++) cnt[i] = 64'd0;
                if (cmd_rs1[1]) wd_limit <= (cmd_rs2 == 64'd0) ? 64'(WATCHDOG_DEFAULT) : cmd_rs2;
                resp_data_r <= 64'(ERR_OK);
                m_state <= M_RESP;
              end
            end
            FUNCT_STATUS: begin
              // All 64 bits of the index count: an index that only matches after truncation is bad.
              if (cmd_rs1 >= 64'(N_STATUS_REGS)) begin
                resp_data_r <= (64'd1 << STATUS_ERROR_BIT) | 64'(ERR_BAD_STATUS_INDEX);
                last_error <= ERR_BAD_STATUS_INDEX;
              end else begin
                case (cmd_rs1[4:0])
                  5'(STAT_LAST_ERROR): resp_data_r <= 64'(last_error);
                  5'(STAT_PARAM_MAC_ROWS): resp_data_r <= 64'(R);
                  5'(STAT_PARAM_MAC_COLS): resp_data_r <= 64'(C);
                  5'(STAT_PARAM_BUS_BYTES): resp_data_r <= 64'(BUS_BYTES);
                  5'(STAT_PARAM_MAX_D): resp_data_r <= 64'(MAX_D);
                  5'(STAT_PARAM_MAX_BLK): resp_data_r <= 64'(MAX_BLK);
                  5'(STAT_PARAM_MAX_ROW_ENTRIES): resp_data_r <= 64'(NE);
                  default: resp_data_r <= cnt[cmd_rs1[4:0]];
                endcase
              end
              m_state <= M_RESP;
            end
            FUNCT_SPDOT_BSR, FUNCT_SOFTMAX_FUSED, FUNCT_SPMM_BSR: begin
              mode <= (cmd_funct7 == FUNCT_SPDOT_BSR) ? MODE_SPDOT :
                      (cmd_funct7 == FUNCT_SPMM_BSR) ? MODE_SPMM : MODE_FUSED;
              if (cmd_rs1 == 64'd0) begin
                `FAIL(ERR_NULL_PTR)
              end else if (cmd_rs1[3:0] != 4'd0) begin
                `FAIL(ERR_MISALIGNED)
              end else if (wraps(cmd_rs1, 64'((DESC_WORDS + 1) / 2 * 16))) begin
                `FAIL(ERR_ADDR_RANGE)
              end else begin
                for (int i = 0; i < NDESC; i++) desc[i] = 64'd0;
                `JOB(J_DESC, cmd_rs1, (DESC_WORDS + 1) / 2)
                m_state <= M_FETCH;
              end
            end
            FUNCT_ATTN_BWD: begin
              mode <= MODE_BWD;
              if (cmd_rs1 == 64'd0) begin
                `FAIL(ERR_NULL_PTR)
              end else if (cmd_rs1[3:0] != 4'd0) begin
                `FAIL(ERR_MISALIGNED)
              end else if (wraps(cmd_rs1, 64'((BDESC_WORDS + 1) / 2 * 16))) begin
                `FAIL(ERR_ADDR_RANGE)
              end else begin
                for (int i = 0; i < NDESC; i++) desc[i] = 64'd0;
                `JOB(J_DESC, cmd_rs1, (BDESC_WORDS + 1) / 2)
                m_state <= M_FETCH;
              end
            end
            FUNCT_GATH2D, FUNCT_SCAT2D: begin
              mode <= (cmd_funct7 == FUNCT_GATH2D) ? MODE_GATHER : MODE_SCATTER;
              if (cmd_rs1 == 64'd0) begin
                `FAIL(ERR_NULL_PTR)
              end else if (cmd_rs1[3:0] != 4'd0) begin
                `FAIL(ERR_MISALIGNED)
              end else if (wraps(cmd_rs1, 64'((CDESC_WORDS + 1) / 2 * 16))) begin
                `FAIL(ERR_ADDR_RANGE)
              end else begin
                for (int i = 0; i < NDESC; i++) desc[i] = 64'd0;
                `JOB(J_DESC, cmd_rs1, (CDESC_WORDS + 1) / 2)
                m_state <= M_FETCH;
              end
            end
            FUNCT_BLK_REDUCE, FUNCT_TOPK_IDX: begin
              `FAIL(ERR_UNSUPPORTED)
            end
            default: begin
              `FAIL(ERR_BAD_FUNCT)
            end
          endcase
        end
        M_FETCH: if (!job_busy) begin
          if (job_err) begin
            `FAIL(ERR_DMA_READ_FAULT)
          end else m_state <= M_CHECK;
        end
        M_CHECK: if (mode == MODE_GATHER || mode == MODE_SCATTER) begin
          if (chk_copy_err != ERR_OK) begin
            `FAIL(chk_copy_err)
          end else begin
            cfg_D <= 8'd128;  // the staging row fills ring slot 0 linearly, 128 bytes per row
            x_r <= 32'd0;
            x_err <= ERR_OK;
            x_state <= (desc[CDESC_N_ROWS] == 64'd0) ? X_DONE : X_IDX;
            m_state <= M_RUN;
          end
        end else if (mode == MODE_BWD) begin
          if (chk_bwd_err != ERR_OK) begin
            `FAIL(chk_bwd_err)
          end else begin
            cfg_B <= 16'(desc[BDESC_B]); cfg_Hq <= 16'(desc[BDESC_HQ]); cfg_Hkv <= 16'(desc[BDESC_HKV]);
            cfg_group <= 16'(desc[BDESC_HQ] / desc[BDESC_HKV]);
            cfg_nkb <= 16'(desc[BDESC_N_K_BLOCKS]); cfg_nqb <= 16'(desc[BDESC_N_Q_BLOCKS]);
            cfg_qbb <= 16'(desc[BDESC_Q_BLOCK_BEGIN]);
            cfg_D <= 8'(desc[BDESC_D]); cfg_blk <= 7'(desc[BDESC_BLOCK]);
            cfg_nnz <= 32'(desc[BDESC_NNZ]); cfg_nbm <= 32'(desc[BDESC_N_BITMAPS]); cfg_Lk <= 32'(desc[BDESC_LK]);
            cfg_tnnz <= 32'(desc[BDESC_T_NNZ]);
            cfg_shift <= 6'(desc[BDESC_SCORE_SHIFT]);
            cfg_head_rows <= 32'(desc[BDESC_N_K_BLOCKS] * desc[BDESC_BLOCK]);
            cfg_prows <= desc[BDESC_PLAN_B] * desc[BDESC_PLAN_H] * desc[BDESC_N_Q_BLOCKS];
            cfg_ncols <= desc[BDESC_B] * desc[BDESC_HKV] * desc[BDESC_N_K_BLOCKS];
            cfg_ntiles <= (desc[BDESC_PLAN_B] == 64'd1 ? desc[BDESC_B] : 64'd1) *
                          (desc[BDESC_PLAN_H] == 64'd1 ? desc[BDESC_HQ] : 64'd1) * desc[BDESC_NNZ];
            cfg_pb1 <= (desc[BDESC_PLAN_B] == 64'd1); cfg_ph1 <= (desc[BDESC_PLAN_H] == 64'd1);
            kv_full <= 2'b00; k_kvs <= 1'b0; b_kvs <= 1'b0; es_full <= 2'b00; qs_full <= 2'b00; rq_full <= 2'b00; p1_done <= 1'b0;
            k_b <= 0; k_g <= 0; k_c <= 0; k_h <= 0; k_r <= 0; k_es <= 0; k_qs <= 0; k_rq <= 0; k_err <= ERR_OK;
            b_b <= 0; b_g <= 0; b_c <= 0; b_h <= 0; b_r <= 0; b_es <= 0; b_qs <= 0; b_rq <= 0;
            k_state <= K_COL;
            b_state <= B_COL;
            m_state <= M_RUN;
          end
        end else begin
          if (chk_err != ERR_OK) begin
            `FAIL(chk_err)
          end else begin
            cfg_B <= 16'(desc[DESC_B]); cfg_Hq <= 16'(desc[DESC_HQ]); cfg_Hkv <= 16'(desc[DESC_HKV]);
            cfg_group <= 16'(desc[DESC_HQ] / desc[DESC_HKV]);
            cfg_nkb <= 16'(desc[DESC_N_K_BLOCKS]); cfg_nqb <= 16'(desc[DESC_N_Q_BLOCKS]);
            cfg_qbb <= 16'(desc[DESC_Q_BLOCK_BEGIN]);
            cfg_D <= 8'(desc[DESC_D]); cfg_blk <= 7'(desc[DESC_BLOCK]);
            cfg_nnz <= 32'(desc[DESC_NNZ]); cfg_nbm <= 32'(desc[DESC_N_BITMAPS]); cfg_Lk <= 32'(desc[DESC_LK]);
            cfg_shift <= 6'(desc[DESC_SCORE_SHIFT]);
            cfg_head_rows <= 32'(desc[DESC_N_K_BLOCKS] * desc[DESC_BLOCK]);
            cfg_prows <= desc[DESC_PLAN_B] * desc[DESC_PLAN_H] * desc[DESC_N_Q_BLOCKS];
            cfg_pb1 <= (desc[DESC_PLAN_B] == 64'd1); cfg_ph1 <= (desc[DESC_PLAN_H] == 64'd1);
            qfull <= 2'b00; ring_full <= 2'b00; sbuf_full <= 1'b0;
            l_b <= 0; l_h <= 0; l_r <= 0; l_qs <= 0; l_rs <= 0; l_err <= ERR_OK;
            c_b <= 0; c_h <= 0; c_r <= 0; c_qs <= 0; c_rs <= 0;
            l_state <= L_ROW;
            c_state <= C_ROW;
            m_state <= M_RUN;
          end
        end
        M_RUN: begin
          if (l_state == L_ERR) begin
            abort <= 1'b1; m_err <= l_err; m_state <= M_DRAIN;
          end else if (x_err != ERR_OK) begin
            abort <= 1'b1; m_err <= x_err; m_state <= M_DRAIN;
          end else if (k_state == K_ERR) begin
            abort <= 1'b1; m_err <= k_err; m_state <= M_DRAIN;
          end else if (c_state == C_DONE || x_state == X_DONE || b_state == B_DONE) begin
            // Read-side faults stopped the command above; a refused write is reported once the
            // command has otherwise completed (it never changes which reads happen).
            resp_data_r <= 64'(wr_fault ? ERR_DMA_WRITE_FAULT : ERR_OK);
            last_error <= wr_fault ? ERR_DMA_WRITE_FAULT : ERR_OK;
            l_state <= L_IDLE; c_state <= C_IDLE; x_state <= X_IDLE; m_state <= M_RESP;
            k_state <= K_IDLE; b_state <= B_IDLE;
          end
        end
        M_DRAIN: if (!job_busy && !lock && c_state == C_IDLE && x_state == X_IDLE && w_state == W_IDLE &&
                     b_state == B_IDLE && s_state == S_IDLE && t_state == T_IDLE) begin
          abort <= 1'b0; l_state <= L_IDLE; k_state <= K_IDLE; x_err <= ERR_OK;
          resp_data_r <= 64'(m_err); last_error <= m_err; m_state <= M_RESP;
        end
        M_RESP: if (resp_ready) m_state <= M_IDLE;
        default: m_state <= M_IDLE;
      endcase
      // Watchdog: abort whatever runs (an earlier fault being drained keeps its code) and stop
      // waiting for the job's reads; they are counted as stale and discarded when they arrive.
      if (wd_fire) begin
        wd_kill <= 1'b1;
        if (m_state != M_DRAIN) begin
          m_err <= ERR_WATCHDOG; abort <= 1'b1; m_state <= M_DRAIN;
        end
      end
      if ((wd_fire || wd_kill) && job_busy && !(mem_req_valid && !mem_req_ready && !sel_w)) begin
        // Reads issued (this cycle's included) and not yet answered (this cycle's excluded).
        stale <= stale - (resp_stale ? 16'd1 : 16'd0) +
                 (job_recv - (resp_take ? 16'd1 : 16'd0)) - (job_issue - (rd_fire ? 16'd1 : 16'd0));
        job_busy <= 1'b0;
        job_issue <= 16'd0;
      end

      // ---------------- loader FSM
      case (l_state)
        L_ROW: begin
          a = desc[DESC_ROW_PTR_PTR] + 64'd4 * l_row;
          `SCALAR(a)
          l_state <= L_RP0W;
        end
        L_RP0W: if (!job_busy) begin
          l_rp0 <= scalar;
          a = desc[DESC_ROW_PTR_PTR] + 64'd4 * (l_row + 64'd1);
          `SCALAR(a)
          l_state <= L_RP1W;
        end
        L_RP1W: if (!job_busy) begin
          // CSR consistency: starts at 0, never decreases, ends exactly at nnz.
          if (l_rp0 < 0 || scalar < l_rp0 || 32'(scalar) > cfg_nnz || (l_row == 64'd0 && l_rp0 != 0) ||
              (l_row + 64'd1 == cfg_prows && 32'(scalar) != cfg_nnz)) begin
            l_err <= ERR_PLAN_RANGE; l_state <= L_ERR;
          end else if (32'(scalar - l_rp0) > 32'(NE)) begin
            l_err <= ERR_ROW_TOO_LONG; l_state <= L_ERR;
          end else begin
            l_n <= 32'(scalar - l_rp0);
            l_e <= 32'd0;
            l_state <= (mode == MODE_SPMM) ? L_SWAIT : L_QWAIT;
          end
        end
        L_QWAIT: if (!qfull[l_qs]) begin
          a = desc[DESC_QMUL_PTR] + 64'd4 * (l_bh * 64'(cfg_nkb) + l_a);
          `SCALAR(a)
          l_state <= L_QMULW;
        end
        L_QMULW: if (!job_busy) begin
          qmul_r[l_qs] <= scalar;
          job_slot <= l_qs;
          `JOB(J_QTILE, desc[DESC_Q_PTR] + (l_bh * 64'(cfg_head_rows) + l_a * 64'(cfg_blk)) * 64'(cfg_D),
               32'(cfg_blk) * 32'(cfg_D) / 16)
          l_state <= L_QTW;
        end
        L_QTW: if (!job_busy) begin
          qfull[l_qs] <= 1'b1;
          qn[l_qs] <= l_n;
          qebase[l_qs] <= 32'(l_rp0);
          l_qs <= ~l_qs;
          l_state <= (l_n == 0) ? L_NEXT : L_ECOL;
        end
        L_ECOL: begin
          a = desc[DESC_COL_IDX_PTR] + 64'd4 * 64'(32'(l_rp0) + l_e);
          `SCALAR(a)
          l_state <= L_ECOLW;
        end
        L_ECOLW: if (!job_busy) begin
          if (scalar < 0 || 32'(scalar) >= 32'(cfg_nkb)) begin
            l_err <= ERR_COL_RANGE; l_state <= L_ERR;
          end else begin
            l_col <= scalar;
            ent_col[l_e[5:0]] <= 16'(scalar);
            a = desc[DESC_MASK_IDX_PTR] + 64'd4 * 64'(32'(l_rp0) + l_e);
            `SCALAR(a)
            l_state <= L_EMASKW;
          end
        end
        L_EMASKW: if (!job_busy) begin
          if (scalar < -1 || (scalar >= 0 && 32'(scalar) >= cfg_nbm)) begin
            l_err <= ERR_MASK_RANGE; l_state <= L_ERR;
          end else begin
            l_mask <= scalar;
            a = desc[DESC_KMUL_PTR] + 64'd4 * (l_bkv * 64'(cfg_nkb) + 64'(l_col));
            `SCALAR(a)
            l_state <= L_EKMULW;
          end
        end
        L_EKMULW: if (!job_busy) begin
          l_kmul <= scalar;
          l_state <= L_ESLOT;
        end
        L_ESLOT: if (!ring_full[l_rs]) begin
          ring_col[l_rs] <= 16'(l_col);
          ring_hasmask[l_rs] <= (l_mask >= 0);
          ring_kmul[l_rs] <= l_kmul;
          job_slot <= l_rs;
          if (l_mask >= 0) begin
            `JOB(J_BITMAP, desc[DESC_BITMAPS_PTR] + 64'(l_mask) * 64'(cfg_blk) * 64'd8, 32'(cfg_blk) / 2)
            l_state <= L_EBMW;
          end else begin
            `JOB(J_KVTILE, desc[DESC_K_PTR] + (l_bkv * 64'(cfg_head_rows) + 64'(l_col) * 64'(cfg_blk)) * 64'(cfg_D),
                 32'(cfg_blk) * 32'(cfg_D) / 16)
            l_state <= L_EKTW;
          end
        end
        L_EBMW: if (!job_busy) begin
          `JOB(J_KVTILE, desc[DESC_K_PTR] + (l_bkv * 64'(cfg_head_rows) + 64'(l_col) * 64'(cfg_blk)) * 64'(cfg_D),
               32'(cfg_blk) * 32'(cfg_D) / 16)
          l_state <= L_EKTW;
        end
        L_EKTW: if (!job_busy) begin
          ring_full[l_rs] <= 1'b1;
          l_rs <= ~l_rs;
          if (l_e + 1 < l_n) begin
            l_e <= l_e + 1;
            l_state <= L_ECOL;
          end else begin
            l_e <= 32'd0;
            l_state <= (mode == MODE_FUSED) ? L_VSLOT : L_NEXT;
          end
        end
        L_VSLOT: if (!ring_full[l_rs]) begin
          ring_col[l_rs] <= ent_col[l_e[5:0]];
          ring_hasmask[l_rs] <= 1'b0;
          job_slot <= l_rs;
          `JOB(J_KVTILE, desc[DESC_V_PTR] + (l_bkv * 64'(cfg_head_rows) + 64'(ent_col[l_e[5:0]]) * 64'(cfg_blk)) * 64'(cfg_D),
               32'(cfg_blk) * 32'(cfg_D) / 16)
          l_state <= L_VTW;
        end
        L_VTW: if (!job_busy) begin
          ring_full[l_rs] <= 1'b1;
          l_rs <= ~l_rs;
          if (l_e + 1 < l_n) begin
            l_e <= l_e + 1;
            l_state <= L_VSLOT;
          end else begin
            l_state <= L_NEXT;
          end
        end
        L_SWAIT: if (!sbuf_full) begin
          if (l_n == 0) begin
            sbuf_full <= 1'b1; sbuf_n <= 32'd0; sbuf_ebase <= 32'(l_rp0);
            l_state <= L_NEXT;
          end else begin
            a = desc[DESC_COL_IDX_PTR] + 64'd4 * 64'(32'(l_rp0) + l_e);
            `SCALAR(a)
            l_state <= L_SCOLW;
          end
        end
        L_SCOLW: if (!job_busy) begin
          if (scalar < 0 || 32'(scalar) >= 32'(cfg_nkb)) begin
            l_err <= ERR_COL_RANGE; l_state <= L_ERR;
          end else begin
            ent_col[l_e[5:0]] <= 16'(scalar);
            job_e <= l_e;
            `JOB(J_STILE, desc[DESC_SCORES_PTR] +
                 ((((cfg_pb1 ? 64'(l_b) : 64'd0) * (cfg_ph1 ? 64'(cfg_Hq) : 64'd1) + (cfg_ph1 ? 64'(l_h) : 64'd0)) *
                   64'(cfg_nnz) + 64'(32'(l_rp0) + l_e)) * 64'(cfg_blk) * 64'(cfg_blk) * 64'd4),
                 32'(cfg_blk) * 32'(cfg_blk) / 4)
            l_state <= L_STW;
          end
        end
        L_STW: if (!job_busy) begin
          if (l_e + 1 < l_n) begin
            l_e <= l_e + 1;
            a = desc[DESC_COL_IDX_PTR] + 64'd4 * 64'(32'(l_rp0) + l_e + 1);
            `SCALAR(a)
            l_state <= L_SCOLW;
          end else begin
            sbuf_full <= 1'b1; sbuf_n <= l_n; sbuf_ebase <= 32'(l_rp0);
            l_e <= 32'd0;
            l_state <= L_VSLOT;
          end
        end
        L_NEXT: begin
          if (32'(l_r) + 1 < 32'(cfg_nqb)) l_r <= l_r + 1;
          else begin
            l_r <= 0;
            if (l_h + 1 < cfg_Hq) l_h <= l_h + 1;
            else begin
              l_h <= 0;
              l_b <= l_b + 1;
            end
          end
          if (32'(l_r) + 1 >= 32'(cfg_nqb) && l_h + 1 >= cfg_Hq && l_b + 1 >= cfg_B) l_state <= L_DONE;
          else l_state <= L_ROW;
        end
        default: ;
      endcase
      // A refused read ends the walk when its job completes, before its (junk) data is used.
      if (!job_busy && job_err && l_state != L_IDLE && l_state != L_ERR) begin
        l_err <= ERR_DMA_READ_FAULT; l_state <= L_ERR;
      end
      if (abort && l_state != L_IDLE && l_state != L_ERR) l_state <= L_ERR;

      // ---------------- backward loader (ATTN_BWD)
      case (k_state)
        K_COL: begin
          a = desc[BDESC_T_ROW_PTR_PTR] + 64'd4 * k_col;
          `SCALAR(a)
          k_state <= K_TR0W;
        end
        K_TR0W: if (!job_busy) begin
          k_rp0 <= scalar;
          a = desc[BDESC_T_ROW_PTR_PTR] + 64'd4 * (k_col + 64'd1);
          `SCALAR(a)
          k_state <= K_TR1W;
        end
        K_TR1W: if (!job_busy) begin
          if (k_rp0 < 0 || scalar < k_rp0 || 32'(scalar) > cfg_tnnz || (k_col == 64'd0 && k_rp0 != 0) ||
              (k_col + 64'd1 == cfg_ncols && 32'(scalar) != cfg_tnnz)) begin
            k_err <= ERR_PLAN_RANGE; k_state <= K_ERR;
          end else if (scalar == k_rp0) begin
            k_state <= K_NCOL;  // no query sees this key block: nothing to load, nothing to write
          end else begin
            k_n <= 32'(scalar - k_rp0);
            k_e <= 32'd0;
            a = desc[BDESC_KMUL_PTR] + 64'd4 * k_col;
            `SCALAR(a)
            k_state <= K_KMW;
          end
        end
        K_KMW: if (!job_busy && !kv_full[k_kvs]) begin
          kv_kmul[k_kvs] <= scalar;
          job_dst <= 3'd0;
          `JOB(J_T8, desc[BDESC_K_PTR] + (k_bkv * 64'(cfg_head_rows) + 64'(k_c) * 64'(cfg_blk)) * 64'(cfg_D),
               32'(cfg_blk) * 32'(cfg_D) / 16)
          k_state <= K_KTW;
        end
        K_KTW: if (!job_busy) begin
          job_dst <= 3'd1;
          `JOB(J_T8, desc[BDESC_V_PTR] + (k_bkv * 64'(cfg_head_rows) + 64'(k_c) * 64'(cfg_blk)) * 64'(cfg_D),
               32'(cfg_blk) * 32'(cfg_D) / 16)
          k_state <= K_VTW;
        end
        K_VTW: if (!job_busy) begin
          kv_full[k_kvs] <= 1'b1;
          kv_n[k_kvs] <= k_n;
          kv_b[k_kvs] <= k_b; kv_g[k_kvs] <= k_g; kv_c[k_kvs] <= k_c;
          k_state <= K_ENT;
        end
        K_ENT: if (!es_full[k_es]) begin
          `JOB(J_BEAT, desc[BDESC_T_ENT_PTR] + 64'd16 * 64'(32'(k_rp0) + k_e), 1)
          k_state <= K_ENTW;
        end
        K_ENTW: if (!job_busy) begin
          logic signed [63:0] eh, ea, em, et;
          eh = 64'($signed(beat[31:0])); ea = 64'($signed(beat[63:32]));
          em = 64'($signed(beat[95:64])); et = 64'($signed(beat[127:96]));
          if (eh < $signed(64'(k_g) * 64'(cfg_group)) || eh >= $signed((64'(k_g) + 64'd1) * 64'(cfg_group)) ||
              ea < $signed(64'(cfg_qbb)) || ea >= $signed(64'(cfg_nkb)) || et < 0 || et >= $signed(cfg_ntiles)) begin
            k_err <= ERR_ENTRY_RANGE; k_state <= K_ERR;
          end else if (em < -64'sd1 || (em >= 0 && em >= $signed(64'(cfg_nbm)))) begin
            k_err <= ERR_MASK_RANGE; k_state <= K_ERR;
          end else begin
            k_eh <= 32'(eh); k_ea <= 32'(ea); k_em <= 32'(em); k_et <= 32'(et);
            a = desc[BDESC_EMUL_PTR] + 64'd16 * ((64'(k_b) * 64'(cfg_Hq) + 64'(eh)) * 64'(cfg_nkb) + 64'(ea));
            `JOB(J_BEAT, a, 1)
            k_state <= K_EMW;
          end
        end
        K_EMW: if (!job_busy) begin
          es_qmul[k_es] <= beat[31:0];
          es_dkmul[k_es] <= beat[63:32];
          es_dvmul[k_es] <= beat[95:64];
          job_slot <= k_es;
          if (k_em >= 0) begin
            `JOB(J_BBM, desc[BDESC_BITMAPS_PTR] + 64'(k_em) * 64'(cfg_blk) * 64'd8, 32'(cfg_blk) / 2)
            k_state <= K_EBMW;
          end else begin
            job_dst <= 3'd2;
            `JOB(J_T8, desc[BDESC_Q_PTR] + (k_ebh * 64'(cfg_head_rows) + 64'(k_ea) * 64'(cfg_blk)) * 64'(cfg_D),
                 32'(cfg_blk) * 32'(cfg_D) / 16)
            k_state <= K_EQW;
          end
        end
        K_EBMW: if (!job_busy) begin
          job_dst <= 3'd2;
          `JOB(J_T8, desc[BDESC_Q_PTR] + (k_ebh * 64'(cfg_head_rows) + 64'(k_ea) * 64'(cfg_blk)) * 64'(cfg_D),
               32'(cfg_blk) * 32'(cfg_D) / 16)
          k_state <= K_EQW;
        end
        K_EQW: if (!job_busy) begin
          job_dst <= 3'd3;
          `JOB(J_T8, desc[BDESC_DO_PTR] + (k_ebh * 64'(cfg_head_rows) + 64'(k_ea) * 64'(cfg_blk)) * 64'(cfg_D),
               32'(cfg_blk) * 32'(cfg_D) / 16)
          k_state <= K_EDW;
        end
        K_EDW: if (!job_busy) begin
          `JOB(J_RS, desc[BDESC_RS_PTR] + (k_ebh * 64'(cfg_head_rows) + 64'(k_ea) * 64'(cfg_blk)) * 64'd8,
               32'(cfg_blk) / 2)
          k_state <= K_ERSW;
        end
        K_ERSW: if (!job_busy) begin
          es_full[k_es] <= 1'b1;
          es_hasmask[k_es] <= (k_em >= 0);
          es_tile[k_es] <= k_et;
          k_es <= ~k_es;
          if (k_e + 1 < k_n) begin
            k_e <= k_e + 1;
            k_state <= K_ENT;
          end else begin
            k_kvs <= ~k_kvs;
            k_state <= K_NCOL;
          end
        end
        K_NCOL: begin
          if (32'(k_c) + 1 < 32'(cfg_nkb)) k_c <= k_c + 1;
          else begin
            k_c <= 0;
            if (k_g + 1 < cfg_Hkv) k_g <= k_g + 1;
            else begin k_g <= 0; k_b <= k_b + 1; end
          end
          if (32'(k_c) + 1 >= 32'(cfg_nkb) && k_g + 1 >= cfg_Hkv && k_b + 1 >= cfg_B) k_state <= K_P2W;
          else k_state <= K_COL;
        end
        // Phase 2 reads the dS tiles phase 1 wrote: it starts once the last one is stored.
        K_P2W: if (p1_done) begin
          k_b <= 0; k_h <= 0; k_r <= 0;
          k_state <= K_ROW;
        end
        K_ROW: begin
          a = desc[BDESC_ROW_PTR_PTR] + 64'd4 * k_row;
          `SCALAR(a)
          k_state <= K_RP0W;
        end
        K_RP0W: if (!job_busy) begin
          k_rp0 <= scalar;
          a = desc[BDESC_ROW_PTR_PTR] + 64'd4 * (k_row + 64'd1);
          `SCALAR(a)
          k_state <= K_RP1W;
        end
        K_RP1W: if (!job_busy) begin
          if (k_rp0 < 0 || scalar < k_rp0 || 32'(scalar) > cfg_nnz || (k_row == 64'd0 && k_rp0 != 0) ||
              (k_row + 64'd1 == cfg_prows && 32'(scalar) != cfg_nnz)) begin
            k_err <= ERR_PLAN_RANGE; k_state <= K_ERR;
          end else begin
            k_n <= 32'(scalar - k_rp0);
            k_e <= 32'd0;
            k_state <= (scalar == k_rp0) ? K_NROW : K_RQ;  // a row without entries writes nothing
          end
        end
        K_RQ: if (!rq_full[k_rq]) begin
          rq_full[k_rq] <= 1'b1;
          rq_n[k_rq] <= k_n;
          rq_b[k_rq] <= k_b; rq_h[k_rq] <= k_h; rq_r[k_rq] <= k_r;
          k_rq <= ~k_rq;
          k_state <= K_QCOL;
        end
        K_QCOL: begin
          a = desc[BDESC_COL_IDX_PTR] + 64'd4 * 64'(32'(k_rp0) + k_e);
          `SCALAR(a)
          k_state <= K_QCW;
        end
        K_QCW: if (!job_busy) begin
          if (scalar < 0 || 32'(scalar) >= 32'(cfg_nkb)) begin
            k_err <= ERR_COL_RANGE; k_state <= K_ERR;
          end else begin
            k_c <= 16'(scalar);
            a = desc[BDESC_KMUL_PTR] + 64'd4 * (k_qbkv * 64'(cfg_nkb) + 64'(scalar));
            `SCALAR(a)
            k_state <= K_QKMW;
          end
        end
        K_QKMW: if (!job_busy && !qs_full[k_qs]) begin
          qs_kmul[k_qs] <= scalar;
          job_slot <= k_qs;
          job_dst <= 3'd4;
          `JOB(J_T8, desc[BDESC_K_PTR] + (k_qbkv * 64'(cfg_head_rows) + 64'(k_c) * 64'(cfg_blk)) * 64'(cfg_D),
               32'(cfg_blk) * 32'(cfg_D) / 16)
          k_state <= K_QKTW;
        end
        K_QKTW: if (!job_busy) begin
          `JOB(J_DST, desc[BDESC_DS_PTR] + (k_rep * 64'(cfg_nnz) + 64'(32'(k_rp0) + k_e)) * 64'(tile_bytes),
               32'(cfg_blk) * 32'(cfg_blk) / 8 + 1)
          k_state <= K_QDSW;
        end
        K_QDSW: if (!job_busy) begin
          qs_full[k_qs] <= 1'b1;
          k_qs <= ~k_qs;
          if (k_e + 1 < k_n) begin
            k_e <= k_e + 1;
            k_state <= K_QCOL;
          end else k_state <= K_NROW;
        end
        K_NROW: begin
          if (32'(k_r) + 1 < 32'(cfg_nqb)) k_r <= k_r + 1;
          else begin
            k_r <= 0;
            if (k_h + 1 < cfg_Hq) k_h <= k_h + 1;
            else begin k_h <= 0; k_b <= k_b + 1; end
          end
          if (32'(k_r) + 1 >= 32'(cfg_nqb) && k_h + 1 >= cfg_Hq && k_b + 1 >= cfg_B) k_state <= K_DONE;
          else k_state <= K_ROW;
        end
        default: ;
      endcase
      if (!job_busy && job_err && k_state != K_IDLE && k_state != K_ERR) begin
        k_err <= ERR_DMA_READ_FAULT; k_state <= K_ERR;
      end
      if (abort && k_state != K_IDLE && k_state != K_ERR) k_state <= K_ERR;

      // ---------------- copy engine (GATH2D / SCAT2D): one row at a time through ring slot 0
      case (x_state)
        X_IDX: begin
          a = desc[CDESC_IDX_PTR] + 64'd4 * 64'(x_r);
          `SCALAR(a)
          x_state <= X_IDXW;
        end
        X_IDXW: if (!job_busy) begin
          if (scalar < 0 || 64'(scalar) >= (mode == MODE_GATHER ? desc[CDESC_SRC_ROWS] : desc[CDESC_DST_ROWS])) begin
            x_err <= ERR_INDEX_RANGE;
            x_state <= X_IDLE;
          end else begin
            x_i <= scalar;
            job_slot <= 1'b0;
            `JOB(J_KVTILE, desc[CDESC_SRC_PTR] + 64'(mode == MODE_GATHER ? 32'(scalar) : x_r) * desc[CDESC_SRC_STRIDE],
                 desc[CDESC_ROW_BYTES] / 16)
            x_state <= X_RDW;
          end
        end
        X_RDW: if (!job_busy) begin
          x_beat <= 16'd0;
          x_state <= X_WR;
        end
        X_WR: if (wr_fire || (abort && !(lock && lock_w))) begin
          if (abort) x_state <= X_IDLE;
          else if (64'(x_beat) + 1 < desc[CDESC_ROW_BYTES] / 16) x_beat <= x_beat + 1;
          else if (64'(x_r) + 1 < desc[CDESC_N_ROWS]) begin
            x_r <= x_r + 1;
            x_state <= X_IDX;
          end else x_state <= X_DONE;
        end
        default: ;
      endcase
      if (!job_busy && job_err && (x_state == X_IDXW || x_state == X_RDW)) begin
        x_err <= ERR_DMA_READ_FAULT; x_state <= X_IDLE;
      end

      // ---------------- MAC write-back (the cycle after a tile's last step)
      wb_v <= 1'b0;
      if (wb_v && !wb_pv) begin
        for (int r = 0; r < R; r++) begin
          tmax = rowmax[wb_t1 * R + r];
          for (int c = 0; c < C; c++) begin
            logic [15:0] j;
            logic vis;
            logic signed [63:0] prod, y;
            j = wb_t2 * C + c;
            vis = (!wb_hasmask || wb_bm[r][j[5:0]]) && (32'(wb_col) * 32'(cfg_blk) + 32'(j) < cfg_Lk);
            prod = 64'(mac_acc[r][c]) * $signed({32'd0, wb_kq});
            y = prod >>> cfg_shift;
            if (y > YHI) y = YHI;
            if (y < YLO) y = YLO;
            ysram[wb_t1 * R + r][wb_e[5:0]][j[5:0]] = vis ? 32'(y) : NEG;
            if (vis && 32'(y) > tmax) tmax = 32'(y);
          end
          rowmax[wb_t1 * R + r] = tmax;
        end
      end
      if (wb_v && wb_pv) begin
        for (int r = 0; r < R; r++)
          for (int c = 0; c < C; c++)
            osram[wb_t1 * R + r][wb_t2 * C + c] = (wb_e == 0 ? 32'sd0 : osram[wb_t1 * R + r][wb_t2 * C + c]) + mac_acc[r][c];
      end

      // ---------------- backward MAC write-back (the cycle after a tile's last step)
      wbb_v <= 1'b0;
      if (wbb_v) begin
        for (int r = 0; r < R; r++)
          for (int c = 0; c < C; c++) begin
            logic [15:0] i, j;
            logic vis;
            logic signed [63:0] prod, y;
            i = wbb_t1 * R + r;
            j = wbb_t2 * C + c;
            prod = 64'(mac_acc[r][c]) * $signed({32'd0, wbb_mul});
            case (wbb_kind)
              3'd0: begin
                vis = (!es_hasmask[wbb_es] || ebm[wbb_es][i[5:0]][j[5:0]]) && (32'(b_c) * 32'(cfg_blk) + 32'(j) < cfg_Lk);
                y = prod >>> cfg_shift;
                if (y > YHI) y = YHI;
                if (y < YLO) y = YLO;
                by[i[5:0]][j[5:0]] = vis ? 32'(y) : NEG;
              end
              3'd1: bdp[i[5:0]][j[5:0]] = mac_acc[r][c];
              3'd2: acc_b[i[5:0]][j] = sat_add(acc_b[i[5:0]][j], prod);
              default: acc_a[i[5:0]][j] = sat_add(acc_a[i[5:0]][j], prod <<< wbb_sh);
            endcase
          end
      end

      // ---------------- reciprocal sequencing
      if (rcp_start) rc_wait <= 1'b1;
      if (rcp_done) begin
        rc[rc_i[5:0]] <= rcp_q;
        rc_wait <= 1'b0;
        if (32'(rc_i) + 1 == 32'(cfg_blk)) begin rc_run <= 1'b0; rc_done_all <= 1'b1; end
        else rc_i <= rc_i + 1;
      end
      // An aborted command may have left the sequencer mid-row; the unit itself is in reset while
      // idle, so clear the sequencer there too.
      if (m_state == M_IDLE) begin rc_run <= 1'b0; rc_wait <= 1'b0; rc_done_all <= 1'b0; end

      // ---------------- compute FSM
      case (c_state)
        C_ROW: begin
          for (int i = 0; i < MAX_BLK; i++) begin rowmax[i] = NEG; rowsum[i] = 32'd0; end
          rc_done_all <= 1'b0;
          c_e <= 0; c_t1 <= 0; c_t2 <= 0; c_k <= 0; c_i <= 0; c_beat <= 0;
          c_state <= (mode == MODE_SPMM) ? C_SWAIT : C_QWAIT;
        end
        C_QWAIT: if (qfull[c_qs]) begin
          c_n <= qn[c_qs];
          c_ebase <= qebase[c_qs];
          c_qmul <= qmul_r[c_qs];
          if (qn[c_qs] == 0) begin
            qfull[c_qs] <= 1'b0;
            c_qs <= ~c_qs;
            c_state <= (mode == MODE_SPDOT) ? C_NEXT : C_EXP;
          end else c_state <= C_QK;
        end
        C_QK, C_PV: if (mac_en) begin
          if (mac_last) begin
            wb_v <= 1'b1;
            wb_pv <= in_pv;
            wb_e <= c_e;
            wb_t1 <= c_t1;
            wb_t2 <= c_t2;
            wb_col <= ring_col[c_rs];
            wb_kq <= ring_kmul[c_rs] * c_qmul;
            wb_hasmask <= ring_hasmask[c_rs];
            for (int r = 0; r < R; r++) wb_bm[r] <= ring_bm[c_rs][c_t1 * R + r];
            c_k <= 0;
            if (32'(c_t2) + 1 < (in_pv ? 32'(cfg_D) / C : 32'(cfg_blk) / C)) c_t2 <= c_t2 + 1;
            else begin
              c_t2 <= 0;
              if (32'(c_t1) + 1 < 32'(cfg_blk) / R) c_t1 <= c_t1 + 1;
              else begin
                // last tile of this entry: the ring slot is no longer read
                c_t1 <= 0;
                ring_full[c_rs] <= 1'b0;
                c_rs <= ~c_rs;
                if (c_e + 1 < c_n) c_e <= c_e + 1;
                else begin
                  c_e <= 0;
                  c_state <= in_pv ? C_PVDRAIN : C_QKDRAIN;
                end
              end
            end
          end else c_k <= c_k + 1;
        end
        C_QKDRAIN: begin
          cnt[STAT_ENTRIES] = cnt[STAT_ENTRIES] + 64'(c_n);
          qfull[c_qs] <= 1'b0;
          c_qs <= ~c_qs;
          c_e <= 0; c_i <= 0; c_beat <= 0;
          c_state <= (mode == MODE_SPDOT) ? C_SWRITE : C_EXP;
        end
        C_SWRITE: if (wr_fire || (abort && !(lock && lock_w))) begin
          if (abort) c_state <= C_IDLE;
          else if (32'(c_beat) + 1 < 32'(cfg_blk) / 4) c_beat <= c_beat + 1;
          else begin
            c_beat <= 0;
            if (32'(c_i) + 1 < 32'(cfg_blk)) c_i <= c_i + 1;
            else begin
              c_i <= 0;
              if (c_e + 1 < c_n) c_e <= c_e + 1;
              else c_state <= C_NEXT;
            end
          end
        end
        C_SWAIT: if (sbuf_full) begin
          c_n <= sbuf_n;
          c_ebase <= sbuf_ebase;
          c_e <= 0; c_i <= 0;
          c_state <= (sbuf_n == 0) ? C_EXP : C_MAX;
        end
        C_MAX: begin
          if (lane_max > rowmax[c_i[5:0]]) rowmax[c_i[5:0]] = lane_max;
          if (32'(c_i) + 1 < 32'(cfg_blk)) c_i <= c_i + 1;
          else begin
            c_i <= 0;
            if (c_e + 1 < c_n) c_e <= c_e + 1;
            else begin c_e <= 0; c_state <= C_EXP; end
          end
        end
        C_EXP: begin
          if (c_n != 0) begin
            for (int j = 0; j < MAX_BLK; j++) psram[c_i[5:0]][c_e[5:0]][j] = lane_p[j];
            rowsum[c_i[5:0]] = rowsum[c_i[5:0]] + lane_sum;
          end
          if (c_n != 0 && 32'(c_i) + 1 < 32'(cfg_blk)) c_i <= c_i + 1;
          else if (c_n != 0 && c_e + 1 < c_n) begin c_i <= 0; c_e <= c_e + 1; end
          else begin
            c_i <= 0; c_e <= 0; c_t1 <= 0; c_t2 <= 0; c_k <= 0;
            if (mode == MODE_SPMM) sbuf_full <= 1'b0;
            rc_run <= 1'b1; rc_i <= 0; rc_wait <= 1'b0;
            c_state <= (c_n == 0) ? C_RWAIT : C_PV;
            if (mode == MODE_SPMM) cnt[STAT_ENTRIES] = cnt[STAT_ENTRIES] + 64'(c_n);
          end
        end
        C_PVDRAIN: c_state <= C_RWAIT;
        C_RWAIT: if (rc_done_all && w_state == W_IDLE) begin
          // Hand the finished block to the output writer and go on with the next one.
          for (int i = 0; i < MAX_BLK; i++) begin
            for (int d = 0; d < MAX_D; d++) wbuf[i][d] = osram[i][d];
            wmax[i] = rowmax[i];
            wsum[i] = rowsum[i];
            wrc[i] = rc[i];
          end
          w_bh <= c_bh;
          w_a <= c_a;
          w_i <= 16'd0;
          w_beat <= 16'd0;
          w_state <= W_OUT;
          c_state <= C_NEXT;
        end
        C_FLUSH: if (w_state == W_IDLE) c_state <= C_DONE;
        C_NEXT: begin
          if (32'(c_r) + 1 < 32'(cfg_nqb)) c_r <= c_r + 1;
          else begin
            c_r <= 0;
            if (c_h + 1 < cfg_Hq) c_h <= c_h + 1;
            else begin c_h <= 0; c_b <= c_b + 1; end
          end
          if (32'(c_r) + 1 >= 32'(cfg_nqb) && c_h + 1 >= cfg_Hq && c_b + 1 >= cfg_B) c_state <= C_FLUSH;
          else c_state <= C_ROW;
        end
        default: ;
      endcase
      if (abort && c_state != C_SWRITE && c_state != C_IDLE) c_state <= C_IDLE;

      // ---------------- backward compute FSM
      case (b_state)
        B_COL: if (kv_full[b_kvs]) begin
          for (int i = 0; i < MAX_BLK; i++)
            for (int d = 0; d < MAX_D; d++) begin acc_a[i][d] = 64'sd0; acc_b[i][d] = 64'sd0; end
          b_n <= kv_n[b_kvs];
          b_b <= kv_b[b_kvs]; b_g <= kv_g[b_kvs]; b_c <= kv_c[b_kvs];
          b_e <= 32'd0;
          b_state <= B_EW;
        end else if (k_state == K_P2W) b_state <= B_P1END;  // the loader has handed over every key block
        B_EW: if (es_full[b_es]) begin
          b_t1 <= 0; b_t2 <= 0; b_k <= 0;
          b_state <= B_S;
        end
        B_S, B_DP, B_DV, B_DK, B_QM: if (b_mac) begin
          if (mac_last) begin
            wbb_v <= 1'b1;
            wbb_kind <= (b_state == B_S) ? 3'd0 : (b_state == B_DP) ? 3'd1 : (b_state == B_DV) ? 3'd2 :
                        (b_state == B_DK) ? 3'd3 : 3'd4;
            wbb_t1 <= b_t1;
            wbb_t2 <= b_t2;
            wbb_es <= b_es;
            wbb_mul <= (b_state == B_S) ? kv_kmul[b_kvs] * es_qmul[b_es] : (b_state == B_DV) ? es_dvmul[b_es] :
                       (b_state == B_DK) ? es_dkmul[b_es] : qs_kmul[b_qs];
            wbb_sh <= (b_state == B_DK) ? b_sh : (b_state == B_QM) ? qds_sh[b_qs] : 5'd0;
            b_k <= 0;
            if (32'(b_t2) + 1 < (b_red_blk ? 32'(cfg_D) / C : 32'(cfg_blk) / C)) b_t2 <= b_t2 + 1;
            else begin
              b_t2 <= 0;
              if (32'(b_t1) + 1 < 32'(cfg_blk) / R) b_t1 <= b_t1 + 1;
              else begin
                b_t1 <= 0;
                case (b_state)
                  B_S: b_state <= B_DP;
                  B_DP: b_state <= B_DR1;
                  B_DV: b_state <= B_DK;
                  B_DK: begin
                    cnt[STAT_ENTRIES] = cnt[STAT_ENTRIES] + 64'd1;
                    es_full[b_es] <= 1'b0;
                    b_es <= ~b_es;
                    if (b_e + 1 < b_n) begin b_e <= b_e + 1; b_state <= B_EW; end
                    else b_state <= B_DR2;
                  end
                  default: begin
                    qs_full[b_qs] <= 1'b0;
                    b_qs <= ~b_qs;
                    if (b_e + 1 < b_n) begin b_e <= b_e + 1; b_state <= B_QW; end
                    else b_state <= B_DR3;
                  end
                endcase
              end
            end
          end else b_k <= b_k + 1;
        end
        B_DR1: begin b_i <= 0; b_amax <= 32'd0; b_state <= B_SM; end
        B_SM: begin
          for (int j = 0; j < MAX_BLK; j++) begin
            bp[b_i[5:0]][j] = blane_p[j];
            bds[b_i[5:0]][j] = blane_ds[j];
          end
          b_amax <= blane_amax;
          if (32'(b_i) + 1 < 32'(cfg_blk)) b_i <= b_i + 1;
          else begin b_i <= 0; b_sh <= tile_shift(blane_amax); b_state <= B_QZ; end
        end
        B_QZ: begin
          for (int j = 0; j < MAX_BLK; j++) bdq[b_i[5:0]][j] = mantissa(bds[b_i[5:0]][j], b_sh);
          if (32'(b_i) + 1 < 32'(cfg_blk)) b_i <= b_i + 1;
          else begin b_i <= 0; b_state <= B_DSW; end
        end
        B_DSW: if (s_state == S_IDLE) begin
          for (int i = 0; i < MAX_BLK; i++)
            for (int j = 0; j < MAX_BLK; j++) sw[i][j] = bdq[i][j];
          s_sh <= b_sh;
          s_addr <= desc[BDESC_DS_PTR] + 64'(es_tile[b_es]) * 64'(tile_bytes);
          s_row <= 0; s_col <= 0;
          s_state <= S_W;
          b_t1 <= 0; b_t2 <= 0; b_k <= 0;
          b_state <= B_DV;
        end
        B_DR2: b_state <= B_KVOUT;
        B_KVOUT: if (t_state == T_IDLE) begin
          for (int i = 0; i < MAX_BLK; i++)
            for (int d = 0; d < MAX_D; d++) begin tw_a[i][d] = acc_a[i][d]; tw_b[i][d] = acc_b[i][d]; end
          t_addr0 <= desc[BDESC_DK_PTR] + (b_bkv * 64'(cfg_head_rows) + 64'(b_c) * 64'(cfg_blk)) * 64'(cfg_D) * 64'd8;
          t_addr1 <= desc[BDESC_DV_PTR] + (b_bkv * 64'(cfg_head_rows) + 64'(b_c) * 64'(cfg_blk)) * 64'(cfg_D) * 64'd8;
          t_two <= 1'b1; t_which <= 1'b0; t_row <= 0; t_col <= 0;
          t_state <= T_W;
          kv_full[b_kvs] <= 1'b0;
          b_kvs <= ~b_kvs;
          b_state <= B_COL;
        end
        B_P1END: if (s_state == S_IDLE) begin
          p1_done <= 1'b1;
          b_state <= B_ROW;
        end
        B_ROW: if (rq_full[b_rq]) begin
          for (int i = 0; i < MAX_BLK; i++)
            for (int d = 0; d < MAX_D; d++) acc_a[i][d] = 64'sd0;
          b_n <= rq_n[b_rq];
          b_b <= rq_b[b_rq]; b_h <= rq_h[b_rq]; b_r <= rq_r[b_rq];
          rq_full[b_rq] <= 1'b0;
          b_rq <= ~b_rq;
          b_e <= 32'd0;
          b_state <= B_QW;
        end else if (k_state == K_DONE) b_state <= B_FLUSH;  // every row with entries was handed over
        B_QW: if (qs_full[b_qs]) begin
          b_t1 <= 0; b_t2 <= 0; b_k <= 0;
          b_state <= B_QM;
        end
        B_DR3: b_state <= B_QOUT;
        B_QOUT: if (t_state == T_IDLE) begin
          for (int i = 0; i < MAX_BLK; i++)
            for (int d = 0; d < MAX_D; d++) tw_a[i][d] = acc_a[i][d];
          t_addr0 <= desc[BDESC_DQ_PTR] +
                     (b_bh * 64'(cfg_head_rows) + (64'(b_r) + 64'(cfg_qbb)) * 64'(cfg_blk)) * 64'(cfg_D) * 64'd8;
          t_two <= 1'b0; t_which <= 1'b0; t_row <= 0; t_col <= 0;
          t_state <= T_W;
          b_state <= B_ROW;
        end
        B_FLUSH: if (t_state == T_IDLE && s_state == S_IDLE) b_state <= B_DONE;
        default: ;
      endcase
      if (abort && b_state != B_IDLE) b_state <= B_IDLE;

      // ---------------- dS writer: a tile's 9-bit mantissas as int16, then its shift
      if (s_state == S_W) begin
        if (wr_fire && bw_ds) begin
          if (abort) s_state <= S_IDLE;
          else begin
            s_addr <= s_addr + 64'd16;
            if (s_row == 16'(cfg_blk)) s_state <= S_IDLE;
            else if (s_col + 16'd8 == 16'(cfg_blk)) begin s_col <= 0; s_row <= s_row + 1; end
            else s_col <= s_col + 16'd8;
          end
        end else if (abort && !(lock && lock_w)) s_state <= S_IDLE;
      end
      // ---------------- tile writer: dK then dV (phase 1) or dQ (phase 2), int64 rows
      if (t_state == T_W) begin
        if (wr_fire && !bw_ds) begin
          if (abort) t_state <= T_IDLE;
          else if (t_col + 16'd2 < 16'(cfg_D)) t_col <= t_col + 16'd2;
          else begin
            t_col <= 0;
            if (32'(t_row) + 1 < 32'(cfg_blk)) t_row <= t_row + 1;
            else begin
              t_row <= 0;
              if (t_two && !t_which) t_which <= 1'b1;
              else t_state <= T_IDLE;
            end
          end
        end else if (abort && !(lock && lock_w)) t_state <= T_IDLE;
      end

      // ---------------- output writer
      case (w_state)
        W_OUT: if (wr_fire || (abort && !(lock && lock_w))) begin
          if (abort) w_state <= W_IDLE;
          else if (32'(w_beat) + 1 < 32'(cfg_D) / 8) w_beat <= w_beat + 1;
          else begin
            w_beat <= 0;
            if (32'(w_i) + 1 < 32'(cfg_blk)) w_i <= w_i + 1;
            else begin w_i <= 0; w_state <= W_STATS; end
          end
        end
        W_STATS: if (wr_fire || (abort && !(lock && lock_w))) begin
          if (abort) w_state <= W_IDLE;
          else if (32'(w_beat) + 1 < 32'(cfg_blk) / 2) w_beat <= w_beat + 1;
          else begin w_beat <= 0; w_state <= W_IDLE; end
        end
        default: ;
      endcase
    end
  end
  `undef JOB
  `undef SCALAR
  `undef FAIL

`ifndef SYNTHESIS
  // ---------------------------------------------------------------- protocol assertions (--assert)
  logic        p_req_stall, p_resp_stall;
  logic [63:0] p_addr, p_resp_data;
  logic        p_write;
  logic [127:0] p_wdata;
  always_ff @(posedge clk) begin
    if (rst) begin
      p_req_stall <= 1'b0;
      p_resp_stall <= 1'b0;
    end else begin
      p_req_stall <= mem_req_valid && !mem_req_ready;
      p_addr <= mem_req_addr;
      p_write <= mem_req_write;
      p_wdata <= mem_req_wdata;
      p_resp_stall <= resp_valid && !resp_ready;
      p_resp_data <= resp_data;
      if (p_req_stall)
        assert (mem_req_valid && mem_req_addr == p_addr && mem_req_write == p_write &&
                (!p_write || mem_req_wdata == p_wdata))
        else $error("sattn_rocc: memory request changed or dropped while not accepted");
      if (p_resp_stall)
        assert (resp_valid && resp_data == p_resp_data)
        else $error("sattn_rocc: RoCC response changed or dropped before it was taken");
      if (mem_req_valid)
        assert (mem_req_addr[3:0] == 4'd0) else $error("sattn_rocc: unaligned memory request");
      if (mem_req_valid && mem_req_write)
        assert (wr_in_range) else $error("sattn_rocc: write outside the output buffers at %h", mem_req_addr);
      if (mem_resp_valid)
        assert (stale != 16'd0 || (job_busy && job_recv > job_issue)) else $error("sattn_rocc: memory response with no read in flight");
      if (cmd_valid && cmd_ready)
        assert (m_state == M_IDLE) else $error("sattn_rocc: command accepted while busy");
      if (c_state == C_QK && mac_en)
        assert (!qfull[c_qs] == 1'b0) else $error("sattn_rocc: Q.K^T issued without a Q block");
    end
  end
`endif
endmodule
