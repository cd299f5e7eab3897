func.func @f() attributes {a = #sattn.block_topk<local_blocks = -1>} { return }
