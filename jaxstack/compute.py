"""L2: single-chip compute throughput and the per-op roofline.

Model (issue 2 level; tiles, waves and SRAM-limited reuse arrive with the 3D-memory issue):
    t_op = max(flops / (F_peak(dtype) * eta_c), bytes / BW_eff) + kernels * t_kernel
with F_peak = units * clock * FLOP/cycle/unit * dtype speed-up (FP8 x2, FP4 x4 where the
chip has it), eta_c the achieved fraction of tensor peak on large GEMMs (MAMF,
HARDWARE.md §6) and t_kernel the fixed per-kernel overhead. Element-wise ops use the
vector units. Does not model: tile/wave quantisation, L2 reuse, SRAM spills (issue 4).
"""

import jax.numpy as jnp

from . import relax
from .hardware import Chip

__all__ = ["tensor_peak", "vector_peak", "roofline_time"]


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
