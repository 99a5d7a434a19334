"""L2: logic-die area budget: compute units vs SRAM, fabric ports and the vertical DRAM interface.

DeepStack (DEEPSTACK.md §2.1 "Area") derives the SM count of a stacked chip as the largest
count that fits a fixed die-area budget, so more DRAM connectivity, SRAM, L1 bandwidth or
NoC bandwidth placed in the logic die all cost SMs; its area model is sealed. Ours:
    A_unit  = unit_area + sram_capacity * a_sram + sram_bandwidth * a_l1
    A_fixed = die_area * f_uncore + l2_capacity * a_sram + fabric_port_bandwidth * a_fabric
              + n * (port_area + channels_per_layer * channel_area)
    units   = clip(floor((die_area - A_fixed) / A_unit), 1, compute_units)   if die_area > 0
    units   = compute_units                                                  if die_area = 0 (GPUs)
(n = connected layers: each has its own bond field and channel controllers.) A design
whose fixed area leaves no room for one unit is reported by ``area_feasible`` (its count is
clipped to 1 so that every time stays finite).

Technology constants (per unit area, not per design; a design's own areas are Chip/Dram
leaves so they can be swept):
- a_sram = 0.95 mm^2/MiB * 0.35: CACTI 7 at 22 nm gives 0.95 mm^2 for 1 MB and 7.1 mm^2
  for 8 MB (HARDWARE.md §3.4 [R]); x0.35 to a 5-nm-class node [U] (cross-check [D]: a
  0.021 um^2 N5 bit cell at ~50 % array efficiency is 0.35 mm^2/MiB).
- a_l1 = 1e-3 mm^2 per B/cycle of SRAM port width (banks, crossbar) [U]; 256 B/cycle = 0.26 mm^2.
- a_fabric = 5 mm^2 per TB/s of port bandwidth [U], between UCIe-2.5D (1.3 TB/s per mm of
  shoreline, ~1 mm^2 per TB/s) and long-reach SerDes (~0.4 mm^2 per 14 GB/s lane,
  ~28 mm^2 per TB/s) (HARDWARE.md §1.1, §5.1).
- f_uncore = 0.15 of the die for clocking, control, I/O ring and power delivery [U].
Not modelled: placement/routing overhead per block, thermal-via keep-out, redundancy.
"""

import jax.numpy as jnp

from ..types.hardware import Chip, Dram
from . import relax
from .lean import clip, where

__all__ = ["SRAM_AREA_PER_BYTE", "L1_AREA_PER_BYTE_PER_CYCLE", "FABRIC_AREA_PER_BPS", "UNCORE_FRACTION",
           "unit_area", "vertical_area", "fixed_area", "fit_units", "compute_units", "area_feasible",
           "breakdown"]

MM2 = 1e-6  # m^2
SRAM_AREA_PER_BYTE = 0.95 * 0.35 * MM2 / 2.0**20    # m^2/B  (CACTI 7 22 nm x [U] node scaling)
L1_AREA_PER_BYTE_PER_CYCLE = 1e-3 * MM2              # m^2 per B/cycle  [U]
FABRIC_AREA_PER_BPS = 5.0 * MM2 / 1e12               # m^2 per B/s  [U]
UNCORE_FRACTION = 0.15                               # [U]


def unit_area(chip: Chip):
    """m^2 of one compute unit with its SRAM and SRAM datapath."""
    return (chip.unit_area + chip.sram_capacity * SRAM_AREA_PER_BYTE
            + chip.sram_bandwidth * L1_AREA_PER_BYTE_PER_CYCLE)


def vertical_area(dram: Dram):
    """m^2 of the vertical DRAM interface: bond field + channel controllers per connected layer."""
    return dram.connected_layers * (dram.port_area + dram.channels_per_layer * dram.channel_area)


def fixed_area(chip: Chip, dram: Dram):
    """m^2 not available to compute units: uncore, L2, fabric ports, vertical interface."""
    return (chip.die_area * UNCORE_FRACTION + chip.l2_capacity * SRAM_AREA_PER_BYTE
            + chip.fabric_port_bandwidth * FABRIC_AREA_PER_BPS + vertical_area(dram))


def fit_units(chip: Chip, dram: Dram):
    """Largest whole number of units the remaining area holds (may be <= 0)."""
    free = chip.die_area - fixed_area(chip, dram)
    # floor with a 1e-6 relative tolerance (float32 safety), smooth when relaxed
    return relax.floor(free / jnp.maximum(unit_area(chip), 1e-12) * (1.0 + 1e-6))


def compute_units(chip: Chip, dram: Dram):
    """Compute units of the design: fixed (die_area = 0) or as many as fit, at most compute_units."""
    fit = clip(fit_units(chip, dram), 1.0, chip.compute_units)
    return where(chip.die_area > 0, fit, chip.compute_units)


def area_feasible(chip: Chip, dram: Dram):
    """False where a die-area budget is set and not even one unit fits."""
    return (chip.die_area <= 0) | (fit_units(chip, dram) >= 1.0)


def breakdown(chip: Chip, dram: Dram) -> dict:
    """Area use in m^2 by block (for reports and plots)."""
    u = compute_units(chip, dram)
    return {"units": u, "compute": u * unit_area(chip), "uncore": chip.die_area * UNCORE_FRACTION,
            "l2": chip.l2_capacity * SRAM_AREA_PER_BYTE, "fabric": chip.fabric_port_bandwidth * FABRIC_AREA_PER_BPS,
            "vertical": vertical_area(dram), "budget": chip.die_area}
