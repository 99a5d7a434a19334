"""L4: one design at a time, at closed-form-script speed: ``point_evaluator``.

``jax.jit(evaluate)(design)`` on a ``Design`` of Python floats moves its ~145 leaves to the
device one by one and its 32 metrics back one by one: ~0.38 ms per call on the 2-core CPU,
twice the model's own run time. ``point_evaluator`` compiles ``evaluate`` behind ONE packed
float32 input vector and ONE packed output vector, so a call is one host-to-device copy, the
program, and one copy back (~0.2 ms, packing included; ``benchmarks/bench_peers.py``). For
many designs, ``jax.jit(jax.vmap(evaluate))`` or ``sweep`` remain the fast path.
"""

import dataclasses
import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from ..edges import cache, xla
from ..types.design import Design
from ..types.metrics import Metrics
from .evaluate import evaluate

__all__ = ["point_evaluator"]

_FIELDS = [f.name for f in dataclasses.fields(Metrics)]


def point_evaluator(template: Design, evaluate_fn=None):
    """``f(design) -> Metrics`` (numpy scalars) for designs shaped like ``template`` (any
    values: a new value never recompiles); ``evaluate_fn`` defaults to ``evaluate``."""
    tree = jax.tree_util.tree_structure(template)
    n = tree.num_leaves
    model = evaluate if evaluate_fn is None else evaluate_fn

    def packed(v):
        m = model(jax.tree_util.tree_unflatten(tree, [v[i] for i in range(n)]))
        return jnp.stack([jnp.asarray(getattr(m, k), jnp.float32) for k in _FIELDS])

    opts = xla.single_point_options()
    fkey = getattr(model, "cache_key", None)
    if fkey is not None:         # jaxstack's model (or its pruned form): an executable cache hit skips tracing too
        tag = hashlib.sha256(f"{fkey}\n{tree}".encode()).hexdigest()[:12]
        packed = cache.compiled(f"the model, one point {tag}", packed, np.zeros(n, np.float32), options=opts)
    else:
        packed = jax.jit(packed, compiler_options=opts)

    def f(design: Design) -> Metrics:
        leaves = jax.tree_util.tree_leaves(design)
        if len(leaves) != n:
            raise ValueError(f"design has {len(leaves)} leaves, the evaluator was built for {n}")
        out = np.asarray(packed(np.fromiter(leaves, np.float32, n)))
        vals = dict(zip(_FIELDS, out, strict=True))
        vals["feasible"], vals["reason"] = bool(vals["feasible"]), np.int32(vals["reason"])
        return Metrics(**vals)

    return f
