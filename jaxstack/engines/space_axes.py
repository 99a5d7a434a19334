"""L4: the axes of a design space — one decoded digit each, built from the YAML on the host.

``space.py`` turns a space file into a ``Space``; this module builds its axes: explicit
``choices`` (numbers in user units or preset names), ``range`` (count with linear / log
scale, or step), ``zip`` groups of columns, and the ``mapping:`` block (every ordered
factorisation of N into the listed degrees, times the flag lists). Every value is checked
like a design value (domains, integers, units), every error names file, key and allowed
values.
"""

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from ..edges import io
from ..types._tree import domain_of
from ..types.design import Design
from ..types.mapping import AXES as MAPPING_AXES
from ..types.workload import Model

if TYPE_CHECKING:
    from .space import Space

__all__ = ["Axis", "factorizations", "restrict", "MAX_AXIS_SIZE", "MAX_DEVICES", "PRESET_SECTIONS"]

PRESET_SECTIONS = {"hardware": ("chip", "dram", "thermal"), "fabric": ("fabric",), "model": ("model",),
                   "engine": ("serving",)}

MAX_AXIS_SIZE = 2**24          # per-axis table rows; keeps int32 digit arithmetic exact
MAX_DEVICES = 2**24            # mapping degrees are integers exact in float32 (domains.MAX_INT)
_FLAGS = ("fsdp", "moe_tp_to_ep", "overlap")
# integer leaves (section, field) and their smallest allowed value
_INT_MIN = {("chip", "compute_units"): 1, ("dram", "total_layers"): 1,
            ("dram", "connected_layers"): 1, ("dram", "channels_per_layer"): 1,
            ("fabric", "size"): 1, ("fabric", "kind"): 0, ("fabric", "dim_x"): 1,
            ("fabric", "dim_y"): 1, ("fabric", "links_per_node"): 1, ("request", "batch"): 1,
            ("request", "input_len"): 1, ("request", "output_len"): 1,
            **{("mapping", a): 1 for a in MAPPING_AXES}, **{("mapping", f): 0 for f in _FLAGS},
            ("mapping", "micro_batches"): 0}


def _err(where: str, path: str, msg: str) -> io.ConfigError:
    return io.ConfigError(f"{where}: key '{path}': {msg}")


@dataclasses.dataclass(frozen=True, eq=False)
class Axis:
    """One decoded digit: ``size`` rows of SI leaf values and user-unit display values."""

    name: str                                   # key path in the YAML
    columns: tuple[str, ...]                    # display column labels (user units)
    display: tuple[tuple[Any, ...], ...]        # size rows x len(columns)
    targets: tuple[tuple[str, ...], ...]        # design leaf paths this axis sets
    table: np.ndarray                           # (size, len(targets)) float64, SI
    sources: tuple[str, ...]                    # the column each target comes from

    @property
    def size(self) -> int:
        return len(self.display)


def _as_int(v: float, names, where, path) -> float:
    lo = _INT_MIN.get((names[0], names[-1]))
    if lo is None and names[0] == "model":      # the model's shape leaves are integers, its dtypes and shares not
        dom = domain_of(Model, names[-1])
        lo = max(int(dom.lo), 0) if dom is not None and dom.integer else None
    if lo is None:
        return v
    r = round(v)
    if abs(v - r) > 1e-9 * max(1.0, abs(v)):
        raise _err(where, path, f"{v!r} is not an integer; allowed: integers >= {lo}")
    if r < lo:
        raise _err(where, path, f"{r} is below the minimum; allowed: integers >= {lo}")
    if (names[0], names[-1]) in {("mapping", f) for f in _FLAGS} and r > 1:
        raise _err(where, path, f"{r} is not a flag; allowed: 0, 1")
    return float(r)


def _tidy(x: float):
    """User-unit display value: ints as ints, floats rounded to 12 significant digits."""
    x = float(f"{x:.12g}")
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def _need_mapping(spec, where, path, allowed: tuple[str, ...]):
    if not isinstance(spec, dict):
        raise _err(where, path, f"expected a mapping with keys {', '.join(allowed)}; got {spec!r}")
    for k in spec:
        if k not in allowed:
            raise _err(where, f"{path}.{k}", f"unknown key; allowed: {', '.join(allowed)}")


def _need_list(vals, where, path) -> list:
    if not isinstance(vals, list):
        raise _err(where, path, f"expected a list of values, got {vals!r}")
    if not vals:
        raise _err(where, path, "empty axis; give at least one value")
    return vals


def _number(v, where, path) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _err(where, path, f"expected a finite number, got {v!r}")
    return float(v)


def _flatten(design: Design):
    flat, treedef = jax.tree_util.tree_flatten_with_path(design)
    return [(tuple(k.name for k in path), float(v)) for path, v in flat], treedef


