func.func @f() attributes {a = #sattn.sliding_window<window = 0>} { return }
