func.func @f() attributes {a = #sattn.dense<causal = 1>} { return }
