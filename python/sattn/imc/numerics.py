"""The numerical model: attention computed the way the arrays compute it, against float64.

Per (batch, query head): K and V are quantised to `weight_bits` with one scale per key block
(the block written into a slot), Q per query vector and the softmax P per query row to
`input_bits`. Weights are split into `bits_per_cell` slices (signed as the design says:
differential pairs, an offset removed digitally, or two's complement), inputs into `dac.bits`
chunks fed over `input_cycles` cycles. Every (chunk, slice) partial sum of one array -- the
rows of one array, i.e. `array.rows` of D for Q·Kᵀ and of a key block for P·V -- goes through
an ADC of `adc.bits` over its full-scale range (analog designs; digital ones add exactly), with
ISAAC's column flipping when `adc.flip_encoding` (a slice column whose weights sum past half
its range is stored inverted, so partial sums need one ADC bit less), and optional Gaussian cell variation (sigma as a fraction of a cell's range, drawn once per written
block from `seed`). Shift-and-add and the softmax are float64 (digital).
"""
from __future__ import annotations

import numpy as np

from sattn.imc.arch import Arch

_PARTIALS_PER_PRODUCT = 1 << 22   # bounds the memory of one batch of partial sums (32 MiB)


def _quantise(x, bits, axis):
    """Signed symmetric: integers in [-(2^(bits-1)-1), 2^(bits-1)-1] and the scale per slice along axis."""
    top = float(2 ** (bits - 1) - 1)
    m = np.max(np.abs(x), axis=axis, keepdims=True)
    scale = np.where(m > 0, m / top, 1.0)
    return np.rint(x / scale), scale


