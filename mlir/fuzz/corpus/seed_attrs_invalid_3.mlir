func.func @f() attributes {a = #sattn.block_topk<block = 5000>} { return }
