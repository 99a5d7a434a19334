"""L4: relaxed gradients of the model, and the two fixed-shape batch evaluators that
``optimize`` and ``jaxstack eval --grad`` share.

Method
- A batch of designs travels as a *leaf matrix* ``(N, L)``: one design per row, its leaves
  in ``jax.tree_util`` order (``leaf_matrix``). Both evaluators are ``jit(vmap(...))`` over
  fixed chunks of rows (the last chunk padded), so each compiles once per process whatever
  the batch, the objective or the constraints.
- ``exact_batch``: ``vmap(evaluate)`` in exact mode (what ``sweep`` reports): every
  ``Metrics`` float field, ``feasible`` and ``reason``.
- ``relaxed_batch``: ``vmap(value_and_grad(loss))`` with ``evaluate`` traced inside
  ``relax.relaxed(tau)``; ``tau`` is a traced scalar so annealing it costs no recompile.
  The loss of one point is built from a ``Spec`` of traced arrays (one compile serves
  every objective and constraint set)::

      loss = coef * g(sel . fields) + weight * sum_j v_j**2 + STRUCTURAL * [device count or
             divisibility infeasible]
      g(x) = log|x| if use_log else x
      v_j  = relu((f_i - hi_i) / |hi_i|), relu((lo_i - f_i) / |lo_i|) for each bounded metric
             (absent bounds: 0), and the exact model's feasibility masks made smooth:
             memory relu(log(memory_bytes / usable capacity)), batch relu(log(dp pp / batch)),
             thermal relu((T_dram - dram_limit) / THERMAL_SCALE_K)

  With ``coef = 1, use_log = 0, weight = 0`` the gradient is d(metric)/d(leaf): what
  ``sensitivities`` reports, with the elasticity d ln f / d ln x = (df/dx) x / f.
- Compile cost: the reverse-mode graph of the whole model is ~8 MB of HLO text. On CPU both
  functions are compiled with ``CPU_COMPILER_OPTIONS`` (XLA's classic elemental fusion
  emitters instead of the MLIR ones, LLVM -O0): measured on a loaded 2-core CPU, the
  relaxed gradient compiles in ~150 s instead of ~400 s and runs 5x faster (0.25 ms per
  point and gradient); the exact evaluator compiles in ~15 s instead of ~30 s, same
  values. The relaxed function computes only the metrics of ``Spec.fields``: objectives and
  limits within ``RELAXED_FIELDS`` (the decode metrics) share one compile; others (TTFT,
  prefill) add the prefill path and compile with XLA's default emitters (many minutes).
  ``enable_compile_cache`` turns on JAX's persistent compilation cache so a second
  process (CLI run, notebook) loads both from disk.

Not modelled here: gradients through discrete structure (mapping degrees, presets, topology
kinds; ``hardware_params`` lists the leaves that are skipped and why).
"""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..physics import memory, relax
from ..types import units
from ..types.design import Design
from ..types.hardware import Chip, Dram, Fabric, FabricLevel, Thermal
from ..types.metrics import Reason
from .space import metric_fields
from .sweep import map_chunks

__all__ = ["Spec", "make_spec", "field_set", "RELAXED_FIELDS", "leaf_matrix", "exact_batch", "relaxed_batch",
           "hardware_params", "sensitivities", "enable_compile_cache", "DEFAULT_TAU", "CHUNK", "EXACT_CHUNK", "SKIPPED"]

DEFAULT_TAU = 0.05          # relative smoothing of max/min (5 % of the larger operand), 0.05 K steps
CHUNK = 64                  # rows per compiled relaxed call
EXACT_CHUNK = 1024          # rows per compiled exact call
STRUCTURAL = 1e3            # loss added where the mapping cannot run (no gradient to follow)
THERMAL_SCALE_K = 10.0      # 10 K over the DRAM limit counts as a violation of 1
_TINY = 1e-30
# metrics of the decode path: objectives and limits within this set share one compile (the
# prefill metrics double the reverse-mode graph; XLA:CPU compile time grows faster than that)
RELAXED_FIELDS = ("decode_tokens_per_s", "user_tokens_per_s", "tokens_per_J", "energy_per_token_J", "tpot_s",
                  "power_W", "temperature_C", "dram_temperature_C", "memory_bytes")
