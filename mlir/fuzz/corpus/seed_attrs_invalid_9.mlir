func.func @f() attributes {a = #sattn.topk_per_query<k = 0>} { return }
