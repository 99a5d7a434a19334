"""The executable cache behind warm ``jaxstack eval``: a second call loads the stored
executable without tracing, gives the same answer, and a corrupted or stale entry is
recompiled rather than trusted."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxstack.edges import cache


@pytest.fixture
def counted(monkeypatch, tmp_path):
    monkeypatch.setattr(cache, "_ENABLED", [str(tmp_path)])
    traces = []

    def fn(x):
        traces.append(1)
        return {"y": jnp.sin(x) * 2.0, "n": jnp.sum(x)}

    return fn, traces, tmp_path


def test_second_call_loads_without_tracing(counted):
    fn, traces, tmp = counted
    x = jnp.arange(5.0)
    a = cache.compiled("t", fn, x)(x)
    assert len(traces) == 1 and len(list((tmp / "exec").glob("t-*.pkl"))) == 1
    b = cache.compiled("t", fn, x)(x)
    assert len(traces) == 1                                   # loaded, not traced again
    np.testing.assert_array_equal(a["y"], b["y"])
    cache.compiled("t", fn, jnp.arange(6.0))                  # new shape: new key
    assert len(traces) == 2 and len(list((tmp / "exec").glob("t-*.pkl"))) == 2


def test_corrupt_or_stale_entry_is_recompiled(counted, monkeypatch):
    fn, traces, tmp = counted
    x = jnp.arange(3.0)
    cache.compiled("t", fn, x)
    (entry,) = (tmp / "exec").glob("t-*.pkl")
    entry.write_bytes(b"not a pickle")
    np.testing.assert_allclose(cache.compiled("t", fn, x)(x)["y"], np.sin(np.arange(3.0)) * 2, rtol=1e-6)
    assert entry.read_bytes() != b"not a pickle"               # recompiled and rewritten
    monkeypatch.setattr(cache, "source_hash", lambda: "edited-source")
    cache.compiled("t", fn, x)
    assert len(list((tmp / "exec").glob("t-*.pkl"))) == 2     # package source changed: new key


def test_without_cache_it_just_compiles(monkeypatch, tmp_path):
    monkeypatch.setattr(cache, "_ENABLED", [])
    exe = cache.compiled("t", lambda x: x + 1, jnp.ones(2))
    np.testing.assert_array_equal(exe(jnp.ones(2)), [2.0, 2.0])


def test_warm_sweep_and_search_load_their_steps_without_tracing(monkeypatch, tmp_path):
    """A second process's sweep and search load the stored step executables (and the sweep's
    hoisting choice) instead of tracing the model again, with the same answers; a caller's own
    model function has no cache key and is never stored."""
    from pathlib import Path

    from jaxstack.engines import search as search_mod
    from jaxstack.engines import step, sweep, winners
    from jaxstack.engines.space import load_space
    from jaxstack.recipe import evaluate as ev

    monkeypatch.setattr(cache, "_ENABLED", [str(tmp_path)])
    traced = []
    real_shard = ev.shard
    monkeypatch.setattr(ev, "shard", lambda d: traced.append(1) or real_shard(d))

    def forget():               # a new process: nothing compiled in memory
        for c in (step._CACHE, step._DIGITS_CACHE, sweep._HOIST, winners._EVALUATORS):
            c.clear()

    space = load_space(Path(__file__).resolve().parent.parent / "spaces" / "quickstart.yaml")
    forget()
    a = sweep.sweep(space, top_k=3, progress=False)
    sa = search_mod.search(space, top_k=3)
    assert traced and {p.name.split("-")[1] for p in (tmp_path / "exec").iterdir()} >= {"sweep", "exact"}
    assert list((tmp_path / "exec").glob("hoist-*.json"))
    forget()
    traced.clear()
    b = sweep.sweep(space, top_k=3, progress=False)
    sb = search_mod.search(space, top_k=3)
    assert not traced                                          # loaded: the model was not traced again
    assert [r["index"] for r in a.top] == [r["index"] for r in b.top]
    assert [r["index"] for r in sa.top] == [r["index"] for r in sb.top]
    n = len(list((tmp_path / "exec").iterdir()))
    forget()
    sweep.sweep(space, top_k=3, progress=False, evaluate_fn=lambda d: ev.evaluate(d))
    assert len(list((tmp_path / "exec").iterdir())) == n        # a caller's function: nothing stored


def test_warm_gradient_engine_loads_without_tracing(monkeypatch, tmp_path):
    """``eval --grad`` / ``optimize``'s compiled row evaluators (grad._jit with a key) load from
    the executable cache in a new process: the exact rows evaluator here (the relaxed gradient
    goes through the same wrapper), same answers, no trace."""
    from jaxstack.edges import io
    from jaxstack.engines import grad
    from jaxstack.recipe import evaluate as ev

    monkeypatch.setattr(cache, "_ENABLED", [str(tmp_path)])
    traced = []
    real_shard = ev.shard
    monkeypatch.setattr(ev, "shard", lambda d: traced.append(1) or real_shard(d))
    d = io.design_from_dict({"hardware": "h100-sxm", "fabric": "nvlink-h100x8", "model": "llama-3-8b",
                             "request": {"batch": 8, "input_len": 128, "output_len": 128}, "mapping": {"tp": 2}})
    rows, treedef = grad.leaf_matrix(d)
    grad._exact_fn.cache_clear()
    a = grad.exact_batch(rows, treedef)
    assert traced and list((tmp_path / "exec").glob("the-model-*.pkl"))
    grad._exact_fn.cache_clear()
    traced.clear()
    b = grad.exact_batch(rows, treedef)
    assert not traced
    np.testing.assert_array_equal(a["tpot_s"], b["tpot_s"])


def test_fresh_compiles_bypass_a_cache_already_in_use(monkeypatch):
    """JAX memoises at its first compile whether the persistent cache is used; a stored
    executable must come from a fresh compile even after that (else it has no object code)."""
    from jax._src import compilation_cache as cc

    monkeypatch.setattr(cc, "_cache_checked", True)
    monkeypatch.setattr(cc, "_cache_used", True)
    with cache._fresh_compiles():
        assert (cc._cache_checked, cc._cache_used) == (True, False)
    assert (cc._cache_checked, cc._cache_used) == (True, True)


def test_stored_executables_are_evicted_least_recently_used_first(tmp_path):
    """The exec folder stays under its byte limit: the oldest entries go first, down to 80 %,
    never the one just written."""
    import os

    folder = tmp_path / "exec"
    folder.mkdir()
    for i in range(5):
        f = folder / f"e{i}.pkl"
        f.write_bytes(b"x" * 100)
        os.utime(f, (1000 + i, 1000 + i))          # e0 oldest ... e4 newest
    new = folder / "new.pkl"
    new.write_bytes(b"x" * 100)
    cache._evict(folder, keep=new, limit=450)      # 600 B > 450: remove oldest until <= 360
    assert sorted(p.name for p in folder.iterdir()) == ["e3.pkl", "e4.pkl", "new.pkl"]
    cache._evict(folder, keep=new, limit=10_000)   # under the limit: nothing removed
    assert len(list(folder.iterdir())) == 3
