"""L4: bring your own measurements: ``jaxstack validate --data F`` and ``jaxstack calibrate``.

A measurement file is a CSV (one row per measured point) or a YAML list of the same records.
Columns (a missing optional column takes the design default):

==========================  ========  ===============================================
column                      required  meaning
==========================  ========  ===============================================
hardware, fabric, model     yes       presets (``jaxstack presets``) or a config.json path
batch, input_len, output_len yes      the request (offline: ``batch`` is ignored)
metric                      yes       a Metrics field, e.g. decode_tokens_per_s, tpot_s
measured                    yes       the measured value in SI units (tok/s, s, W, ...)
tp ep sp cp dp pp           no        mapping degrees (default 1)
fsdp moe_tp_to_ep overlap   no        mapping flags (default 0)
micro_batches               no        pipeline micro-batches (default 0 = pp)
regime                      no        static (default) or offline
max_num_seqs, max_num_batched_tokens  offline engine limits (auto_limits 1: the engine's own sizing, capped)
num_requests                no        offline: requests in the run (default 0: an endless queue)
split                       calibrate calibration or holdout (``calibrate`` fits on calibration rows only)
case                        no        a label (default: the row number)
<section>.<leaf>[_<unit>]   no        any design leaf, e.g. dram.efficiency or model.weight_bytes
==========================  ========  ===============================================

Every value is checked like a design file (domains, presets, relations); a bad one stops
with a one-line error naming the file, the row and the column. ``calibrate`` fits global
constants (default: per-kernel overhead, per-collective overhead, attention bandwidth
efficiency) on the calibration rows by a log-space grid search minimising the MAPE and
writes them to a user YAML file; ``--calibration FILE`` applies that file to every design
of any command (``io.use_calibration``), after the shipped preset calibration and before
the design's own overrides. Nothing is written inside the installed package.
"""

import csv
import datetime
import functools
from pathlib import Path

import jax
import numpy as np
import yaml

from ..edges import io
from ..types.metrics import Metrics
from . import step

__all__ = ["load", "evaluate_rows", "MeasuredBatch", "grid_fit", "calibrate", "DEFAULT_PARAMS", "REQUIRED"]

REQUIRED = ("hardware", "fabric", "model", "batch", "input_len", "output_len", "metric", "measured")
_MAPPING = ("tp", "ep", "sp", "cp", "dp", "pp", "fsdp", "moe_tp_to_ep", "overlap", "micro_batches")
_SERVING = ("regime", "max_num_seqs", "max_num_batched_tokens", "auto_limits", "num_requests")
_META = ("split", "case")
# (dotted path with unit suffix, lo, hi in that unit): the software-stack and kernel constants
DEFAULT_PARAMS = (("chip.op_overhead_us", 0.2, 50.0), ("fabric.collective_overhead_us", 0.2, 100.0),
                  ("chip.attention_bandwidth_efficiency", 0.2, 1.0))