# XLA:CPU options for the two evaluators (see the module docstring; unknown to other backends)
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 0}
# hardware leaves with no meaningful derivative: enums, topology integers, 0/1 flags
SKIPPED = {("fabric", "kind"): "enum (topology code)",
           ("fabric", "size"): "integer topology size (sets the device count)",
           ("fabric", "dim_x"): "integer topology shape", ("fabric", "dim_y"): "integer topology shape",
           ("fabric", "ack_round_trip"): "0/1 flag", ("thermal", "dram_beside"): "0/1 packaging flag"}


class Spec(NamedTuple):
    """Description of the per-point loss (see the module docstring) over ``fields`` (static:
    the compiled function computes only what these metrics need); the rest is traced."""

    sel: jax.Array        # (F,) one-hot of the objective field
    coef: jax.Array       # () +1 minimise, -1 maximise
    use_log: jax.Array    # () 1: log|objective|, 0: the objective itself
    lo: jax.Array         # (F,) lower bounds (-inf = none)
    hi: jax.Array         # (F,) upper bounds (+inf = none)
    weight: jax.Array     # () penalty weight (0 = no constraints, no feasibility penalties)
    fields: tuple = ()    # static: the metric names behind sel / lo / hi


def field_set(names) -> tuple[str, ...]:
    """``RELAXED_FIELDS`` (the common compile) plus any of ``names`` it lacks."""
    return RELAXED_FIELDS + tuple(sorted(set(names) - set(RELAXED_FIELDS)))


def make_spec(objective: str, *, maximise: bool = True, use_log: bool = True, limits=(),
              weight: float = 0.0, fields=None) -> Spec:
    """Spec for ``objective`` with ``limits`` = [(metric, lo or None, hi or None), ...] (SI)."""
    fields = tuple(fields or field_set([objective, *(lim[0] for lim in limits)]))
    lo = np.full(len(fields), -np.inf, np.float32)
    hi = np.full(len(fields), np.inf, np.float32)
    for metric, a, b in limits:
        i = fields.index(metric)
        if a is not None:
            lo[i] = max(lo[i], a)
        if b is not None:
            hi[i] = min(hi[i], b)
    sel = (np.array(fields) == objective).astype(np.float32)
    if sel.sum() != 1:
        raise ValueError(f"unknown metric {objective!r}; allowed: {', '.join(fields)}")
    f32 = np.float32
    return Spec(sel, f32(-1.0 if maximise else 1.0), f32(use_log), lo, hi, f32(weight), fields)


# ---------------------------------------------------------------- leaf matrices
def leaf_matrix(designs: Design) -> tuple[np.ndarray, object]:
    """(N, L) float32 rows of a Design batch (or of one design: N = 1) and its treedef."""
    leaves, treedef = jax.tree_util.tree_flatten(designs)
    cols = [np.atleast_1d(np.asarray(x, np.float32)) for x in leaves]
    n = max(len(c) for c in cols)
    return np.stack([np.broadcast_to(c, (n,)) for c in cols], -1), treedef


def _design(cols, treedef) -> Design:
    """Design (batch) from its leaves stacked along the first axis (L, ...)."""
    return jax.tree_util.tree_unflatten(treedef, [cols[i] for i in range(treedef.num_leaves)])


def _fields(m, names=None):
    return jnp.stack([jnp.asarray(getattr(m, f), jnp.float32) for f in (names or metric_fields())])


def _violations(d: Design, m, f, spec: Spec):
    """Relative bound violations and the smooth feasibility masks (module docstring)."""
    has_hi, has_lo = jnp.isfinite(spec.hi), jnp.isfinite(spec.lo)
    hi, lo = jnp.where(has_hi, spec.hi, 1.0), jnp.where(has_lo, spec.lo, 1.0)
    v_hi = jnp.where(has_hi, jax.nn.relu((f - hi) / jnp.maximum(jnp.abs(hi), _TINY)), 0.0)
    v_lo = jnp.where(has_lo, jax.nn.relu((lo - f) / jnp.maximum(jnp.abs(lo), _TINY)), 0.0)
    cap = jnp.maximum(memory.usable_capacity(d.dram), _TINY)
    v_mem = jax.nn.relu(jnp.log(jnp.maximum(m.memory_bytes, _TINY) / cap))
    v_batch = jax.nn.relu(jnp.log(d.mapping.dp * d.mapping.pp / jnp.maximum(d.request.batch, _TINY)))
    v_temp = jax.nn.relu((m.dram_temperature_C - d.thermal.dram_limit) / THERMAL_SCALE_K)
    return jnp.sum(v_hi**2 + v_lo**2) + v_mem**2 + v_batch**2 + v_temp**2


