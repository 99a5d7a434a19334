"""L0: every discretisation in the model goes through these helpers.

Exact mode (default) is what ``sweep`` reports. Relaxed mode replaces each step by a
smooth surrogate with temperature ``tau`` (exact as tau -> 0) so that ``optimize`` can
differentiate the whole model. The mode is a trace-time (static) setting: wrap the
function you jit in ``with relaxed(tau): ...`` and the exact path pays nothing.
"""

import contextlib

import jax
import jax.numpy as jnp

__all__ = ["relaxed", "is_relaxed", "ceil", "maximum", "minimum", "clip_min", "step", "cdiv",
           "log2"]

_TAU: list[float | None] = [None]


@contextlib.contextmanager
def relaxed(tau: float = 0.05):
    """Trace the enclosed code with smooth surrogates of temperature ``tau``."""
    _TAU.append(float(tau))
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


def cdiv(a, b):
    """ceil(a / b) for positive reals."""
    return ceil(a / b)


def maximum(a, b):
    tau = _TAU[-1]
    if tau is None:
        return jnp.maximum(a, b)
    s = jnp.maximum(jnp.abs(a), jnp.abs(b)) + 1e-30  # scale-free temperature
    return s * tau * jnp.logaddexp(a / (s * tau), b / (s * tau))


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
