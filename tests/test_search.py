"""Hierarchical search: bounds are optimistic on random designs of every preset, and the
search returns exactly the exhaustive sweep's top-k (same designs, same float32 values).

One stacked space (DeepSeek-V3 on 256 stacked chips, ~1.4e5 points) is swept once with
``dump=True``; every comparison (restrictions, other objectives, extra limits, ablation
stages) is computed from that dump in numpy, and every search reuses the same compiled
steps (``search._CACHE``), so the module compiles the model five times in all.
"""

import dataclasses
import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from yaml import safe_load as yaml_load

import jaxstack.engines.search as search_mod
from jaxstack import cli
from jaxstack.cli.search_cli import add_constraints
from jaxstack.edges import io
from jaxstack.engines import bounds
from jaxstack.engines.ablation import STAGES, ablation, stage_allowed
from jaxstack.engines.search import search
from jaxstack.engines.space import load_space, metric_fields, space_from_dict
from jaxstack.engines.space_axes import restrict
from jaxstack.engines.sweep import sweep
from jaxstack.recipe.evaluate import evaluate
from jaxstack.types.metrics import HIGHER_IS_BETTER

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from designs import random_designs  # noqa: E402

SPACE = """\
version: 1
base:
  hardware: stacked-3d
  fabric: stacked-256
  model: deepseek-v3
  request: {batch: 64, input_len: 1024, output_len: 1024}
zip:
  - dram.total_layers: [4, 8, 7, 12]
    dram.connected_layers: [4, 8, 7, 6]
axes:
  chip.compute_units: {choices: [8, 16]}
  chip.tdp_W: {choices: [50, 100]}
  fabric.l1.link_bandwidth_GBps: {choices: [512, 256]}
  fabric.l3.link_bandwidth_GBps: {choices: [100, 200]}
  fabric.l2.hop_latency_ns: {choices: [150, 300]}
  request.batch: {choices: [16, 256]}
mapping: {factorizations: 256, axes: [tp, ep, dp, pp], moe_tp_to_ep: [0, 1], overlap: [0, 1]}
limits:
  user_tokens_per_s: {min: 10}
objective: decode_tokens_per_s
"""
K = 10
FIELDS = metric_fields()


