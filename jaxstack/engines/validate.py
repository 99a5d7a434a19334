"""L4: validation against real measurements, calibration on a declared split, error report.

``run_sets`` evaluates every case of the requested sets (``jaxstack.validation``);
``summarize`` reports, per set and panel and for the calibration / holdout / all rows,
MAPE = mean |pred/meas - 1| and weighted error = sum |pred - meas| / sum meas (DeepStack's
two conventions), next to DeepStack's own predictions on the same points where the data
has them. The calibration model (a few GLOBAL constants per engine and per GPU, fitted on
the calibration rows only) lives in ``calibration.py``.
"""

import csv
import math
from pathlib import Path

import numpy as np

from ..edges import io
from ..validation import SET_MODULES, load_set

__all__ = ["run_sets", "summarize", "RECORDED", "write_outputs", "LATENCY_METRICS", "THROUGHPUT", "LATENCY",
           "unscored"]

RECORDED = Path(__file__).parent.parent / "validation" / "recorded.json"

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


# latency metrics (MLPerf Server TTFT / TPOT): a set that mixes them with throughput rows also
# gets a "* throughput" and a "* latency" entry, the splits its goals are stated on
LATENCY_METRICS = ("ttft_s", "ttft_p99_s", "tpot_s", "tpot_p99_s")
THROUGHPUT = "* throughput"
LATENCY = "* latency"


def _in_panel(r, s, p) -> bool:
    if r["set"] != s:
        return False
    if p in (THROUGHPUT, LATENCY):
        return (r.get("metric") in LATENCY_METRICS) == (p == LATENCY)
    return p == "*" or r["panel"] == p


def unscored(rows) -> dict:
    """{set: {reason name: rows}} of the rows the model calls infeasible (no prediction, so no
    error: ``summarize`` counts only the others)."""
    from ..types.metrics import Reason

    out: dict = {}
    for r in rows:
        if not r.get("feasible", True):
            name = Reason(r["reason"]).name if "reason" in r else "infeasible"
            out.setdefault(r["set"], {}).setdefault(name, 0)
            out[r["set"]][name] += 1
    return out


def summarize(rows) -> list[dict]:
    """One entry per (set, panel) and per set ('*'; and '* throughput' / '* latency', its rows
    without / with the latency metrics, where a set has both kinds), with errors on each split."""
    out = []
    mixed = sorted({r["set"] for r in rows if r.get("metric") in LATENCY_METRICS}
                   & {r["set"] for r in rows if r.get("metric") not in LATENCY_METRICS})
    keys = (sorted({(r["set"], r["panel"]) for r in rows}) + sorted({(r["set"], "*") for r in rows})
            + [(s, p) for s in mixed for p in (THROUGHPUT, LATENCY)])
    for s, p in keys:
        sel = [r for r in rows if _in_panel(r, s, p)]
        entry = {"set": s, "panel": p}
        for split in ("all", "calibration", "holdout"):
            part = sel if split == "all" else [r for r in sel if r["split"] == split]
            entry[split] = _errors(part) if part else None
        entry["deepstack"] = _errors([r for r in sel if "deepstack" in r], "deepstack")
        out.append(entry)
    return out


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
