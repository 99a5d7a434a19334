"""Gradients (``grad.py``), ``jaxstack eval --grad`` and ``jaxstack optimize`` (``optimize.py``).

Compile budget: the whole module shares two compiled functions, the relaxed
``vmap(value_and_grad)`` at ``grad.CHUNK`` rows (minutes on a 2-core CPU) and the exact
``vmap(evaluate)`` at ``grad.EXACT_CHUNK`` rows; every test goes through them.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstack import cli
from jaxstack.edges import io
from jaxstack.engines import grad
from jaxstack.engines.optimize import grid_rows, optimize, parameters, parse_constraint
from jaxstack.engines.space import metric_fields, space_from_dict
from jaxstack.physics import relax
from jaxstack.types.metrics import HIGHER_IS_BETTER

GPU = {"hardware": "b200", "fabric": "nvlink-b200x8", "model": "llama-3-70b",
       "request": {"batch": 64, "input_len": 1024, "output_len": 1024}, "mapping": {"tp": 8}}
STACKED = {"hardware": "stacked-3d", "fabric": "stacked-256", "model": "llama-3-70b",
           "request": {"batch": 256, "input_len": 1024, "output_len": 1024}, "mapping": {"tp": 8, "pp": 4, "dp": 8}}
SMALL_SPACE = {
    "version": 1,
    "base": {**STACKED, "mapping": {}},
    "axes": {"dram.total_layers": {"range": [2, 12], "step": 2},
             "chip.clock_GHz": {"range": [1.2, 2.1], "count": 4},
             "fabric.l1.link_bandwidth_GBps": {"choices": [64, 128, 256, 512]},
             "request.batch": {"range": [16, 512], "count": 6, "scale": "log"}},
    "mapping": {"factorizations": 256, "axes": ["tp", "pp", "dp"]},
    "limits": {"tpot_ms": {"max": 100}},
    "objective": "decode_tokens_per_s",
}
FD_PARAMS = ("dram.transfer_rate", "chip.clock", "fabric.l1.link_bandwidth")


def _path_index(design):
    return {".".join(k.name for k in p): i for i, (p, _) in enumerate(jax.tree_util.tree_flatten_with_path(design)[0])}


@pytest.fixture(scope="module")
def designs():
    return [io.design_from_dict(GPU), io.design_from_dict(STACKED)]


# ---------------------------------------------------------------- relax: exact derivative, NaN-safe
def test_smooth_max_derivative_is_exact_and_finite_at_zero():
    def naive(a, b, tau):
        s = jnp.maximum(jnp.abs(a), jnp.abs(b))
        return s * tau * jnp.logaddexp(a / (s * tau), b / (s * tau))

    def smooth(a, b, tau):
        with relax.relaxed(tau):
            return relax.maximum(a, b)

    rng = np.random.default_rng(0)
    with jax.enable_x64(True):           # float64: the naive form's d/dtau cancels badly in float32
        for a, b, tau in zip(rng.normal(size=8) * 3, rng.normal(size=8), rng.uniform(0.01, 0.5, 8), strict=True):
            a, b, tau = (jnp.float64(x) for x in (a, b, tau))
            np.testing.assert_allclose(smooth(a, b, tau), naive(a, b, tau), rtol=1e-12)
            np.testing.assert_allclose(jax.grad(smooth, (0, 1, 2))(a, b, tau),
                                       jax.grad(naive, (0, 1, 2))(a, b, tau), rtol=1e-8, atol=1e-12)
    g = jax.grad(smooth, (0, 1))(jnp.float32(0.0), jnp.float32(0.0), 0.05)
    assert np.isfinite(g).all()          # the naive form gives NaN here (1/k**2 underflows)
    assert float(relax.maximum(jnp.float32(2.0), 3.0)) == 3.0   # exact mode untouched


# ---------------------------------------------------------------- gradients vs finite differences
def test_gradients_match_central_differences(designs):
    """Elasticities from jax.grad vs central differences of the same relaxed model (one call)."""
    metric = "decode_tokens_per_s"
    rows, treedef = grad.leaf_matrix(jax.tree_util.tree_map(lambda *x: np.array(x, np.float32), *designs))
    pos = _path_index(designs[0])
    h = 1e-3                                            # relative step
    batch = [rows]
    for name in FD_PARAMS:
        for sgn in (1.0, -1.0):
            r = rows.copy()
            r[:, pos[name]] *= 1.0 + sgn * h
            batch.append(r)
    spec = grad.make_spec(metric, maximise=False, use_log=False)
    out = grad.relaxed_batch(np.concatenate(batch), treedef, spec, grad.DEFAULT_TAU)
    n = len(designs)
    f0 = out["loss"][:n]
    for j, name in enumerate(FD_PARAMS):
        fp, fm = out["loss"][n * (1 + 2 * j):n * (2 + 2 * j)], out["loss"][n * (2 + 2 * j):n * (3 + 2 * j)]
        x = rows[:, pos[name]].astype(np.float64)
        el_fd = (fp.astype(np.float64) - fm) / (2 * h * x) * x / f0
        el_ad = out["grad"][:n, pos[name]] * x / f0
        # rtol 1e-2 as specified; atol: float32 noise of the difference quotient (~1e-7 / h)
        np.testing.assert_allclose(el_ad, el_fd, rtol=1e-2, atol=2e-3, err_msg=name)
    assert np.isfinite(out["grad"]).all()
    # the memory-bound stacked point and the GPU point both respond to DRAM bandwidth
    assert (out["grad"][:n, pos["dram.transfer_rate"]] > 0).all()


def test_gradients_finite_for_every_parameter_in_the_box():
    space = space_from_dict(SMALL_SPACE, "<small>")
    params, disc = parameters(space)
    assert [p.name for p in params] == ["dram.total_layers", "chip.clock_GHz", "fabric.l1.link_bandwidth_GBps",
                                        "request.batch"]
    assert [space.axes[a].name for a in disc] == ["mapping"]
    rng = np.random.default_rng(1)
    n = grad.CHUNK
    digits = np.stack([rng.integers(0, a.size, n) for a in space.axes], -1)
    z = rng.random((n, len(params))).astype(np.float32)
    z[:4] = [[0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1], [1, 0, 1, 0]]      # corners of the box
    rows = grid_rows(space, digits, params, z)
    spec = grad.make_spec("decode_tokens_per_s", limits=[("power_W", None, 50.0)], weight=100.0)
    out = grad.relaxed_batch(rows, jax.tree_util.tree_structure(space.base), spec, 0.3)
    pos = _path_index(space.base)
    cols = [pos[".".join(path)] for path, _ in grad.hardware_params()] + [p.leaf for p in params]
    assert np.isfinite(out["loss"]).all() and np.isfinite(out["grad"][:, cols]).all()


# ---------------------------------------------------------------- eval --grad
def test_eval_grad_cli(capsys, monkeypatch):
    monkeypatch.setenv("JAXSTACK_CACHE_DIR", "off")
    args = ["eval", "--hardware", "stacked-3d", "--fabric", "stacked-256", "--model", "llama-3-70b", "--tp", "8",
            "--pp", "4", "--dp", "8", "--batch", "256", "--input-len", "1024", "--output-len", "1024", "--grad"]
    assert cli.main(args + ["--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["metric"] == "decode_tokens_per_s" and s["finite"]
    np.testing.assert_allclose(s["relaxed"], s["exact"], rtol=0.1)   # tau = 0.05 smooths by a few %
    keys = [r["key"] for r in s["rows"]]
    assert "fabric.l1.link_bandwidth_GBps" in keys and "dram.transfer_rate_GHz" in keys
    assert not any(k.endswith((".kind", ".size", ".dim_x", ".dim_y")) for k in keys)
    el = [abs(r["elasticity"]) for r in s["rows"] if r["elasticity"] is not None]
    assert el == sorted(el, reverse=True) and el[0] > 0.1
    assert all(r["elasticity"] is None for r in s["rows"] if r["value"] == 0.0)
    assert cli.main(args + ["--metric", "power_W"]) == 0
    text = capsys.readouterr().out
    assert "power_W: exact" in text and "elasticity" in text
    assert cli.main(args + ["--metric", "nope"]) == 2


# ---------------------------------------------------------------- optimize
def test_parse_constraint():
    lim = parse_constraint("tpot_ms<=50")
    assert (lim.metric, lim.lo, lim.hi) == ("tpot_s", None, 0.05)
    lim = parse_constraint("user_tokens_per_s >= 20")
    assert (lim.metric, lim.lo, lim.hi) == ("user_tokens_per_s", 20.0, None)
    with pytest.raises(io.ConfigError):
        parse_constraint("power_W=700")


@pytest.mark.parametrize("objective,constraints", [("decode_tokens_per_s", ()), ("tokens_per_J", ("power_W<=60",))])
def test_optimize_finds_the_exhaustive_best_of_a_small_space(objective, constraints):
    space = space_from_dict(SMALL_SPACE, "<small>")
    res = optimize(space, objective, constraints, steps=40, starts=3, seed=0)
    # exhaustive reference: every grid point through the same jit(vmap(evaluate))
    digits = np.stack(np.unravel_index(np.arange(space.size), space.radices), -1)
    m = grad.exact_batch(grid_rows(space, digits), jax.tree_util.tree_structure(space.base))
    ok = m["feasible"].copy()
    for lim in res.limits:
        ok &= (m[lim.metric] >= (lim.lo if lim.lo is not None else -np.inf)) & \
              (m[lim.metric] <= (lim.hi if lim.hi is not None else np.inf))
    sign = 1.0 if HIGHER_IS_BETTER[objective] else -1.0
    best = np.max(np.where(ok, sign * m[objective], -np.inf))
    assert np.isfinite(best) and res.best is not None
    got = sign * res.best[objective]
    assert got >= best - 0.02 * abs(best), (got, best)
    assert ok[res.best["index"]]                                        # feasible and in the grid
    np.testing.assert_allclose(res.best[objective], m[objective][res.best["index"]], rtol=1e-6)
    assert res.exact_evaluations * 5 <= space.size, res.exact_evaluations
    assert set(metric_fields()) <= set(res.best)


def test_optimize_cli(tmp_path, capsys, monkeypatch):
    import yaml

    monkeypatch.setenv("JAXSTACK_CACHE_DIR", "off")
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL_SPACE))
    out = tmp_path / "run"
    assert cli.main(["optimize", str(path), "--steps", "5", "--starts", "2", "--constraint", "power_W<=80",
                     "--max-combos", "4", "--out", str(out), "--top-k", "3"]) == 0
    text = capsys.readouterr().out
    assert "exact evaluations" in text and "best" in text
    lines = (out / "trajectory.csv").read_text().splitlines()
    assert lines[0].startswith("step,start,combo,tau,weight,loss") and len(lines) == 1 + 5 * 2 * 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exact_evaluations"] > 0 and summary["best"]["power_W"] <= 80
    assert cli.main(["optimize", str(path), "--optimizer", "no_such_optimizer"]) == 2