class _Array:
    """Q·W through the design's arrays: x (n, rows) integers, w (rows, cols) integers."""

    def __init__(self, arch: Arch, noise_sigma: float, rng, exact: bool):
        self.arch, self.sigma, self.rng, self.exact = arch, noise_sigma, rng, exact
        self.cb = arch.array["bits_per_cell"]
        self.db = arch.dac["bits"]
        self.wb = arch.operands["weight_bits"]
        self.ib = arch.operands["input_bits"]
        self.mode = arch.operands["signed_weights"]
        self.R = arch.array["rows"]
        self.adc_bits = arch.adc["bits"] if arch.analog else 0
        self.flip = bool(arch.adc.get("flip_encoding", False)) and bool(self.adc_bits)

    def _weight_planes(self, w):
        """[(sign, shift, slice values)] so that w = sum sign * 2^shift * slice, plus the digital offset."""
        planes, offset = [], 0.0
        if self.mode == "differential":
            parts, bits = ((1.0, np.maximum(w, 0)), (-1.0, np.maximum(-w, 0))), self.wb - 1
        else:  # offset and two's complement both store w + 2^(wb-1) in wb unsigned bits
            offset = float(2 ** (self.wb - 1))
            parts, bits = ((1.0, w + offset),), self.wb
        n_slices = -(-bits // self.cb)
        for sign, mag in parts:
            for s in range(n_slices):
                sl = np.mod(np.floor(mag / 2.0 ** (s * self.cb)), 2.0 ** self.cb)
                if self.sigma > 0:
                    sl = sl + self.rng.normal(0.0, self.sigma * (2.0 ** self.cb - 1), size=sl.shape)
                planes.append((sign, s * self.cb, sl))
        return planes, offset

    def _input_planes(self, x):
        """[(sign, shift, chunk values)] with x = sum sign * 2^shift * chunk (sign-magnitude, bit-serial)."""
        planes = []
        bits = self.ib - 1
        n_chunks = -(-bits // self.db)
        for sign, mag in ((1.0, np.maximum(x, 0)), (-1.0, np.maximum(-x, 0))):
            if not mag.any():
                continue
            for t in range(n_chunks):
                planes.append((sign, t * self.db, np.mod(np.floor(mag / 2.0 ** (t * self.db)), 2.0 ** self.db)))
        return planes

    def _adc(self, p, rows):
        if self.exact or not self.adc_bits:
            return p
        fs = rows * (2.0 ** self.db - 1) * (2.0 ** self.cb - 1) / (2.0 if self.flip else 1.0)
        levels = 2.0 ** self.adc_bits - 1
        step = max(fs / levels, 1.0)            # an ADC with bits to spare resolves integer sums exactly
        return np.clip(np.rint(p / step), 0.0, levels) * step

    def matmul(self, x, w):
        if self.exact:
            return x @ w
        wplanes, offset = self._weight_planes(w)
        xplanes = self._input_planes(x)
        if not xplanes:
            return np.zeros((x.shape[0], w.shape[1]))
        cmax = 2.0 ** self.cb - 1
        wgt_w = np.array([ws * 2.0 ** wshift for ws, wshift, _ in wplanes])
        wgt_x = np.array([xs * 2.0 ** xshift for xs, xshift, _ in xplanes])
        n, cols = x.shape[0], w.shape[1]
        out = np.zeros((n, cols))
        for lo in range(0, w.shape[0], self.R):          # one array per `rows` rows
            hi = min(lo + self.R, w.shape[0])
            wt = np.stack([wc[lo:hi] for _, _, wc in wplanes], axis=1)        # (rows, slices, cols)
            flipped = None
            if self.flip:
                flipped = wt.sum(axis=0) > 0.5 * cmax * (hi - lo)               # (slices, cols)
                wt = np.where(flipped, cmax - wt, wt)
            xt = np.stack([xc[:, lo:hi] for _, _, xc in xplanes])               # (chunks, n, rows)
            xflat = xt.reshape(-1, hi - lo)
            xsum = (xt.sum(axis=2) * cmax)[:, :, None, None]
            # Every (chunk, slice) partial sum of this array in one product, a few columns at a time.
            step = max(1, _PARTIALS_PER_PRODUCT // (len(xplanes) * n * len(wplanes)))
            for c0 in range(0, cols, step):
                c1 = min(c0 + step, cols)
                wc = wt[:, :, c0:c1]
                p = (xflat @ wc.reshape(hi - lo, -1)).reshape(len(xplanes), n, len(wplanes), c1 - c0)
                p = self._adc(p, hi - lo)
                if flipped is not None:                                         # undo the inversion digitally
                    p = np.where(flipped[:, c0:c1], xsum - p, p)
                out[:, c0:c1] += np.einsum("c,s,cnsk->nk", wgt_x, wgt_w, p, optimize=True)
            if offset:
                out -= offset * x[:, lo:hi].sum(axis=1, keepdims=True)
        return out


def simulate(q, k, v, mask, block: int, arch: Arch, *, scale: float, noise_sigma=None, seed: int = 0,
             exact: bool = False) -> np.ndarray:
    """float64 (B, Hq, Lq, D): attention over `mask` (B, Hq, Lq, Lk) as `arch`'s arrays compute it.

    exact=True skips every quantisation (the same blocking in float64: equals the reference)."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    group = Hq // Hkv
    sigma = arch.noise["cell_sigma"] if noise_sigma is None else float(noise_sigma)
    rng = np.random.default_rng(seed)
    arr = _Array(arch, sigma, rng, exact)
    ib = arch.operands["input_bits"]
    n_kb = -(-Lk // block)
    out = np.zeros((B, Hq, Lq, D))
    for b in range(B):
        for g in range(Hkv):
            kk, vv = k[b, g], v[b, g]
            if exact:
                kq, ks, vq, vs = kk, np.ones((Lk, 1)), vv, np.ones((Lk, 1))
            else:
                pad = n_kb * block - Lk
                kb = np.pad(kk, ((0, pad), (0, 0))).reshape(n_kb, block, D)
                vb = np.pad(vv, ((0, pad), (0, 0))).reshape(n_kb, block, D)
                kq, ks = _quantise(kb, arch.operands["weight_bits"], axis=(1, 2))
                vq, vs = _quantise(vb, arch.operands["weight_bits"], axis=(1, 2))
                kq, vq = kq.reshape(-1, D)[:Lk], vq.reshape(-1, D)[:Lk]
                ks = np.repeat(ks.reshape(-1), block)[:Lk, None]
                vs = np.repeat(vs.reshape(-1), block)[:Lk, None]
            for h in range(g * group, (g + 1) * group):
                m = mask[b, h]
                rows = m.any(axis=1)
                if not rows.any():
                    continue
                qq = q[b, h]
                if exact:
                    qi, qs = qq, np.ones((Lq, 1))
                else:
                    qi, qs = _quantise(qq, ib, axis=1)
                s = arr.matmul(qi, kq.T) * qs * ks.T * scale
                s = np.where(m, s, -np.inf)
                mx = np.where(rows[:, None], s.max(axis=1, keepdims=True), 0.0)
                e = np.where(m, np.exp(s - mx), 0.0)
                p = e / np.where(rows[:, None], e.sum(axis=1, keepdims=True), 1.0)
                acc = np.zeros((Lq, D))
                for c in range(n_kb):                      # one V block per slot
                    lo, hi = c * block, min((c + 1) * block, Lk)
                    pc = p[:, lo:hi]
                    if not pc.any():
                        continue
                    if exact:
                        pi, ps = pc, np.ones((Lq, 1))
                    else:
                        top = float(2 ** (ib - 1) - 1)
                        pm = pc.max(axis=1, keepdims=True)
                        ps = np.where(pm > 0, pm / top, 1.0)
                        pi = np.rint(pc / ps)
                    acc += arr.matmul(pi, vq[lo:hi]) * ps * vs[lo]
                out[b, h] = np.where(rows[:, None], acc, 0.0)
    return out


def errors(q, k, v, mask, block, arch, *, scale, noise_sigma=None, seed=0) -> dict:
    """Max and mean |model - float64 reference| over rows with a visible key."""
    from sattn import reference
    ref = reference.attention(q, k, v, None, scale=scale, mask=mask)
    got = simulate(q, k, v, mask, block, arch, scale=scale, noise_sigma=noise_sigma, seed=seed)
    rows = np.asarray(mask).any(axis=-1)
    diff = np.abs(got - ref)[rows]
    ref_scale = float(np.abs(ref[rows]).max()) if rows.any() else 0.0
    return {"max_abs_err": float(diff.max()) if diff.size else 0.0,
            "mean_abs_err": float(diff.mean()) if diff.size else 0.0,
            "ref_max_abs": ref_scale, "noise_sigma": arch.noise["cell_sigma"] if noise_sigma is None
            else float(noise_sigma), "seed": int(seed)}
