"""L4: a space's limits and metric names: ``Limit``, ``limits.<metric>[_unit]`` parsing, the
metrics that can be an objective or a Pareto axis (``space.py`` re-exports them)."""

import dataclasses

from ..types import units
from ..types._tree import unit_of
from ..types.metrics import HIGHER_IS_BETTER, Metrics
from .space_axes import _err, _number

__all__ = ["Limit", "metric_fields", "check_metric", "check_pareto", "limit_from_spec"]


@dataclasses.dataclass(frozen=True)
class Limit:
    """``lo <= metric <= hi`` in SI (None = unbounded); ``label`` is the YAML spelling."""

    metric: str
    lo: float | None
    hi: float | None
    label: str

    def describe(self) -> str:
        """``tpot_ms <= 50`` in the units the user wrote (the label's suffix)."""
        mk = _metric_key(self.label)
        f = mk[1] if mk is not None else 1.0
        parts = ([f"{self.label} >= {self.lo / f:.6g}"] if self.lo is not None else []) + \
                ([f"{self.label} <= {self.hi / f:.6g}"] if self.hi is not None else [])
        return " and ".join(parts) or self.label


def metric_fields() -> list[str]:
    """Float fields of ``Metrics`` (everything but feasible and reason)."""
    return [f.name for f in dataclasses.fields(Metrics) if f.name not in ("feasible", "reason")]


def check_metric(name, where: str, path: str) -> str:
    """A metric with a direction (``HIGHER_IS_BETTER``): objective and Pareto axes."""
    allowed = sorted(HIGHER_IS_BETTER)
    if not isinstance(name, str) or name not in allowed:
        raise _err(where, path, f"unknown metric {name!r}; allowed: {', '.join(allowed)}")
    return name


def _metric_key(key: str) -> tuple[str, float] | None:
    """``tpot_ms`` -> ('tpot_s', 1e-3); ``memory_GiB`` -> ('memory_bytes', 2**30)."""
    fields = metric_fields()
    if key in fields:
        return key, 1.0
    for f in fields:
        u = unit_of(Metrics, f)
        stem = f.rsplit("_", 1)[0]
        for suf, factor in units.SUFFIXES.get(u, {}).items():
            if key == f"{stem}_{suf}":
                return f, factor
    return None


def limit_from_spec(key, spec, where) -> Limit:
    path = f"limits.{key}"
    mk = _metric_key(str(key))
    if mk is None:
        raise _err(where, path, f"unknown metric; allowed: {', '.join(metric_fields())} "
                   "(or a metric with another unit suffix, e.g. tpot_ms, memory_GiB)")
    metric, factor = mk
    u = unit_of(Metrics, metric)
    sufs = units.SUFFIXES.get(u, {}) if factor == 1.0 and key == metric else {}
    allowed = ["max", "min"] + [f"{b}_{s}" for b in ("max", "min") for s in sufs]
    if not isinstance(spec, dict) or not spec:
        raise _err(where, path, f"expected a mapping with one or two of {', '.join(allowed)}")
    bounds: dict[str, float] = {}
    for bk, bv in spec.items():
        if bk not in allowed:
            raise _err(where, f"{path}.{bk}", f"unknown bound; allowed: {', '.join(allowed)}")
        kind, _, suf = str(bk).partition("_")
        if kind in bounds:
            raise _err(where, f"{path}.{bk}", f"'{kind}' given twice")
        bounds[kind] = _number(bv, where, f"{path}.{bk}") * factor * (sufs[suf] if suf else 1.0)
    lo, hi = bounds.get("min"), bounds.get("max")
    if lo is not None and hi is not None and lo > hi:
        raise _err(where, path, f"min {lo} > max {hi}")
    return Limit(metric, lo, hi, str(key))


def check_pareto(value, where: str, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)) and not value:
        return ()                     # explicitly no Pareto front
    if (not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value)
            or not 2 <= len(value) <= 3 or len(set(value)) != len(value)):
        raise _err(where, path, f"{value!r}; allowed: 2 or 3 distinct metrics from "
                   f"{', '.join(sorted(HIGHER_IS_BETTER))}")
    return tuple(check_metric(v, where, path) for v in value)
