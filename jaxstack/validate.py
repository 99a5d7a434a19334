"""L4: validation against real measurements, calibration on a declared split, error report.

``run_sets`` evaluates every case of the requested sets (``jaxstack.validation``);
``summarize`` reports, per set and panel and for the calibration / holdout / all rows,
MAPE = mean |pred/meas - 1| and weighted error = sum |pred - meas| / sum meas (DeepStack's
two conventions), next to DeepStack's own predictions on the same points where the data
has them. ``fit`` calibrates the few GLOBAL constants of a hardware + fabric preset pair
(never one per point) on the calibration rows only, by a vectorised grid search in log
space (coarse grid, then a finer one around the best), and writes them with provenance to
``presets/calibration/``; every later evaluation of those presets uses them.
"""

import csv
import datetime
import math
from pathlib import Path

import jax
import numpy as np
import yaml

from . import io
from .validation import SET_MODULES, load_set

__all__ = ["run_sets", "summarize", "fit", "FITS", "RECORDED", "write_outputs", "leave_one_out"]

RECORDED = Path(__file__).parent / "validation" / "recorded.json"

# set -> what may be fitted on its calibration split (dotted path with unit suffix, lo, hi in that unit)
FITS = {
    "vllm-8xb200": {
        "hardware": "b200", "fabric": "nvlink-b200x8",
        "params": [("chip.op_overhead_us", 0.5, 20.0), ("fabric.collective_overhead_us", 0.5, 60.0),
                   ("chip.attention_bandwidth_efficiency", 0.3, 1.0)],
    },
}


def run_sets(names=None, calibrated: bool = True) -> list[dict]:
    rows = []
    for name in names or SET_MODULES:
        try:
            mod = load_set(name)
        except ModuleNotFoundError:
            continue
        rows.extend(mod.run(calibration=calibrated))
    return rows


def _errors(rows, key="predicted"):
    meas = np.array([r["measured"] for r in rows], dtype=np.float64)
    pred = np.array([r[key] for r in rows], dtype=np.float64)
    ok = np.isfinite(pred)
    if not ok.any():
        return None
    meas, pred = meas[ok], pred[ok]
    return {"n": int(ok.sum()), "mape_pct": float(100 * np.mean(np.abs(pred / meas - 1))),
            "weighted_pct": float(100 * np.sum(np.abs(pred - meas)) / np.sum(meas))}


def summarize(rows) -> list[dict]:
    """One entry per (set, panel) and per set ('*'), with errors on each split."""
    out = []
    keys = sorted({(r["set"], r["panel"]) for r in rows}) + sorted({(r["set"], "*") for r in rows})
    for s, p in keys:
        sel = [r for r in rows if r["set"] == s and (p == "*" or r["panel"] == p)]
        entry = {"set": s, "panel": p}
        for split in ("all", "calibration", "holdout"):
            part = sel if split == "all" else [r for r in sel if r["split"] == split]
            entry[split] = _errors(part) if part else None
        entry["deepstack"] = _errors([r for r in sel if "deepstack" in r], "deepstack")
        out.append(entry)
    return out


# ---------------------------------------------------------------- calibration
def fit(name: str, points: int = 24, rounds: int = 3) -> dict:
    """Fit FITS[name]'s global constants on the calibration split; write the calibration files."""
    from .userdata import grid_fit

    spec = FITS[name]
    mod = load_set(name)
    rows = [r for r in mod.cases() if r["split"] == "calibration"]
    metric = rows[0]["metric"]
    best = grid_fit(mod.designs(rows, calibration=False), np.array([r["measured"] for r in rows]),
                    [r["metric"] for r in rows], spec["params"], points, rounds)
    values = best[0]
    fitted = {path: round(float(v), 4) for (path, _, _), v in zip(spec["params"], values, strict=True)}
    today = datetime.date.today().isoformat()
    split = sorted({r["case"] for r in rows})
    for kind in ("hardware", "fabric"):
        prefix = ("chip.", "dram.", "thermal.") if kind == "hardware" else ("fabric.",)
        mine = {k: v for k, v in fitted.items() if k.startswith(prefix)}
        if not mine:
            continue
        path = io.CALIBRATION_DIR / kind / f"{spec[kind]}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"source": f"fitted by `jaxstack validate --fit` on {today}: grid search in log space minimising "
                         f"the MAPE of {metric} over the calibration split of set {name}",
               "set": name, "split": split, "error": {"calibration_mape_pct": round(100 * best[1], 3)},
               "fitted": mine}
        io.write_text_atomic(path, yaml.safe_dump(doc, sort_keys=False, width=100))
    return {"set": name, "fitted": fitted, "calibration_mape_pct": 100 * best[1], "cases": len(rows)}


