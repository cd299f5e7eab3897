func.func @f() attributes {a = #sattn.block_topk<score = "median">} { return }
