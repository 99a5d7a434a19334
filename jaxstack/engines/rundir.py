"""L4: a sweep's run directory and results: atomic checkpoints and manifests, resume checks,
per-chunk dumps, ``SweepResult`` and its files (``top``, ``pareto``, ``dump`` as CSV / Parquet,
``summary.json``). Shared by ``sweep`` and ``search``; split out of ``sweep.py`` (the engine).
"""

import dataclasses
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..edges import io
from ..types.metrics import HIGHER_IS_BETTER, Reason
from . import reducers
from .space import Space

__all__ = ["SweepResult", "SearchResult", "build_result", "resume_state", "dump_columns", "write_outputs"]


# ---------------------------------------------------------------- run directory
def _atomic_write(path: Path, data: bytes):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _save_npz(path: Path, arrays: dict):
    import io as _io

    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    _atomic_write(path, buf.getvalue())



def _write_json(path: Path, obj):

    _atomic_write(path, (io.dumps_json(obj, indent=1, sort_keys=True, default=str) + "\n").encode())


def _open_rundir(rundir: Path, sfx: str, run_id: dict, resume: bool, space: Space, st):
    """Create ``rundir``, or (``resume``) check it belongs to this run and load its state."""
    arrays = resume_state(rundir, sfx, run_id, resume, "sweep", space)
    if arrays is not None:
        st.load(arrays)


