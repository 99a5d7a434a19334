"""Loop-invariant hoisting (engines/hoist.py): the dependency analysis, the block layout, and
hoisted sweeps equal to flat ones (the toy sweeps of test_sweep.py run hoisted too and are
checked against brute force there)."""

import itertools
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstack.engines import hoist, step
from jaxstack.engines.space import host_digits, load_space
from jaxstack.engines.sweep import _targets, sweep
from jaxstack.recipe.evaluate import evaluate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _multihost_worker import TOY_SPACE, toy_evaluate  # noqa: E402


def test_block_index_is_the_declared_index_of_every_block_point():
    radices = (3, 4, 2, 5)
    inner = (0, 2)
    outer = (1, 3)
    n_in = 3 * 2
    got = hoist.block_index(radices, inner, 4, 7)          # outer rows 4 .. 10 (of 20)
    want = []
    for o in range(4, 11):
        od = host_digits(o, tuple(radices[a] for a in outer))
        for i in range(n_in):
            idg = host_digits(i, tuple(radices[a] for a in inner))
            digits = [0] * 4
            for a, v in zip(outer, od, strict=True):
                digits[a] = v
            for a, v in zip(inner, idg, strict=True):
                digits[a] = v
            want.append(sum(v * math.prod(radices[a + 1:]) for a, v in enumerate(digits)))
    assert got.tolist() == want
    every = np.concatenate([hoist.block_index(radices, inner, s, 4) for s in range(0, 20, 4)])
    assert sorted(every.tolist()) == list(range(math.prod(radices)))   # the blocks tile the space


def test_sort_keys_order_points_as_the_declared_index():
    """The packed int32 keys the hoisted sweep sorts a shard by give the declared index
    order (lexicographic in the digits), also when the radices need several keys."""
    rng = np.random.default_rng(3)
    for radices, limit in (((4, 5, 9, 2, 7), 2**31 - 1), ((4, 5, 9, 2, 7), 50), ((70000, 70000, 3), 2**31 - 1)):
        dig = np.stack([rng.integers(0, r, 500) for r in radices], -1)
        keys = hoist.sort_keys(radices, limit)
        assert sorted(a for k in keys for a, _ in k) == list(range(len(radices)))
        packed = [sum(dig[:, a].astype(np.int64) * m for a, m in k) for k in keys]
        assert all(int(p.max()) <= limit for p in packed)
        want = np.lexsort(dig.T[::-1])
        got = np.lexsort(packed[::-1])
        assert np.array_equal(dig[got], dig[want])
    assert len(hoist.sort_keys((70000, 70000, 3))) == 2


def test_dependent_cost_counts_what_a_leaf_reaches():
    def f(xs):
        x, y = xs
        z = x
        for _ in range(20):
            z = jnp.sin(z) * x + 1.0      # 60 elementwise ops on x only
        return z + y                       # y reaches one add

    fx, fy, fxy = hoist.dependent_cost(f, (jnp.float32(1.0), jnp.float32(2.0)), [[0], [1], [0, 1]])
    assert fx > 0.95 and fy < 0.05 and fxy == 1.0


def test_choose_inner_keeps_shape_axes_outside_on_the_real_model():
    space = load_space(ROOT / "spaces" / "hbm-whatif.yaml")
    inner, t = hoist.choose_inner(evaluate, space.base, _targets(space), space.radices)
    names = {space.axes[a].name for a in inner}
    assert names and names <= {"axes.dram.efficiency", "axes.dram.transfer_rate_GHz",
                               "axes.fabric.l1.link_bandwidth_GBps"}
    assert 0.0 < t < hoist.MIN_GAIN


def test_choose_inner_skips_an_axis_sharing_a_leaf():
    targets = ((0,), (1,), (1,), (2,))
    inner, _ = hoist.choose_inner(lambda xs: xs[0] * 100.0 + jnp.sin(xs[1]) + xs[2] ** 3,
                                  (jnp.float32(1.0),) * 3, targets, (4, 4, 4, 4))
    assert 1 not in inner and 2 not in inner


TOY = TOY_SPACE + "pareto: [decode_tokens_per_s, user_tokens_per_s]\n"