@pytest.fixture(scope="module")
def space_path(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("search") / "space.yaml"
    p.write_text(SPACE)
    return p


@pytest.fixture(scope="module")
def space(space_path):
    return load_space(space_path)


@pytest.fixture(scope="module")
def dump(space):
    """Every point of the space, by the sweep engine (its own compiled step; flat, the layout
    search evaluates in, so values agree to the bit: hoisted vs flat is test_hoist.py)."""
    res = sweep(space, top_k=K, dump=True, progress=False, hoist=False)
    d = res.dump
    return {"res": res, "f": np.stack([d[n] for n in FIELDS], -1), "feasible": d["feasible"].astype(bool),
            "digits": np.stack(np.unravel_index(np.arange(space.size), space.radices), -1)}


def brute_top(space, dump, k, objective="decode_tokens_per_s", allowed=None, limits=()):
    """Exact top-k by (value desc, index asc) over the allowed rows, from the dump."""
    ok = dump["feasible"].copy()
    if allowed is not None:
        for a, rows in enumerate(allowed):
            ok &= np.isin(dump["digits"][:, a], rows)
    for lim in limits:
        v = dump["f"][:, FIELDS.index(lim.metric)]
        ok &= ~((v < np.float32(-np.inf if lim.lo is None else lim.lo)) | (v > np.float32(np.inf if lim.hi is None
                                                                                           else lim.hi)))
    val = np.float32(1.0 if HIGHER_IS_BETTER[objective] else -1.0) * dump["f"][:, FIELDS.index(objective)]
    idx = np.flatnonzero(ok & ~np.isnan(val))
    order = np.lexsort((idx, -val[idx].astype(np.float64)))[:k]
    return [(int(i), float(dump["f"][i, FIELDS.index(objective)])) for i in idx[order]]


def pairs(res, objective="decode_tokens_per_s"):
    return [(r["index"], r[objective]) for r in res.top]


def same(a, b):
    """Same designs in the same order; values equal to float32 rounding. The search's exact
    step and the sweep's are two compiled programs: bit-equal with XLA's default flags, a
    last-bit apart under the fast-compile flags of ``conftest.py``."""
    assert [i for i, _ in a] == [i for i, _ in b], (a, b)
    np.testing.assert_allclose([v for _, v in a], [v for _, v in b], rtol=1e-6)


@pytest.fixture(scope="module")
def searched(space):
    return search(space, top_k=K, progress=False)


# ---------------------------------------------------------------- bounds
def _faster(d, seed):
    """Same designs on a fabric at least as fast: bandwidths x[1, 4], latencies x[0, 1]."""
    rng = np.random.default_rng(seed)
    n = len(d.request.batch)
    f = d.fabric

    def lv(level):
        bw = (level.link_bandwidth * rng.uniform(1, 4, n)).astype(np.float32)
        return dataclasses.replace(level, link_bandwidth=bw,
                                   hop_latency=(level.hop_latency * rng.uniform(0, 1, n)).astype(np.float32))

    fast = dataclasses.replace(f, l1=lv(f.l1), l2=lv(f.l2), l3=lv(f.l3),
                               collective_overhead=(f.collective_overhead * rng.uniform(0, 1, n)).astype(np.float32),
                               bandwidth_efficiency=np.minimum(f.bandwidth_efficiency * rng.uniform(1, 1.2, n), 1.0)
                               .astype(np.float32))
    return dataclasses.replace(d, fabric=fast)


def test_bounds_are_optimistic_on_random_designs():
    """B1-B3 on 12,000 random designs over every hardware/fabric/model preset, random mappings
    (overlap, FSDP, TP->EP, micro-batches), thermal regimes; plus the same designs' box bound
    at a faster fabric (the optimistic corner of a box containing them)."""
    n = 6000
    d = jax.tree_util.tree_map(lambda a, b: np.concatenate([a, b]), random_designs(n, seed=11),
                               random_designs(n, seed=12))
    both = jax.tree_util.tree_map(lambda a, b: np.concatenate([a, b]), d, _faster(d, 3))
    box, mem, ok, batch, own = map(np.asarray, jax.jit(jax.vmap(bounds.bound_node))(both))
    m = jax.jit(jax.vmap(evaluate))(d)
    tpot, reason = np.asarray(m.tpot_s), np.asarray(m.reason)
    rtol = 1e-5          # float32 rounding of two compiled programs (search prunes with 1e-4)
    assert np.all(box[: 2 * n] <= tpot * (1 + rtol)), np.max(box[: 2 * n] / tpot)
    assert np.all(own[: 2 * n] <= tpot * (1 + rtol)), np.max(own[: 2 * n] / tpot)
    assert np.all(box[2 * n:] <= tpot * (1 + rtol)), np.max(box[2 * n:] / tpot)       # monotone in the fabric
    assert np.all(box[: 2 * n] <= own[: 2 * n] * (1 + rtol))
    assert np.all((ok[: 2 * n] > 0.5) == ~np.isin(reason, [1, 2, 3, 4]))               # B3 is exact
    np.testing.assert_allclose(mem[: 2 * n], np.asarray(m.memory_bytes), rtol=1e-6)
    # exact where nothing is hidden: overlap off and cool DRAM -> the bound is TPOT itself
    cool = (np.asarray(d.mapping.overlap) < 0.5) & (np.asarray(m.refresh_hot_fraction) == 0)
    assert cool.sum() > 1000
    np.testing.assert_allclose(box[: 2 * n][cool], tpot[cool], rtol=1e-5)
    # and decode tok/s <= batch / bound (what search compares)
    up = bounds.objective_bound("decode_tokens_per_s", box[: 2 * n], batch[: 2 * n], mem[: 2 * n])
    assert np.all(np.asarray(m.decode_tokens_per_s) <= up * (1 + rtol))


def _faster_chip(d, lo, hi, seed):
    """The same designs at a chip clock, a DRAM transfer rate and a DRAM efficiency x[lo, hi]
    each (the efficiency at most 1), and per-unit SRAM capacity and bandwidth (SRAM_MONOTONE)
    where the die has no area budget."""
    rng = np.random.default_rng(seed)
    n = len(d.request.batch)

    def f(x, cap=np.inf):
        return np.minimum(x * rng.uniform(lo, hi, n), cap).astype(np.float32)

    # and the SRAM where no die-area budget trades it against compute units (SRAM_MONOTONE)
    free = np.asarray(d.chip.die_area) <= 0
    sram = dataclasses.replace(d.chip, clock=f(d.chip.clock),
                               sram_capacity=np.where(free, f(d.chip.sram_capacity), d.chip.sram_capacity)
                               .astype(np.float32),
                               sram_bandwidth=np.where(free, f(d.chip.sram_bandwidth), d.chip.sram_bandwidth)
                               .astype(np.float32))
    return dataclasses.replace(d, chip=sram, dram=dataclasses.replace(d.dram, transfer_rate=f(d.dram.transfer_rate),
                                                                      efficiency=f(d.dram.efficiency, 1.0)))


def test_compute_box_bound_is_optimistic_and_monotone():
    """B5: the bound of a box that also spans lower clocks, DRAM rates and DRAM efficiencies,
    taken at its fastest corner (and a faster fabric), is below TPOT everywhere in it, and never
    rises along them. Without B5's wave-free overlap term, a faster chip can raise the
    overlapped bound: its shorter compute hides less of the communication, and the tiles (hence
    the wave count) change."""
    n = 6000
    d = jax.tree_util.tree_map(lambda a, b: np.concatenate([a, b]), random_designs(n, seed=13),
                               _serving_variety(random_designs(n, seed=14), seed=6))
    corner = _faster(_faster_chip(d, 1.0, 3.0, 7), 8)
    box, _, _, _, own = map(np.asarray, jax.jit(jax.vmap(bounds.bound_node_b5))(corner))
    m = jax.jit(jax.vmap(evaluate))(d)
    tpot, feas = np.asarray(m.tpot_s), np.asarray(m.feasible)
    assert feas.sum() > 1000 and (np.asarray(d.mapping.overlap)[feas] > 0.5).sum() > 300
    assert np.all(box[feas] <= tpot[feas] * (1 + 1e-5)), np.max(box[feas] / tpot[feas])
    # monotone: each design at 1x, 1.3x, 2x its clock, DRAM rate and efficiency (capped at 1)
    t = [np.asarray(jax.jit(jax.vmap(bounds.bound_point_b5))(_faster_chip(d, f, f, 0))[0]) for f in (1.0, 1.3, 2.0)]
    assert np.all(t[1] <= t[0] * (1 + 1e-5)) and np.all(t[2] <= t[1] * (1 + 1e-5))
    assert np.mean(t[2] < t[0] * 0.99) > 0.3          # and it does fall with the clock on many of them
    # B5 is the B1-B2 bound with the overlap's wave count let go: never above it
    b12 = np.asarray(jax.jit(jax.vmap(bounds.bound_point))(d)[0])
    assert np.all(t[0] <= b12 * (1 + 1e-6))


def test_search_with_clock_and_dram_axes_equals_sweep(space):
    """Clock and DRAM-efficiency axes are monotone roles (B5 bounds, a staircase in level 2):
    the exact top-k."""
    data = yaml_load(SPACE)
    data["axes"]["chip.clock_GHz"] = {"choices": [1.2, 2.1, 1.5]}
    data["axes"]["dram.efficiency"] = {"choices": [0.7, 0.9]}
    data["axes"]["request.batch"] = {"choices": [16]}
    data["axes"].pop("fabric.l3.link_bandwidth_GBps")
    sp = space_from_dict(data)
    rl = search_mod.roles(sp, restrict(sp))
    mono = [sp.axes[a].name for a in rl.monotone]
    assert rl.b5 and "axes.chip.clock_GHz" in mono and "axes.dram.efficiency" in mono
    want = sweep(sp, top_k=K, progress=False)
    got = search(sp, top_k=K, progress=False)
    same(pairs(got), pairs(want))
    assert got.stats["exact_evals"] < sp.size / 10


def test_sram_axes_are_monotone_only_without_a_die_area_budget():
    gpu = space_from_dict({"version": 1, "base": {"hardware": "h100-sxm", "fabric": "nvlink-h100x8",
                                                  "model": "llama-3-70b", "request": {"batch": 64, "input_len": 1024,
                                                                                      "output_len": 256}},
                           "axes": {"chip.sram_capacity_KiB": {"choices": [114, 228, 456]},
                                    "chip.sram_bandwidth": {"choices": [64, 128, 256]},
                                    "request.batch": {"choices": [16, 256]}},
                           "mapping": {"factorizations": 8, "axes": ["tp", "dp", "pp"], "overlap": [0, 1]}})
    rl = search_mod.roles(gpu, restrict(gpu))
    assert rl.b5 and len(rl.monotone) == 2
    same(pairs(search(gpu, top_k=K, progress=False)), pairs(sweep(gpu, top_k=K, progress=False)))
    data = yaml_load(SPACE)                                  # stacked-3d: a 46 mm2 die-area budget
    data["axes"]["chip.sram_capacity_KiB"] = {"choices": [128, 256]}
    stacked = space_from_dict(data)
    rl = search_mod.roles(stacked, restrict(stacked))
    assert "axes.chip.sram_capacity_KiB" in [stacked.axes[a].name for a in rl.hardware]


def test_overlap_on_bounds_the_same_box_with_overlap_off():
    """B6: overlap never lengthens the cool step, so level 1 may give a group with overlap off
    its overlap-on sibling's bound: that bound (at a faster fabric corner) is below TPOT of the
    same designs run without overlap."""
    n = 6000
    d = jax.tree_util.tree_map(lambda a, b: np.concatenate([a, b]), random_designs(n, seed=15),
                               _serving_variety(random_designs(n, seed=16), seed=7))

    def with_overlap(x, v):
        return dataclasses.replace(x, mapping=dataclasses.replace(
            x.mapping, overlap=np.full_like(np.asarray(x.mapping.overlap), v)))

    on = np.asarray(jax.jit(jax.vmap(bounds.bound_point))(_faster(with_overlap(d, 1.0), 9))[0])
    m = jax.jit(jax.vmap(evaluate))(with_overlap(d, 0.0))
    tpot, feas = np.asarray(m.tpot_s), np.asarray(m.feasible)
    assert feas.sum() > 1000
    assert np.all(on[feas] <= tpot[feas] * (1 + 1e-5)), np.max(on[feas] / tpot[feas])


def test_overlap_siblings(space):
    m, rep = bounds.overlap_siblings(space, restrict(space))
    table, cols = space.axes[m].table, space.axes[m].columns
    ov = cols.index("mapping.overlap")
    rest = [j for j in range(len(cols)) if j != ov]
    assert np.all(table[rep, ov] == 1)                               # every row has an overlap-on sibling here
    np.testing.assert_array_equal(table[rep][:, rest], table[:, rest])   # equal but for the flag
    assert bounds.overlap_siblings(space_from_dict({**yaml_load(SPACE), "mapping": {
        "factorizations": 256, "axes": ["tp", "ep", "dp", "pp"]}}), restrict(space)) is None


def _serving_variety(d, seed):
    """Half the points offline (engine limits, trtllm-style auto limits, finite runs), half with
    speculative decoding (k proposed tokens, acceptance, draft cost), independently."""
    rng = np.random.default_rng(seed)
    n = len(d.request.batch)

    def f32(x):
        return np.asarray(x, np.float32)

    sv = dataclasses.replace(
        d.serving, regime=f32(rng.random(n) < 0.5), max_num_seqs=f32(rng.integers(1, 4097, n)),
        max_num_batched_tokens=f32(rng.choice([512, 2048, 8192, 32768], n)), auto_limits=f32(rng.random(n) < 0.3),
        num_requests=f32(np.where(rng.random(n) < 0.5, 0, rng.integers(1, 5000, n))),
        spec_tokens=f32(np.where(rng.random(n) < 0.5, rng.integers(1, 5, n), 0)),
        spec_acceptance=f32(rng.uniform(0.0, 0.95, n)), draft_cost=f32(rng.uniform(0.0, 0.3, n)))
    return dataclasses.replace(d, serving=sv)


def test_bounds_hold_offline_and_with_speculation():
    """B1-B4 on offline designs (the running batch from the KV budget and limits) and with
    speculative decoding (TPOT below the step time when tokens are accepted: before session 10
    the bound ignored it and exceeded TPOT ~3x, so a search over such a space could prune its
    best designs), at the design and at a faster fabric."""
    n = 6000
    d = _serving_variety(random_designs(n, seed=21), seed=5)
    both = jax.tree_util.tree_map(lambda a, b: np.concatenate([a, b]), d, _faster(d, 4))
    box, mem, ok, batch, own = map(np.asarray, jax.jit(jax.vmap(bounds.bound_node))(both))
    m = jax.jit(jax.vmap(evaluate))(d)
    tpot, reason, feas = np.asarray(m.tpot_s), np.asarray(m.reason), np.asarray(m.feasible)
    offline, spec = np.asarray(d.serving.regime) > 0.5, np.asarray(d.serving.spec_tokens) > 0
    assert (offline & feas).sum() > 300 and (spec & feas).sum() > 300
    rtol = 1e-5
    for b in (box[:n], own[:n], box[n:]):
        assert np.all(b[feas] <= tpot[feas] * (1 + rtol)), np.max(b[feas] / tpot[feas])
    assert np.all((ok[:n] > 0.5) == ~np.isin(reason, [1, 2, 3, 4]))                     # B3 exact offline too
    np.testing.assert_allclose(batch[:n][feas], np.asarray(m.running_batch)[feas], rtol=1e-6)
    for name in ("decode_tokens_per_s", "scaled_decode_tokens_per_s", "user_tokens_per_s"):
        up = bounds.objective_bound(name, box[n:], batch[:n], mem[:n])
        assert np.all(np.asarray(getattr(m, name))[feas] <= up[feas] * (1 + rtol)), name
    # the bound is tight where nothing is hidden (static, overlap off, cool DRAM), speculation included
    tight = feas & ~offline & spec & (np.asarray(d.mapping.overlap) < 0.5) & (np.asarray(m.refresh_hot_fraction) == 0)
    assert tight.sum() > 50
    np.testing.assert_allclose(box[:n][tight], tpot[tight], rtol=1e-5)


OFFLINE_SPACE = """\
version: 1
base:
  hardware: h200
  fabric: nvlink-h200x8
  model: llama-3-70b
  request: {batch: 1, input_len: 1024, output_len: 512}
  serving: {regime: offline, num_requests: 3000, draft_cost: 0.05, spec_acceptance: 0.7}
axes:
  fabric.l1.link_bandwidth_GBps: {choices: [900, 450, 200]}
  fabric.l1.hop_latency_ns: {choices: [100, 1000]}
  serving.spec_tokens: {choices: [0, 3]}
  serving.max_num_seqs: {choices: [32, 256, 2048]}
  request.input_len: {choices: [256, 4096]}
  chip.tdp_W: {choices: [700, 350]}
mapping: {factorizations: 8, axes: [tp, dp, pp], overlap: [0, 1]}
objective: decode_tokens_per_s
"""


@pytest.mark.parametrize("objective", ["decode_tokens_per_s", "user_tokens_per_s"])
def test_search_equals_sweep_offline_with_speculation(objective):
    """An offline space with speculative decoding as an axis: search's top-k is the exhaustive
    sweep's (offline spaces were refused before session 10; online ones still are)."""
    sp = space_from_dict(yaml_load(OFFLINE_SPACE))
    res = sweep(sp, top_k=K, objective=objective, dump=True, progress=False, hoist=False)
    d = res.dump
    dump = {"f": np.stack([d[n] for n in FIELDS], -1), "feasible": d["feasible"].astype(bool),
            "digits": np.stack(np.unravel_index(np.arange(sp.size), sp.radices), -1)}
    found = search(sp, top_k=K, objective=objective, progress=False)
    same(pairs(found, objective), brute_top(sp, dump, K, objective))
    assert found.stats["level1_pruned"] + found.stats["feasibility_pruned"] > 0      # the bounds did prune
    online = yaml_load(OFFLINE_SPACE)
    online["base"]["serving"]["regime"] = "online"
    with pytest.raises(io.ConfigError, match="serving.regime"):
        search(space_from_dict(online), top_k=K, progress=False)


def test_host_bounds_and_limits():
    t, b, mem = np.array([0.01, 0.2]), np.array([64.0, 64.0]), np.array([1e9, 3e9])
    assert np.allclose(bounds.objective_bound("decode_tokens_per_s", t, b, mem), [6400, 320])
    assert np.allclose(bounds.objective_bound("tpot_s", t, b, mem), [-0.01, -0.2])
    assert np.all(np.isinf(bounds.objective_bound("power_W", t, b, mem)))
    req = {"batch": 1, "input_len": 8, "output_len": 8}
    tiny = space_from_dict({"version": 1, "base": {"hardware": "b200", "fabric": "nvlink-b200x8", "model": "llama-3-8b",
                                                   "request": req}})
    sp = add_constraints(tiny, ["user_tokens_per_s>=10", "memory_GiB<=2"])
    assert list(bounds.limit_dead(sp.limits, t, b, mem)) == [False, True]    # 1/0.2 = 5 < 10; 3e9 B > 2 GiB
    assert bounds.below(np.array([0.99995, 0.9998]), 1.0).tolist() == [False, True]


def test_roles(space):
    rl = search_mod.roles(space, restrict(space))
    name = lambda idx: sorted(space.axes[i].name.removeprefix("axes.") for i in idx)  # noqa: E731
    assert name(rl.monotone) == ["fabric.l1.link_bandwidth_GBps", "fabric.l2.hop_latency_ns",
                                 "fabric.l3.link_bandwidth_GBps"]
    assert name(rl.free) == ["chip.tdp_W"]
    assert name(rl.schedule) == ["mapping", "request.batch"]
    assert name(rl.hardware) == ["chip.compute_units", "zip[0]"]
    assert name(rl.feasibility) == ["mapping", "request.batch", "zip[0]"]
    l1 = [space.axes[a].name for a in rl.monotone].index("axes.fabric.l1.link_bandwidth_GBps")
    assert space.axes[rl.monotone[l1]].display[rl.order[l1][0]] == (512,)      # optimistic first


# ---------------------------------------------------------------- exact top-k
def test_search_equals_sweep(space, dump, searched):
    same(pairs(searched), pairs(dump["res"]))                      # same designs, same float32 values
    same(pairs(searched), brute_top(space, dump, K))
    assert searched.top[0].keys() == dump["res"].top[0].keys()
    s = searched.stats
    assert s["points"] == space.size and s["exact_evals"] < space.size / 20
    assert s["feasibility_pruned"] + s["level1_pruned"] <= s["points"]


@pytest.mark.parametrize("objective,fix,extra", [
    ("decode_tokens_per_s", {"request.batch": [16]}, []),
    ("user_tokens_per_s", {}, []),
    ("tpot_s", {"dram.total_layers": [7, 12]}, ["tpot_ms<=40"]),
    ("decode_tokens_per_s", {"request.batch": [256]}, ["tpot_ms<=60", "memory_GiB<=9"]),
    ("power_W", {"request.batch": [16], "mapping.tp": [4], "chip.compute_units": [8]}, []),   # no bound
])
def test_search_restricted_objectives_and_limits(space, dump, objective, fix, extra):
    sp = add_constraints(space, extra)
    res = search(sp, top_k=7, objective=objective, fix=fix, progress=False)
    same(pairs(res, objective), brute_top(space, dump, 7, objective, restrict(space, fix), sp.limits))


def test_search_resume_after_interrupt(space, searched, tmp_path, monkeypatch):
    monkeypatch.setattr(search_mod, "SUPER_CHUNKS", 0.25)           # several level-1 blocks

    def stop(blocks, counters):
        if blocks == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search(space, top_k=K, out=tmp_path / "r", checkpoint_every_s=0, on_block=stop, progress=False)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["phase"] == 0 and manifest["blocks_done"] == 2 < manifest["blocks_mine"]
    with pytest.raises(io.ConfigError, match="--resume"):
        search(space, top_k=K, out=tmp_path / "r", progress=False)
    with pytest.raises(io.ConfigError, match="top_k"):
        search(space, top_k=K + 1, out=tmp_path / "r", resume=True, progress=False)
    res = search(space, top_k=K, out=tmp_path / "r", resume=True, progress=False)
    same(pairs(res), pairs(searched))
    assert (tmp_path / "r" / "top.csv").exists() and json.loads((tmp_path / "r" / "summary.json").read_text())


def test_ablation_stages_are_exact_restricted_searches(space, dump):
    fix = {"request.batch": [256]}
    rows = ablation(space, fix=fix, progress=False)
    assert [r["name"] for r in rows] == [s[0] for s in STAGES]
    values = [r["value"] for r in rows]
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))      # nested stages
    allowed = restrict(space, fix)
    fixed = {i for i, a in enumerate(space.axes) if len(allowed[i]) < a.size}
    for i, r in enumerate(rows):
        best = brute_top(space, dump, 1, allowed=stage_allowed(space, allowed, i, fixed))
        assert (r["index"], r["value"]) == best[0]
    assert rows[0]["best"]["mapping.ep"] == 1 and rows[0]["best"]["mapping.overlap"] == 0
    assert rows[-1]["value"] == brute_top(space, dump, 1, allowed=allowed)[0][1]


def test_cli(space_path, space, dump, tmp_path, capsys):
    rc = cli.main(["search", str(space_path), "--top-k", "3", "--fix", "request.batch=16", "--out",
                   str(tmp_path / "c"), "--no-progress", "--cpu-devices", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "exact top-k" in out and "evaluated exactly" in out
    assert (tmp_path / "c" / "top.csv").read_text().count("\n") == 4
    rc = cli.main(["search", str(space_path), "--top-k", "2", "--constraint", "tpot_ms<=50", "--json",
                   "--no-progress", "--cpu-devices", "1"])
    got = json.loads(capsys.readouterr().out)
    want = brute_top(space, dump, 2, limits=add_constraints(space, ["tpot_ms<=50"]).limits)
    assert rc == 0 and [(r["index"], r["decode_tokens_per_s"]) for r in got["top"]] == want
    assert cli.main(["search", str(space_path), "--fix", "request.batch=3", "--cpu-devices", "1"]) == 2
    assert cli.main(["search", str(space_path), "--constraint", "tpot<50", "--cpu-devices", "1"]) == 2
    assert "not on the axis" in capsys.readouterr().err
