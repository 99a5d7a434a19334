"""3D-DRAM semantics (memory.py) and the logic-die area budget (area.py): hand-worked cases,
the bank-level schedule oracle, DeepStack's Fig. 15 shape, vmap and gradients."""

import dataclasses
import importlib.util
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bank_reference import schedule

from jaxstack.edges import io
from jaxstack.physics import area, memory, relax

ROOT = Path(__file__).resolve().parent.parent


def _preset(name):
    p = io.load_preset("hardware", name)
    return p["chip"], p["dram"]


def f32(tree):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), tree)


STACK_CHIP, STACK = f32(_preset("stacked-3d"))
H100_CHIP, H100 = f32(_preset("h100-sxm"))


def close(a, b, rel=1e-5):
    np.testing.assert_allclose(float(a), b, rtol=rel)


# ---------------------------------------------------------------- peak, capacity, vertical cap
def test_peak_and_capacity_by_hand():
    close(memory.peak_bandwidth(STACK), 4 * 16 * 32 * 1e9)          # n * channels * B * rate
    close(memory.capacity(STACK), 4 * 3 * 2**30)                      # m * per-layer
    deeper = dataclasses.replace(STACK, total_layers=jnp.float32(8.0))
    close(memory.capacity(deeper), 8 * 3 * 2**30)                     # capacity follows m ...
    close(memory.peak_bandwidth(deeper), 4 * 16 * 32 * 1e9)          # ... bandwidth follows n


def test_vertical_bond_cap_by_hand():
    # 9 um pitch: 1e6 / 81 = 12,346 bonds/mm2; 0.5 mm2 -> 6,173 bonds, half carry data at
    # 2 bits per 1 GHz transfer clock -> 771.6 GB/s per layer, above the 512 GB/s channel peak
    per_layer = 0.5e-6 / (9e-6) ** 2 * 0.5 * 2 * 1e9 / 8
    close(memory.vertical_bandwidth(STACK), 4 * per_layer, rel=1e-5)
    # a 0.2 mm2 bond field caps a layer at 308.6 GB/s < 512 GB/s: the cap binds
    small = dataclasses.replace(STACK, port_area=jnp.float32(0.2e-6))
    cap = 4 * 0.2e-6 / (9e-6) ** 2 * 0.5 * 2 * 1e9 / 8
    eta = float(memory.access_efficiency(small) * memory.refresh_efficiency(small) * small.efficiency)
    close(memory.dram_bandwidth(small), cap * eta, rel=1e-5)
    # GPUs: no bond model -> unlimited
    assert float(memory.vertical_bandwidth(H100)) >= 1e29


# ---------------------------------------------------------------- row cycle / banks / activations
@pytest.mark.parametrize("m,n,e,expected", [
    (10, 10, 0.37, 0.37),            # DeepStack test value at n = m
    (10, 5, 0.5, 1.0),               # n <= m/2 hides the recharge (DeepStack: 1.0)
    (10, 5, 0.37, 0.74),             # ... only if e_full >= 0.5: two banks cannot hide 1.7x the read
    (8, 6, 0.5, 2 / 3),              # DeepStack's linear rule says 0.75; the busiest port has 2 layers
    (10, 7, 0.5, 10 / 14),
])
def test_row_cycle_efficiency_by_hand(m, n, e, expected):
    d = dataclasses.replace(STACK, total_layers=jnp.float32(m), connected_layers=jnp.float32(n),
                            row_cycle_efficiency=jnp.float32(e))
    close(memory.row_cycle_efficiency(d), expected, rel=1e-5)


def test_activation_window_cap_matches_hardware_md():
    # HBM3 pseudo-channel: 4 B x 6.4 GT/s = 25.6 GB/s, tFAW 15 ns = 96 transfer cycles, 16 banks,
    # recharge negligible: S* = 25.6 GB/s x 15 ns / 4 = 96 B; 32 B random reads reach 1/3 of peak
    hbm = dataclasses.replace(H100, row_bytes=jnp.float32(1024), transaction_bytes=jnp.float32(32),
                              bytes_per_transfer=jnp.float32(4), banks_per_port=jnp.float32(16),
                              row_cycle_efficiency=jnp.float32(1.0), t_faw=jnp.float32(96.0))
    close(memory.access_efficiency(hbm, 32.0), 1 / 3, rel=1e-5)
    close(memory.access_efficiency(hbm, 96.0), 1.0, rel=1e-5)
    close(memory.access_efficiency(hbm, 128.0), 1.0, rel=1e-5)
    close(memory.access_efficiency(hbm, 20.0), 20 / 4 / 24, rel=1e-5)  # 20 B moves a 32 B sector


PATTERNS = [("sequential", None), ("strided", 64), ("strided", 128), ("random", 32), ("random", 256),
            ("partial", 300), ("partial", 700)]
