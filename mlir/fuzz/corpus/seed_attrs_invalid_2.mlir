func.func @f() attributes {a = #sattn.block_topk<keep = 1.5>} { return }
