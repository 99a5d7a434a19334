"""L2: DRAM bandwidth and capacity of one chip (3D stack or 2.5D HBM).

Equations (DeepStack §2.1, DEEPSTACK.md; HARDWARE.md §2):
- peak bandwidth   BW_peak = n * channels * bytes_per_transfer * transfer_rate
                   (n = connected layers: only layers with a vertical port deliver data)
- capacity         C = m * capacity_per_layer (m = total layers)
- row-cycle (recharge) efficiency of the connectivity (m, n):
      eff = 1                                   if n <= m/2 (another layer behind the same
                                                 port hides the recharge)
      eff = 1 + (n - m/2)/(m/2) * (eff_full - 1) otherwise (linear to eff_full at n = m)
- effective streaming bandwidth BW_eff = BW_peak * eff(m, n) * eta_mem
Not yet modelled here (issue 4): activation-rate cap (tRRD/tFAW), transaction/sector and
wave quantisation, refresh vs temperature, Little's-law buffering and SRAM caps.
"""

import jax.numpy as jnp

from .hardware import Dram

__all__ = ["peak_bandwidth", "capacity", "usable_capacity", "row_cycle_efficiency",
           "effective_bandwidth"]


def peak_bandwidth(dram: Dram):
    return dram.connected_layers * dram.channels_per_layer * dram.bytes_per_transfer * dram.transfer_rate


def capacity(dram: Dram):
    return dram.total_layers * dram.capacity_per_layer


def usable_capacity(dram: Dram):
    return capacity(dram) * dram.usable_fraction


def row_cycle_efficiency(dram: Dram):
    m, n = dram.total_layers, dram.connected_layers
    half = 0.5 * m
    frac = jnp.clip((n - half) / jnp.maximum(half, 1e-9), 0.0, 1.0)
    return 1.0 + frac * (dram.row_cycle_efficiency - 1.0)


def effective_bandwidth(dram: Dram):
    return peak_bandwidth(dram) * row_cycle_efficiency(dram) * dram.efficiency
