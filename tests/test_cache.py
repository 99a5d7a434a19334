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