def _point_loss(d: Design, spec: Spec, evaluate_fn, names):
    m = evaluate_fn(d)
    f = _fields(m, names)
    v = jnp.dot(spec.sel, f)
    safe = jnp.where(spec.use_log > 0.5, jnp.maximum(jnp.abs(v), _TINY), 1.0)
    obj = jnp.where(spec.use_log > 0.5, jnp.log(safe), v)
    viol = _violations(d, m, f, spec)
    structural = (m.reason == Reason.device_count) | (m.reason == Reason.divisibility)
    loss = spec.coef * obj + spec.weight * viol + jnp.where(structural, STRUCTURAL, 0.0)
    return loss, (f, m.feasible, m.reason, viol)


def _default_evaluate():
    from ..recipe.evaluate import evaluate

    return evaluate


@functools.lru_cache(maxsize=8)
def _relaxed_fn(treedef, evaluate_fn, names):
    # differentiate w.r.t. the design pytree, not the row matrix: assembling a (L,) gradient
    # row from L scalar leaves makes one huge fusion that XLA:CPU fuses in quadratic time
    def step(rows, spec, tau):
        with relax.relaxed(tau):
            vg = jax.value_and_grad(lambda d, s: _point_loss(d, s, evaluate_fn, names), has_aux=True)
            (loss, aux), g = jax.vmap(vg, in_axes=(0, None))(_design(rows.T, treedef), spec)
        return loss, tuple(jax.tree_util.tree_leaves(g)), *aux

    fkey = getattr(evaluate_fn, "cache_key", None)
    return _jit(step, classic=set(names) <= set(RELAXED_FIELDS),
                key=None if fkey is None else ("the relaxed gradient", f"relaxed\n{fkey}\n{treedef}\n{names}"))


@functools.lru_cache(maxsize=8)
def _exact_fn(treedef, evaluate_fn):
    def step(rows):
        m = jax.vmap(evaluate_fn)(_design(rows.T, treedef))
        return jax.vmap(_fields)(m), m.feasible, m.reason

    fkey = getattr(evaluate_fn, "cache_key", None)
    return _jit(step, key=None if fkey is None else ("the model", f"exact rows\n{fkey}\n{treedef}"))


def _jit(fn, classic: bool = True, key=None):
    """jit with ``CPU_COMPILER_OPTIONS`` on CPU. ``classic=False`` (relaxed gradients that need
    the prefill metrics too): XLA's default emitters, whose compile time grows more gently
    with graph size (the classic fusion pass is quadratic in fusion size there). ``key``
    ((what, cache key) of jaxstack's own model): compiled on first call per argument shapes
    through the on-disk executable cache (``cache.load_or_compile``), so a warm ``eval --grad``
    or ``optimize`` traces nothing."""
    cpu = jax.default_backend() == "cpu"
    opts = CPU_COMPILER_OPTIONS if cpu and classic else None
    jitted = jax.jit(fn, compiler_options=opts)
    if key is None:
        return jitted
    from ..edges import cache

    what, text = key
    done: dict = {}

    def call(*args):
        sig = tuple((np.shape(x), str(np.result_type(x))) for x in jax.tree_util.tree_leaves(args))
        if sig not in done:
            done[sig] = cache.load_or_compile(what, f"{text}\n{sorted((opts or {}).items())}",
                                              lambda: jitted.lower(*args), args)
        return done[sig](*args)

    return call


def exact_batch(rows: np.ndarray, treedef, evaluate_fn=None) -> dict:
    """Exact metrics of every row: {field: (N,)} plus ``feasible`` and ``reason``."""
    fn = _exact_fn(treedef, evaluate_fn or _default_evaluate())
    f, feasible, reason = map_chunks(fn, np.asarray(rows, np.float32), EXACT_CHUNK)
    out = {name: f[:, i] for i, name in enumerate(metric_fields())}
    out.update(feasible=feasible.astype(bool), reason=reason.astype(np.int32))
    return out