# ---------------------------------------------------------------- outputs
def write_outputs(rows, summary, out_dir) -> list[str]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    cols = ["set", "panel", "case", "split", "measured", "predicted", "deepstack", "weight"]
    with io.atomic_writer(out / "validation.csv", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    written.append(str(out / "validation.csv"))
    io.write_text_atomic(out / "summary.json", io.dumps_json(summary, indent=2))
    written.append(str(out / "summary.json"))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        return written
    sets = sorted({r["set"] for r in rows})
    fig, axs = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 4.0), squeeze=False)
    for ax, s in zip(axs[0], sets, strict=True):
        sel = [r for r in rows if r["set"] == s]
        for panel in sorted({r["panel"] for r in sel}):
            pr = [r for r in sel if r["panel"] == panel]
            ax.scatter([r["measured"] for r in pr], [r["predicted"] for r in pr], s=14, label=panel)
        lo = min(min(r["measured"], r["predicted"]) for r in sel)
        hi = max(max(r["measured"], r["predicted"]) for r in sel)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):           # a few readable labels on wide and narrow log ranges
            axis.set_minor_formatter(NullFormatter())
            if math.log10(hi / lo) > 3:
                axis.set_major_locator(LogLocator(numticks=6))
            else:
                axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0), numticks=12))
                axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}".replace("e-0", "e-")))
        ax.tick_params(axis="x", labelrotation=30)
        ax.set_title(s)
        ax.set_xlabel("measured")
        ax.set_ylabel("jaxstack")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with io.atomic_writer(out / "validation.png", "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)
    written.append(str(out / "validation.png"))
    return written


# ---------------------------------------------------------------- transfer to unmeasured hardware
def leave_one_out(name: str = "serving-public", params=None, points: int = 16, rounds: int = 3) -> list[dict]:
    """Leave-one-GPU-out: for each GPU of set ``name`` (the first word of a row's panel), fit
    the global constants ``params`` (default ``userdata.DEFAULT_PARAMS``) on the other GPUs'
    calibration rows, starting from raw presets (no shipped calibration), then score every
    row of the left-out GPU. The error on hardware nobody measured: what a user should
    expect from a preset without data, and from a 3D-stacked chip that does not exist yet.
    Also reports the raw presets (no fit at all) on the same rows."""
    from . import userdata

    mod = load_set(name)
    rows = mod.cases()
    params = params or userdata.DEFAULT_PARAMS
    gpus = sorted({r["panel"].split()[0] for r in rows})
    raw = {r["case"]: r["predicted"] for r in mod.run(calibration=False)}
    out = []
    for g in gpus:
        train = [r for r in rows if r["panel"].split()[0] != g and r["split"] == "calibration"]
        test = [r for r in rows if r["panel"].split()[0] == g]
        values, fit_mape = userdata.grid_fit(mod.designs(train, calibration=False),
                                             np.array([r["measured"] for r in train]),
                                             [r["metric"] for r in train], params, points, rounds)
        d = mod.designs(test, calibration=False)
        for (path, _, _), v in zip(params, values, strict=True):
            names, si = io.convert_value(path, float(v), "leave_one_out")
            d = io.set_path(d, names, np.full(len(test), si, np.float32))
        from .evaluate import evaluate

        m = jax.jit(jax.vmap(evaluate))(d)
        meas = np.array([r["measured"] for r in test])
        pred = np.where(np.asarray(m.feasible), np.asarray(getattr(m, test[0]["metric"]), np.float64), np.nan)
        raw_pred = np.array([raw[r["case"]] for r in test])
        ok, rok = np.isfinite(pred), np.isfinite(raw_pred)
        out.append({"set": name, "held_out": g, "train_rows": len(train), "test_rows": len(test),
                    "fitted": {p: round(float(v), 4) for (p, _, _), v in zip(params, values, strict=True)},
                    "train_mape_pct": 100 * fit_mape,
                    "held_out_mape_pct": float(100 * np.mean(np.abs(pred[ok] / meas[ok] - 1))),
                    "raw_mape_pct": float(100 * np.mean(np.abs(raw_pred[rok] / meas[rok] - 1)))})
    return out
