"""L0: ``jnp.where``, ``jnp.clip`` and static-index gathers traced inline.

``jnp.where`` wraps its select in a ``jit`` of its own, so every call adds a nested program
(the call, a dtype conversion of each Python scalar, the broadcasts, the select): ``evaluate``
made 368 of them. ``where`` emits only the select and the broadcasts it needs, with the same
result (dtype promotion as ``jnp.where``: a Python scalar takes the other operand's dtype).
``clip`` is ``jnp.clip`` as a max and a min. Both work under ``vmap``, ``jit`` and ``grad``.

``strong`` gives the weakly typed leaves of a pytree (Python floats, or ``jit`` inputs traced
from them) a strong dtype of the same width, once: a weak value meeting a strong one needs a
conversion at every meeting point (``evaluate`` of a ``Design`` of Python floats traced ~500).
"""

import functools
import operator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["where", "clip", "strong", "take", "unstack", "total"]

_SCALARS = (bool, int, float)


def _fit(v, dt, shape):
    if isinstance(v, _SCALARS):
        v = np.asarray(v, dt)                         # a literal: no equation
        return v if v.shape == shape else lax.full(shape, v, dt)
    v = jnp.asarray(v)
    if v.dtype != dt:
        v = lax.convert_element_type(v, dt)
    if v.shape != shape:
        v = lax.broadcast_in_dim(v, shape, tuple(range(len(shape) - v.ndim, len(shape))))
    return v


def where(c, x, y):
    """``jnp.where(c, x, y)`` for a boolean ``c`` (three operands), without ``jit`` nesting."""
    c = jnp.asarray(c)
    if c.dtype != np.bool_:
        raise TypeError(f"where: condition must be boolean, got {c.dtype}")
    if isinstance(x, _SCALARS) and isinstance(y, _SCALARS):
        if type(x) is not type(y):
            return jnp.where(c, x, y)
        # two Python scalars of one kind: weakly typed constants, so the result stays weak as jnp's
        a, b = jnp.asarray(x), jnp.asarray(y)
        if c.ndim:
            a, b = (lax.broadcast_in_dim(v, c.shape, ()) for v in (a, b))
        return lax.select(c, a, b)
    dt = jnp.result_type(x, y)
    shape = tuple(np.broadcast_shapes(np.shape(c), np.shape(x), np.shape(y)))
    if c.ndim and c.shape != shape:
        c = lax.broadcast_in_dim(c, shape, tuple(range(len(shape) - c.ndim, len(shape))))
    return lax.select(c, _fit(x, dt, shape), _fit(y, dt, shape))


def clip(x, lo=None, hi=None):
    """``jnp.clip(x, lo, hi)``: ``min(max(x, lo), hi)``."""
    if lo is not None:
        x = jnp.maximum(x, lo)
    if hi is not None:
        x = jnp.minimum(x, hi)
    return x


def take(x, idx):
    """``x[idx]`` for a static array ``idx`` of in-bounds, non-negative indices on axis 0: the
    gather alone (numpy-style indexing also traces the wrap of negative indices, 3 equations
    more per array)."""
    x = jnp.asarray(x)
    dnums = lax.GatherDimensionNumbers(offset_dims=tuple(range(1, x.ndim)), collapsed_slice_dims=(0,),
                                       start_index_map=(0,))
    return lax.gather(x, np.asarray(idx, np.int32)[:, None], dnums, (1,) + x.shape[1:],
                      mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS)


def unstack(tree, n: int):
    """The n rows (axis 0) of every leaf of ``tree``, as n trees: one split per leaf and a
    reshape per row (indexing row by row traces a slice and a squeeze for each)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    cut = [[lax.reshape(p, p.shape[1:]) for p in lax.split(jnp.asarray(x), (1,) * n)] for x in leaves]
    return tuple(treedef.unflatten([c[i] for c in cut]) for i in range(n))


def _strong(x):
    if isinstance(x, _SCALARS) or getattr(getattr(x, "aval", None), "weak_type", False):
        return lax.convert_element_type(x, jnp.result_type(x))
    return x


def strong(tree):
    """``tree`` with every weakly typed leaf converted to the strong dtype of its own width
    (float32, or float64 under x64); other leaves pass unchanged (no equation)."""
    return jax.tree_util.tree_map(_strong, tree)


def total(xs):
    """``sum(xs)`` without the leading ``0 +`` (one equation fewer per call on traced values)."""
    return functools.reduce(operator.add, xs)
