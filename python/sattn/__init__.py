"""sattn: one sparse-attention contract on CPU, GPU (Triton), RISC-V vector, a RoCC accelerator and MLIR.

    import sattn
    out = sattn.sparse_attention(q, k, v, sattn.BlockTopK(block=64, keep=0.125))

docs/contract.md defines what every backend computes; sattn.reference.attention is the float64 judge.
"""
from sattn.specs import BigBird, BlockTopK, Dense, SlidingWindow, Spec, TopKPerQuery
from sattn.specs import FlexBlockMask, FromMask, Intersection, MaskFn, PerHead, Union
from sattn.specs import MoBA
from sattn.learned import moba_attention
from sattn.mask import dense_mask
from sattn.plan import BlockPlan, plan
from sattn.api import backends, sparse_attention
from sattn.varlen import paged_attention, paged_plan, varlen_attention, varlen_plan
from sattn.errors import GradientNotSupported, NormalizerNotSupported, QuantNotSupported
from sattn.quant import Quant, Scales, ScalesMismatch, calibrate, load_scales
from sattn import reference
try:
    from sattn._version import __version__  # rendered from pyproject.toml at build time
except ImportError:  # a source checkout used without a build (PYTHONPATH=python)
    from sattn._source_version import version_from_pyproject as _v
    __version__ = _v()
    del _v

__all__ = [
    "Spec", "Dense", "SlidingWindow", "BlockTopK", "BigBird", "TopKPerQuery",
    "MaskFn", "FromMask", "FlexBlockMask", "Union", "Intersection", "PerHead", "MoBA", "moba_attention", "NSA",
    "sparse_attention", "varlen_attention", "varlen_plan", "paged_attention", "paged_plan", "dense_mask", "plan", "BlockPlan", "backends", "reference", "compile",
    "GradientNotSupported", "NormalizerNotSupported", "QuantNotSupported", "Quant", "Scales", "ScalesMismatch",
    "calibrate", "load_scales",
    "__version__",
]


def compile(spec, shape, target="rvv", **options):
    """Lowers `spec` for `shape` through the MLIR path (mlir/); see docs/mlir.md."""
    from sattn import compiler  # built only with the MLIR toolchain
    return compiler.compile(spec, shape, target=target, **options)


def __getattr__(name):
    # sattn.NSA is a torch module: torch is imported on first use, not by `import sattn`.
    if name == "NSA":
        from sattn.nsa import NSA
        return NSA
    raise AttributeError(f"module 'sattn' has no attribute {name!r}")