@pytest.mark.parametrize("order", ["declared", "hoisted-first"])
def test_hoisted_sweep_equals_flat_with_dump(tmp_path, order):
    """Hoisted axes interleaved with the others (the toy as declared: a shard is put into
    index order by a sort on its points' digits) and declared first (by a fixed transpose)."""
    p = tmp_path / "toy.yaml"
    text = TOY
    if order == "hoisted-first":                 # the cheap DRAM layers axis right after DRAM efficiency
        layers = "  dram.total_layers: {choices: [1, 2]}\n"
        assert layers in text
        link = "  fabric.l1.link_bandwidth_GBps:"
        text = text.replace(layers, "").replace(link, layers + link)
    p.write_text(text)
    space = load_space(p)
    inner = hoist.choose_inner(toy_evaluate, space.base, _targets(space), space.radices)[0]
    assert inner and step.inner_major(space.radices, inner) == (order == "hoisted-first")
    kw = dict(evaluate_fn=toy_evaluate, top_k=9, chunk=96, dump=True, progress=False)
    hoisted = sweep(p, **kw)
    flat = sweep(p, hoist=False, **kw)
    assert hoisted.timings["hoisted"] and not flat.timings["hoisted"]
    assert hoisted.timings["chunk"] != flat.timings["chunk"] or hoisted.timings["chunks"] != flat.timings["chunks"] \
        or hoisted.timings["hoisted"]
    assert [r["index"] for r in hoisted.top] == [r["index"] for r in flat.top]
    assert sorted(r["index"] for r in hoisted.pareto) == sorted(r["index"] for r in flat.pareto)
    assert hoisted.counts == flat.counts and hoisted.points == flat.points == load_space(p).size
    for k in flat.dump:           # 1/x may round differently in another fusion layout
        if flat.dump[k].dtype == np.float32:
            np.testing.assert_array_max_ulp(hoisted.dump[k], flat.dump[k], maxulp=2)
        else:
            np.testing.assert_array_equal(hoisted.dump[k], flat.dump[k], err_msg=k)
    assert flat.dump["index"].tolist() == list(range(flat.points))


def test_inner_major():
    assert step.inner_major((4, 5, 9, 2), (0, 1)) and step.inner_major((4, 1, 5, 9), (0, 2))
    assert not step.inner_major((4, 5, 9, 2), (0, 2)) and not step.inner_major((4, 5, 9), ())
    assert step.inner_major((1, 4, 5, 9), (1,)) and step.inner_major((4, 5, 1), (0, 1))


def test_hoisted_sweep_of_the_real_model_equals_flat():
    """A slice of hbm-whatif (one request shape, three mappings axes): the hoisted layout of the
    real model (nested vmap + ``compute.hoisted_layout``) gives the flat sweep's answer."""
    space = load_space(ROOT / "spaces" / "hbm-whatif.yaml")
    text = (ROOT / "spaces" / "hbm-whatif.yaml").read_text()
    text = text.replace("count: 9}", "count: 3}").replace("count: 10, scale: log}", "count: 4, scale: log}")
    text = text.replace("choices: [200, 450, 600, 900, 1800]", "choices: [450, 1800]")
    p = Path(space.path).parent / "_hoist_slice.yaml"
    try:
        p.write_text(text)
        small = load_space(p)
        assert small.size < space.size
        a = sweep(small, top_k=12, progress=False)
        b = sweep(small, top_k=12, progress=False, hoist=False)
    finally:
        p.unlink(missing_ok=True)
    assert a.timings["hoisted"]
    assert a.counts == b.counts
    # the same ranking; two designs whose throughputs agree to float32 rounding (another fusion
    # layout rounds 1/x differently) may swap places
    for ra, rb in zip(a.top, b.top, strict=True):
        for k in ("decode_tokens_per_s", "tpot_s", "ttft_s", "power_W", "temperature_C"):
            if ra["index"] == rb["index"] or k == "decode_tokens_per_s":
                assert math.isclose(ra[k], rb[k], rel_tol=2e-5), (k, ra[k], rb[k])
    swapped = {r["index"] for r in a.top} ^ {r["index"] for r in b.top}
    by_index = {r["index"]: r["decode_tokens_per_s"] for r in a.top + b.top}
    cut = min(r["decode_tokens_per_s"] for r in b.top)
    assert all(math.isclose(by_index[i], cut, rel_tol=2e-5) for i in swapped)   # only at the k-th place


