func.func @f() attributes {a = #sattn.bigbird<seed = -3>} { return }
