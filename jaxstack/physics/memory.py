"""L2: DRAM bandwidth and capacity of one chip (3D stack or 2.5D HBM).

Geometry (DeepStack's bank oracle, DEEPSTACK.md §2.1): m = total layers, n = connected
layers. Each connected layer has ``channels_per_layer`` ports of ``bytes_per_transfer`` B
per transfer at ``transfer_rate``; the m layers are split into n groups, one per port
column, so a port serves the banks of k_bar = m/n layers (k_hi = ceil(m/n) on the busiest
port), ``banks_per_port`` banks per layer. Timings are in cycles of the transfer clock
(DeepStack's ``sector_cycles`` / ``recharge_cycles`` convention), so a faster-clocked DRAM
scales all of them.

Equations (each effect is off at its neutral default; GPU presets set none of them):
- peak          BW_peak = n * channels * bytes_per_transfer * transfer_rate          [DeepStack]
- capacity      C = m * capacity_per_layer                                           [DeepStack]
- vertical cap  bonds = port_area / pitch^2 (= 1e6 / pitch_um^2 per mm^2); a connected layer
                moves at most bonds * bond_signal_fraction * r_bond / 8 B/s with the per-wire rate
                r_bond = bond_bits_per_transfer * transfer_rate (the vertical bus is clocked with
                the DRAM, so every DRAM time scales with transfer_rate); BW_peak is capped at n
                times that (off when bond_pitch = 0 or port_area = 0)  [HARDWARE §1.1]
- row / bank / activation efficiency of an access pattern with S useful bytes per row
  activation (streaming: S = row_bytes), per port, in transfer cycles:
      D_row = row_bytes / bytes_per_transfer            full-row read time
      R     = D_row * (1 / e_full - 1)                  recharge, from row_cycle_efficiency e_full
      S_q   = ceil(S / transaction_bytes) * transaction_bytes   (sector quantisation)
      D     = S_q / bytes_per_transfer                  data cycles per activation
      K     = k_hi * banks_per_port                     banks behind the busiest port
      I     = max(D, (D + R) / K, t_rrd, t_faw / 4)     cycles per activation  [HARDWARE §2.2]
      eta_access = (k_bar / k_hi) * (S / bytes_per_transfer) / I
  Data spread evenly over banks loads a port in proportion to its layers, so the busiest
  port (k_hi layers) sets the time: the k_bar / k_hi factor. Streaming full rows gives
      eta_row(m, n) = min(k_bar * e_full, k_bar / k_hi)   (banks_per_port = 1)
  which equals DeepStack's eff(m, n) at n = m (e_full) and at n <= m/2 (1, when e_full >= 0.5);
  between them DeepStack interpolates linearly, which the discrete bank schedule
  (tests/bank_reference.py) contradicts, e.g. (m, n) = (8, 6): 0.667 here and in the
  schedule vs 0.75 linear. With row_bytes = 0 rows are not modelled: eta = eta_row(m, n).
  (ceil(m/n) and the sector ceil carry a 1e-6 relative tolerance: float32 safety.)
- refresh       eta_ref = 1 - f * t_rfc / t_refi, f = 2 above ``refresh_double_temp``
                (JEDEC 85 C, HARDWARE.md §0); the DRAM temperature is an argument of every
                bandwidth / op-cost function (None: at or below 85 C, i.e. the 35 C ambient of
                every preset; the power/thermal model is to pass the stack temperature).
- DRAM          BW_dram = min(BW_peak, vertical cap) * eta_access * eta_ref * efficiency
- Little's law  a unit keeps BW_u * t_rt * buffering_factor bytes in flight in its SRAM,
                t_rt = round_trip_cycles / clock; with u active units
                BW <= u * sram_capacity / (t_rt * buffering_factor)    (DeepStack
                apply_littles_law: BW * SMEM / required when SMEM < required; same thing)
- SRAM cap      BW <= u * clock * sram_bandwidth / sram_traffic_factor (DeepStack: factor 2,
                "usable = smem_bw / 2 if smem_bw < 2 dram_bw")
- usable        BW(u) = min(BW_dram, u * unit_cap), unit_cap = min(Little, SRAM cap) of one
                unit; u = all units unless an op has fewer tiles than units (compute.py).
- transfers     a transfer of b bytes moves ceil(b / wave) * wave, wave = transaction_bytes *
                channels * n (one transaction on every port; DeepStack ddr_wave_bytes); the ceil
                has a 1e-5 relative tolerance (float32 safety).
Caps combine with an exact min (a relaxed min of a 1e30 "off" sentinel is meaningless);
gradients flow through the binding term. Not modelled: read/write turnaround, per-bank
refresh scheduling, address-mapping conflicts beyond the even spread, finite reorder
queues (random small accesses over many banks lose up to ~35 % with a 16-deep FIFO
window: tests/bank_reference.py), DRAM-side caches. In-model ops stream (weights
pre-packed, KV in pages of at least a row, activations in whole rows), so ``ops`` uses the
streaming efficiency; ``access_bytes`` is for explicit access patterns.
"""

import jax.numpy as jnp

from ..types.hardware import Chip, Dram
from . import area, relax
from .lean import clip, where

__all__ = ["peak_bandwidth", "capacity", "usable_capacity", "vertical_bandwidth", "access_efficiency",
           "row_cycle_efficiency", "refresh_efficiency", "dram_bandwidth", "littles_law_cap", "sram_cap", "unit_cap",
           "effective_bandwidth", "wave_bytes", "quantize", "UNLIMITED"]

UNLIMITED = 1e30  # B/s of a switched-off cap (finite: keeps gradients and min() clean)


def peak_bandwidth(dram: Dram):
    return dram.connected_layers * dram.channels_per_layer * dram.bytes_per_transfer * dram.transfer_rate


