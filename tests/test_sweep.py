"""Sweep engine mechanics with a toy evaluate_fn (exact in float32), plus one real-model run.

Compiled steps are shared: every run that uses ``SWEEP_KW`` on the toy space hits the same
cached executable (same plan, same function), so the module compiles only a few times.
"""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxstack.engines.step as step_mod
import jaxstack.engines.sweep as sweep_mod
from jaxstack.edges import io
from jaxstack.engines.space import load_space, metric_fields
from jaxstack.engines.sweep import sweep
from jaxstack.types.metrics import HIGHER_IS_BETTER, Reason

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _multihost_worker import SWEEP_KW, TOY_SPACE, TRACES, _report, toy_evaluate  # noqa: E402

TOY = TOY_SPACE
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
       "JAX_PLATFORMS": "cpu"}


@pytest.fixture(scope="module")
def toy_path(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("space") / "toy.yaml"
    p.write_text(TOY)
    return p


@pytest.fixture(scope="module")
def ref(toy_path):
    """The reference run: one device, no run directory."""
    return sweep(toy_path, evaluate_fn=toy_evaluate, **SWEEP_KW)


@pytest.fixture(scope="module")
def brute(toy_path):
    """Every point evaluated directly (host decoder + plain vmap), limits applied in numpy."""
    space = load_space(toy_path)
    idx = np.arange(space.size)
    m = jax.jit(jax.vmap(toy_evaluate))(space.designs(idx))
    f = {n: np.asarray(getattr(m, n), np.float32) for n in metric_fields()}
    feasible, reason = np.asarray(m.feasible), np.asarray(m.reason)
    viol = np.zeros(space.size, bool)
    for lim in space.limits:
        if lim.hi is not None:
            viol |= f[lim.metric] > np.float32(lim.hi)
        if lim.lo is not None:
            viol |= f[lim.metric] < np.float32(lim.lo)
    reason = np.where(feasible & viol, int(Reason.slo), reason)
    return {"space": space, "index": idx, "f": f, "feasible": feasible & ~viol, "reason": reason}


def brute_top(b, metric, k):
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    ok = b["feasible"]
    idx, val = b["index"][ok], sign * b["f"][metric][ok].astype(np.float64)
    return idx[np.lexsort((idx, -val))][:k].tolist()


def brute_front(b, metrics) -> list[int]:
    ok = b["feasible"]
    idx = b["index"][ok]
    x = np.stack([(1.0 if HIGHER_IS_BETTER[m] else -1.0) * b["f"][m][ok].astype(np.float64) for m in metrics], -1)
    keep = []
    for s in range(0, len(idx), 512):
        xb, ib = x[s:s + 512], idx[s:s + 512]
        ge = np.all(x[:, None, :] >= xb[None, :, :], -1)
        gt = np.any(x[:, None, :] > xb[None, :, :], -1)
        beaten = np.any(ge & (gt | (idx[:, None] < ib[None, :])), 0)
        keep += ib[~beaten].tolist()
    return sorted(keep)


# ---------------------------------------------------------------- reducers vs brute force
def test_topk_equals_bruteforce_sort(ref, brute):
    assert [r["index"] for r in ref.top] == brute_top(brute, "decode_tokens_per_s", SWEEP_KW["top_k"])
    for r in ref.top:                       # rows carry all metrics and user-unit axis values
        assert r["decode_tokens_per_s"] == brute["f"]["decode_tokens_per_s"][r["index"]]
        assert r == {**r, **brute["space"].values(r["index"])}
        assert r["fabric.l1.link_bandwidth_GBps"] in (100, 300, 500, 700, 900)


def test_quick_compile_for_few_points_same_answer(toy_path, ref):
    """A sweep of at most FAST_COMPILE_POINTS points compiles with XLA:CPU's quick options (on
    CPU); the optimised program gives the same top rows."""
    assert ref.timings["quick_compile"] == (jax.devices()[0].platform == "cpu")
    full = sweep(toy_path, evaluate_fn=toy_evaluate, quick_compile=False, **SWEEP_KW)
    assert not full.timings["quick_compile"]
    assert [r["index"] for r in full.top] == [r["index"] for r in ref.top]
    for a, b in zip(full.top, ref.top, strict=True):
        np.testing.assert_allclose(a[ref.objective], b[ref.objective], rtol=1e-5)


def test_counts_and_slo_limits(ref, brute):
    want = np.bincount(np.where(brute["feasible"], 0, brute["reason"]), minlength=len(Reason))
    assert ref.counts == {r.name: int(want[int(r)]) for r in Reason}
    # 7200 grid points less the 1440 no-op FSDP twins (dp = 1)
    assert ref.points == brute["space"].size == 5760 and ref.counts["slo"] > 0
    assert ref.feasible == int(brute["feasible"].sum())


def test_pareto_2d_equals_bruteforce(ref, brute):
    assert sorted(r["index"] for r in ref.pareto) == brute_front(brute, SWEEP_KW["pareto"])
    assert ref.pareto_dropped == 0


def test_prefiltered_2d_front_equals_the_sorted_one():
    """The CPU step drops points a higher m0 bin dominates before sorting (reducers.PREFILTER):
    same candidates, same order, same count as sorting the whole shard, with ties, infeasible
    points, and fronts larger than the filter (the full sort then) and than the cap."""
    from jaxstack.engines import reducers

    rng = np.random.default_rng(3)
    both = jax.jit(lambda x, ok: (reducers.pareto_candidates(x, ok, 64),
                                  reducers.pareto_candidates(x, ok, 64, prefilter=True)))
    for trial in range(24):
        n, kind = 4096, trial % 4
        if kind == 0:
            x = rng.normal(size=(n, 2))
        elif kind == 1:
            x = np.round(rng.normal(size=(n, 2)) * 3)                        # many exact ties
        elif kind == 2:
            t = rng.random(n)
            x = np.stack([t, 1 - t + 0.01 * rng.random(n)], 1)               # most points on the front
        else:
            x = np.round(rng.random((n, 2)) * 20)
            x[:, 1] = -x[:, 0] + np.round(rng.random(n) * 3)                # a staircase with ties
        a, b = both(x.astype(np.float32), rng.random(n) < 0.7)
        assert np.array_equal(np.asarray(a[0])[np.asarray(a[1])], np.asarray(b[0])[np.asarray(b[1])])
        assert int(a[2]) == int(b[2])


def test_pareto_3d_and_minimised_objective(toy_path, brute):
    metrics = ("decode_tokens_per_s", "user_tokens_per_s", "power_W")
    res = sweep(toy_path, evaluate_fn=toy_evaluate, objective="power_W", top_k=5, chunk=512,
                pareto=metrics, progress=False)
    assert sorted(r["index"] for r in res.pareto) == brute_front(brute, metrics)
    assert [r["index"] for r in res.top] == brute_top(brute, "power_W", 5)


def test_dump_equals_bruteforce(toy_path, brute, tmp_path):
    res = sweep(toy_path, evaluate_fn=toy_evaluate, top_k=3, chunk=1000, dump=True, out=tmp_path / "d",
                progress=False)
    assert res.dump["index"].tolist() == list(range(len(brute["index"])))
    for n in metric_fields():     # 1/x may round differently in another fusion layout (a hoisted sweep)
        np.testing.assert_array_max_ulp(res.dump[n], brute["f"][n], maxulp=2)
    np.testing.assert_array_equal(res.dump["feasible"], brute["feasible"])
    np.testing.assert_array_equal(res.dump["reason"], brute["reason"])
    stem = tmp_path / "d" / "dump"
    assert stem.with_suffix(".parquet" if sweep_mod._has_pyarrow() else ".csv").exists()
    res = sweep(toy_path, evaluate_fn=toy_evaluate, top_k=3, chunk=1000, dump=True, out=tmp_path / "c",
                progress=False, dump_format="csv")
    assert (tmp_path / "c" / "dump.csv").exists() and not (tmp_path / "c" / "dump.parquet").exists()


def test_accelerator_layout_without_conditional(toy_path, ref, monkeypatch):
    """The GPU step (reducers fused directly, no conditional) gives the same answer."""
    import dataclasses

    plan = sweep_mod._plan
    monkeypatch.setattr(sweep_mod, "_plan", lambda *a, **k: dataclasses.replace(plan(*a, **k), barrier=False))
    res = sweep(toy_path, evaluate_fn=toy_evaluate, **SWEEP_KW)
    assert _report(res) == _report(ref)


# ---------------------------------------------------------------- compile once
def test_no_recompilation_across_chunks(toy_path):
    def counting(d):           # a fresh function: its own cache entry, traced exactly once
        return toy_evaluate(d)

    before = TRACES[0]
    res = sweep(toy_path, evaluate_fn=counting, top_k=3, chunk=256, progress=False, hoist=False)
    assert res.timings["chunks"] > 20 and TRACES[0] - before == 1   # hoisted: test_hoist.py
    again = sweep(toy_path, evaluate_fn=counting, top_k=3, chunk=256, progress=False, hoist=False)
    assert TRACES[0] - before == 1 and again.timings["compile_s"] == 0.0
    assert [r["index"] for r in again.top] == [r["index"] for r in res.top]


# ---------------------------------------------------------------- devices and processes
def _run_worker(args, env=None, timeout=180):
    out = subprocess.run([sys.executable, str(HERE / "_multihost_worker.py"), *args], env=env or ENV,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_devices_equal_one(toy_path, ref):
    env = {**ENV, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    got = _run_worker(["devices", str(toy_path)], env=env)
    assert got["devices"] == 2
    got.pop("devices")
    assert got == json.loads(_report(ref))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(toy_path, ref, tmp_path):
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(HERE / "_multihost_worker.py"), "multihost", str(toy_path),
                               str(tmp_path / "mh"), str(port), "2", str(i)], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    want = json.loads(_report(ref))
    for stdout, _ in outs:
        assert json.loads(stdout.strip().splitlines()[-1]) == want
    summary = json.loads((tmp_path / "mh" / "summary.json").read_text())
    assert summary["points"] == 5760 and summary["timings"]["processes"] == 2


# ---------------------------------------------------------------- run directory, resume
def test_resume_after_sigkill_gives_the_uninterrupted_answer(toy_path, ref, tmp_path):
    out = tmp_path / "run"
    log = tmp_path / "worker.log"
    with open(log, "w") as fh:
        p = subprocess.Popen([sys.executable, str(HERE / "_multihost_worker.py"), "slow", str(toy_path),
                              str(out)], env=ENV, stdout=subprocess.DEVNULL, stderr=fh)
    manifest = out / "manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if manifest.exists() and json.loads(manifest.read_text())["chunks_done"] >= 3:
            break
        assert p.poll() is None, log.read_text()[-3000:]
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = json.loads(manifest.read_text())
    assert not done["complete"] and 3 <= done["chunks_done"] < done["n_chunks"]
    res = sweep(toy_path, evaluate_fn=toy_evaluate, out=out, resume=True, **SWEEP_KW)
    assert _report(res) == _report(ref)
    assert [r["tokens_per_J"] for r in res.top] == [r["tokens_per_J"] for r in ref.top]
    assert json.loads(manifest.read_text())["complete"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points"] == 5760 and summary["counts"] == ref.counts
    assert summary["best"]["index"] == ref.top[0]["index"]
    top_csv = (out / "top.csv").read_text().splitlines()
    assert len(top_csv) == 1 + SWEEP_KW["top_k"] and top_csv[0].startswith("rank,index,dram.efficiency")
    assert (out / "pareto.csv").exists()
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return
    assert pq.read_table(out / "top.parquet").num_rows == SWEEP_KW["top_k"]


def test_resume_refuses_a_changed_space_and_reused_dir(toy_path, tmp_path):
    space = tmp_path / "s.yaml"
    space.write_text(TOY)
    out = tmp_path / "run"
    sweep(space, evaluate_fn=toy_evaluate, out=out, **SWEEP_KW)
    with pytest.raises(io.ConfigError, match="already holds a sweep run; pass --resume"):
        sweep(space, evaluate_fn=toy_evaluate, out=out, **SWEEP_KW)
    res = sweep(space, evaluate_fn=toy_evaluate, out=out, resume=True, **SWEEP_KW)   # complete: no work
    assert res.timings["points_this_session"] == 0 and res.points == 5760
    with pytest.raises(io.ConfigError, match="refusing to resume.*top_k"):
        sweep(space, evaluate_fn=toy_evaluate, out=out, resume=True, **{**SWEEP_KW, "top_k": 3})
    space.write_text(TOY.replace("[0.7, 0.8, 0.9, 0.72]", "[0.7, 0.8, 0.9, 0.75]"))
    with pytest.raises(io.ConfigError, match="refusing to resume: the space changed") as e:
        sweep(space, evaluate_fn=toy_evaluate, out=out, resume=True, **SWEEP_KW)
    assert str(out) in str(e.value) and "s.yaml" in str(e.value)


# ---------------------------------------------------------------- CLI
def test_cli_sweep_smoke(toy_path, tmp_path, capsys, monkeypatch):
    from jaxstack.cli import main

    monkeypatch.setattr(sweep_mod, "_default_evaluate", lambda: toy_evaluate)
    args = ["sweep", str(toy_path), "--top-k", "7", "--chunk", "64", "--no-progress",
            "--pareto", "decode_tokens_per_s,user_tokens_per_s"]
    assert main(args + ["--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "best 7 of" in out and "decode tok/s" in out and "mapping" in out and "Pareto front" in out
    assert "hoisted: " in out                          # the toy's cheap axes vary inside (hoist.py)
    assert (tmp_path / "cli" / "summary.json").exists()
    assert main(args + ["--no-hoist"]) == 0
    flat = capsys.readouterr().out
    assert "hoisted" not in flat and flat.split("infeasible:")[0] == out.split("infeasible:")[0]
    assert main(args + ["--prune"]) == 0                # ranked metrics in the steps, the rest for the rows shown
    assert capsys.readouterr().out.split("infeasible:")[0] == out.split("infeasible:")[0]
    assert main(args + ["--json", "--max-points", "1e3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["points"] == 1000 and len(data["top"]) == 7 and data["top"][0]["rank"] == 1
    assert main(["sweep", str(toy_path), "--objective", "speed"]) == 2
    assert "objective" in capsys.readouterr().err


# ---------------------------------------------------------------- the real model
def test_real_evaluate_on_hbm_whatif():
    """One compile of the full model; the best row is re-evaluated eagerly (no second compile)."""
    ev = pytest.importorskip("jaxstack.recipe.evaluate")
    space = load_space(ROOT / "spaces" / "hbm-whatif.yaml")
    res = sweep(space, top_k=3, chunk=1024, max_points=2048, progress=False,
                pareto=("decode_tokens_per_s", "user_tokens_per_s"))
    assert res.points == 2048 == sum(res.counts.values()) and res.feasible > 0 and len(res.top) == 3
    tops = [r["decode_tokens_per_s"] for r in res.top]
    assert tops == sorted(tops, reverse=True) and all(np.isfinite(list(r.values())[-5:]).all() for r in res.top)
    assert res.pareto and res.pareto[0]["decode_tokens_per_s"] == tops[0]
    best = res.top[0]
    m = ev.evaluate(space.design(best["index"]))
    assert bool(m.feasible)
    for n in ("decode_tokens_per_s", "tpot_s", "memory_bytes", "power_W"):
        # eager op-by-op float32 vs one fused XLA program: rounding may differ slightly
        np.testing.assert_allclose(best[n], float(getattr(m, n)), rtol=1e-4)


def _same_rows(a, b, ties=()):
    """Same rows in the same order. ``ties``: the ranked metrics; two different points may
    stand at the same place when those agree to 1e-6 (two designs that tie exactly on them:
    two compiled programs can round such a tie apart by an ulp, either way)."""
    if not ties:
        assert [r["index"] for r in a] == [r["index"] for r in b]
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert list(x) == list(y)                       # same columns, same order
        names = metric_fields() if x["index"] == y["index"] else ties
        np.testing.assert_allclose([x[k] for k in names], [y[k] for k in names], rtol=1e-6)


def test_pruned_sweep_equals_full(toy_path, ref):
    """Only the ranked and limited metrics in the steps; every metric of the returned rows."""
    pr = sweep(toy_path, evaluate_fn=toy_evaluate, prune=True, **SWEEP_KW)
    assert pr.timings["pruned"] and not ref.timings["pruned"]     # the toy space is below the automatic size
    assert pr.counts == ref.counts and pr.histogram == ref.histogram
    _same_rows(pr.top, ref.top)
    _same_rows(pr.pareto, ref.pareto)


def test_pruned_model_drops_only_other_metrics():
    from jaxstack.engines import winners
    from jaxstack.recipe.evaluate import evaluate

    space = load_space(ROOT / "spaces" / "hbm-whatif.yaml")
    keep = winners.kept("decode_tokens_per_s", ("decode_tokens_per_s", "user_tokens_per_s"), ["tpot_s"])
    assert keep == ("decode_tokens_per_s", "user_tokens_per_s", "tpot_s")
    assert winners.pruned(evaluate, keep) is winners.pruned(evaluate, keep)       # one function: one compile
    m = winners.pruned(evaluate, keep)(space.design(7))
    for f in metric_fields():
        assert np.isnan(getattr(m, f)) == (f not in keep), f
    assert winners.worth_it(2**22, "cpu") and not winners.worth_it(2**22 - 1, "cpu")
    assert not winners.worth_it(10**8, "gpu") and winners.worth_it(2**30, "gpu")


def test_pruned_real_model_equals_full():
    space = load_space(ROOT / "spaces" / "hbm-whatif.yaml")
    kw = dict(top_k=3, chunk=1024, max_points=2048, progress=False, pareto=("decode_tokens_per_s", "user_tokens_per_s"))
    full, pr = sweep(space, prune=False, **kw), sweep(space, prune=True, **kw)
    assert pr.counts == full.counts
    # hbm-whatif has designs that tie on both Pareto metrics up to rounding (1024 -> 1024 and
    # 512 -> 2048 tokens at one batch: the same mean KV length, decode linear in it): the two
    # programs may round such a tie either way
    _same_rows(pr.top, full.top)
    _same_rows(pr.pareto, full.pareto, ties=kw["pareto"])


def test_resume_of_a_finished_run_does_not_compile(toy_path, tmp_path):
    first = sweep(toy_path, evaluate_fn=toy_evaluate, top_k=3, chunk=1000, out=tmp_path / "r", progress=False)

    def never(d):                     # a new function object: compiling would trace it
        raise AssertionError("traced: the finished run was compiled again")

    again = sweep(toy_path, evaluate_fn=never, top_k=3, chunk=1000, out=tmp_path / "r", resume=True, progress=False)
    assert again.timings["compile_s"] == 0.0 and again.timings["points_this_session"] == 0
    assert [r["index"] for r in again.top] == [r["index"] for r in first.top]
    assert again.counts == first.counts


def test_sample_is_a_seeded_permutation():
    from jaxstack.engines import sample

    for size in (1, 2, 7, 12, 360, 1001):
        a, b = sample.weyl(size, seed=3)
        idx = sample.indices(a, b, size, 0, size)
        assert sorted(idx.tolist()) == list(range(size))                 # every point once
        if size > 5:
            assert (sample.indices(a, b, size, 5, size - 5) == idx[5:]).all()  # chunks = slices of one order
    assert sample.weyl(1000, 1) == sample.weyl(1000, 1) and sample.weyl(1000, 1) != sample.weyl(1000, 2)
    d = sample.digits(np.array([0, 5, 23]), (2, 3, 4))
    assert d.tolist() == [[0, 0, 0], [0, 1, 1], [1, 2, 3]]


def test_sample_covers_every_axis_value_and_equals_bruteforce(toy_path, brute, tmp_path):
    from jaxstack.engines import sample

    space = load_space(toy_path)
    n = 300                                                  # ~2 % of the 17,280 points
    res = sweep(toy_path, evaluate_fn=toy_evaluate, top_k=5, chunk=64, sample=n, seed=7, dump=True,
                progress=False)
    a, b = sample.weyl(space.size, 7)
    idx = sample.indices(a, b, space.size, 0, n)
    np.testing.assert_array_equal(res.dump["index"], idx)
    for m in metric_fields():
        np.testing.assert_array_equal(res.dump[m], brute["f"][m][idx])
    digits = sample.digits(idx, space.radices)
    for ax, r in enumerate(space.radices):                  # every value of every axis is visited
        assert set(digits[:, ax].tolist()) == set(range(r)), (space.axes[ax].name, r)
    sub = {"feasible": brute["feasible"][idx], "index": idx, "f": {k: v[idx] for k, v in brute["f"].items()}}
    assert [r["index"] for r in res.top] == brute_top(sub, "decode_tokens_per_s", 5)
    again = sweep(toy_path, evaluate_fn=toy_evaluate, top_k=5, chunk=64, sample=n, seed=7, progress=False)
    assert [r["index"] for r in again.top] == [r["index"] for r in res.top]    # reproducible
    other = sweep(toy_path, evaluate_fn=toy_evaluate, top_k=5, chunk=64, sample=n, seed=8, progress=False)
    assert other.counts != res.counts or [r["index"] for r in other.top] != [r["index"] for r in res.top]


def test_sampled_run_resumes_and_refuses_another_seed(toy_path, tmp_path):
    kw = dict(evaluate_fn=toy_evaluate, top_k=5, chunk=64, sample=500, progress=False)
    full = sweep(toy_path, seed=1, **kw)

    def stop(c, done):
        if c == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(toy_path, seed=1, out=tmp_path / "r", checkpoint_every_s=0.0, on_chunk=stop, **kw)
    again = sweep(toy_path, seed=1, out=tmp_path / "r", resume=True, **kw)
    assert 0 < again.timings["points_this_session"] < 500                      # resumed, not restarted
    assert [r["index"] for r in again.top] == [r["index"] for r in full.top] and again.counts == full.counts
    with pytest.raises(io.ConfigError, match="seed"):
        sweep(toy_path, seed=2, out=tmp_path / "r", resume=True, **kw)


# ---------------------------------------------------------------- base leaves folded into the step
def _reads_base(d):
    """The toy model scaled by a BASE leaf (request.input_len, no axis sets it)."""
    m = toy_evaluate(d)
    return dataclasses.replace(m, decode_tokens_per_s=m.decode_tokens_per_s * d.request.input_len / 1024.0)


def test_folded_base_is_part_of_the_compiled_step(tmp_path):
    """The base leaves are compile-time constants of the step (sweep.folded): a space that
    differs only in a base value must get its own program, never the cached one."""
    tops = []
    for n in (1024, 3072):
        p = tmp_path / f"toy{n}.yaml"
        p.write_text(TOY.replace("input_len: 1024", f"input_len: {n}"))
        res = sweep(p, evaluate_fn=_reads_base, **SWEEP_KW)
        assert res.timings["compile_s"] > 0.0
        tops.append(res.top[0])
    assert tops[1]["index"] == tops[0]["index"]
    assert tops[1]["decode_tokens_per_s"] == 3.0 * tops[0]["decode_tokens_per_s"]


def test_folded_equals_runtime_base(toy_path, ref, monkeypatch):
    monkeypatch.setattr(step_mod, "FOLD_BASE", False)
    assert _report(sweep(toy_path, evaluate_fn=toy_evaluate, **SWEEP_KW)) == _report(ref)
