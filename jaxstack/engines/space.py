"""L4: design spaces from YAML, and the bijection global index <-> design point.

A space is a base design plus *axes*. Each axis is a small host-side table: ``size`` rows,
one column per design leaf it sets (SI values) and one display column per user-visible
value (user units, as written in the YAML). A point's global index is the mixed-radix
number whose digits are the row of each axis, **row-major** (the last axis varies fastest):
``index = sum_a digit_a * prod_{b > a} size_b``, axes ordered as ``axes:`` (file order),
then the ``zip:`` groups, then the ``mapping:`` factorisations. The grid is never
materialised: ``decode_offsets`` turns ``base + arange(chunk)`` into digits on device, with
``base`` split into digits on the host (a Python int, so spaces of 2.5e14 points and more
index exactly) and the int32 in-chunk offset added digit by digit with carries.

Schema (``version: 1``; strict, every error names file, key path and allowed values)::

    version: 1
    description: free text                      # optional
    base: {hardware: b200, fabric: nvlink-b200x8, model: llama-3-70b,
           request: {batch: 1, input_len: 1024, output_len: 1024},
           mapping: {tp: 8}, overrides: {dram.efficiency: 0.85}}
    axes:                                       # dotted leaf path WITH unit suffix
      fabric.l1.link_bandwidth_GBps: {choices: [450, 900, 1800]}
      dram.transfer_rate_GHz: {range: [4, 8], count: 5, scale: linear}   # or log
      dram.total_layers: {range: [1, 16], step: 1}
      hardware: {choices: [b200, h200]}         # presets (hardware, fabric, model)
    zip:                                        # groups varying together (one axis each)
      - {request.input_len: [1024, 8192], request.output_len: [1024, 256]}
    mapping: {factorizations: 8, axes: [tp, ep, dp, pp], fsdp: [0, 1], moe_tp_to_ep: [0, 1]}
    limits: {power_W: {max: 1000}, tpot_ms: {max: 50}, memory_bytes: {max_GiB: 180},
             user_tokens_per_s: {min: 20}}
    objective: decode_tokens_per_s              # direction from metrics.HIGHER_IS_BETTER
    pareto: [decode_tokens_per_s, user_tokens_per_s]

The ``mapping:`` block enumerates on the host every ordered factorisation of N into the
listed degrees (the other degrees of tp/ep/sp/cp/dp/pp are fixed at 1), times the fsdp,
moe_tp_to_ep and overlap lists, into one table axis (without the no-op combinations FSDP
with dp = 1 and TP->EP with tp = 1). Preset axes set every leaf of their sections
(hardware: chip, dram, thermal) with the base ``overrides`` applied on top; numeric axes
take precedence over preset axes on the leaves they name. Limits become infeasibility
with ``Reason.slo`` on device (in ``sweep``).
"""

import dataclasses
import hashlib
import json
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..edges import io
from ..types.design import Design
from ..types.mapping import AXES as MAPPING_AXES
from .space_axes import (
    MAX_AXIS_SIZE,
    PRESET_SECTIONS,
    Axis,
    _axis_from_columns,
    _Column,
    _err,
    _flatten,
    _mapping_axis,
    _need_list,
    _need_mapping,
    _range_values,
    factorizations,
)
from .space_limits import Limit, check_metric, check_pareto, metric_fields
from .space_limits import limit_from_spec as _limit

__all__ = ["Axis", "Limit", "Space", "load_space", "space_from_dict", "factorizations",
           "host_digits", "decode_offsets", "leaf_paths", "metric_fields", "check_metric",
           "MAX_AXIS_SIZE", "structural_check"]

SPACE_KEYS = ("version", "description", "base", "axes", "zip", "mapping", "limits", "objective",
              "pareto")
