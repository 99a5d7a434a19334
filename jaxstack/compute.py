"""L2: single-chip cost of one op: GEMM, MoE expert GEMM, attention core, element-wise.

This is the seam between the op table (``ops``) and the chip model: ``ops`` says how much
work an op does, these functions say how long it takes on one chip and how many FLOPs
and DRAM bytes it costs. Current model (issue 2 level):
    t_op = max(flops / (F_peak(dtype) * eta_c), bytes / BW_eff) + kernels * t_kernel
with F_peak = units * clock * FLOP/cycle/unit * dtype speed-up (FP8 x2, FP4 x4 where the
chip has it), eta_c the achieved fraction of tensor peak on large GEMMs (MAMF,
HARDWARE.md §6), BW_eff from ``memory.effective_bandwidth`` and t_kernel the fixed
per-kernel overhead. GEMM bytes: weights K N w streamed once + activations M (K + N) a.
Not yet modelled (issue 4): tile shapes, wave quantisation, SRAM-limited reuse, L2.
"""

from typing import NamedTuple

import jax.numpy as jnp

from . import memory, relax
from .hardware import Chip, Dram

__all__ = ["Cost", "tensor_peak", "vector_peak", "roofline_time", "gemm", "expert_gemm", "attention",
           "elementwise"]


class Cost(NamedTuple):
    time: jnp.ndarray    # s
    flops: jnp.ndarray   # FLOP
    nbytes: jnp.ndarray  # DRAM bytes


def tensor_peak(chip: Chip, elem_bytes):
    """Dense tensor FLOP/s at the GEMM operand width ``elem_bytes`` (2 BF16, 1 FP8, 0.5 FP4)."""
    speedup = jnp.where(elem_bytes <= 0.5, chip.fp4_speedup, jnp.where(elem_bytes <= 1.0, chip.fp8_speedup, 1.0))
    return chip.compute_units * chip.clock * chip.tensor_flops_per_cycle * speedup


def vector_peak(chip: Chip):
    return chip.compute_units * chip.clock * chip.vector_flops_per_cycle


def roofline_time(chip: Chip, flops, nbytes, peak_flops, bandwidth, kernels):
    """Seconds for one op: the slower of compute and memory, plus fixed kernel overhead."""
    t_c = flops / (peak_flops * chip.compute_efficiency)
    t_m = nbytes / bandwidth
    return relax.maximum(t_c, t_m) + kernels * chip.op_overhead


def gemm(chip: Chip, dram: Dram, M, K, N, w_bytes, a_bytes, on=1.0) -> Cost:
    """(M x K) activations times a (K x N) weight; ``on`` = 0 switches the op off."""
    flops = 2.0 * M * K * N * on
    nbytes = (K * N * w_bytes + M * (K + N) * a_bytes) * on
    t = roofline_time(chip, flops, nbytes, tensor_peak(chip, w_bytes), memory.effective_bandwidth(dram), on)
    return Cost(t, flops, nbytes)


def expert_gemm(chip: Chip, dram: Dram, assignments, touched, K, N, w_bytes, a_bytes, on=1.0) -> Cost:
    """Grouped expert FFN (gate/up + down, 3 kernels): ``assignments`` token-expert pairs
    over ``touched`` experts of K x N SwiGLU weights (N = 3 x intermediate, all three mats)."""
    flops = 2.0 * assignments * K * N * on
    nbytes = (touched * K * N * w_bytes + assignments * (2 * K + N) * a_bytes) * on
    t = roofline_time(chip, flops, nbytes, tensor_peak(chip, w_bytes), memory.effective_bandwidth(dram), 3.0 * on)
    return Cost(t, flops, nbytes)


def attention(chip: Chip, dram: Dram, flops, kv_bytes, io_bytes, w_bytes) -> Cost:
    """Attention core: ``kv_bytes`` of KV cache read, ``io_bytes`` of Q/O traffic."""
    nbytes = kv_bytes + io_bytes
    t = roofline_time(chip, flops, nbytes, tensor_peak(chip, jnp.maximum(w_bytes, 2.0)),
                      memory.effective_bandwidth(dram), 1.0)
    return Cost(t, flops, nbytes)


def elementwise(chip: Chip, dram: Dram, flops, nbytes, kernels) -> Cost:
    t = roofline_time(chip, flops, nbytes, vector_peak(chip), memory.effective_bandwidth(dram), kernels)
    return Cost(t, flops, nbytes)
