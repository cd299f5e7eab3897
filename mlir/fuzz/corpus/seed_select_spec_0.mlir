!long = memref<1x4x2048x64xf32>
!short = memref<1x1x64x64xf32>

func.func @long(%q: !long) {
  sattn.attention %q, %q, %q, %q {density = 0.125 : f64} : !long, !long, !long, !long
  return
}

func.func @short(%q: !short) {
  sattn.attention %q, %q, %q, %q {density = 0.125 : f64, causal} : !short, !short, !short, !short
  return
}

func.func @nodensity(%q: !short) {
  sattn.attention %q, %q, %q, %q : !short, !short, !short, !short
  return
}

func.func @given(%q: !short) {
  sattn.attention %q, %q, %q, %q {spec = #sattn.bigbird<block = 16>} : !short, !short, !short, !short
  return
}