# ---------------------------------------------------------------- data types
@dataclasses.dataclass(frozen=True, eq=False)
class Space:
    path: str
    base: Design
    axes: tuple[Axis, ...]
    limits: tuple[Limit, ...]
    objective: str | None
    pareto: tuple[str, ...]
    description: str
    canonical: dict

    @property
    def radices(self) -> tuple[int, ...]:
        return tuple(a.size for a in self.axes)

    @property
    def size(self) -> int:
        return math.prod(self.radices)

    @property
    def hash(self) -> str:
        text = json.dumps(self.canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def columns(self) -> list[str]:
        return [c for a in self.axes for c in a.columns]

    def digits(self, index: int) -> tuple[int, ...]:
        return host_digits(index, self.radices)

    def index(self, digits) -> int:
        i = 0
        for d, r in zip(digits, self.radices, strict=True):
            i = i * r + int(d)
        return i

    def values(self, index: int) -> dict[str, Any]:
        """Axis values of point ``index`` in user units, keyed by column label."""
        out: dict[str, Any] = {}
        for a, d in zip(self.axes, self.digits(index), strict=True):
            out.update(zip(a.columns, a.display[d], strict=True))
        return out

    def designs(self, indices) -> Design:
        """Host decoder: a numpy float32 Design batch for ``indices`` (reference for tests)."""
        idx = [int(i) for i in np.atleast_1d(np.asarray(indices, dtype=object))]
        digits = np.array([self.digits(i) for i in idx], dtype=np.int64).reshape(len(idx), -1)
        flat, treedef = _flatten(self.base)
        leaves = {p: np.full(len(idx), v, np.float32) for p, v in flat}
        for a, ax in enumerate(self.axes):
            rows = ax.table[digits[:, a]].astype(np.float32)
            for j, t in enumerate(ax.targets):
                leaves[t] = rows[:, j]
        return jax.tree_util.tree_unflatten(treedef, [leaves[p] for p, _ in flat])

    def design(self, index: int) -> Design:
        """One design point (scalar float32 leaves) for global index ``index``."""
        return jax.tree_util.tree_map(lambda x: x[0], self.designs([index]))


# ---------------------------------------------------------------- index arithmetic
def host_digits(index: int, radices) -> tuple[int, ...]:
    """Mixed-radix digits of a Python int (first axis most significant)."""
    index = int(index)
    total = math.prod(radices)
    if not 0 <= index < max(total, 1):
        raise IndexError(f"index {index} outside the space of {total} points")
    out = []
    for r in reversed(radices):
        index, d = divmod(index, r)
        out.append(d)
    return tuple(reversed(out))


def decode_offsets(radices: tuple[int, ...], base_digits, offsets):
    """Digits of ``base + offsets`` on device (traceable; all int32, never the full index).

    Args:
      radices: static axis sizes (each < 2**24).
      base_digits: int32[A], the host-split digits of the chunk base.
      offsets: int32[n], in-chunk offsets (< 2**31).
    Returns:
      list of A int32[n] digit arrays. Points past the end of the space wrap around; the
      caller masks them (``offset < n_valid``).
    """
    q = offsets
    carry = jnp.zeros_like(offsets)
    digits = [None] * len(radices)
    for a in reversed(range(len(radices))):
        r = radices[a]
        if r == 1:
            digits[a] = jnp.zeros_like(offsets)
            continue
        t = base_digits[a] + q % r + carry
        q = q // r
        wrap = t >= r
        digits[a] = jnp.where(wrap, t - r, t)
        carry = wrap.astype(offsets.dtype)
    return digits


# ---------------------------------------------------------------- helpers
def leaf_paths(design: Design) -> list[tuple[str, ...]]:
    return [p for p, _ in _flatten(design)[0]]


# ---------------------------------------------------------------- loading
def load_space(path) -> Space:
    """Load and strictly validate a space YAML (``yaml.safe_load`` only)."""
    return space_from_dict(io.load_yaml(path), str(path))


def space_from_dict(data: dict, where: str = "<space>") -> Space:
    for k in data:
        if k not in SPACE_KEYS:
            raise _err(where, str(k), f"unknown key; allowed: {', '.join(SPACE_KEYS)}")
    if data.get("version") != 1:
        raise _err(where, "version", f"{data.get('version')!r}; allowed: 1")
    if "base" not in data or not isinstance(data["base"], dict):
        raise _err(where, "base", "required: a design mapping (hardware, fabric, model, request, ...)")
    base_data = data["base"]
    base = io.design_from_dict(base_data, f"{where}: base")
    axes: list[Axis] = []
    spec_axes = data.get("axes") or {}
    if not isinstance(spec_axes, dict):
        raise _err(where, "axes", "expected a mapping of dotted paths to axis specs")
    for key, spec in spec_axes.items():
        path = f"axes.{key}"
        if key in PRESET_SECTIONS:
            _need_mapping(spec, where, path, ("choices",))
        else:
            _need_mapping(spec, where, path, ("choices", "range", "count", "step", "scale"))
        if isinstance(spec, dict) and "choices" in spec:
            if len(spec) > 1:
                raise _err(where, path, "'choices' takes no other keys; allowed: {choices: [...]} or "
                           "{range: [lo, hi], count: N, scale: linear|log} or {range: [lo, hi], step: S}")
            vals = _need_list(spec["choices"], where, f"{path}.choices")
            axes.append(_axis_from_columns(path, [_Column(str(key), vals, base_data, where,
                                                          f"{path}.choices", "axes")], where))
        elif isinstance(spec, dict) and "range" in spec:
            names, _u, _factor = io.resolve_path(str(key), f"{where}: axes")
            if (names[0], names[-1]) in io.ENUMS:
                raise _err(where, path, "an enum takes 'choices', not 'range'")
            vals = _range_values(spec, where, path)
            axes.append(_axis_from_columns(path, [_Column(str(key), vals, base_data, where, path, "axes")],
                                           where))
        else:
            raise _err(where, path, "needs 'choices' or 'range'")
    groups = data.get("zip") or []
    if not isinstance(groups, list):
        raise _err(where, "zip", "expected a list of {path: [values]} groups")
    for g, group in enumerate(groups):
        path = f"zip[{g}]"
        if not isinstance(group, dict) or not group:
            raise _err(where, path, "expected a non-empty mapping of paths to equal-length lists")
        cols, n = [], None
        for key, vals in group.items():
            vals = _need_list(vals, where, f"{path}.{key}")
            if n is not None and len(vals) != n:
                raise _err(where, f"{path}.{key}", f"{len(vals)} values, but the group has {n}; "
                           "allowed: lists of equal length")
            n = len(vals)
            cols.append(_Column(str(key), vals, base_data, where, f"{path}.{key}", path))
        axes.append(_axis_from_columns(path, cols, where))
    if "mapping" in data:
        axes.append(_mapping_axis(data["mapping"], where))
    axes = _resolve_targets(axes, where)
    limits_spec = data.get("limits") or {}
    if not isinstance(limits_spec, dict):
        raise _err(where, "limits", "expected a mapping of metric names to {max: ..} / {min: ..}")
    limits = tuple(_limit(k, v, where) for k, v in limits_spec.items())
    objective = data.get("objective")
    if objective is not None:
        check_metric(objective, where, "objective")
    pareto = check_pareto(data.get("pareto"), where, "pareto")
    desc = data.get("description", "")
    flat = _flatten(base)[0]
    canonical = {
        "version": 1,
        "base": {".".join(p): v for p, v in flat},
        "axes": [{"name": a.name, "columns": list(a.columns), "display": [list(r) for r in a.display],
                  "targets": [".".join(t) for t in a.targets], "table": a.table.tolist()} for a in axes],
        "limits": [[lim.metric, lim.lo, lim.hi] for lim in limits],
        "objective": objective, "pareto": list(pareto),
    }
    return Space(where, base, tuple(axes), limits, objective, pareto, str(desc), canonical)


def _resolve_targets(axes: list[Axis], where: str) -> list[Axis]:
    """Each leaf is set by at most one axis: numeric columns win over preset sections."""
    numeric: dict[tuple[str, ...], str] = {}
    presets: dict[str, str] = {}
    for a in axes:
        for c in a.columns:
            if c in PRESET_SECTIONS:
                if c in presets:
                    raise _err(where, a.name, f"preset '{c}' is already varied by {presets[c]}")
                presets[c] = a.name
        for t, src in zip(a.targets, a.sources, strict=True):
            if src in PRESET_SECTIONS:
                continue
            if t in numeric:
                raise _err(where, a.name, f"leaf '{'.'.join(t)}' is already varied by {numeric[t]}")
            numeric[t] = a.name
    out = []
    for a in axes:
        keep = [j for j, (t, src) in enumerate(zip(a.targets, a.sources, strict=True))
                if src not in PRESET_SECTIONS or t not in numeric]
        out.append(dataclasses.replace(a, targets=tuple(a.targets[j] for j in keep),
                                       table=a.table[:, keep],
                                       sources=tuple(a.sources[j] for j in keep)))
    return out


_SIZES = (("fabric", "l1", "size"), ("fabric", "l2", "size"), ("fabric", "l3", "size"))
_DEGREES = tuple(("mapping", a) for a in MAPPING_AXES)


def _products(space: Space, paths) -> set[int] | None:
    """Every value of prod(leaf at ``paths``) over the space, when at most one axis sets them
    (None when several axes do: too many combinations to list cheaply)."""
    base = {p: v for p, v in _flatten(space.base)[0]}
    setters = [a for a in space.axes if any(t in paths for t in a.targets)]
    if len(setters) > 1:
        return None
    if not setters:
        return {int(round(math.prod(base[p] for p in paths)))}
    a = setters[0]
    col = {t: j for j, t in enumerate(a.targets)}
    return {int(round(math.prod(row[col[p]] if p in col else base[p] for p in paths))) for row in a.table}


def structural_check(space: Space, where: str | None = None) -> None:
    """ConfigError when every point of ``space`` would be infeasible for one structural reason
    (no mapping's world size equals any fabric's device count), said at load time instead of
    after a sweep that finds nothing."""
    chips, worlds = _products(space, _SIZES), _products(space, _DEGREES)
    if chips is None or worlds is None or min(worlds) <= max(chips):
        return
    raise io.ConfigError(
        f"{where or space.path}: every point is infeasible (device_count): tp x ep x sp x cp x dp x pp is "
        f"{', '.join(map(str, sorted(worlds)))} but the fabric has {', '.join(map(str, sorted(chips)))} chips; "
        "allowed: mappings of at most the chip count (e.g. mapping: {factorizations: "
        f"{max(chips)}}})")
