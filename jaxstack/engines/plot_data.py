"""L5: a sweep run directory as plain column data for ``plot.py``'s figures.

``load_run`` reads ``summary.json``, ``top`` / ``pareto`` / ``dump`` tables (Parquet or CSV)
into column dicts ``{name: np.ndarray}``; ``axis_groups`` names the swept axes (a mapping
folded into one label column); ``pareto_mask`` is the 2-D front of two columns. Errors are
``io.ConfigError`` naming the path and what is missing.
"""

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np

from ..edges.io import ConfigError

__all__ = ["RunData", "load_run", "read_table", "pareto_mask", "axis_groups", "higher_is_better"]

PRESET_COLUMNS = ("hardware", "fabric", "model")
NOT_METRICS = ("rank", "index", "feasible", "reason")
LOWER_IS_BETTER_SUFFIX = ("_s", "_J", "_W", "_C", "_bytes")


@dataclasses.dataclass
class RunData:
    """A run directory's tables as column dicts (None where absent)."""

    path: Path
    kind: str                          # "sweep" | "validate"
    summary: dict
    top: dict | None = None
    pareto: dict | None = None
    dump: dict | None = None
    validation: dict | None = None

    @property
    def points(self) -> dict:
        """Every row with metrics we have: the dump, else the top-k and Pareto rows."""
        if self.dump is not None:
            return {k: v[self.dump["feasible"]] for k, v in self.dump.items()}
        parts = [t for t in (self.top, self.pareto) if t is not None and len(t.get("index", ()))]
        if not parts:
            return {}
        cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if all(k in p for p in parts)}
        _, first = np.unique(cols["index"], return_index=True)
        return {k: v[np.sort(first)] for k, v in cols.items()}


# ---------------------------------------------------------------- reading
def _column(values: list[str]) -> np.ndarray:
    if values and all(v in ("True", "False") for v in values):
        return np.array([v == "True" for v in values])
    try:
        return np.array([float(v) for v in values])
    except ValueError:
        return np.array(values, dtype=object)


