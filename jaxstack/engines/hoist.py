"""L4: loop-invariant hoisting for sweeps: which axes to vary inside a nested ``vmap``.

A chunk of a sweep is normally ``vmap(evaluate)`` over a contiguous range of points. When
some axes only touch late, cheap parts of the model (a link bandwidth, the DRAM efficiency,
the TDP), most of the per-point work does not depend on them. Laid out as
``vmap(vmap(evaluate, inner axes), outer axes)`` over a block ``outer rows x every inner
combination``, JAX's batching only broadcasts what depends on the inner leaves: everything
else runs once per outer row instead of once per point (the sweep then visits the space in
that block order; results carry the declared global index, and the reducers' total order
(value, then index) makes the answer independent of the visiting order).

Which axes go inside is read off the traced model, not guessed: ``dependent_cost`` walks
the jaxpr of ``evaluate`` once and sums a per-equation cost (output elements, weighted for
transcendental and division primitives; loop bodies times their trip count) over every
equation reachable from a set of leaves. ``choose_inner`` then adds the cheapest axes one
at a time while the modelled time per point, ``f + (1 - f) / n_inner`` (``f`` = cost
fraction reachable from the inner leaves), keeps falling, and keeps the best set if it
saves at least ``MIN_GAIN``. A model is roughly memory-traffic bound on a CPU, so the
measured gain is smaller than this FLOP estimate (hbm-whatif: 1.6x where it predicts 2.9x);
the estimate only ranks the choices.
"""

import math

import jax
import numpy as np
from jax.extend import core

__all__ = ["dependent_cost", "choose_inner", "block_index", "strides", "MIN_GAIN", "MAX_INNER"]

MIN_GAIN = 0.7      # hoist only when the modelled time per point falls below 70 % of flat
MAX_INNER = 4096    # at most this many inner combinations per outer row
_WEIGHT = {"div": 4, "exp": 10, "log": 10, "pow": 20, "log1p": 10, "expm1": 10, "sqrt": 4, "rsqrt": 4,
           "integer_pow": 2, "erf": 10, "tanh": 10, "logistic": 10}


def _sub_jaxprs(eqn):
    for name in ("jaxpr", "call_jaxpr", "body_jaxpr", "cond_jaxpr", "fun_jaxpr"):
        j = eqn.params.get(name)
        if j is not None:
            yield j.jaxpr if hasattr(j, "jaxpr") else j
    for b in eqn.params.get("branches", ()):
        yield b.jaxpr if hasattr(b, "jaxpr") else b


def _cost(eqn) -> float:
    subs = list(_sub_jaxprs(eqn))
    if subs:
        trips = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
        return trips * sum(_cost(e) for j in subs for e in j.eqns)
    n = sum(math.prod(getattr(v.aval, "shape", ())) for v in eqn.outvars)
    return float(n * _WEIGHT.get(eqn.primitive.name, 1))


class _Graph:
    """The top-level jaxpr of ``evaluate_fn`` at ``design``: per-equation costs (a call or
    loop counts as a whole; conservative: any dependent input makes all of it dependent)."""

    def __init__(self, evaluate_fn, design):
        closed = jax.make_jaxpr(evaluate_fn)(design)
        self.jaxpr = closed.jaxpr
        self.costs = [_cost(e) for e in self.jaxpr.eqns]
        self.total = sum(self.costs) or 1.0

    def fraction(self, leaves) -> float:
        dep = {self.jaxpr.invars[i] for i in leaves}
        c = 0.0
        for e, k in zip(self.jaxpr.eqns, self.costs, strict=True):
            if any(not isinstance(v, core.Literal) and v in dep for v in e.invars):
                dep.update(e.outvars)
                c += k
        return c / self.total


def dependent_cost(evaluate_fn, design, leaf_sets) -> list[float]:
    """Fraction of the model's work reachable from each set of leaf positions (flattened
    ``design`` order)."""
    g = _Graph(evaluate_fn, design)
    return [g.fraction(s) for s in leaf_sets]


def choose_inner(evaluate_fn, design, targets, radices, max_inner: int = MAX_INNER):
    """Axes to vary inside (a tuple of axis positions, declared order; () = no hoisting).

    Args:
      targets: per axis, the leaf positions it sets (the sweep plan's ``targets``).
      radices: per axis, its size.
    Returns:
      (inner axes, modelled time per point relative to a flat sweep).
    """
    shared = {i for a, t in enumerate(targets) for b, u in enumerate(targets) if a != b for i in set(t) & set(u)}
    # an axis that sets a leaf another axis also sets stays outside (the declared order decides who wins)
    cand = [a for a, (t, r) in enumerate(zip(targets, radices, strict=True)) if t and r > 1 and not set(t) & shared]
    if len(cand) < 2:
        return (), 1.0
    g = _Graph(evaluate_fn, design)
    alone = {a: g.fraction(targets[a]) for a in cand}
    order = sorted(cand, key=lambda a: (alone[a], a))
    best, best_t, chosen, n_in = (), 1.0, [], 1
    outer_left = math.prod(radices[a] for a in cand)
    for a in order[:-1]:                                  # at least one axis stays outside
        if n_in * radices[a] > max_inner:
            continue
        chosen.append(a)
        n_in *= radices[a]
        outer_left //= radices[a]
        f = g.fraction(sorted({i for b in chosen for i in targets[b]}))
        t = f + (1.0 - f) / n_in
        if t < best_t:
            best, best_t = tuple(sorted(chosen)), t
    if best_t > MIN_GAIN:
        return (), 1.0
    return best, best_t


def strides(radices) -> np.ndarray:
    """Declared-order mixed-radix strides (int64; last axis fastest): index = digits @ strides."""
    out = np.ones(len(radices), np.int64)
    for a in range(len(radices) - 2, -1, -1):
        out[a] = out[a + 1] * radices[a + 1]
    return out


def sort_keys(radices, limit: int = 2**31 - 1) -> list[list[tuple[int, int]]]:
    """Axes packed into as few int32 sort keys as keep their declared order: consecutive
    axes share a key while the product of their radices stays below ``limit``. Each key is
    a list of (axis, multiplier); key = sum(digit[axis] * multiplier)."""
    keys, cur, span = [], [], 1
    for a in range(len(radices) - 1, -1, -1):         # least significant axis first
        r = int(radices[a])
        if cur and span * r > limit:
            keys.append(cur)
            cur, span = [], 1
        cur.append((a, span))
        span *= r
    if cur:
        keys.append(cur)
    return keys[::-1]                                  # most significant key first


def block_index(radices, inner, outer_start: int, n_outer: int) -> np.ndarray:
    """Declared-order global indices (int64[n_outer * n_inner], row-major: outer, inner) of
    the block of outer rows ``outer_start ...`` times every inner combination."""
    st = strides(radices)
    outer = [a for a in range(len(radices)) if a not in inner]
    n_in = math.prod(radices[a] for a in inner)
    return (_partial(radices, st, outer, np.arange(outer_start, outer_start + n_outer, dtype=np.int64))[:, None]
            + _partial(radices, st, list(inner), np.arange(n_in, dtype=np.int64))[None, :]).reshape(-1)


def _partial(radices, strides, axes, q):
    """Sum over ``axes`` of digit x declared stride, where ``q`` counts in the mixed radix of
    ``axes`` alone (last fastest)."""
    out = np.zeros_like(q)
    for a in reversed(axes):
        out += (q % radices[a]) * strides[a]
        q = q // radices[a]
    return out
