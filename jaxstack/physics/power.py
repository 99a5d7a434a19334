"""L2: energy of one step from counted work, the power wall, and component power draws.

One chip, one step (a prefill or decode stage step); SI units (J, W, s, B, FLOP). Every
function is pure array math on one design point (vmappable, differentiable).

Energy of counted work (DeepStack cost/energy.py structure, DEEPSTACK.md §2.1; numbers in
HARDWARE.md §3), ``Work`` -> ``Energy``:
    compute         = F_tensor e_t(op) + F_vector e_v
                      e_t(op) = energy_per_flop / s(op), s = fp8_speedup (1-B operands),
                      fp4_speedup (0.5 B), 1 (2 B): the tensor datapath draws about the same
                      power at every width at its peak rate, so an 8-bit FLOP costs half
                      (HARDWARE.md §0/§3.3 [D]: TDP / dense peak, "FP8 half of these");
                      4-byte operands run on the vector units (as compute.flops_per_cycle)
    sram            = 8 B_sram e_sram(S) sram_energy_scale, e_sram = CACTI 7 22 nm 64-B read
                      per bit, log-log interpolated in the SRAM size S = sram_capacity (32 KiB
                      0.018, 256 KiB 0.079, 1 MiB 0.188, 8 MiB 0.59 pJ/b; clamped outside),
                      scaled x0.5 to 5-7 nm [U] (HARDWARE.md §3.4)
    dram_transfer   = 8 B_dram energy_per_bit           (core: array + on-die data path)
    dram_io         = 8 B_dram io_energy_per_bit        (HBM DQ/TSV/base die/PHY or 3D bond)
    dram_activation = 8 B_dram activation_energy_per_bit row_bytes / S_act
                      = (B_dram / S_act) activations x (activation_energy_per_bit 8 row_bytes)
                      J each; S_act = useful bytes per activation (``access_bytes``, default a
                      whole row; = row_bytes when rows are off, so the activation is folded
                      into a per-bit number: DreamRAM ACT+PRE 441 pJ per 2 KB page, §3.2)
    link            = 8 sum_l B_link,l energy_per_bit_l  (fabric level l = 1, 2, 3)
    static          = (static_power + n background_power) t   at leakage_ref_temp (the chip's
                      leakage growth with temperature and DRAM refresh are in thermal.py;
                      n = connected layers)
Energy is linear in ``Work``: the energy of two pieces of work is the sum of their energies.

Collective bytes onto fabric levels (``link_energy_level``): a (stride, size) rank group,
ranks grouped innermost-first (level sizes N1, N2, N3), spans level 2 if stride size > N1
and level 3 if stride size > N1 N2 (size > 1); the group's bytes are charged at the
outermost level it spans (an upper bound when inner levels are cheaper per bit).

Power wall (DeepStack §2.1, DEEPSTACK.md ~l.82): above TDP every clock (core, memory, NoC)
scales by f = min(1, (TDP / P)^(1/alpha)), alpha = 3 (P_dyn ~ f V^2, V ~ f); DeepStack
multiplies throughput by f, i.e. ``scaled_time`` = t / f (compute_fraction = 1), and the
throttled power is P f^alpha (= TDP under the same law).

Component powers (time-based, W): DRAM refresh = m refresh_power (x2 when hot, JEDEC rule
above 85 C, HARDWARE.md §4.1); DRAM background = n background_power (DRAMsim3 IDD3N, §3.1);
chip leakage P_s(T) = static_power min(exp(beta (T - T_ref)), LEAKAGE_CAP) (HotSpot
``-leakage_used`` form, HARDWARE.md §4.3; the cap keeps runaway designs finite).

Not modelled: per-op dtype of vector work, L2/register-file traffic beyond ``sram_bytes``,
read/write energy asymmetry, DRAM power-down states, link idle power, voltage/frequency
operating points other than the cubic power wall.
"""

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from ..types.hardware import Chip, Dram, Fabric
from . import relax
from .lean import clip, where

__all__ = ["Work", "Energy", "total", "step_energy", "tensor_energy_per_flop",
           "sram_energy_per_bit", "link_energy_level", "level_energy_per_bit", "link_bytes_by_level",
           "leakage_power", "dram_refresh_power", "dram_background_power", "frequency_scale", "scaled_time",
           "throttled_power", "POWER_WALL_ALPHA", "LEAKAGE_CAP", "SRAM_TABLE_BYTES",
           "SRAM_TABLE_J_PER_BIT"]