def resume_state(rundir: Path, sfx: str, run_id: dict, resume: bool, kind: str, space: Space) -> dict | None:
    """Create ``rundir``; None for a new run (or one killed before its first checkpoint), else
    the checkpointed arrays of the ``kind`` run to resume, after checking that its manifest
    has this ``run_id`` (space hash first, then the options). Shared by sweep and search."""
    import json

    rundir.mkdir(parents=True, exist_ok=True)
    state_path, manifest_path = rundir / f"state{sfx}.npz", rundir / f"manifest{sfx}.json"
    if not state_path.exists():
        return None
    if not resume:
        raise io.ConfigError(f"{rundir}: already holds a {kind} run; pass --resume to continue it "
                             "or choose another --out")
    try:
        old = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        raise io.ConfigError(f"{rundir}: cannot read {manifest_path.name}; cannot resume") from None
    if old.get("space_hash") != run_id["space_hash"]:
        raise io.ConfigError(
            f"{rundir}: refusing to resume: the space changed since this run started (space hash "
            f"{old.get('space_hash')} in the run, {run_id['space_hash']} now for {space.path}); "
            "use a new --out or restore the original space")
    diff = [k for k in run_id if k != "space_hash" and old.get(k) != run_id[k]]
    if diff:
        what = ", ".join(f"{k}: {old.get(k)!r} -> {run_id[k]!r}" for k in diff)
        raise io.ConfigError(f"{rundir}: refusing to resume: run options changed ({what}); "
                             "use the original options or a new --out")
    try:
        with np.load(state_path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise io.ConfigError(f"{rundir}: checkpoint {state_path.name} is unreadable ({type(e).__name__}); "
                             "remove the directory to start over or choose another --out") from None


def _collect_dumps(dumps, rundir, n_chunks, fields, sort: bool = False):
    """Every dumped point, in chunk order (``sort``: by global index, for a hoisted sweep
    whose chunks are blocks of the space rather than index ranges)."""
    parts = []
    for c in range(n_chunks):
        if c in dumps:
            parts.append(dumps[c])
        elif rundir is not None and (rundir / "dump" / f"chunk_{c:09d}.npz").exists():
            with np.load(rundir / "dump" / f"chunk_{c:09d}.npz") as z:
                parts.append({k: z[k] for k in z.files})
    f = np.concatenate([p["fields"] for p in parts]) if parts else np.zeros((0, len(fields)), np.float32)
    out = {name: f[:, j] for j, name in enumerate(fields)}
    out["feasible"] = np.concatenate([p["feasible"] for p in parts]) if parts else np.zeros(0, bool)
    out["reason"] = np.concatenate([p["reason"] for p in parts]) if parts else np.zeros(0, np.int32)
    out["index"] = (np.concatenate([p["index"] for p in parts]) if parts and "index" in parts[0]
                    else np.arange(len(out["reason"]), dtype=np.int64))
    if sort:
        order = np.argsort(out["index"], kind="stable")
        out = {k: v[order] for k, v in out.items()}
    return out


# ---------------------------------------------------------------- results and files
@dataclasses.dataclass
class SweepResult:
    """What a sweep found. Rows hold ``rank``, global ``index``, every axis column in user
    units (as in the space YAML) and every ``Metrics`` float field in SI units."""

    space: Space
    objective: str
    pareto_metrics: tuple[str, ...]
    top: list[dict]
    pareto: list[dict]
    counts: dict[str, int]          # by Reason name; "ok" = feasible
    points: int
    feasible: int
    histogram: dict[str, int]       # "2^e" -> feasible points with objective in [2^e, 2^(e+1))
    pareto_dropped: int             # candidates beyond the caps (upper bound on missed front points)
    timings: dict
    dump: dict | None = None
    out: str | None = None
    dump_format: str = "auto"       # dump file: auto (Parquet with pyarrow, else CSV), parquet, csv

    @property
    def best(self) -> dict | None:
        return self.top[0] if self.top else None

    def summary(self) -> dict:
        return {"space": self.space.path, "space_hash": self.space.hash, "space_points": self.space.size,
                "points": self.points, "feasible": self.feasible, "counts": self.counts,
                "objective": self.objective, "direction": "max" if HIGHER_IS_BETTER[self.objective] else "min",
                "best": self.best, "top_k": len(self.top), "pareto_metrics": list(self.pareto_metrics),
                "pareto_points": len(self.pareto), "pareto_dropped": self.pareto_dropped,
                "limits": [dataclasses.asdict(lim) for lim in self.space.limits],
                "objective_log2_histogram": self.histogram, "timings": self.timings,
                "jaxstack_version": __version__}


@dataclasses.dataclass
class SearchResult:
    """Top rows as ``SweepResult.top`` (rank, index, axis columns, metrics) plus statistics."""

    space: Space
    objective: str
    top: list[dict]
    stats: dict
    timings: dict
    out: str | None = None

    @property
    def best(self) -> dict | None:
        return self.top[0] if self.top else None

    def summary(self) -> dict:
        return {"space": self.space.path, "space_hash": self.space.hash, "objective": self.objective,
                "direction": "max" if HIGHER_IS_BETTER[self.objective] else "min", "best": self.best,
                "top_k": len(self.top), "stats": self.stats, "timings": self.timings,
                "limits": [dataclasses.asdict(m) for m in self.space.limits], "jaxstack_version": __version__}


def _rows(space: Space, fields, index, values) -> list[dict]:
    rows = []
    for r, (i, v) in enumerate(zip(index, values, strict=True)):
        row: dict[str, Any] = {"rank": r + 1, "index": int(i)}
        row.update(space.values(int(i)))
        row.update({f: float(x) for f, x in zip(fields, v, strict=True)})
        rows.append(row)
    return rows


def build_result(space, objective, pareto, fields, st, total, timings, dump, out):
    counts = {r.name: int(st.counts[int(r)]) for r in Reason}
    hist = {f"2^{b - reducers.HIST_OFFSET}": int(n) for b, n in enumerate(st.hist) if n}
    top, front = st.top, st.front
    return SweepResult(
        space=space, objective=objective, pareto_metrics=tuple(pareto),
        top=_rows(space, fields, top.index, top.fields),
        pareto=_rows(space, fields, front.index, front.fields) if front is not None else [],
        counts=counts, points=int(st.points), feasible=counts["ok"], histogram=hist,
        pareto_dropped=front.dropped if front is not None else 0, timings=timings, dump=dump, out=out)


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _write_table(path: Path, rows: list[dict] | dict, formats=("csv", "parquet")):
    """``rows`` (a list of dicts or columns) as ``path.csv`` and/or ``path.parquet``; Parquet
    only when pyarrow is importable (without it the CSV is always written)."""
    import csv

    cols = rows if isinstance(rows, dict) else None
    names = list(cols) if cols is not None else (list(rows[0]) if rows else ["rank", "index"])
    parquet = "parquet" in formats and _has_pyarrow()
    if "csv" in formats or not parquet:
        with io.atomic_writer(path.with_suffix(".csv"), newline="") as fh:
            w = csv.writer(fh)
            w.writerow(names)
            if cols is not None:
                w.writerows(zip(*(cols[n].tolist() for n in names), strict=True))
            else:
                w.writerows([row[n] for n in names] for row in rows)
    if not parquet:
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    if cols is not None:
        table = pa.table({n: np.asarray(v) if np.asarray(v).dtype != object else [str(x) for x in v]
                          for n, v in cols.items()})
    else:
        table = pa.table({n: [str(r[n]) if isinstance(r[n], str) else r[n] for r in rows] for n in names})
    pq.write_table(table, path.with_suffix(".parquet.tmp"))
    os.replace(path.with_suffix(".parquet.tmp"), path.with_suffix(".parquet"))


def dump_columns(space: Space, dump: dict) -> dict:
    """A sweep dump as named columns: index, every axis column (user units), feasible,
    reason and the metrics (what ``dump.parquet`` / ``dump.csv`` hold)."""
    idx = dump["index"]
    digits = np.stack(np.unravel_index(idx, space.radices), -1) if len(space.axes) else np.zeros((len(idx), 0))
    cols: dict[str, Any] = {"index": idx}
    for a, ax in enumerate(space.axes):
        for j, c in enumerate(ax.columns):
            col = np.array([r[j] for r in ax.display], dtype=object)[digits[:, a]]
            cols[c] = col if any(isinstance(r[j], str) for r in ax.display) else col.astype(np.float64)
    cols["feasible"] = dump["feasible"].astype(bool)
    cols["reason"] = dump["reason"].astype(np.int32)
    cols.update({k: v for k, v in dump.items() if k not in ("index", "feasible", "reason")})
    return cols


def write_outputs(res: SweepResult, rundir: Path):
    rundir = Path(rundir)
    _write_table(rundir / "top", res.top)
    if res.pareto_metrics:
        _write_table(rundir / "pareto", res.pareto)
    if res.dump is not None:     # Parquet (10x smaller, typed) unless asked for CSV or no pyarrow
        fmt = {"auto": ("parquet",), "parquet": ("parquet",), "csv": ("csv",)}[res.dump_format]
        _write_table(rundir / "dump", dump_columns(res.space, res.dump), fmt)
    _write_json(rundir / "summary.json", res.summary())
