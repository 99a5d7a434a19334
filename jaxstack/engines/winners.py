"""L4: a sweep computes only the metrics it ranks and limits by; its winners get the rest.

Each chunk step of ``sweep`` evaluates ``pruned(evaluate_fn, keep)``: the model with every
metric outside ``keep`` (the objective, the Pareto metrics and the limited metrics) replaced
by a NaN that depends on nothing, so XLA drops the work only those metrics need (goodput
bisection, prefill power, energy, ...): hbm-whatif sweeps 1.2-1.6x faster on the 2-core CPU
(``benchmarks/bench_sweep.py``). The few rows a sweep returns (top-k and Pareto front) are
then evaluated once more, one design at a time (``point_evaluator``, with the one-point XLA
options and, for the shipped model, the executable cache that ``jaxstack eval`` uses), and
their other metrics filled in; the metrics the sweep computed keep the step's values, so
ranks and limits read exactly what was ranked.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..recipe.single import point_evaluator
from .space import metric_fields

__all__ = ["kept", "pruned", "complete", "worth_it", "MIN_POINTS"]

# Automatic pruning (``sweep(prune=None)``) when a sweep has at least this many points: the
# returned rows cost one more program (a one-point ``evaluate``: ~2-4 s to compile, ~0.7 s to
# load from the cache), while pruning saves ~0.3-0.5 us per point on the 2-core CPU
# (hbm-whatif: 1.05 -> 1.50 M points/s at session 9's final code, 0.73 -> 1.14 M before its
# reducer changes) and ~0.002 us per point on an H200-class GPU (estimated from a 1.4-1.6x
# gain at 1.7e8 points/s).
MIN_POINTS = {"cpu": 2**22}
MIN_POINTS_ACCELERATOR = 2**30

_EVALUATORS: dict = {}          # (evaluate_fn, design tree) -> point_evaluator


def worth_it(points: int, platform: str) -> bool:
    """Whether pruning repays the returned rows' own program (``MIN_POINTS``)."""
    return points >= MIN_POINTS.get(platform, MIN_POINTS_ACCELERATOR)


def kept(objective: str, pareto, limits) -> tuple[str, ...]:
    """The metrics a sweep step must compute, in first-use order."""
    return tuple(dict.fromkeys((objective, *pareto, *limits)))


@functools.cache
def pruned(evaluate_fn, keep: tuple[str, ...]):
    """``evaluate_fn`` whose metrics outside ``keep`` are NaN constants (feasible and reason
    stay): cached, so one (model, keep) pair is one function and one compiled step."""
    drop = tuple(f for f in metric_fields() if f not in keep)

    def evaluate(design):
        m = evaluate_fn(design)
        return dataclasses.replace(m, **{f: jnp.full(jnp.shape(getattr(m, f)), jnp.nan, jnp.float32) for f in drop})

    base = getattr(evaluate_fn, "cache_key", None)     # names the program for the on-disk step cache
    if base is not None:
        evaluate.cache_key = f"{base} keeping {','.join(keep)}"
    return evaluate


def complete(rows: list[list[dict]], space, evaluate_fn, keep: tuple[str, ...]) -> None:
    """Fill in place every metric outside ``keep`` of the ``rows`` (lists of result rows with
    an ``index``), evaluating each distinct design once."""
    missing = [f for f in metric_fields() if f not in keep]
    indices = sorted({int(r["index"]) for part in rows for r in part})
    if not missing or not indices:
        return
    first = space.design(indices[0])
    key = (evaluate_fn, jax.tree_util.tree_structure(first))
    if key not in _EVALUATORS:
        _EVALUATORS[key] = point_evaluator(first, evaluate_fn)
    f = _EVALUATORS[key]
    got = {}
    for i in indices:
        m = f(space.design(i))
        got[i] = {k: float(np.asarray(getattr(m, k))) for k in missing}
    for part in rows:
        for r in part:
            r.update(got[int(r["index"])])
