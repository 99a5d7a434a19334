"""L0: every discretisation in the model goes through these helpers.

Exact mode (default) is what ``sweep`` reports. Relaxed mode replaces each step by a
smooth surrogate with temperature ``tau`` (exact as tau -> 0) so that ``optimize`` can
differentiate the whole model. The mode is a trace-time (static) setting: wrap the
function you jit in ``with relaxed(tau): ...`` and the exact path pays nothing. ``tau``
may be a Python float or a traced scalar (``optimize`` anneals it inside one compile).
"""

import contextlib

import jax
import jax.numpy as jnp

from .lean import where

__all__ = ["relaxed", "is_relaxed", "ceil", "floor", "maximum", "minimum", "clip_min", "step", "cdiv",
           "log2"]

_TAU: list[float | None] = [None]


@contextlib.contextmanager
def relaxed(tau: float = 0.05):
    """Trace the enclosed code with smooth surrogates of temperature ``tau`` (a float or a
    traced scalar; the mode itself is static)."""
    _TAU.append(float(tau) if isinstance(tau, (int, float)) else tau)
    try:
        yield
    finally:
        _TAU.pop()


def is_relaxed() -> bool:
    return _TAU[-1] is not None


def ceil(x):
    """ceil(x); relaxed: x itself (the continuous relaxation; a smooth staircase would have
    zero gradient almost everywhere). Sweeps re-evaluate snapped points exactly."""
    if _TAU[-1] is None:
        return jnp.ceil(x)
    return x


def floor(x):
    """floor(x) (= -ceil(-x), two negations fewer); relaxed: x itself, as ``ceil``."""
    if _TAU[-1] is None:
        return jnp.floor(x)
    return x


def cdiv(a, b):
    """ceil(a / b) for positive reals."""
    return ceil(a / b)


def maximum(a, b):
    """max(a, b); relaxed: k logaddexp(a / k, b / k) with k = tau max(|a|, |b|) (scale-free)."""
    tau = _TAU[-1]
    if tau is None:
        return jnp.maximum(a, b)
    dt = jnp.result_type(a, b, tau)
    a, b, tau = jnp.broadcast_arrays(*(jnp.asarray(x, dt) for x in (a, b, tau)))
    return _smooth_max(a, b, tau)


_TINY = 1e-30  # floor of the scale s; keeps a = b = 0 finite


@jax.custom_jvp
def _smooth_max(a, b, tau):
    k = jnp.maximum(jnp.maximum(jnp.abs(a), jnp.abs(b)), _TINY) * tau
    return k * jnp.logaddexp(a / k, b / k)


@_smooth_max.defjvp
def _smooth_max_jvp(primals, tangents):
    """The exact derivative of ``_smooth_max`` without 1/k**2 terms (which under- and overflow
    in float32 when a = b = 0): with u = a/k, v = b/k, w = sigmoid(u - v) and the entropy
    H = logaddexp(u, v) - w u - (1 - w) v,  d(k LSE) = w da + (1 - w) db + H dk,
    dk = tau ds + s dtau, ds = sign of the larger |.| times its tangent."""
    a, b, tau = primals
    da, db, dtau = tangents
    big_a = jnp.abs(a) >= jnp.abs(b)
    s_raw = where(big_a, jnp.abs(a), jnp.abs(b))
    s = jnp.maximum(s_raw, _TINY)
    k = s * tau
    u, v = a / k, b / k
    lse = jnp.logaddexp(u, v)
    w = jax.nn.sigmoid(u - v)
    h = lse - w * u - (1.0 - w) * v
    ds = where(s_raw > _TINY, where(big_a, jnp.sign(a) * da, jnp.sign(b) * db), 0.0)
    return k * lse, w * da + (1.0 - w) * db + h * (tau * ds + s * dtau)


def minimum(a, b):
    tau = _TAU[-1]
    if tau is None:
        return jnp.minimum(a, b)
    return -maximum(-a, -b)


def clip_min(x, lo):
    return maximum(x, lo)


def step(x):
    """1 if x > 0 else 0; relaxed: sigmoid(x / tau)."""
    tau = _TAU[-1]
    if tau is None:
        return (x > 0).astype(jnp.result_type(float))
    return jax.nn.sigmoid(x / tau)


def log2(x):
    return jnp.log2(x)
