// One lane of the fixed-point softmax: p = 2^(-d / 2^EXP_FRAC) as an unsigned 8-bit weight.
// d = m - y >= 0 is the distance below the row maximum in the base-2 score domain. The integer part
// of d/256 shifts, the fraction indexes a 256-entry table of 2^(-f/256) in Q16 (generated from
// rtl/spec/commands.json), and the result is rounded to 8 bits; the row maximum (d = 0) maps to 255.
// Weights below 2^-16 are 0. Combinational: the softmax unit instantiates MAX_BLK lanes.
module softmax_lane
  import sattn_rocc_pkg::*;
(
    input  logic        valid,   // a visible score in a row that has one
    input  logic [32:0] d,       // m - y, non-negative
    output logic [7:0]  p
);
  logic [15:0] t;
  logic [16:0] shifted;
  logic [24:0] n;
  always_comb begin
    n = d[32:8];
    t = EXP_LUT[d[7:0]];
    shifted = 17'(t >> n[3:0]) + 17'd128;
    if (!valid || n >= 25'd16) p = 8'd0;
    else if (shifted[16:8] > 9'd255) p = 8'd255;
    else p = shifted[15:8];
  end
endmodule
