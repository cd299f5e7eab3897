func.func @f() attributes {a = #sattn.block_topk<block = 4294967296>} { return }
