"""Typed errors of the sattn API beyond TypeError/ValueError."""
from __future__ import annotations


class GradientNotSupported(NotImplementedError):
    """A call asked for gradients (torch grad mode on and q, k or v requiring grad) from a backend
    that has no backward: its output would come back detached and the loss would get no gradient
    through it. The message names the backend and the input."""


class QuantNotSupported(NotImplementedError):
    """A quantized call (sparse_attention(..., quant=...)) to a backend with no quantized path; the
    message names the backend and the scheme."""


class NormalizerNotSupported(NotImplementedError):
    """A call with normalizer='sigmoid' or 'relu2' (sparse_attention(..., normalizer=...)) that
    cannot be honoured: a backend without that normalizer, return_lse=True (only softmax has a
    log-sum-exp), or a quantized call. The message names the argument and what works instead."""


class AttentionNotSupported(NotImplementedError):
    """A model, option or input that sattn's attention function for Hugging Face transformers
    (sattn.integrations.transformers) cannot honour: a padding or custom attention mask, attention
    dropout, returned attention weights, a model family or cache it does not know. The message
    names what is unsupported and what to do instead; nothing is ignored silently."""


class ContextParallelError(RuntimeError):
    """A sattn.distributed call failed on this rank; `rank` is this rank in the process group,
    `step` the phase of the call (e.g. 'forward: receiving keys/values'), `peer` the rank it was
    waiting for (None for a collective)."""

    def __init__(self, rank: int, step: str, peer, detail: str):
        self.rank, self.step, self.peer, self.detail = rank, step, peer, detail
        who = "" if peer is None else f" from rank {peer}"
        super().__init__(f"rank {rank}: {step}{who} failed: {detail}")

    def __reduce__(self):
        return (type(self), (self.rank, self.step, self.peer, self.detail))


class PeerFailure(ContextParallelError):
    """A peer died, raised, or did not answer within the call's timeout."""


class ShardMismatch(ContextParallelError, ValueError):
    """The ranks' shards or arguments disagree (shapes, dtype, layout, tile, scale or spec), or a
    rank refused its own inputs; detected by one all_gather before any exchange, on every rank."""

    def __init__(self, rank: int, step: str, detail: str, peer=None):
        ContextParallelError.__init__(self, rank, step, peer, detail)

    def __reduce__(self):
        return (type(self), (self.rank, self.step, self.detail, self.peer))