def _records(path: Path) -> list[dict]:
    if path.suffix.lower() in (".yaml", ".yml"):
        text = io.read_text(path, "measurement file")
        try:
            data = yaml.load(text, Loader=io._StrictLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as e:
            raise io.ConfigError(f"{path}: invalid YAML: {' '.join(str(e).split())[:200]}") from None
        if isinstance(data, dict) and "cases" in data:
            data = data["cases"]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise io.ConfigError(f"{path}: expected a list of records (or {{cases: [...]}})")
        return data
    text = io.read_text(path, "measurement file")
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None:
        raise io.ConfigError(f"{path}: empty measurement file; columns: {', '.join(REQUIRED)}")
    return [{k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k is not None}
            for row in reader]


def _num(value, where, col):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    try:
        return float(value) if "." in str(value) or "e" in str(value).lower() else int(value)
    except (TypeError, ValueError):
        raise io.ConfigError(f"{where}: column '{col}': expected a number, got {io._short(value)}") from None


def load(path) -> list[dict]:
    """Rows ``{case, split, metric, measured, design (dict for io.design_from_dict)}``."""
    path = Path(path)
    recs = _records(path)
    if not recs:
        raise io.ConfigError(f"{path}: no rows")
    fields = {f.name for f in Metrics.__dataclass_fields__.values()} - {"feasible", "reason"}
    rows = []
    for i, rec in enumerate(recs, start=2 if path.suffix.lower() == ".csv" else 1):
        where = f"{path}: row {i}"
        missing = [c for c in REQUIRED if rec.get(c) in (None, "")]
        if missing:
            raise io.ConfigError(f"{where}: column '{missing[0]}': required; columns: {', '.join(REQUIRED)}")
        metric = str(rec["metric"])
        if metric not in fields:
            raise io.ConfigError(f"{where}: column 'metric': '{metric}'; allowed: {', '.join(sorted(fields))}")
        measured = float(_num(rec["measured"], where, "measured"))
        if not np.isfinite(measured) or measured <= 0:
            raise io.ConfigError(f"{where}: column 'measured': {rec['measured']!r}; allowed: a number > 0")
        split = str(rec.get("split") or "")
        if split not in ("", "calibration", "holdout"):
            raise io.ConfigError(f"{where}: column 'split': '{split}'; allowed: calibration, holdout")
        design = {k: str(rec[k]) for k in ("hardware", "fabric", "model")}
        design["request"] = {k: _num(rec[k], where, k) for k in ("batch", "input_len", "output_len")}
        design["mapping"] = {k: _num(rec[k], where, k) for k in _MAPPING if rec.get(k) not in (None, "")}
        serving = {k: (str(rec[k]) if k == "regime" else _num(rec[k], where, k))
                   for k in _SERVING if rec.get(k) not in (None, "")}
        if serving:
            design["serving"] = serving
        extra = [k for k in rec if k not in REQUIRED + _MAPPING + _SERVING + _META and rec[k] not in (None, "")]
        for k in extra:
            if "." not in k:
                raise io.ConfigError(f"{where}: column '{k}': unknown; allowed: {', '.join(REQUIRED)}, "
                                     f"{', '.join(_MAPPING + _SERVING + _META)} or a dotted leaf path such as "
                                     "dram.efficiency")
        design["overrides"] = {k: _num(rec[k], where, k) for k in extra}
        try:
            io.design_from_dict(design, where)          # every value checked now, one line per error
        except io.ConfigError as e:
            raise io.ConfigError(str(e).replace(f"{where}: key '", f"{where}: column '")) from None
        rows.append({"set": path.stem, "panel": f"{design['hardware']} {metric}",
                     "case": str(rec.get("case") or f"row {i}"), "split": split or "holdout",
                     "metric": metric, "measured": measured, "weight": 1.0, "design": design})
    return rows


def design_batch(rows, calibrated=True):
    """One float32 design batch of the rows' ``design`` dicts (every value checked by ``io``)."""
    ds = [io.design_from_dict(r["design"], f"{r['set']}:{r['case']}", calibrated=calibrated) for r in rows]
    return jax.tree_util.tree_map(lambda *xs: np.asarray(xs, dtype=np.float32), *ds)


def evaluate_rows(rows, calibrated: bool = True, extra=()) -> list[dict]:
    """``rows`` (of any measurement set) with ``predicted`` (their ``metric``; NaN where
    infeasible), ``feasible`` and the Metrics fields named in ``extra`` filled in."""
    from ..recipe.evaluate import evaluate

    # a few hundred rows: XLA:CPU's quick compile finishes first (``step.quick_options``)
    m = jax.jit(jax.vmap(evaluate), compiler_options=step.quick_options(len(rows)))(design_batch(rows, calibrated))
    feas = np.asarray(m.feasible)
    out = []
    for i, r in enumerate(rows):
        p = float(np.asarray(getattr(m, r["metric"]))[i])
        out.append({**{k: v for k, v in r.items() if k != "design"}, "predicted": p if feas[i] else float("nan"),
                    "feasible": bool(feas[i]), "reason": int(np.asarray(m.reason)[i]),
                    **{k: float(np.asarray(getattr(m, k))[i]) for k in extra}})
    return out


@functools.cache
def _grid_evaluator():
    from ..recipe.evaluate import evaluate

    return jax.jit(jax.vmap(jax.vmap(evaluate)))


class MeasuredBatch:
    """Measured rows as one design batch (``base``, leaves [C]) and their relative errors under
    a [G, C] grid of leaf values: what every fit here (``grid_fit``, the calibration model)
    evaluates. ``weight`` [C] weighs a row in a fit's objective (default: the plain mean)."""

    def __init__(self, base, meas, metrics, weight=None):
        self.base = base
        self.meas = np.asarray(meas, np.float64)
        self.names = sorted(set(metrics))
        self.pick = np.array([self.names.index(m) for m in metrics])
        n = len(self.meas)
        self.weight = np.full(n, 1.0 / n) if weight is None else np.asarray(weight, np.float64)

    def raw(self, path: str) -> np.ndarray:
        """The batch's own values [C] of a dotted leaf path, in that path's unit."""
        names, _, factor = io.resolve_path(path)
        return np.asarray(io.get_path(self.base, names), np.float64) / factor

    def errors(self, values: list[tuple]) -> np.ndarray:
        """|pred/meas - 1| [G, C] (1 where infeasible) with leaves set from [(path, [G, C] in the
        path's unit)]."""
        G = values[0][1].shape[0] if values else 1
        C = len(self.meas)
        d = jax.tree_util.tree_map(lambda x: np.broadcast_to(x, (G, C)).copy(), self.base)
        for path, arr in values:
            names, _, factor = io.resolve_path(path)
            d = io.set_path(d, names, np.broadcast_to(arr * factor, (G, C)).astype(np.float32))
        m = _grid_evaluator()(d)
        pred = np.stack([np.asarray(getattr(m, n), np.float64) for n in self.names], -1)
        pred = np.take_along_axis(pred, np.broadcast_to(self.pick[None, :, None], (G, C, 1)), -1)[..., 0]
        return np.where(np.asarray(m.feasible) & np.isfinite(pred) & (pred > 0), np.abs(pred / self.meas - 1.0), 1.0)


def grid_fit(base, meas, metrics, params, points: int = 16, rounds: int = 3):
    """Global constants minimising the MAPE of ``metrics[i]`` vs ``meas[i]`` over the design
    batch ``base``: a log-space grid over ``params`` ((dotted path, lo, hi) in user units),
    refined ``rounds`` times around the best point. Returns (values in user units, MAPE)."""
    batch = MeasuredBatch(base, meas, metrics)
    lo, hi = np.log([p[1] for p in params]), np.log([p[2] for p in params])
    lo0, hi0 = lo.copy(), hi.copy()
    C = len(batch.meas)
    best = None
    for _ in range(rounds):
        axes = [np.linspace(a, b, points) for a, b in zip(lo, hi, strict=True)]
        grid = np.exp(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes)))
        values = [(p[0], np.broadcast_to(grid[:, j:j + 1], (len(grid), C))) for j, p in enumerate(params)]
        mape = batch.errors(values).mean(axis=1)
        i = int(np.argmin(mape))
        best = (grid[i], float(mape[i]))
        step = (hi - lo) / (points - 1)
        lo = np.maximum(np.log(best[0]) - 2 * step, lo0)         # refine, never outside the given range
        hi = np.minimum(np.log(best[0]) + 2 * step, hi0)
    return best


