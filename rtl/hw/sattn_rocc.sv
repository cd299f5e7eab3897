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

  typedef enum logic [2:0] {MODE_SPDOT, MODE_FUSED, MODE_SPMM, MODE_GATHER, MODE_SCATTER} mode_e;

  // ---------------------------------------------------------------- descriptor and configuration
  logic [63:0] desc [DESC_WORDS];
  mode_e       mode;
  logic [15:0] cfg_B, cfg_Hq, cfg_Hkv, cfg_group, cfg_nkb, cfg_nqb, cfg_qbb;
  logic [7:0]  cfg_D;
  logic [6:0]  cfg_blk;
  logic [31:0] cfg_nnz, cfg_nbm, cfg_Lk;
  logic [5:0]  cfg_shift;
  logic [31:0] cfg_head_rows;
  logic [63:0] cfg_prows;          // plan rows: plan_b * plan_h * n_q_blocks
  logic        cfg_pb1, cfg_ph1;

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

  assign sel_w = lock ? lock_w : cw_valid;
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
    else if (mode == MODE_SPDOT) wr_in_range = beat_in(cw_addr, desc[DESC_SCORES_PTR], desc[DESC_SCORES_BYTES]);
    else wr_in_range = beat_in(cw_addr, desc[DESC_OUT_PTR], desc[DESC_OUT_BYTES]) ||
                       beat_in(cw_addr, desc[DESC_STATS_PTR], desc[DESC_STATS_BYTES]);
  end

  // ---------------------------------------------------------------- DMA job engine
  // A job reads `nbeats` consecutive beats and scatters them into one destination; the loader
  // (and the descriptor fetch) run one job at a time, with all of a job's beats in flight.
  typedef enum logic [2:0] {J_DESC, J_SCALAR, J_QTILE, J_KVTILE, J_BITMAP, J_STILE} jkind_e;
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
  assign mac_en = (c_state == C_QK || c_state == C_PV) && ring_full[c_rs] && !abort;
  assign mac_first = (c_k == 16'd0);
  assign mac_last = in_pv ? (c_k == 16'(cfg_blk) - 16'd1) : (c_k == 16'(cfg_D) - 16'd1);
  always_comb begin
    for (int r = 0; r < R; r++) begin
      if (in_pv) mac_a[r] = $signed({1'b0, psram[c_t1 * R + r][c_e[5:0]][c_k]});
      else mac_a[r] = 9'(qbuf[c_qs][c_t1 * R + r][c_k]);
    end
    for (int c = 0; c < C; c++) begin
      if (in_pv) mac_b[c] = ring[c_rs][c_k][c_t2 * C + c];
      else mac_b[c] = ring[c_rs][c_t2 * C + c][c_k];
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

  // ---------------------------------------------------------------- compute write requests
  logic c_writing;
  // At most one writer is active: score tiles (SPDOT_BSR), the output writer, or the copy engine.
  assign c_writing = (c_state == C_SWRITE || w_state != W_IDLE || x_state == X_WR);
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
            if (32'(job_row) * 2 < DESC_WORDS) desc[job_row * 2] = mem_resp_rdata[63:0];
            if (32'(job_row) * 2 + 1 < DESC_WORDS) desc[job_row * 2 + 1] = mem_resp_rdata[127:64];
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
                for (int i = 0; i < DESC_WORDS; i++) desc[i] = 64'd0;
                `JOB(J_DESC, cmd_rs1, (DESC_WORDS + 1) / 2)
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
                for (int i = 0; i < DESC_WORDS; i++) desc[i] = 64'd0;
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
          end else if (c_state == C_DONE || x_state == X_DONE) begin
            // Read-side faults stopped the command above; a refused write is reported once the
            // command has otherwise completed (it never changes which reads happen).
            resp_data_r <= 64'(wr_fault ? ERR_DMA_WRITE_FAULT : ERR_OK);
            last_error <= wr_fault ? ERR_DMA_WRITE_FAULT : ERR_OK;
            l_state <= L_IDLE; c_state <= C_IDLE; x_state <= X_IDLE; m_state <= M_RESP;
          end
        end
        M_DRAIN: if (!job_busy && !lock && c_state == C_IDLE && x_state == X_IDLE && w_state == W_IDLE) begin
          abort <= 1'b0; l_state <= L_IDLE; x_err <= ERR_OK;
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
