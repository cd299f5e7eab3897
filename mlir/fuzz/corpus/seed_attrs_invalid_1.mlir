func.func @f() attributes {a = #sattn.sliding_window<window = 4, dilation = 0>} { return }