def read_table(stem: Path) -> dict | None:
    """``stem.parquet`` (with pyarrow) or ``stem.csv`` as {column: array}; None if neither."""
    pq_path, csv_path = stem.with_suffix(".parquet"), stem.with_suffix(".csv")
    if pq_path.exists():
        try:
            import pyarrow.parquet as pq

            t = pq.read_table(pq_path)
            return {n: np.asarray(t.column(n).to_numpy(zero_copy_only=False)) for n in t.column_names}
        except Exception as e:  # noqa: BLE001 - no pyarrow, or a damaged file: the CSV, if any
            if not csv_path.exists():
                raise ConfigError(f"{pq_path}: cannot read ({e})") from None
    if not csv_path.exists():
        return None
    try:
        with open(csv_path, newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as e:
        raise ConfigError(f"{csv_path}: cannot read ({e.strerror})") from None
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        raise ConfigError(f"{csv_path}: not a table (empty or ragged rows)")
    return {name: _column([r[j] for r in rows[1:]]) for j, name in enumerate(rows[0])}


def load_run(run_dir) -> RunData:
    """Read a sweep (or validate) output directory; ConfigError says what is missing."""
    p = Path(run_dir)
    if not p.exists():
        raise ConfigError(f"{p}: no such run directory")
    if not p.is_dir():
        raise ConfigError(f"{p}: not a directory (expected a `jaxstack sweep --out` run directory)")
    if (p / "validation.csv").exists():
        val = read_table(p / "validation")
        for col in ("set", "measured", "predicted"):
            if col not in val:
                raise ConfigError(f"{p / 'validation.csv'}: missing column '{col}'")
        return RunData(p, "validate", {}, validation=val)
    if not (p / "summary.json").exists():
        if (p / "manifest.json").exists():
            raise ConfigError(f"{p}: sweep run not finished (manifest.json but no summary.json); "
                              f"continue it with `jaxstack sweep SPACE --out {p} --resume`")
        raise ConfigError(f"{p}: not a run directory: missing summary.json and top.csv (write one with "
                          f"`jaxstack sweep SPACE --out {p}`) or validation.csv (`jaxstack validate --out {p}`)")
    try:
        summary = json.loads((p / "summary.json").read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{p / 'summary.json'}: cannot read ({e})") from None
    if not isinstance(summary, dict) or "objective" not in summary:
        raise ConfigError(f"{p / 'summary.json'}: not a sweep summary (no 'objective')")
    top = read_table(p / "top")
    if top is None:
        raise ConfigError(f"{p}: missing top.csv (the sweep writes it with summary.json)")
    dump = read_table(p / "dump")
    if dump is not None and dump["feasible"].dtype != bool:
        dump["feasible"] = dump["feasible"].astype(bool)
    return RunData(p, "sweep", summary, top=top, pareto=read_table(p / "pareto"), dump=dump)


# ---------------------------------------------------------------- helpers
def higher_is_better(metric: str) -> bool:
    from ..types.metrics import HIGHER_IS_BETTER

    return HIGHER_IS_BETTER.get(metric, not metric.endswith(LOWER_IS_BETTER_SUFFIX))


def pareto_mask(x, y, max_x: bool = True, max_y: bool = True) -> np.ndarray:
    """Points of (x, y) not dominated by another (ties kept once)."""
    x = np.asarray(x, float) * (1 if max_x else -1)
    y = np.asarray(y, float) * (1 if max_y else -1)
    order = np.lexsort((-y, -x))                 # x descending, then y descending
    ys = y[order]
    keep = np.zeros(len(x), bool)
    keep[order] = ys > np.maximum.accumulate(np.concatenate([[-np.inf], ys[:-1]]))
    return keep


def _is_axis(name: str) -> bool:
    return name in PRESET_COLUMNS or "." in name


def _per_unique(cols: dict, names: list[str], label) -> np.ndarray:
    """``label({name: value})`` per row, computed once per distinct row of ``names``."""
    codes = np.stack([np.unique(np.asarray(cols[c]).astype(str), return_inverse=True)[1].reshape(-1)
                      for c in names], -1)
    if not len(codes):
        return np.zeros(0, dtype=object)
    _, first, inv = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    labels = np.array([label({c: cols[c][i] for c in names}) for i in first], dtype=object)
    return labels[inv.reshape(-1)]


def _mapping_label(r: dict) -> str:
    degs = [f"{a}{int(r[f'mapping.{a}'])}" for a in ("tp", "ep", "sp", "cp", "dp", "pp")
            if float(r.get(f"mapping.{a}", 1)) > 1]
    flags = [t for t, k in (("fsdp", "mapping.fsdp"), ("moe→ep", "mapping.moe_tp_to_ep")) if float(r.get(k, 0))]
    return " ".join(degs + flags) or "1"


def _mapping_labels(cols: dict) -> np.ndarray:
    return _per_unique(cols, [c for c in cols if c.startswith("mapping.")], _mapping_label)


def _fmt(v) -> str:
    if isinstance(v, str):
        return v
    v = float(v)
    return str(int(v)) if v == int(v) and abs(v) < 1e7 else f"{v:.4g}"


def _short(v: float) -> str:
    """3 significant digits with a k / M / G suffix: 1.08k, 23.7k, 1.2M."""
    for div, sfx in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{sfx}"
    return f"{v:.3g}"


def axis_groups(cols: dict) -> dict[str, np.ndarray]:
    """Swept axes of a table: {name: per-row label}. ``mapping.*`` columns form one axis
    ("mapping"); columns in one-to-one correspondence (a ``zip:`` group) are joined with
    "+"; columns with a single value are not swept and left out."""
    nval = {c: len(np.unique(cols[c].astype(str))) for c in cols if _is_axis(c) and not c.startswith("mapping.")}
    groups: list[list[str]] = []
    for c in [c for c, k in nval.items() if k > 1]:
        for g in groups:
            if len(set(zip(cols[g[0]].tolist(), cols[c].tolist(), strict=True))) == nval[g[0]] == nval[c]:
                g.append(c)
                break
        else:
            groups.append([c])
    out = {"+".join(g): cols[g[0]] if len(g) == 1 else
           _per_unique(cols, g, lambda r, g=g: "/".join(_fmt(r[c]) for c in g)) for g in groups}
    if any(c.startswith("mapping.") for c in cols):
        lab = _mapping_labels(cols)
        if len(np.unique(lab.astype(str))) > 1:
            out["mapping"] = lab
    return out


def _pick_axis(groups: dict, name: str) -> str:
    if name in groups:
        return name
    hits = [g for g in groups if name in g.split("+") or any(c.split(".")[-1] == name for c in g.split("+"))]
    if len(hits) != 1:
        raise ConfigError(f"axis '{name}': {'ambiguous' if hits else 'not a swept axis of this run'}; "
                          f"allowed: {', '.join(groups) or '(none: fewer than two swept axes)'}")
    return hits[0]


def _categories(values: np.ndarray) -> tuple[list, np.ndarray]:
    """Sorted categories (numeric order, else first appearance) and each row's code."""
    if values.dtype != object:
        cats, code = np.unique(values, return_inverse=True)
        return [_fmt(c) for c in cats], code
    keys = values.astype(str)
    _, first, code = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return [str(keys[first[j]]) for j in order], rank[code]