GRID = list(itertools.product([(1, 1), (4, 4), (4, 2), (8, 6), (10, 7), (12, 5), (16, 3), (16, 16)],
                              [0.37, 0.5, 0.8], [1, 4], PATTERNS, [(0.0, 0.0), (2.5, 15.0), (4.0, 30.0)]))


def test_closed_form_within_10_percent_of_bank_schedule():
    rng = np.random.default_rng(0)
    worst = 0.0
    for i in rng.choice(len(GRID), 160, replace=False):
        (m, n), e, b, (pat, acc), (rrd, faw) = GRID[i]
        sim = schedule(m, n, banks_per_port=b, row_cycle_efficiency=e, t_rrd=rrd, t_faw=faw, pattern=pat,
                       access_bytes=acc, acts_per_bank=24)
        d = dataclasses.replace(STACK, total_layers=jnp.float32(m), connected_layers=jnp.float32(n),
                                row_cycle_efficiency=jnp.float32(e), banks_per_port=jnp.float32(b),
                                t_rrd=jnp.float32(rrd), t_faw=jnp.float32(faw))
        closed = float(memory.access_efficiency(d, None if acc is None else float(acc)))
        worst = max(worst, abs(closed / sim - 1))
    assert worst < 0.10, worst


def test_deepstack_linear_rule_misses_the_schedule():
    sim = schedule(8, 6, row_cycle_efficiency=0.5)
    assert abs(sim - 2 / 3) < 0.03 and abs(0.75 / sim - 1) > 0.10


def test_finite_reorder_window_is_the_documented_gap():
    full = schedule(16, 3, banks_per_port=4, pattern="random", access_bytes=32, acts_per_bank=24)
    fifo = schedule(16, 3, banks_per_port=4, pattern="random", access_bytes=32, acts_per_bank=24, window=16)
    assert fifo < 0.8 * full


# ---------------------------------------------------------------- refresh, Little's law, SRAM cap
def test_refresh_doubles_above_85_C():
    base = 1 - 260 / 3900
    close(memory.refresh_efficiency(STACK), base)
    close(memory.refresh_efficiency(STACK, jnp.float32(35.0)), base)
    close(memory.refresh_efficiency(STACK, jnp.float32(85.0)), base)            # 85 C still normal
    close(memory.refresh_efficiency(STACK, jnp.float32(90.0)), 1 - 2 * 260 / 3900)
    hot = memory.dram_bandwidth(STACK, jnp.float32(90.0)) / memory.dram_bandwidth(STACK)
    close(hot, (1 - 2 * 260 / 3900) / base)
    assert float(memory.refresh_efficiency(H100, jnp.float32(99.0))) == 1.0     # GPUs: folded into efficiency


def test_littles_law_cap_by_hand():
    # 8 SMs x 256 KiB in flight over 900 cycles / 1.8 GHz = 500 ns, double buffered
    cap = 8 * 256 * 1024 / (500e-9 * 2)
    close(memory.littles_law_cap(STACK_CHIP, STACK, 8.0), cap, rel=1e-5)
    # DeepStack's form: required = BW/SMs * t_rt * f; BW <- BW * SMEM / required when SMEM < required
    deep = dataclasses.replace(STACK, total_layers=jnp.float32(16.0), connected_layers=jnp.float32(16.0))
    bw = float(memory.dram_bandwidth(deep))
    required = bw / 4 * 500e-9 * 2
    expected = bw * min(1.0, 256 * 1024 / required)
    no_smem_cap = dataclasses.replace(STACK_CHIP, sram_traffic_factor=jnp.float32(0.0))
    close(memory.effective_bandwidth(deep, no_smem_cap, 4.0), expected, rel=1e-5)


def test_sram_bandwidth_cap_by_hand():
    # DeepStack: usable = smem_bw / 2 when smem_bw < 2 dram_bw; 4 SMs x 1.8 GHz x 256 B / 2
    deep = dataclasses.replace(STACK, total_layers=jnp.float32(12.0), connected_layers=jnp.float32(12.0))
    no_little = dataclasses.replace(deep, round_trip_cycles=jnp.float32(0.0))
    close(memory.effective_bandwidth(no_little, STACK_CHIP, 4.0), 4 * 1.8e9 * 256 / 2, rel=1e-5)
    close(memory.sram_cap(STACK_CHIP, 4.0), 4 * 1.8e9 * 256 / 2, rel=1e-5)


def test_gpu_defaults_are_neutral():
    for name in ("a100-80gb", "h100-sxm", "h200", "b200", "mi300x", "mi325x"):
        chip, dram = f32(_preset(name))
        peak = float(memory.peak_bandwidth(dram))
        close(memory.effective_bandwidth(dram, chip), peak * float(dram.efficiency))
        close(memory.effective_bandwidth(dram, chip, 1.0, jnp.float32(99.0), 8.0), peak * float(dram.efficiency))
        assert float(memory.quantize(dram, 1234.5)) == pytest.approx(1234.5)
        assert float(area.compute_units(chip, dram)) == float(chip.compute_units)


