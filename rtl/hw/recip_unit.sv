// Sequential reciprocal for softmax normalisation: q = floor(2^32 / s), s >= 1, by restoring
// division (one quotient bit per cycle, 33 cycles). s = 0 (a row with no visible key) gives 0 in
// one cycle, so that row's output is exactly zero. Runs beside the P.V phase, so its latency is
// hidden whenever a row has at least two entries.
module recip_unit (
    input  logic        clk,
    input  logic        rst,
    input  logic        start,
    input  logic [31:0] s,
    output logic        busy,
    output logic        done,     // one-cycle pulse with q valid
    output logic [32:0] q
);
  logic [32:0] rem;
  logic [32:0] quo;
  logic [31:0] div;
  logic [5:0]  step;
  always_ff @(posedge clk) begin
    done <= 1'b0;
    if (rst) begin
      busy <= 1'b0;
    end else if (start && !busy) begin
      if (s == 32'd0) begin
        q <= 33'd0;
        done <= 1'b1;
      end else begin
        busy <= 1'b1;
        div <= s;
        // Dividend 2^32: its single 1 bit enters the remainder first, then 32 zeros.
        rem <= 33'd0;
        quo <= 33'd0;
        step <= 6'd0;
      end
    end else if (busy) begin
      // Bit 32 - step of the dividend 2^32 is 1 only at step 0.
      logic [33:0] t2;
      t2 = {rem, (step == 6'd0)} - {2'b0, div};
      if (!t2[33]) begin
        rem <= t2[32:0];
        quo <= {quo[31:0], 1'b1};
      end else begin
        rem <= {rem[31:0], (step == 6'd0)};
        quo <= {quo[31:0], 1'b0};
      end
      if (step == 6'd32) begin
        busy <= 1'b0;
        done <= 1'b1;
        q <= t2[33] ? {quo[31:0], 1'b0} : {quo[31:0], 1'b1};
      end
      step <= step + 6'd1;
    end
  end
endmodule