def relaxed_batch(rows: np.ndarray, treedef, spec: Spec, tau: float, evaluate_fn=None) -> dict:
    """Relaxed loss, d loss / d leaf (N, L), ``spec.fields`` values (N, F), feasible, reason,
    violation."""
    fn = _relaxed_fn(treedef, evaluate_fn or _default_evaluate(), tuple(spec.fields))
    spec = spec._replace(**{k: jnp.asarray(getattr(spec, k), jnp.float32) for k in Spec._fields[:-1]}, fields=())
    loss, g, f, feasible, reason, viol = map_chunks(fn, np.asarray(rows, np.float32), CHUNK, spec,
                                                  jnp.float32(tau))
    return {"loss": loss, "grad": g, "fields": f, "feasible": feasible.astype(bool),
            "reason": reason.astype(np.int32), "violation": viol}


# ---------------------------------------------------------------- sensitivities
def hardware_params() -> list[tuple[tuple[str, ...], str]]:
    """(leaf path, SI unit) of every continuous hardware leaf, in Design order: all float
    leaves of chip, dram, fabric (l1-l3 and globals) and thermal except ``SKIPPED``."""
    out = []

    def add(prefix, cls, section):
        for f in dataclasses.fields(cls):
            if f.name in ("l1", "l2", "l3"):
                add((*prefix, f.name), FabricLevel, section)
                continue
            unit = f.metadata.get("unit", "1")
            if unit != "enum" and (section, f.name) not in SKIPPED:
                out.append(((*prefix, f.name), unit))

    for section, cls in (("chip", Chip), ("dram", Dram), ("fabric", Fabric), ("thermal", Thermal)):
        add((section,), cls, section)
    return out


def _display(path, unit) -> tuple[str, float]:
    """YAML key with its display suffix (``fabric.l1.link_bandwidth_GBps``) and SI per display unit."""
    suf = units.DISPLAY.get(unit)
    if suf is None or unit not in units.SUFFIXES:
        return ".".join(path), 1.0
    return ".".join(path) + "_" + suf, units.SUFFIXES[unit][suf]


def sensitivities(design: Design, metric: str = "decode_tokens_per_s", tau: float = DEFAULT_TAU,
                  evaluate_fn=None) -> dict:
    """d(metric)/d(parameter) and elasticities for every ``hardware_params`` leaf.

    Relaxed mode (``tau``) gives the derivatives; the exact metric is reported beside the
    relaxed one. Rows are sorted by |elasticity| (None last: a parameter or metric of 0).

    >>> s = sensitivities(io.design_from_dict({...}), "decode_tokens_per_s")
    >>> s["rows"][0]["key"], s["rows"][0]["elasticity"]      # the knob that matters most
    """
    rows, treedef = leaf_matrix(design)
    if len(rows) != 1:
        raise ValueError("sensitivities takes one design point")
    spec = make_spec(metric, maximise=False, use_log=False)
    r = relaxed_batch(rows, treedef, spec, tau, evaluate_fn)
    ex = exact_batch(rows, treedef, evaluate_fn)
    k = spec.fields.index(metric)
    f_rel, f_ex = float(r["fields"][0, k]), float(ex[metric][0])
    pos = {tuple(k.name for k in p): i
           for i, (p, _) in enumerate(jax.tree_util.tree_flatten_with_path(design)[0])}
    out = []
    for path, unit in hardware_params():
        i = pos[path]
        x, g = float(rows[0, i]), float(r["grad"][0, i])
        key, per = _display(path, unit)
        el = g * x / f_rel if x != 0.0 and f_rel != 0.0 else None
        out.append({"path": ".".join(path), "key": key, "unit": unit, "value": x, "value_display": x / per,
                    "grad": g, "grad_display": g * per, "elasticity": el})
    out.sort(key=lambda row: -1.0 if row["elasticity"] is None else abs(row["elasticity"]), reverse=True)
    return {"metric": metric, "tau": float(tau), "relaxed": f_rel, "exact": f_ex,
            "feasible": bool(ex["feasible"][0]), "reason": Reason(int(ex["reason"][0])).name,
            "finite": bool(np.isfinite([row["grad"] for row in out]).all()), "rows": out}


def enable_compile_cache(path=None) -> str | None:
    """Persistent XLA compilation cache (``cache.enable``)."""
    from ..edges import cache

    return cache.enable(path)
