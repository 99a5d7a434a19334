"""L2: tile-level compute-communication overlap (wave pipelining, DeepStack §2.6).

A GEMM of W waves produces its output (or consumes its input) wave by wave, so the
communication of one wave can run while the next wave computes. With compute time C, the
collective's latency term H and bandwidth term B (``network`` returns (H, B)):
    W > 1:  T = C/W + max(C (W-1)/W, H + B (W-1)/W) + H + B/W
    W <= 1: T = C + H + B
A prologue of one compute wave, a steady state where the remaining compute overlaps the
communication of the waves already produced, and an epilogue that sends the last wave.
The latency H is paid twice (it is not amortised), the bandwidth B is split per wave, so
when H > C (W-1)/W the pipeline is slower than C + H + B; a scheduler would then not
overlap, so ``overlapped`` returns min(pipelined, sequential) (DeepStack returns the
pipelined value; the two differ only for latency-dominated tiny GEMMs).
Properties (tests/test_compute.py): max(C, H + B) <= T <= C + H + B, and T = C + H + B at
W = 1. ``effective_waves`` clips the wave count to the number of communication chunks.
Not modelled: contention of the collective with the GEMM for SMs or DRAM bandwidth (see
validation/kernels.py for how the kernel set accounts for it), PP micro-batch bubbles.
"""

import jax.numpy as jnp

from . import relax
from .lean import where

__all__ = ["overlapped", "pipelined", "sequential", "effective_waves"]


def sequential(compute, latency, bandwidth):
    """No overlap: compute, then communicate."""
    return compute + latency + bandwidth


def overlapped(compute, latency, bandwidth, waves):
    """Wave-pipelined time, never slower than no overlap (module docstring); ``waves`` >= 1."""
    return jnp.minimum(pipelined(compute, latency, bandwidth, waves), sequential(compute, latency, bandwidth))


def pipelined(compute, latency, bandwidth, waves):
    """DeepStack's formula as published (no min with the sequential time); waves rounded up."""
    W = jnp.maximum(relax.ceil(waves), 1.0)
    C, H, B = compute, latency, bandwidth
    pipe = C / W + jnp.maximum(C * (W - 1.0) / W, H + B * (W - 1.0) / W) + H + B / W
    return where(W > 1.0, pipe, sequential(C, H, B))


def effective_waves(waves, chunks=None):
    """Pipeline depth: the GEMM's waves, at most the number of communication chunks."""
    W = jnp.maximum(relax.ceil(waves), 1.0)
    return W if chunks is None else jnp.minimum(W, chunks)
