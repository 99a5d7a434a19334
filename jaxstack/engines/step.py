"""L4: the compiled chunk step of a sweep: its static plan, decode -> ``vmap(evaluate)`` ->
limits -> reducers in one jit, and the per-process cache of AOT-compiled steps.

``sweep.py`` drives it (chunks, host merges, checkpoints); ``digits_step`` is ``search.py``'s
step (every point's digits from the host), with the same folded base leaves. A ``_Plan`` is
everything static about a sweep step (its hashable cache key): the space's shape and
targets, the reducers' sizes, the layout (flat, sampled or hoisted, ``hoist.py``), and the
base leaves folded in as constants.
"""

import contextlib
import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..edges import cache
from ..physics import compute
from ..types.metrics import HIGHER_IS_BETTER, Reason
from . import hoist as hoisting
from . import reducers
from .space import Space, decode_offsets, leaf_paths, metric_fields

__all__ = ["folded", "base_leaves_of", "digits_step", "inner_major", "FOLD_BASE", "NR"]

FOLD_BASE = True                  # bake the base leaves into the step (``folded``)
NR = len(Reason)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Everything static about the compiled chunk step (hashable cache key)."""

    treedef: Any
    n_leaves: int
    targets: tuple[tuple[int, ...], ...]      # per axis: leaf positions it sets
    radices: tuple[int, ...]
    fields: tuple[str, ...]                   # Metrics float fields, in output order
    objective: str
    sign: float                               # +1 maximise, -1 minimise
    pareto: tuple[str, ...]
    pareto_signs: tuple[float, ...]
    limits: tuple[str, ...]                   # metric per limit row of ``bounds``
    k: int                                    # per shard
    cap: int                                  # Pareto candidates per shard
    shards: int
    chunk: int
    dump: bool
    barrier: bool                             # reducers behind a conditional (CPU; see step)
    sampled: bool = False                     # digits come from the host (sample.py), not decoded
    inner: tuple[int, ...] = ()               # hoisted axes (hoist.py): vmap(vmap(., inner), outer)
    n_outer: int = 0                          # outer rows per chunk when ``inner`` (chunk = n_outer x n_inner)
    base: tuple = ()                          # the base leaves as compile-time constants (``folded``), or ()
    inner_major: bool = False                 # every hoisted axis precedes every other (``inner_major``)
    fast_compile: bool = False                # XLA:CPU's quick-compile options (``fast_compile_options``)


def _targets(space: Space) -> tuple[tuple[int, ...], ...]:
    pos = {p: i for i, p in enumerate(leaf_paths(space.base))}
    return tuple(tuple(pos[t] for t in a.targets) for a in space.axes)


def _plan(space: Space, objective, pareto, k, cap, shards, chunk, dump, platform, sampled=False, inner=(),
          n_outer=0) -> _Plan:
    per = chunk // shards
    return _Plan(
        treedef=jax.tree_util.tree_structure(space.base), n_leaves=len(leaf_paths(space.base)),
        targets=_targets(space),
        radices=space.radices, fields=tuple(metric_fields()), objective=objective,
        sign=1.0 if HIGHER_IS_BETTER[objective] else -1.0, pareto=pareto,
        pareto_signs=tuple(1.0 if HIGHER_IS_BETTER[m] else -1.0 for m in pareto),
        limits=tuple(lim.metric for lim in space.limits), k=min(k, per), cap=min(cap, per),
        shards=shards, chunk=chunk, dump=dump, barrier=platform == "cpu", sampled=sampled, inner=tuple(inner),
        n_outer=n_outer, base=folded(space), inner_major=inner_major(space.radices, inner))


def inner_major(radices, inner) -> bool:
    """Whether every hoisted axis (of more than one value) is declared before every other
    one: a shard's points (outer rows x inner combinations, row-major) are then in declared
    index order after a fixed transpose, and the step needs no sort (the hoisted axes of
    hbm-whatif and quickstart come first)."""
    if not inner:
        return False
    wide = [a for a, r in enumerate(radices) if r > 1]
    ins, outs = [a for a in wide if a in inner], [a for a in wide if a not in inner]
    return not ins or not outs or max(ins) < min(outs)


def folded(space: Space) -> tuple:
    """The space's base leaves (float32 values; axis targets as 0, never read) for a step
    that bakes them in as constants: XLA then folds every branch on a fixed value (topology
    kinds, packet sizes, the model's shape) instead of computing it for each point; () when
    ``FOLD_BASE`` is off (the step then reads them as a runtime argument)."""
    if not FOLD_BASE:
        return ()
    leaves = np.array(jax.tree_util.tree_leaves(space.base), np.float32)
    for tg in _targets(space):
        leaves[list(tg)] = 0.0         # not NaN: the tuple is a cache key (NaN != NaN)
    return tuple(float(x) for x in leaves)


def base_leaves_of(plan_base: tuple, base_leaves) -> list:
    """The base leaves a step reads: the folded constants, else the runtime argument."""
    if plan_base:
        return [np.float32(x) for x in plan_base]
    return base_leaves


def _design(plan: _Plan, base_leaves, tables, digits, axes_set, rows_of):
    """Leaves set by the axes ``axes_set`` from their ``digits`` (batched on axis 0)."""
    leaves: list[Any] = [base_leaves[i] for i in range(plan.n_leaves)]
    in_axes: list[Any] = [None] * plan.n_leaves
    for a in axes_set:
        targets = plan.targets[a]
        if not targets:
            continue
        rows = tables[a][digits[rows_of[a]]]
        for j, i in enumerate(targets):
            leaves[i], in_axes[i] = rows[:, j], 0
    return leaves, in_axes


def _step_fn(plan: _Plan, evaluate_fn, mesh):
    """The chunk step: decode -> vmap(evaluate) -> limits -> reducers (one jit)."""

    def reduce_shard(f, good, code, dig=None):
        """Counts by reason, objective histogram, top-k and Pareto candidates of one shard;
        outputs get a leading shard axis (the host sums the counts: no cross-device all-reduce,
        which on a multi-device CPU made every device wait for the slowest at each step).
        Hoisted (``dig``: every point's digits): the shard is first sorted into declared index
        order, so ties keep the lower index as in a flat sweep, and the chosen points' digits
        go back for the host to turn into global indices."""
        out = {"counts": reducers.counts(code, NR), "hist": reducers.log2_histogram(f[plan.objective], good)}
        perm = None
        if dig is not None:       # only what the reducers rank is permuted; outputs gather through perm
            per = good.shape[0]
            if plan.inner_major:      # index order = (inner combination, outer row): a fixed transpose
                n_in = plan.chunk // plan.n_outer
                perm = jnp.arange(per, dtype=jnp.int32).reshape(per // n_in, n_in).T.reshape(-1)
            else:
                keys = [sum(dig[:, a] * m for a, m in key) for key in hoisting.sort_keys(plan.radices)]
                perm = lax.sort((*keys, jnp.arange(per, dtype=jnp.int32)), num_keys=len(keys))[-1]
            good = good[perm]
        ranked = (lambda n: f[n][perm]) if perm is not None else (lambda n: f[n])  # noqa: E731
        at = (lambda p: perm[p]) if perm is not None else (lambda p: p)              # noqa: E731
        obj = plan.sign * ranked(plan.objective)
        vals, pos = reducers.top_k(jnp.where(good & ~jnp.isnan(obj), obj, -jnp.inf), plan.k)
        out.update(top_values=vals, top_pos=pos, top_fields=jnp.stack([f[n][at(pos)] for n in plan.fields], -1))
        if dig is not None:
            out["top_digits"] = dig[at(pos)]
        if plan.pareto:
            x = jnp.stack([s * ranked(n) for s, n in zip(plan.pareto_signs, plan.pareto, strict=True)], -1)
            pos, sel, ncand = reducers.pareto_candidates(x, good, plan.cap, prefilter=plan.barrier)
            out.update(par_pos=pos, par_sel=sel, par_n=ncand,
                       par_fields=jnp.stack([f[n][at(pos)] for n in plan.fields], -1))
            if dig is not None:
                out["par_digits"] = dig[at(pos)]
        return jax.tree_util.tree_map(lambda a: a[None], out)

    def reduce_all(f, feasible, reason, valid, *dig):
        good = valid & feasible
        code = jnp.where(valid, jnp.where(feasible, 0, jnp.clip(reason, 1, NR - 1)), NR)
        if mesh is None:
            out = reduce_shard(f, good, code, *dig)
        else:                             # each device reduces its own shard: no all-gather
            out = jax.shard_map(reduce_shard, mesh=mesh, in_specs=(P("d"),) * (3 + len(dig)),
                                out_specs=P("d"))(f, good, code, *dig)
        if plan.dump:
            out["dump_fields"] = jnp.stack([f[n] for n in plan.fields], -1)
            out["dump_feasible"], out["dump_reason"] = feasible, reason
        return out

    def _zeros_like_out(*args):
        return jax.tree_util.tree_map(jnp.zeros_like, jax.eval_shape(reduce_all, *args))

    def metrics(base_leaves, tables, base_digits, offsets, inner_digits):
        """(vmapped Metrics, their batch shape, points valid mask builder) of one chunk."""
        A = len(plan.radices)
        base_leaves = base_leaves_of(plan.base, base_leaves)
        if plan.inner:            # hoisted: outer rows x every inner combination (hoist.py)
            outer = [a for a in range(A) if a not in plan.inner]
            o_digits = decode_offsets(tuple(plan.radices[a] for a in outer), base_digits, offsets)
            o_leaves, o_axes = _design(plan, base_leaves, tables, o_digits, outer,
                                       {a: k for k, a in enumerate(outer)})
            i_cols = [inner_digits[:, k] for k in range(len(plan.inner))]
            leaves, i_axes = _design(plan, o_leaves, tables, i_cols, plan.inner,
                                     {a: k for k, a in enumerate(plan.inner)})
            n_in = plan.chunk // plan.n_outer
            unflat = lambda x: jax.tree_util.tree_unflatten(plan.treedef, x)  # noqa: E731
            inner_fn = jax.vmap(evaluate_fn, in_axes=(unflat(i_axes),), axis_size=n_in)
            shape = (plan.n_outer, n_in)
            pos = {a: k for k, a in enumerate(outer)}
            dig = jnp.stack([jnp.broadcast_to((o_digits[pos[a]][:, None] if a in pos else
                                               inner_digits[:, plan.inner.index(a)][None, :]), shape).reshape(-1)
                             for a in range(A)], -1)                     # int32[chunk, A], declared order
            return jax.vmap(inner_fn, in_axes=(unflat(o_axes),), axis_size=plan.n_outer)(unflat(leaves)), shape, (dig,)
        if plan.sampled:          # base_digits: int32[chunk, A], every point's digits (sample.py)
            digits = [base_digits[:, a] for a in range(A)]
        else:
            digits = decode_offsets(plan.radices, base_digits, offsets)
        leaves, axes = _design(plan, base_leaves, tables, digits, range(A), list(range(A)))
        design = jax.tree_util.tree_unflatten(plan.treedef, leaves)
        in_axes = jax.tree_util.tree_unflatten(plan.treedef, axes)
        return jax.vmap(evaluate_fn, in_axes=(in_axes,), axis_size=plan.chunk)(design), (plan.chunk,), ()

    def step(base_leaves, tables, base_digits, n_valid, bounds, offsets, inner_digits):
        # ``offsets`` = arange(chunk) (hoisted: arange(n_outer)), a device-resident argument: as a
        # traced constant, XLA would constant-fold the whole decode at compile time (seconds per 1e4 points)
        m, shape, dig = metrics(base_leaves, tables, base_digits, offsets, inner_digits)

        def flat(x, dtype):
            return jnp.broadcast_to(jnp.asarray(x, dtype), shape).reshape(plan.chunk)

        f = {name: flat(getattr(m, name), jnp.float32) for name in plan.fields}
        feasible = flat(m.feasible, bool)
        reason = flat(m.reason, jnp.int32)
        viol = jnp.zeros((plan.chunk,), bool)
        for r, name in enumerate(plan.limits):
            viol = viol | (f[name] < bounds[r, 0]) | (f[name] > bounds[r, 1])
        reason = jnp.where(feasible & viol, int(Reason.slo), reason)
        feasible = feasible & ~viol
        valid = offsets < n_valid
        if plan.inner:
            valid = jnp.broadcast_to(valid[:, None], shape).reshape(plan.chunk)
        if not plan.barrier:
            return reduce_all(f, feasible, reason, valid, *dig)
        # On CPU the reducers run inside a conditional (always taken): XLA fuses nothing
        # across it, so the model is materialised once instead of being fused (duplicated)
        # into every reducer gather (+20% HLO and compile time; optimization_barrier is
        # dropped by XLA). Not on GPU, where a conditional would make the host wait for the
        # predicate and so stop the next chunk's dispatch from overlapping this one.
        return jax.lax.cond(n_valid > 0, reduce_all, _zeros_like_out, f, feasible, reason, valid, *dig)

    return step


_CACHE: dict = {}


# A step that evaluates few points compiles with XLA:CPU's quick options (backend optimisations
# and fusion emitters off, ``xla.SINGLE_POINT_OPTIONS``): measured on the 2-core CPU, jaxlib 0.10.2,
# jit(vmap(evaluate)) over 4,096 random designs compiles in 2.1 s instead of 6.6 s and runs 32.6
# instead of 7.0 us per point, so below ~180,000 points the quick program finishes first; a sweep
# of at most FAST_COMPILE_POINTS points, search's steps over such a space and its exact step (a few
# hundred points) and validate's rows use it (``quick_options``)
FAST_COMPILE_POINTS = 100_000


def fast_compile_options() -> dict:
    """The quick-compile options on a CPU backend ({} elsewhere: accelerators compile differently)."""
    from ..edges import xla

    return xla.single_point_options()


def quick_options(points: int, force: bool | None = None) -> dict | None:
    """Compiler options for a program that evaluates ``points`` design points: the quick ones
    (``fast_compile_options``) for at most ``FAST_COMPILE_POINTS`` on a CPU, else None (XLA's
    defaults); ``force`` True / False overrides the size rule."""
    quick = points <= FAST_COMPILE_POINTS if force is None else bool(force)
    return (fast_compile_options() or None) if quick else None


def _compiled(plan: _Plan, evaluate_fn, devices, args):
    """AOT-compile the step once per (plan, evaluate_fn, devices); returns (fn, compile_s)."""
    key = (plan, evaluate_fn, tuple(devices))
    if key in _CACHE:
        return _CACHE[key], 0.0
    mesh = Mesh(np.array(devices), ("d",)) if len(devices) > 1 else None
    t0 = time.perf_counter()
    opts = (fast_compile_options() or None) if plan.fast_compile else None
    if mesh is None:
        jitted = jax.jit(_step_fn(plan, evaluate_fn, None), compiler_options=opts)
    else:
        rep, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P("d"))
        jitted = jax.jit(_step_fn(plan, evaluate_fn, mesh), compiler_options=opts,
                         in_shardings=(rep, rep, rows if plan.sampled else rep, rep, rep, rows, rep))

    def lower():
        with compute.hoisted_layout() if plan.inner else contextlib.nullcontext():
            return jitted.lower(*args)

    fkey = getattr(evaluate_fn, "cache_key", None)
    if fkey is None:          # a caller's own model: compiled (XLA's cache may still hold it), never stored
        with cache.compile_note("the sweep step"):
            fn = lower().compile()
    else:                     # jaxstack's model: the executable itself on disk, keyed on the static plan
        fn = cache.load_or_compile("the sweep step", f"sweep step\n{fkey}\n{plan!r}", lower, args, devices)
    _CACHE[key] = fn
    return fn, time.perf_counter() - t0


# ---------------------------------------------------------------- search's steps (digits from the host)
_DIGITS_CACHE: dict = {}


def digits_step(space: Space, kind: str, fn, devices, chunk: int):
    """``search``'s steps: (compiled digits[chunk, A] -> outputs of ``fn`` vmapped (constant leaves not batched),
    compile seconds: 0 when cached)."""
    paths = leaf_paths(space.base)
    pos = {p: i for i, p in enumerate(paths)}
    targets = tuple(tuple(pos[t] for t in a.targets) for a in space.axes)
    treedef = jax.tree_util.tree_structure(space.base)
    shapes = tuple(a.table.shape for a in space.axes)
    base = folded(space)
    key = (kind, fn, treedef, targets, shapes, tuple(devices), chunk, base)
    if key in _DIGITS_CACHE:
        return _DIGITS_CACHE[key], 0.0
    fields = tuple(metric_fields())

    def run(base_leaves, tables, digits):
        base_leaves = base_leaves_of(base, base_leaves)
        leaves, axes = [base_leaves[i] for i in range(len(paths))], [None] * len(paths)
        for a, tg in enumerate(targets):
            if tg:
                rows = tables[a][digits[:, a]]
                for j, i in enumerate(tg):
                    leaves[i], axes[i] = rows[:, j], 0
        design = jax.tree_util.tree_unflatten(treedef, leaves)
        out = jax.vmap(fn, in_axes=(jax.tree_util.tree_unflatten(treedef, axes),), axis_size=digits.shape[0])(design)
        n = digits.shape[0]
        if kind == "exact":
            f = jnp.stack([jnp.broadcast_to(jnp.asarray(getattr(out, k), jnp.float32), (n,)) for k in fields], -1)
            return f, jnp.broadcast_to(out.feasible, (n,)), jnp.broadcast_to(jnp.asarray(out.reason, jnp.int32), (n,))
        return tuple(jnp.broadcast_to(jnp.asarray(x, jnp.float32), (n,)) for x in out)

    mesh = Mesh(np.array(devices), ("d",)) if len(devices) > 1 else None
    rep = NamedSharding(mesh, P()) if mesh else devices[0]
    shard = NamedSharding(mesh, P("d")) if mesh else devices[0]
    args = (jax.device_put(np.array(jax.tree_util.tree_leaves(space.base), np.float32), rep),
            tuple(jax.device_put(a.table.astype(np.float32), rep) for a in space.axes))
    t0 = time.perf_counter()
    # the exact step evaluates a few hundred points, and a small space's bounds few more: compile fast
    opts = quick_options(0 if kind == "exact" else space.size)
    jitted = jax.jit(run, in_shardings=(rep, rep, shard), compiler_options=opts) if mesh else \
        jax.jit(run, compiler_options=opts)
    digits0 = jax.device_put(np.zeros((chunk, len(space.axes)), np.int32), shard)

    def lower():
        return jitted.lower(*args, digits0)

    fkey = getattr(fn, "cache_key", None)
    if fkey is None:          # a caller's own model: compiled in every process, never stored
        with cache.compile_note(f"the {kind} step"):
            compiled = lower().compile()
    else:                     # jaxstack's model or bounds: the executable on disk, keyed on what the trace reads
        compiled = cache.load_or_compile(f"the {kind} step", f"{kind} step\n{fkey}\n{treedef}\n{targets}\n{shapes}\n"
                                         f"{chunk}\n{base}\n{sorted((opts or {}).items())}", lower, (*args, digits0),
                                         devices)

    def call(digits):
        return compiled(*args, jax.device_put(digits, shard))

    _DIGITS_CACHE[key] = call
    return call, time.perf_counter() - t0
