// Output-stationary int8 MAC array: ROWS x COLS processing elements, each holding one int32
// accumulator. Every enabled cycle PE(r,c) adds a[r] * b[c]; `first` restarts the accumulation
// (acc = a*b) so back-to-back tiles need no clearing cycle. `a` is 9-bit so the same array takes
// signed int8 (Q) and unsigned 8-bit softmax weights P (zero-extended) for P.V.
// The accumulators are registers: the cycle after the last enabled step of a tile they hold the
// finished tile, which the owner reads while the next tile's first step is already issuing.
module mac_array #(
    parameter int ROWS = 16,
    parameter int COLS = 16
) (
    input  logic              clk,
    input  logic              en,
    input  logic              first,
    input  logic signed [8:0] a   [ROWS],
    input  logic signed [7:0] b   [COLS],
    output logic signed [31:0] acc [ROWS][COLS]
);
  always_ff @(posedge clk) begin
    if (en) begin
      for (int r = 0; r < ROWS; r++) begin
        for (int c = 0; c < COLS; c++) begin
          acc[r][c] <= (first ? 32'sd0 : acc[r][c]) + 32'(a[r] * b[c]);
        end
      end
    end
  end
endmodule
