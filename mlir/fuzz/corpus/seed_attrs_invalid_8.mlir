func.func @f() attributes {a = #sattn.bigbird<random_blocks = -2>} { return }
