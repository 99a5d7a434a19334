"""Power, energy and thermal physics (power.py, thermal.py) against the float64 reference.

Fast: one random batch of hardware, a handful of shared compiled functions.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import ref_power as ref
from designs import as_dict

from jaxstack.edges import io
from jaxstack.physics import power, relax, thermal
from jaxstack.types.hardware import Chip, Dram, Fabric, FabricLevel, Thermal

N = 1000
RTOL = 1e-4  # float32 model vs float64 reference


def _full(obj, n):
    """Batch a dataclass of scalars to (n,) float32 leaves."""
    return jax.tree_util.tree_map(lambda x: np.full(n, x, np.float32), obj)


def _rep(obj, **kw):
    return dataclasses.replace(obj, **{k: np.asarray(v, np.float32) for k, v in kw.items()})


def random_hardware(n=N, seed=0):
    """(chip, dram, fabric, thermal) batches spanning GPUs and 3D stacks, leaking and runaway-prone."""
    rng = np.random.default_rng(seed)
    hw = io.load_preset("hardware", "stacked-3d")
    fab = io.load_preset("fabric", "stacked-256")["fabric"]
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    m = rng.integers(1, 17, n).astype(np.float64)
    r_base, r_layer = u(0.03, 0.8), np.where(rng.random(n) < 0.2, 0.0, u(0.0, 0.05))
    r_j = r_base + m * r_layer
    beside = rng.choice([0.0, 1.0, 0.5], n, p=[0.45, 0.45, 0.1])
    chip = _rep(_full(hw["chip"], n), energy_per_flop=u(0.1, 1.5) * 1e-12, vector_energy_per_flop=u(0.5, 3) * 1e-12,
                sram_energy_scale=u(0.2, 1.0), sram_capacity=2.0 ** u(12, 25), fp8_speedup=rng.choice([1.0, 2.0], n),
                fp4_speedup=rng.choice([1.0, 4.0], n), static_power=u(0.0, 0.3) * 70.0 / r_j,
                leakage_temp_coeff=np.where(rng.random(n) < 0.2, 0.0, u(0.005, 0.03)), leakage_ref_temp=u(40, 100),
                tdp=u(0.3, 1.5) * 70.0 / r_j)
    dram = _rep(_full(hw["dram"], n), total_layers=m, connected_layers=np.ceil(m * u(0.2, 1.0)),
                row_bytes=rng.choice([0.0, 1024.0, 2048.0], n), energy_per_bit=u(0.3, 3) * 1e-12,
                io_energy_per_bit=u(0, 3) * 1e-12, activation_energy_per_bit=u(0, 0.1) * 1e-12,
                refresh_power=u(0, 2) / m, background_power=u(0, 2) / m, refresh_double_temp=u(75, 95))
    levels = [_rep(_full(getattr(fab, k), n), energy_per_bit=u(0.01, 6) * 1e-12) for k in ("l1", "l2", "l3")]
    fabric = dataclasses.replace(_full(fab, n), l1=levels[0], l2=levels[1], l3=levels[2])
    th = _rep(_full(hw["thermal"], n), ambient=u(20, 45), r_base=r_base, r_per_layer=r_layer, dram_beside=beside,
              sink_fraction=u(0.3, 1.0), r_dram=u(0, 0.3))
    return chip, dram, fabric, th


def random_work(n=N, seed=1):
    rng = np.random.default_rng(seed)
    e = lambda lo, hi: 10.0 ** rng.uniform(lo, hi, n)  # noqa: E731
    return power.Work(*(np.asarray(x, np.float32) for x in (
        e(9, 14), e(7, 12), e(8, 13), e(6, 11), e(5, 10), e(4, 9), e(3, 8), e(-5, -1))))


@pytest.fixture(scope="module")
def hw():
    return random_hardware()


@pytest.fixture(scope="module")
def fns():
    energy = jax.jit(jax.vmap(lambda c, d, f, w, b, a: power.step_energy(c, d, f, w, b, access_bytes=a)))
    energy_stream = jax.jit(jax.vmap(power.step_energy))
    solve = jax.jit(jax.vmap(thermal.solve))
    return energy, energy_stream, solve


def _thermal_inputs(chip, n=N, seed=2):
    """Dynamic energies and step times spanning cool, hot, mixed and runaway states."""
    rng = np.random.default_rng(seed)
    t_cool = 10.0 ** rng.uniform(-3, -1, n)
    t_hot = t_cool * np.where(rng.random(n) < 0.3, 1.0, rng.uniform(1.0, 1.6, n))
    u = lambda lo, hi: rng.uniform(lo, hi, n) * t_cool  # noqa: E731  (energy of a power in W)
    e = power.Energy(compute=u(0, 70.0), sram=u(0, 0.1), dram_activation=u(0, 5), dram_transfer=u(0, 35.0),
                     dram_io=u(0, 10), link=u(0, 5), static=np.zeros(n))
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), (e, t_cool, t_hot))


def _scaled(e, r_j):
    """Rescale energies so that powers are O(70 K / r_j)."""
    return e._replace(**{k: np.asarray(getattr(e, k) / r_j, np.float32) for k in e._fields})


# ---------------------------------------------------------------- energy
def test_energy_matches_reference(hw, fns):
    chip, dram, fabric, _ = hw
    w = random_work()
    rng = np.random.default_rng(3)
    op = rng.choice([0.5, 1.0, 2.0, 4.0], N).astype(np.float32)
    access = rng.choice([16.0, 64.0, 512.0, 4096.0], N).astype(np.float32)
    got = fns[0](chip, dram, fabric, w, op, access)
    c, d, f = as_dict(chip), as_dict(dram), as_dict(fabric)
    wd = {k: np.asarray(v, np.float64) for k, v in w._asdict().items()}
    for i in range(0, N, 7):
        want = ref.step_energy(ref.at(c, i), ref.at(d, i), ref.at(f, i), ref.at(wd, i), float(op[i]), float(access[i]))
        for k, v in want.items():
            np.testing.assert_allclose(float(getattr(got, k)[i]), v, rtol=RTOL, err_msg=k)
        np.testing.assert_allclose(float(got.total[i]), sum(want.values()), rtol=RTOL)


def test_energy_is_additive_over_work(hw, fns):
    chip, dram, fabric, _ = hw
    a, b = random_work(seed=4), random_work(seed=5)
    ab = power.Work(*(x + y for x, y in zip(a, b, strict=True)))
    op = np.full(N, 1.0, np.float32)
    ea, eb, eab = (fns[1](chip, dram, fabric, w, op) for w in (a, b, ab))
    for k in power.Energy._fields:
        np.testing.assert_allclose(getattr(ea, k) + getattr(eb, k), getattr(eab, k), rtol=1e-5, atol=0, err_msg=k)


@pytest.mark.parametrize("path", ["chip.energy_per_flop", "chip.vector_energy_per_flop", "chip.sram_energy_scale",
                                  "chip.static_power", "dram.energy_per_bit", "dram.io_energy_per_bit",
                                  "dram.activation_energy_per_bit", "dram.background_power",
                                  "fabric.l1.energy_per_bit", "fabric.l2.energy_per_bit", "fabric.l3.energy_per_bit"])
def test_energy_monotone_in_every_constant(hw, fns, path):
    parts = dict(zip(("chip", "dram", "fabric"), hw[:3], strict=True))
    w, op = random_work(seed=6), np.full(N, 2.0, np.float32)
    base = fns[1](*parts.values(), w, op)
    sec, *rest = path.split(".")
    obj = parts[sec]
    if len(rest) == 2:
        lvl = getattr(obj, rest[0])
        parts[sec] = dataclasses.replace(obj, **{rest[0]: _rep(lvl, **{rest[1]: getattr(lvl, rest[1]) * 1.5 + 1e-13})})
    else:
        parts[sec] = _rep(obj, **{rest[0]: getattr(obj, rest[0]) * 1.5 + 1e-13})
    bumped = fns[1](*parts.values(), w, op)
    assert np.all(np.asarray(bumped.total) >= np.asarray(base.total) * (1 - 1e-6))
    assert np.any(np.asarray(bumped.total) > np.asarray(base.total))
    for k in power.Energy._fields:
        assert np.all(np.asarray(getattr(bumped, k)) >= np.asarray(getattr(base, k)) * (1 - 1e-6)), k


def test_low_precision_flops_cost_less_and_fp32_runs_on_vector_units():
    chip = io.load_preset("hardware", "b200")["chip"]
    e = [float(power.tensor_energy_per_flop(chip, b)) for b in (2.0, 1.0, 0.5, 4.0)]
    np.testing.assert_allclose(e, [chip.energy_per_flop, chip.energy_per_flop / 2, chip.energy_per_flop / 4,
                                   chip.vector_energy_per_flop], rtol=1e-6)
    a100 = io.load_preset("hardware", "a100-80gb")["chip"]  # no FP8 path: FP8 runs (and costs) as BF16
    np.testing.assert_allclose(float(power.tensor_energy_per_flop(a100, 1.0)), a100.energy_per_flop, rtol=1e-6)


def test_sram_energy_hits_the_cacti_table():
    chip = io.load_preset("hardware", "h100-sxm")["chip"]
    for size, e in zip(power.SRAM_TABLE_BYTES, power.SRAM_TABLE_J_PER_BIT, strict=True):
        got = power.sram_energy_per_bit(dataclasses.replace(chip, sram_capacity=float(size), sram_energy_scale=1.0))
        np.testing.assert_allclose(float(got), e, rtol=1e-5)
    sizes = 2.0 ** np.arange(10, 26)
    es = [float(power.sram_energy_per_bit(dataclasses.replace(chip, sram_capacity=float(s)))) for s in sizes]
    assert np.all(np.diff(es) >= 0)


def test_dram_split_keeps_the_hbm3e_total():
    for name in ("h100-sxm", "h200", "b200", "mi300x", "mi325x", "a100-80gb"):
        d = io.load_preset("hardware", name)["dram"]
        total = d.energy_per_bit + d.io_energy_per_bit + d.activation_energy_per_bit
        np.testing.assert_allclose(total, 3.9e-12, rtol=0.01, err_msg=name)


# ---------------------------------------------------------------- fabric levels
def test_link_level_matches_rank_coordinates():
    rng = np.random.default_rng(7)
    n1, n2 = 2.0 ** rng.integers(0, 5, 500), 2.0 ** rng.integers(0, 4, 500)
    stride, size = 2.0 ** rng.integers(0, 9, 500), 2.0 ** rng.integers(0, 7, 500)
    lv = FabricLevel(size=1.0, kind=0.0, dim_x=1.0, dim_y=1.0, link_bandwidth=1e9, links_per_node=1.0,
                     hop_latency=1e-6, energy_per_bit=1e-12)
    fab = _full(Fabric(l1=lv, l2=lv, l3=lv, collective_overhead=0.0, bandwidth_efficiency=1.0), 500)
    fab = dataclasses.replace(fab, l1=_rep(fab.l1, size=n1), l2=_rep(fab.l2, size=n2))
    got = jax.jit(jax.vmap(power.link_energy_level))(fab, stride.astype(np.float32), size.astype(np.float32))
    want = [ref.link_level(a, b, s, g) for a, b, s, g in zip(n1, n2, stride, size, strict=True)]
    np.testing.assert_array_equal(np.asarray(got), want)


def test_link_level_by_hand():
    f = io.load_preset("fabric", "stacked-256")["fabric"]  # 4 x 4 x 16
    assert [float(power.link_energy_level(f, s, n)) for s, n in [(1, 4), (1, 8), (4, 4), (1, 16), (1, 32), (16, 2),
                                                                  (1, 1), (64, 1)]] == [0, 1, 1, 1, 2, 2, 0, 0]
    b = power.link_bytes_by_level(f, 1.0, 32.0, 100.0)
    assert [float(x) for x in b] == [0.0, 0.0, 100.0]
    assert float(power.level_energy_per_bit(f, 1.0)) == pytest.approx(f.l2.energy_per_bit)


# ---------------------------------------------------------------- thermal
@pytest.fixture(scope="module")
def solved(hw, fns):
    chip, dram, _, th = hw
    r_j = np.asarray(th.r_base, np.float64) + np.asarray(dram.total_layers) * np.asarray(th.r_per_layer)
    e, t_cool, t_hot = _thermal_inputs(chip)
    e = _scaled(e, r_j)
    return e, t_cool, t_hot, fns[2](chip, dram, th, e, t_cool, t_hot)


def test_thermal_matches_reference(hw, solved):
    chip, dram, _, th = hw
    e, t_cool, t_hot, got = solved
    c, d, t = as_dict(chip), as_dict(dram), as_dict(th)
    el, ed = np.asarray(e.logic, np.float64), np.asarray(e.dram, np.float64)
    cases = set()
    for i in range(N):
        want = ref.solve(ref.at(c, i), ref.at(d, i), ref.at(t, i), el[i], ed[i], float(t_cool[i]), float(t_hot[i]))
        if abs(want["t_dram_cool"] - ref.at(d, i)["refresh_double_temp"]) < 1e-2:
            continue  # a float32 / float64 tie at the 85 C switch may pick the other regime
        if 0 < want["hot"] < 1 and want["t_dram_cool"] - want["t_dram_hot"] < 1.0:
            continue  # hot = dT_cool / (T_cool - T_hot): float32 rounding of temperatures amplified
        cases.add(0 if want["hot"] == 0 else 2 if want["hot"] == 1 else 1)
        for k, v in want.items():
            if k not in ("t_dram_cool", "t_dram_hot"):
                np.testing.assert_allclose(float(getattr(got, k)[i]), v, rtol=RTOL, atol=1e-4, err_msg=f"{k} [{i}]")
    assert cases == {0, 1, 2}  # cool, time-shared and hot designs were all compared


def test_fixed_point_residual_and_finite(solved):
    *_, got = solved
    for k, v in got._asdict().items():
        assert np.all(np.isfinite(np.asarray(v))), k
    assert float(np.max(got.residual)) < 1e-3
    hot = np.asarray(got.hot)
    assert np.all((hot >= 0) & (hot <= 1))
    assert np.any(np.asarray(got.power) > 0)


def test_reduces_to_deepstack_without_dram_power_and_leakage(hw, fns):
    chip, dram, _, th = hw
    rng = np.random.default_rng(8)
    m = rng.uniform(1.0, 16.0, N)  # fractional layers (relaxed designs) too
    chip = _rep(chip, leakage_temp_coeff=np.zeros(N))
    dram = _rep(dram, total_layers=m, refresh_power=np.zeros(N), background_power=np.zeros(N))
    e = power.Energy(*(np.zeros(N, np.float32) for _ in power.Energy._fields))
    e = e._replace(compute=np.asarray(rng.uniform(0, 2, N), np.float32))
    t = np.full(N, 0.01, np.float32)
    got = fns[2](chip, dram, th, e, t, t)
    p = np.asarray(e.compute) / 0.01 + np.asarray(chip.static_power)
    want = np.asarray(th.ambient) + (np.asarray(th.r_base) + m * np.asarray(th.r_per_layer)) * p
    np.testing.assert_allclose(got.t_junction, want, rtol=RTOL)
    # the 3D preset: 0.56 + 0.01 m K/W
    hw3 = io.load_preset("hardware", "stacked-3d")
    c3 = dataclasses.replace(hw3["chip"], leakage_temp_coeff=0.0, static_power=0.0)
    d3 = dataclasses.replace(hw3["dram"], refresh_power=0.0, background_power=0.0)
    e1 = power.Energy(*([0.0] * len(power.Energy._fields)))._replace(compute=1.0)  # 100 W for 0.01 s
    s = thermal.solve(c3, d3, hw3["thermal"], e1, 0.01, 0.01)
    np.testing.assert_allclose(float(s.t_junction), 35 + (0.56 + 0.01 * 4) * 100, rtol=1e-6)


def test_more_layers_is_hotter(hw, solved, fns):
    chip, dram, _, th = hw
    e, t_cool, _, base = solved
    th3 = _rep(th, dram_beside=np.zeros(N))
    a = fns[2](chip, dram, th3, e, t_cool, t_cool)
    b = fns[2](chip, _rep(dram, total_layers=np.asarray(dram.total_layers) + 2), th3, e, t_cool, t_cool)
    assert np.all(np.asarray(b.t_junction) >= np.asarray(a.t_junction) - 1e-4)
    assert np.all(np.asarray(b.t_dram) >= np.asarray(a.t_dram) - 1e-4)
    assert np.mean(np.asarray(b.t_junction) > np.asarray(a.t_junction) + 1e-3) > 0.5


def test_hot_regime_only_above_the_refresh_threshold(hw, fns):
    chip, dram, _, th = hw
    e, t_cool, _ = _thermal_inputs(chip, seed=9)
    r_j = np.asarray(th.r_base) + np.asarray(dram.total_layers) * np.asarray(th.r_per_layer)
    e = _scaled(e, r_j)
    # no bandwidth loss: the hot branch is at least as hot, so the state is all-cool or all-hot
    got = fns[2](chip, dram, th, e, t_cool, t_cool)
    cool = fns[2](chip, _rep(dram, refresh_double_temp=np.full(N, 1e4)), th, e, t_cool, t_cool)
    above = np.asarray(cool.t_dram) > np.asarray(dram.refresh_double_temp)
    np.testing.assert_array_equal(np.asarray(got.hot), above.astype(np.float32))
    assert 0.1 < above.mean() < 0.9
    np.testing.assert_allclose(got.refresh_power, np.asarray(cool.refresh_power) * (1 + above), rtol=1e-6)
    # a large bandwidth loss: designs just above 85 C time-share and sit at the threshold
    mixed = fns[2](chip, dram, th, e, t_cool, 3.0 * t_cool)
    share = (np.asarray(mixed.hot) > 0) & (np.asarray(mixed.hot) < 1)
    assert share.sum() > 10
    np.testing.assert_allclose(np.asarray(mixed.t_dram)[share], np.asarray(dram.refresh_double_temp)[share], atol=1e-3)
    t = np.asarray(mixed.step_time)[share]
    assert np.all((t > t_cool[share] * (1 - 1e-6)) & (t < 3.0 * t_cool[share] * (1 + 1e-6)))


def _tj(chip, dram, th, energy_per_bit, compute):
    d = dataclasses.replace(dram, energy_per_bit=energy_per_bit)
    w = power.Work(tensor_flops=compute * 1e15, vector_flops=1e12, sram_bytes=1e13, dram_bytes=2e12, time=1.0)
    fab = io.load_preset("fabric", "nvlink-h100x8")["fabric"]
    e = power.step_energy(chip, d, fab, w, 2.0)
    return thermal.solve(chip, d, th, e, 1.0, 1.3).t_junction


@pytest.mark.parametrize("scale", [0.5, 1.0, 1.25, 3.0])  # cool, near 85 C, time-shared / hot, runaway
def test_gradients_finite_in_relaxed_mode(scale):
    hw3 = io.load_preset("hardware", "h100-sxm")
    chip = dataclasses.replace(hw3["chip"], static_power=hw3["chip"].static_power * scale)
    with relax.relaxed(0.05):
        g = jax.jit(jax.grad(_tj, argnums=(3, 4)))(chip, hw3["dram"], hw3["thermal"], 1e-12, 0.5 * scale)
    assert all(np.isfinite(float(x)) and float(x) > 0 for x in g), g


def test_implicit_gradient_matches_finite_difference():
    hw3 = io.load_preset("hardware", "stacked-3d")
    chip = dataclasses.replace(hw3["chip"], leakage_temp_coeff=0.03, static_power=40.0)
    f = jax.jit(lambda p: _tj(dataclasses.replace(chip, static_power=p), hw3["dram"], hw3["thermal"], 1e-12, 0.01))
    g = float(jax.grad(f)(40.0))
    fd = (float(f(40.5)) - float(f(39.5))) / 1.0
    np.testing.assert_allclose(g, fd, rtol=2e-2)  # float32 central difference over 1 W
    assert g > float(hw3["thermal"].r_base)       # leakage feedback amplifies dT/dP_static


def test_vmap_matches_single_point(hw, solved):
    chip, dram, _, th = hw
    e, t_cool, t_hot, got = solved
    i = 17
    one = jax.tree_util.tree_map(lambda x: x[i], (chip, dram, th, e, t_cool, t_hot))
    s = jax.jit(thermal.solve)(*one)
    for k in thermal.ThermalState._fields:
        np.testing.assert_allclose(float(getattr(s, k)), float(getattr(got, k)[i]), rtol=1e-5, atol=1e-6, err_msg=k)


def test_extremes_stay_finite():
    chip = Chip(**{**vars(io.load_preset("hardware", "h100-sxm")["chip"]), "leakage_temp_coeff": 0.1,
                   "static_power": 1e4})
    hw3 = io.load_preset("hardware", "h100-sxm")
    zero = power.Energy(*([0.0] * 7))
    for e, t in [(zero, 0.0), (zero._replace(compute=1e9), 1e-9), (zero, 1.0)]:
        s = thermal.solve(chip, Dram(**vars(hw3["dram"])), Thermal(**vars(hw3["thermal"])), e, t, t)
        assert all(np.isfinite(float(v)) for v in s), s
    assert float(thermal.solve(chip, hw3["dram"], hw3["thermal"], zero, 1.0, 1.0).t_junction) < 1e6


# ---------------------------------------------------------------- power wall
def test_frequency_scale_and_throttling():
    chip = io.load_preset("hardware", "h100-sxm")["chip"]
    p = jnp.array([10.0, 350.0, 699.0, 700.0, 800.0, 1400.0, 5600.0])
    f = np.asarray(jax.vmap(lambda x: power.frequency_scale(chip, x))(p))
    want = [ref.frequency_scale(chip.tdp, float(x)) for x in p]
    np.testing.assert_allclose(f, want, rtol=1e-6)
    assert np.all(f[:4] == 1.0) and f[-1] == pytest.approx(0.5)
    np.testing.assert_allclose(power.throttled_power(p[4:], f[4:]), chip.tdp, rtol=1e-5)
    assert float(power.scaled_time(2.0, 0.5)) == pytest.approx(4.0)            # DeepStack: throughput x f
    assert float(power.scaled_time(2.0, 0.5, compute_fraction=0.25)) == pytest.approx(2.5)