# ---------------------------------------------------------------- columns
class _Column:
    """One user column: a numeric leaf path or a preset kind, with its values."""

    def __init__(self, key: str, values: list, base_data: dict, where: str, path: str, ctx: str):
        self.key = key
        self.display: list[Any] = []
        self.targets: list[tuple[str, ...]] = []
        rows: list[list[float]] = []
        if key in PRESET_SECTIONS:
            for i, name in enumerate(values):
                if not isinstance(name, str):
                    raise _err(where, f"{path}[{i}]", f"expected a {key} preset name; allowed: "
                               f"{', '.join(io.preset_names(key))}")
                try:
                    d = io.design_from_dict({**base_data, key: name}, where)
                except io.ConfigError as e:
                    raise _err(where, f"{path}[{i}]", str(e)) from None
                sub = [(p, v) for p, v in _flatten(d)[0] if p[0] in PRESET_SECTIONS[key]]
                self.targets = [p for p, _ in sub]
                rows.append([v for _, v in sub])
                self.display.append(name)
        else:
            names, _unit, _f = io.resolve_path(key, f"{where}: {ctx}")
            self.targets = [names]
            for i, v in enumerate(values):
                _, si = io.convert_value(key, v, f"{where}: {path}[{i}]")
                si = _as_int(si, names, where, f"{path}[{i}]")
                rows.append([si])
                self.display.append(v if isinstance(v, str) else _tidy(v))
        self.rows = rows


def _range_values(spec, where, path) -> list[float]:
    """User-unit values of ``{range: [lo, hi], count: N, scale: ...}`` or ``{.., step: S}``."""
    rng = spec["range"]
    if not isinstance(rng, list) or len(rng) != 2:
        raise _err(where, f"{path}.range", f"expected [lo, hi], got {rng!r}")
    lo, hi = (_number(x, where, f"{path}.range") for x in rng)
    if lo > hi:
        raise _err(where, f"{path}.range", f"lo {lo} > hi {hi}; allowed: lo <= hi")
    if ("count" in spec) == ("step" in spec):
        raise _err(where, path, "give exactly one of 'count' or 'step' with 'range'")
    scale = spec.get("scale", "linear")
    if scale not in ("linear", "log"):
        raise _err(where, f"{path}.scale", f"{scale!r}; allowed: linear, log")
    if "step" in spec:
        if "scale" in spec and scale != "linear":
            raise _err(where, f"{path}.scale", "'step' ranges are linear; use 'count' with log")
        step = _number(spec["step"], where, f"{path}.step")
        if step <= 0:
            raise _err(where, f"{path}.step", f"{step}; allowed: step > 0")
        nf = (hi - lo) / step * (1 + 1e-12) + 1e-9       # sized arithmetically, before any list is built
        if not math.isfinite(nf) or nf + 1 > MAX_AXIS_SIZE:
            raise _err(where, f"{path}.step", f"{step:g} gives {nf + 1:.3g} values; allowed: at most "
                       f"{MAX_AXIS_SIZE} per axis")
        n = int(math.floor(nf)) + 1
        vals = [lo + i * step for i in range(n)]
    else:
        n = spec["count"]
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_AXIS_SIZE:
            raise _err(where, f"{path}.count", f"{n!r}; allowed: an integer >= 1 (at most {MAX_AXIS_SIZE})")
        if scale == "log" and lo <= 0:
            raise _err(where, f"{path}.range", f"log scale needs lo > 0, got {lo}")
        if n == 1:
            vals = [lo]
        elif scale == "log":
            vals = [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (n - 1)) for i in range(n)]
        else:
            vals = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
    if len(vals) > MAX_AXIS_SIZE:
        raise _err(where, path, f"{len(vals)} values; allowed: at most {MAX_AXIS_SIZE} per axis")
    return [_tidy(v) for v in vals]


def _axis_from_columns(name: str, cols: list[_Column], where: str) -> Axis:
    size = len(cols[0].rows)
    seen: set = set()
    dup = next((r for r in zip(*(c.display for c in cols), strict=True) if r in seen or seen.add(r)), None)
    if dup is not None:
        raise _err(where, name, f"value {dup[0] if len(dup) == 1 else dup!r} appears twice; "
                   "allowed: distinct values")
    targets: list[tuple[str, ...]] = []
    sources: list[str] = []
    for c in cols:
        targets += c.targets
        sources += [c.key] * len(c.targets)
    table = np.array([[v for c in cols for v in c.rows[i]] for i in range(size)], dtype=np.float64)
    display = tuple(tuple(c.display[i] for c in cols) for i in range(size))
    return Axis(name, tuple(c.key for c in cols), display, tuple(targets), table.reshape(size, -1),
                tuple(sources))