def capacity(dram: Dram):
    return dram.total_layers * dram.capacity_per_layer


def usable_capacity(dram: Dram):
    return capacity(dram) * dram.usable_fraction


def vertical_bandwidth(dram: Dram):
    """Bytes/s the bond fields of the n vertical ports can carry (UNLIMITED when off)."""
    on = (dram.bond_pitch > 0) & (dram.port_area > 0)
    pitch = where(on, dram.bond_pitch, 1.0)
    per_layer = (dram.port_area / (pitch * pitch) * dram.bond_signal_fraction * dram.bond_bits_per_transfer
                 * dram.transfer_rate / 8.0)
    return where(on, dram.connected_layers * per_layer, UNLIMITED)


def access_efficiency(dram: Dram, access_bytes=None):
    """Useful fraction of the port peak for ``access_bytes`` per row activation (None: streaming)."""
    m, n = dram.total_layers, dram.connected_layers
    k_bar = m / n
    k_hi = jnp.maximum(relax.ceil(k_bar * (1.0 - 1e-6)), 1.0)  # tolerance: m/n may be a few ulps high
    e = clip(dram.row_cycle_efficiency, 1e-6, 1.0)
    rows = dram.row_bytes > 0
    row = where(rows, dram.row_bytes, 1.0)
    s = row if access_bytes is None else clip(access_bytes, 1e-9, row)
    txn = dram.transaction_bytes
    s_q = where(txn > 0, relax.ceil(s / where(txn > 0, txn, 1.0) * (1.0 - 1e-6)) * txn, s)
    s_q = jnp.minimum(s_q, row)
    x, u = s_q / row, s / row  # transferred and useful fractions of a row (1 when rows are off)
    x, u = where(rows, x, 1.0), where(rows, u, 1.0)
    d_row = where(rows, row / dram.bytes_per_transfer, 1.0)
    act = where(rows, jnp.maximum(dram.t_rrd, 0.25 * dram.t_faw) / d_row, 0.0)
    banks = k_hi * dram.banks_per_port
    interval = jnp.maximum(jnp.maximum(x, (x + 1.0 / e - 1.0) / banks), act)
    return (k_bar / k_hi) * u / interval


def row_cycle_efficiency(dram: Dram):
    """Streaming full-row efficiency eta_row(m, n) (bank-exact; see module docstring)."""
    return access_efficiency(dram)


def refresh_efficiency(dram: Dram, temperature=None, hot=None):
    """1 - f tRFC/tREFI; f = 2 above ``refresh_double_temp`` (temperature in degC; None: not hot),
    or f = 1 + ``hot`` when the doubled-refresh weight is given directly."""
    frac = dram.t_rfc / jnp.maximum(dram.t_refi, 1e-12)
    if hot is None:
        hot = 0.0 if temperature is None else relax.step(temperature - dram.refresh_double_temp)
    return clip(1.0 - (1.0 + hot) * frac, 0.0, 1.0)


def dram_bandwidth(dram: Dram, temperature=None, access_bytes=None, hot=None):
    """Useful DRAM bytes/s of the whole stack for an access pattern (before on-chip caps)."""
    raw = jnp.minimum(peak_bandwidth(dram), vertical_bandwidth(dram))
    eff = refresh_efficiency(dram, temperature, hot)
    return raw * access_efficiency(dram, access_bytes) * eff * dram.efficiency


def littles_law_cap(chip: Chip, dram: Dram, units):
    """Bytes/s ``units`` SRAMs can keep in flight over one round trip (UNLIMITED when off)."""
    on = dram.round_trip_cycles > 0
    t_rt = where(on, dram.round_trip_cycles, 1.0) / chip.clock
    cap = units * chip.sram_capacity / (t_rt * jnp.maximum(chip.buffering_factor, 1e-6))
    return where(on, cap, UNLIMITED)


def sram_cap(chip: Chip, units):
    """Bytes/s the SRAMs of ``units`` units pass on, sram_traffic_factor bytes per DRAM byte."""
    on = chip.sram_traffic_factor > 0
    k = where(on, chip.sram_traffic_factor, 1.0)
    return where(on, units * chip.clock * chip.sram_bandwidth / k, UNLIMITED)


def unit_cap(chip: Chip, dram: Dram):
    """Bytes/s one active unit can sustain: min(Little's law, SRAM bandwidth) per unit."""
    return jnp.minimum(littles_law_cap(chip, dram, 1.0), sram_cap(chip, 1.0))


def effective_bandwidth(dram: Dram, chip: Chip | None = None, units=None, temperature=None, access_bytes=None):
    """Usable DRAM bytes/s; with ``chip``, capped by Little's law and SRAM bandwidth of ``units``
    active compute units (default: all units the die holds)."""
    bw = dram_bandwidth(dram, temperature, access_bytes)
    if chip is None:
        return bw
    u = area.compute_units(chip, dram) if units is None else units
    return jnp.minimum(bw, u * unit_cap(chip, dram))


def wave_bytes(dram: Dram):
    """Bytes of one DRAM wave: one transaction on every port (0 when quantisation is off)."""
    return dram.transaction_bytes * dram.channels_per_layer * dram.connected_layers


def quantize(dram: Dram, nbytes):
    """Bytes actually moved by a transfer of ``nbytes``: whole waves (identity when off)."""
    wave = wave_bytes(dram)
    on = wave > 0
    w = where(on, wave, 1.0)
    # ceil with a 1e-5 relative tolerance: float32 products such as rows*K*a land a few ulps above
    # an exact multiple of the wave, and a bare ceil would add a whole wave
    return where(on, relax.ceil(nbytes / w * (1.0 - 1e-5)) * w, nbytes)