def calibrate(path, out, params=DEFAULT_PARAMS) -> dict:
    """Fit ``params`` on the calibration rows of measurement file ``path``; write ``out``."""
    rows = load(path)
    cal = [r for r in rows if r["split"] == "calibration"]
    if not cal:
        raise io.ConfigError(f"{path}: column 'split': no calibration rows; allowed: mark the rows to fit on "
                             "with split = calibration (the others are reported as holdout)")
    values, mape = grid_fit(design_batch(cal, calibrated=False), np.array([r["measured"] for r in cal]),
                            [r["metric"] for r in cal], params)
    fitted = {p: round(float(v), 6) for (p, _, _), v in zip(params, values, strict=True)}
    doc = {"source": f"fitted by `jaxstack calibrate` on {datetime.date.today().isoformat()}: log-space grid "
                     f"search minimising the MAPE over the calibration rows of {Path(path).name}",
           "data": str(path), "split": {"calibration": len(cal), "holdout": len(rows) - len(cal)},
           "error": {"calibration_mape_pct": round(100 * mape, 3)}, "fitted": fitted}
    out = Path(out)
    if out.exists() and out.is_dir():
        raise io.ConfigError(f"--out {out}: is a directory; allowed: a YAML file path")
    out.parent.mkdir(parents=True, exist_ok=True)
    io.write_text_atomic(out, yaml.safe_dump(doc, sort_keys=False, width=100))
    return doc
