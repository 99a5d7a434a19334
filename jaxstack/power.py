"""L2: energy, power wall and a first-order thermal estimate for one chip.

Energy of one decode stage step on one chip (DeepStack cost/energy.py structure):
    E = FLOPs * e_flop + DRAM bytes * 8 * e_dram + link bytes * 8 * e_link + P_static * t
Power P = E / t. Power wall (DeepStack §2.1): above TDP the clocks scale by
f = (TDP / P)^(1/alpha), alpha = 3 ("cubic"); reported as ``frequency_scale``.
Temperature (DeepStack source-visible constants): T = T_amb + (R_base + m R_layer) * P.
Issue 6 replaces the thermal estimate with a compact stack model and feeds refresh back.
"""

import jax.numpy as jnp

from .hardware import Chip, Dram, Fabric, Thermal

__all__ = ["step_energy", "frequency_scale", "temperature", "POWER_WALL_ALPHA"]

POWER_WALL_ALPHA = 3.0  # P_dyn ∝ f^alpha under DVFS (DeepStack default, HARDWARE.md §4.3)


def step_energy(chip: Chip, dram: Dram, fabric: Fabric, flops, dram_bytes, link_bytes, t):
    return (flops * chip.energy_per_flop + dram_bytes * 8.0 * dram.energy_per_bit
            + link_bytes * 8.0 * fabric.l1.energy_per_bit + chip.static_power * t)


def frequency_scale(chip: Chip, power):
    return jnp.minimum(1.0, jnp.power(chip.tdp / jnp.maximum(power, 1e-9), 1.0 / POWER_WALL_ALPHA))


def temperature(thermal: Thermal, dram: Dram, power):
    return thermal.ambient + (thermal.r_base + thermal.r_per_layer * dram.total_layers) * power