# ---------------------------------------------------------------- factorisations
def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def factorizations(n: int, k: int) -> list[tuple[int, ...]]:
    """Every ordered k-tuple of positive integers whose product is n (lexicographic)."""
    if k == 1:
        return [(n,)]
    return [(d, *rest) for d in _divisors(n) for rest in factorizations(n // d, k - 1)]


def _count_factorizations(n: int, k: int) -> int:
    """len(factorizations(n, k)) without building them: prod over primes p^e of C(e + k - 1, k - 1)."""
    out, p = 1, 2
    while p * p <= n:
        e = 0
        while n % p == 0:
            n //= p
            e += 1
        out *= math.comb(e + k - 1, k - 1)
        p += 1
    return out * (k if n > 1 else 1)


def _mapping_axis(spec, where) -> Axis:
    allowed = ("factorizations", "axes", *_FLAGS)
    _need_mapping(spec, where, "mapping", allowed)
    if "factorizations" not in spec:
        raise _err(where, "mapping.factorizations", "required: the device count N to factorise")
    n = spec["factorizations"]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_DEVICES:
        raise _err(where, "mapping.factorizations", f"{io._short(n)}; allowed: an integer in [1, {MAX_DEVICES}]")
    degs = spec.get("axes", list(MAPPING_AXES))
    if not isinstance(degs, list) or not degs:
        raise _err(where, "mapping.axes", f"expected a non-empty list from {', '.join(MAPPING_AXES)}")
    for d in degs:
        if d not in MAPPING_AXES or degs.count(d) > 1:
            raise _err(where, "mapping.axes", f"{d!r} unknown or repeated; allowed: {', '.join(MAPPING_AXES)}")
    flags = {}
    for f in _FLAGS:
        if f in spec:
            vals = _need_list(spec[f], where, f"mapping.{f}")
            if any(v not in (0, 1) or isinstance(v, bool) for v in vals) or len(set(vals)) != len(vals):
                raise _err(where, f"mapping.{f}", f"{vals!r}; allowed: distinct values from [0, 1]")
            flags[f] = vals
    order = [a for a in MAPPING_AXES if a in degs]
    count = _count_factorizations(n, len(order)) * math.prod(len(v) for v in flags.values())
    if count > MAX_AXIS_SIZE:
        raise _err(where, "mapping", f"{count} mappings; allowed: at most {MAX_AXIS_SIZE} per axis (fewer "
                   "axes or a smaller N)")
    rows, display = [], []
    for fac in factorizations(n, len(order)):
        deg = dict(zip(order, fac, strict=True))
        for combo in _product([flags[f] for f in flags]):
            on = dict(zip(flags, combo, strict=True))
            # no-op flags are not distinct points: FSDP without DP, TP->EP without TP
            if (on.get("fsdp") and deg.get("dp", 1) == 1) or (on.get("moe_tp_to_ep") and deg.get("tp", 1) == 1):
                continue
            rows.append([float(deg.get(a, 1)) for a in MAPPING_AXES] + [float(v) for v in combo])
            display.append(tuple(deg.get(a, 1) for a in MAPPING_AXES) + tuple(combo))
    cols = tuple(f"mapping.{a}" for a in MAPPING_AXES) + tuple(f"mapping.{f}" for f in flags)
    targets = tuple(("mapping", a) for a in MAPPING_AXES) + tuple(("mapping", f) for f in flags)
    return Axis("mapping", cols, tuple(display), targets, np.array(rows, dtype=np.float64), cols)


def _product(lists):
    out = [()]
    for lst in lists:
        out = [(*o, v) for o in out for v in lst]
    return out


# ---------------------------------------------------------------- limits


# ---------------------------------------------------------------- restriction
def restrict(space: "Space", fix: dict | None = None) -> list[np.ndarray]:
    """Allowed digits per axis: ``fix`` maps a column label (``request.batch``,
    ``dram.total_layers``, ``mapping.tp``, ``hardware``) to allowed user-unit values."""
    allowed = [np.arange(a.size) for a in space.axes]
    for col, vals in (fix or {}).items():
        vals = list(vals) if isinstance(vals, (list, tuple)) else [vals]
        hit = [(i, a.columns.index(col)) for i, a in enumerate(space.axes) if col in a.columns]
        if not hit:
            raise io.ConfigError(f"search: key 'fix.{col}': not an axis column; allowed: {', '.join(space.columns)}")
        i, j = hit[0]
        keep = [r for r in allowed[i] if any(_same(space.axes[i].display[r][j], v) for v in vals)]
        if not keep:
            shown = ", ".join(str(r[j]) for r in space.axes[i].display[:12])
            raise io.ConfigError(f"search: key 'fix.{col}': {vals!r} not on the axis; allowed: {shown}")
        allowed[i] = np.array(keep)
    return allowed


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