POWER_WALL_ALPHA = 3.0  # P_dyn ∝ f^alpha under DVFS (DeepStack default "cubic", HARDWARE.md §4.3)
LEAKAGE_CAP = 8.0       # [U] max leakage growth factor: beta 0.015/K reaches it 139 K above T_ref,
                        # far past any feasible junction; only keeps runaway designs finite
# CACTI 7, 22 nm itrs-hp, 64 B read, RAM mode (HARDWARE.md §3.4 [R]): size (B) -> J/bit
SRAM_TABLE_BYTES = np.array([32.0 * 2**10, 256.0 * 2**10, 2.0**20, 8.0 * 2**20])
SRAM_TABLE_J_PER_BIT = np.array([0.018e-12, 0.079e-12, 0.188e-12, 0.59e-12])
_LEVEL_MARGIN = 0.5  # ranks: stride * size is an integer, so "> N" is ">= N + 1"; relaxed steps stay sharp


class Work(NamedTuple):
    """Counted work of one chip in one step (any leaf may be an array of per-op values)."""

    tensor_flops: Any = 0.0    # FLOP on the tensor units (GEMMs, attention)
    vector_flops: Any = 0.0    # FLOP on the vector units (norms, activations, softmax, router)
    sram_bytes: Any = 0.0      # B written into + read out of the per-unit SRAM
    dram_bytes: Any = 0.0      # B moved to/from DRAM
    link_bytes_l1: Any = 0.0   # B this chip puts on links of fabric level 1 (innermost)
    link_bytes_l2: Any = 0.0
    link_bytes_l3: Any = 0.0
    time: Any = 0.0            # s, duration of the step


class Energy(NamedTuple):
    """Energy of one step by component (J)."""

    compute: Any
    sram: Any
    dram_activation: Any
    dram_transfer: Any
    dram_io: Any
    link: Any
    static: Any          # (chip static + DRAM background) x time, at the reference temperature

    @property
    def logic(self):
        """Dynamic energy dissipated in the logic die (compute, SRAM, link SerDes)."""
        return self.compute + self.sram + self.link

    @property
    def dram(self):
        """Dynamic energy dissipated in the DRAM (activation, core transfer, interface)."""
        return self.dram_activation + self.dram_transfer + self.dram_io

    @property
    def dynamic(self):
        return self.logic + self.dram

    @property
    def total(self):
        return self.dynamic + self.static


def total(e: Energy):
    """Total energy of ``e`` (J), same as ``e.total``."""
    return e.total


def tensor_energy_per_flop(chip: Chip, op_bytes):
    """J per tensor FLOP with ``op_bytes``-byte operands (2 BF16, 1 FP8, 0.5 FP4, 4 FP32 -> vector)."""
    speedup = where(op_bytes < 0.75, chip.fp4_speedup, where(op_bytes < 1.5, chip.fp8_speedup, 1.0))
    tensor = chip.energy_per_flop / jnp.maximum(speedup, 1e-6)
    return where(op_bytes >= 4.0, chip.vector_energy_per_flop, tensor)


_LOG_S = np.log(SRAM_TABLE_BYTES)
_LOG_E = np.log(SRAM_TABLE_J_PER_BIT)
_SLOPES = np.diff(_LOG_E) / np.diff(_LOG_S)          # log-log slope of each table segment


def sram_energy_per_bit(chip: Chip):
    """J/bit of one access to the per-unit SRAM of ``sram_capacity`` (CACTI table, log-log,
    held at the end values outside the table: ``np.interp``). Written as the first value plus
    each segment's slope times the part of that segment below the size, a few vector ops
    instead of ``jnp.interp``'s search (~130 traced equations per call)."""
    size = jnp.log(jnp.maximum(chip.sram_capacity, 1.0))
    covered = jnp.minimum(jnp.maximum(size - _LOG_S[:-1], 0.0), np.diff(_LOG_S))
    e22 = jnp.exp(_LOG_E[0] + jnp.sum(_SLOPES * covered))
    return chip.sram_energy_scale * e22


def _activations_per_row(dram: Dram, access_bytes):
    """row_bytes / useful bytes per activation (1 when streaming whole rows or rows are off)."""
    if access_bytes is None:
        return 1.0
    rows = dram.row_bytes > 0
    row = where(rows, dram.row_bytes, 1.0)
    return where(rows, row / clip(access_bytes, 1e-9, row), 1.0)