def test_nested_vmap_of_the_real_model_equals_flat_on_random_points():
    """Every metric of the hoisted layout against the flat one, outer x inner grid of points."""
    from jaxstack.physics import compute

    space = load_space(ROOT / "spaces" / "hbm-whatif.yaml")
    leaves, treedef = jax.tree_util.tree_flatten(space.base)
    targets = _targets(space)
    inner, outer = (0, 1, 2), (3, 4, 5)
    rng = np.random.default_rng(1)
    i_dig = np.array(list(itertools.product(*[range(space.radices[a]) for a in inner])))[::7]
    o_dig = np.stack([rng.integers(0, space.radices[a], 6) for a in outer], 1)

    def put(axes, digits):
        out = {}
        for k, a in enumerate(axes):
            for j, t in enumerate(targets[a]):
                out[t] = np.asarray(space.axes[a].table[digits[:, k], j], np.float32)
        return out

    li, lo = put(inner, i_dig), put(outer, o_dig)
    n_i, n_o = len(i_dig), len(o_dig)
    flat = [np.asarray(x, np.float32) for x in leaves]
    fa = [None] * len(flat)
    for t, v in li.items():
        flat[t], fa[t] = np.tile(v, n_o), 0
    for t, v in lo.items():
        flat[t], fa[t] = np.repeat(v, n_i), 0
    nest = [np.asarray(x, np.float32) for x in leaves]
    ia, oa = [None] * len(nest), [None] * len(nest)
    for t, v in li.items():
        nest[t], ia[t] = v, 0
    for t, v in lo.items():
        nest[t], oa[t] = v, 0
    un = lambda x: jax.tree_util.tree_unflatten(treedef, x)  # noqa: E731
    m_flat = jax.jit(lambda ls: jax.vmap(evaluate, in_axes=(un(fa),))(un(ls)))(flat)
    with compute.hoisted_layout():
        m_nest = jax.jit(lambda ls: jax.vmap(jax.vmap(evaluate, in_axes=(un(ia),)), in_axes=(un(oa),))(un(ls)))(nest)
    for name in m_flat.__dataclass_fields__:
        x = np.asarray(getattr(m_flat, name))
        y = np.broadcast_to(np.asarray(getattr(m_nest, name)), (n_o, n_i) + x.shape[1:]).reshape(x.shape)
        if x.dtype == bool or np.issubdtype(x.dtype, np.integer):
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            np.testing.assert_allclose(y, x, rtol=1e-5, atol=0, err_msg=name)


def test_hoisted_sweep_compiles_once_and_resumes(tmp_path):
    """Traced twice (the analysis, then the step: no recompilation over many chunks); a killed
    hoisted run resumes to the uninterrupted answer, reading its layout from the manifest."""
    from _multihost_worker import TRACES

    p = tmp_path / "toy.yaml"
    p.write_text(TOY)

    def counting(d):
        return toy_evaluate(d)

    before = TRACES[0]
    full = sweep(p, evaluate_fn=counting, top_k=5, chunk=96, progress=False)
    assert full.timings["hoisted"] and full.timings["chunks"] > 20 and TRACES[0] - before == 2

    class Stop(Exception):
        pass

    def stop_after(c, _):
        if c == 7:
            raise Stop

    try:
        sweep(p, evaluate_fn=counting, top_k=5, chunk=96, progress=False, out=tmp_path / "r",
              checkpoint_every_s=0.0, on_chunk=stop_after)
    except Stop:
        pass
    resumed = sweep(p, evaluate_fn=counting, top_k=5, chunk=96, progress=False, out=tmp_path / "r", resume=True)
    assert 0 < resumed.timings["points_this_session"] < resumed.points
    assert [r["index"] for r in resumed.top] == [r["index"] for r in full.top]
    assert sorted(r["index"] for r in resumed.pareto) == sorted(r["index"] for r in full.pareto)
    assert resumed.counts == full.counts