def test_wave_quantisation():
    wave = 32 * 16 * 4
    assert float(memory.wave_bytes(STACK)) == wave
    assert float(memory.quantize(STACK, 1.0)) == wave
    assert float(memory.quantize(STACK, wave)) == wave
    assert float(memory.quantize(STACK, wave + 1.0)) == 2 * wave


# ---------------------------------------------------------------- area
def test_area_budget_by_hand():
    mm2 = 1e-6
    per_unit = 2.7 * mm2 + 256 * 1024 * area.SRAM_AREA_PER_BYTE + 256 * area.L1_AREA_PER_BYTE_PER_CYCLE
    fixed = (46 * 0.15 * mm2 + 8 * 2**20 * area.SRAM_AREA_PER_BYTE + 434e9 * area.FABRIC_AREA_PER_BPS
             + 4 * (0.5 + 16 * 0.1) * mm2)
    assert np.floor((46 * mm2 - fixed) / per_unit) == 8
    assert float(area.compute_units(STACK_CHIP, STACK)) == 8  # Table-4 step-1 design


def test_area_trades_units_for_connectivity_sram_and_links():
    loose = dataclasses.replace(STACK_CHIP, compute_units=jnp.float32(128.0))
    base = float(area.compute_units(loose, STACK))
    more_layers = dataclasses.replace(STACK, total_layers=jnp.float32(10.0), connected_layers=jnp.float32(10.0))
    assert float(area.compute_units(loose, more_layers)) < base
    assert float(area.compute_units(dataclasses.replace(loose, sram_capacity=jnp.float32(2**20)), STACK)) < base
    assert float(area.compute_units(dataclasses.replace(loose, sram_bandwidth=jnp.float32(1024.0)), STACK)) < base
    assert float(area.compute_units(dataclasses.replace(loose, fabric_port_bandwidth=jnp.float32(2e12)), STACK)) < base
    tiny = dataclasses.replace(loose, die_area=jnp.float32(10e-6))
    assert not bool(area.area_feasible(tiny, STACK)) and float(area.compute_units(tiny, STACK)) == 1.0


def _bench():
    spec = importlib.util.spec_from_file_location("bench_dram_layers", ROOT / "benchmarks" / "bench_dram_layers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fig15_interior_optimum():
    bench = _bench()
    best, preset = bench.curves()
    for curve in (best, preset):
        s = bench.summary(curve)
        assert s["interior"] and 4 <= s["peak_layers"] <= 12, s
    s = bench.summary(best)
    assert s["peak_layers"] in (8, 9, 10) and 25 < s["drop_at_12_pct"] < 60, s  # DeepStack: 9, 39.6 %


# ---------------------------------------------------------------- sweepable, vmap, gradients
@pytest.mark.parametrize("path", ["dram.t_faw", "dram.t_rrd", "dram.row_bytes_KiB", "dram.transaction_bytes_B",
                                  "dram.t_rfc_ns", "dram.refresh_double_temp_C", "dram.round_trip_cycles",
                                  "dram.bond_pitch_um", "dram.port_area_mm2", "dram.channel_area_mm2",
                                  "dram.banks_per_port", "dram.bond_bits_per_transfer", "chip.die_area_mm2",
                                  "chip.unit_area_mm2", "chip.fabric_port_bandwidth_GBps", "chip.buffering_factor",
                                  "chip.sram_traffic_factor"])
def test_new_parameters_are_sweepable(path):
    names, _unit, _factor = io.resolve_path(path)
    assert len(names) == 2


def _bw(chip, dram):
    return memory.effective_bandwidth(dram, chip, None, jnp.float32(90.0), 200.0)


def test_vmap_matches_single_point():
    layers = jnp.arange(1.0, 17.0)
    dram = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, layers.shape), STACK)
    dram = dataclasses.replace(dram, total_layers=layers, connected_layers=jnp.ceil(layers * 0.7))
    chip = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, layers.shape), STACK_CHIP)
    batched = jax.jit(jax.vmap(_bw))(chip, dram)
    for i in (0, 5, 15):
        one = _bw(jax.tree_util.tree_map(lambda x, i=i: x[i], chip), jax.tree_util.tree_map(lambda x, i=i: x[i], dram))
        np.testing.assert_allclose(float(one), float(batched[i]), rtol=1e-6)


def test_gradients_are_finite():
    for tau in (None, 0.05):
        def f(c, d):
            return jnp.log(_bw(c, d))

        if tau is None:
            g = jax.grad(f, argnums=(0, 1))(STACK_CHIP, STACK)
        else:
            with relax.relaxed(tau):
                g = jax.grad(f, argnums=(0, 1))(STACK_CHIP, STACK)
        leaves = jax.tree_util.tree_leaves(g)
        assert all(np.isfinite(np.asarray(x)).all() for x in leaves)