def step_energy(chip: Chip, dram: Dram, fabric: Fabric, work: Work, op_bytes=2.0, *, access_bytes=None):
    """Energy of ``work`` (a ``Work``) on one chip with ``op_bytes``-byte tensor operands.

    ``access_bytes``: useful DRAM bytes per row activation (None: whole rows, streaming).
    """
    w = work
    compute = w.vector_flops * chip.vector_energy_per_flop + w.tensor_flops * tensor_energy_per_flop(chip, op_bytes)
    sram = 8.0 * w.sram_bytes * sram_energy_per_bit(chip)
    bits = 8.0 * w.dram_bytes
    act = bits * dram.activation_energy_per_bit * _activations_per_row(dram, access_bytes)
    link = 8.0 * (w.link_bytes_l1 * fabric.l1.energy_per_bit + w.link_bytes_l2 * fabric.l2.energy_per_bit
                  + w.link_bytes_l3 * fabric.l3.energy_per_bit)
    static = (chip.static_power + dram_background_power(dram)) * w.time
    return Energy(compute=compute, sram=sram, dram_activation=act, dram_transfer=bits * dram.energy_per_bit,
                  dram_io=bits * dram.io_energy_per_bit, link=link, static=static)


# ---------------------------------------------------------------- fabric levels
def link_energy_level(fabric: Fabric, stride, size):
    """Outermost fabric level (0., 1. or 2.) a group of ``size`` ranks ``stride`` apart spans."""
    stride, size = jnp.asarray(stride), jnp.asarray(size)
    span = stride * size
    multi = relax.step(size - 1.0 - _LEVEL_MARGIN)
    n1 = fabric.l1.size
    n12 = fabric.l1.size * fabric.l2.size
    return multi * (relax.step(span - n1 - _LEVEL_MARGIN) + relax.step(span - n12 - _LEVEL_MARGIN))


def _level_weights(level):
    w3 = clip(level - 1.0, 0.0, 1.0)
    w1 = 1.0 - clip(level, 0.0, 1.0)
    return w1, 1.0 - w1 - w3, w3


def level_energy_per_bit(fabric: Fabric, level):
    """J/bit of fabric level ``level`` (0, 1, 2; linear between levels for fractional values)."""
    w1, w2, w3 = _level_weights(level)
    return w1 * fabric.l1.energy_per_bit + w2 * fabric.l2.energy_per_bit + w3 * fabric.l3.energy_per_bit


def link_bytes_by_level(fabric: Fabric, stride, size, nbytes):
    """(l1, l2, l3) bytes: ``nbytes`` of a (stride, size) group's collective on its outermost level."""
    w1, w2, w3 = _level_weights(link_energy_level(fabric, stride, size))
    return w1 * nbytes, w2 * nbytes, w3 * nbytes


# ---------------------------------------------------------------- time-based power
def leakage_power(chip: Chip, t_junction):
    """Chip static power at junction temperature ``t_junction`` (degC), W."""
    x = jnp.minimum(chip.leakage_temp_coeff * (t_junction - chip.leakage_ref_temp), float(np.log(LEAKAGE_CAP)))
    return chip.static_power * jnp.exp(x)


def dram_refresh_power(dram: Dram, hot=0.0):
    """Refresh power of all m layers (W); ``hot`` in [0, 1] = fraction of time with doubled refresh."""
    return dram.total_layers * dram.refresh_power * (1.0 + hot)


def dram_background_power(dram: Dram):
    """Active-standby power of the n connected layers' channels (W)."""
    return dram.connected_layers * dram.background_power


# ---------------------------------------------------------------- power wall
def frequency_scale(chip: Chip, power):
    """Clock scale of the power wall: min(1, (TDP / P)^(1/alpha))."""
    return relax.minimum(1.0, jnp.power(chip.tdp / jnp.maximum(power, 1e-9), 1.0 / POWER_WALL_ALPHA))


def scaled_time(t, f, compute_fraction=1.0):
    """Step time at clock scale ``f``: the clock-bound fraction stretches by 1/f, the rest not.

    Default compute_fraction = 1 is DeepStack's rule: the wall scales core, memory and NoC
    clocks alike and throughput is multiplied by f (DEEPSTACK.md §2.1).
    """
    return t * (compute_fraction / jnp.maximum(f, 1e-9) + (1.0 - compute_fraction))


def throttled_power(power, f):
    """Power at clock scale ``f`` under the wall's law P ∝ f^alpha (= TDP when throttled)."""
    return power * jnp.power(f, POWER_WALL_ALPHA)
