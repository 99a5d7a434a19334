"""L5: standard figures of a sweep run directory (or of ``jaxstack validate --out``).

A sweep run directory (``jaxstack sweep SPACE --out DIR``) holds ``summary.json``,
``top.csv`` (+ ``.parquet``), ``pareto.csv`` when the run had Pareto metrics, and
``dump.parquet`` (or ``dump.csv``) with every point when swept with ``--dump``. Figures (PNG and/or SVG):

- ``pareto``: one panel per metric pair: the run's Pareto metrics, system decode tokens/s
  vs per-user tokens/s and vs J/token. Grey: every feasible point available (the dump, else
  the top-k and Pareto rows); line: the 2-D front of those points; colour: the run's own
  Pareto set (its third metric as the colour when it has three).
- ``heatmap``: best ``metric`` (default: the run's objective) over the feasible points of
  each cell of two swept axes (default: the two with the most values), optimised over the
  other axes. Needs the dump (``--dump``): top-k rows do not cover the grid.
- ``breakdown``: the decode-step time of the top designs split into attention, FFN, MoE,
  other, exposed communication and communication hidden by overlap (``t_*_s`` metrics).
- ``validation`` (a ``jaxstack validate`` directory): predicted vs measured per set.

Plain data in, ``matplotlib.figure.Figure`` out (no pyplot, so no global backend state):
``load_run`` reads a directory into column dicts ``{name: np.ndarray}``, the ``*_figure``
functions draw, ``plot_run`` does both and saves. Errors are ``io.ConfigError`` naming the
path and what is missing.
"""

from pathlib import Path

import numpy as np

from ..edges import io
from ..edges.io import ConfigError
from .plot_data import (  # noqa: F401 - RunData, read_table: re-exported (plot's API)
    NOT_METRICS,
    RunData,
    _categories,
    _fmt,
    _is_axis,
    _mapping_labels,
    _pick_axis,
    _short,
    axis_groups,
    higher_is_better,
    load_run,
    pareto_mask,
    read_table,
)

__all__ = ["RunData", "load_run", "read_table", "plot_run", "pareto_mask", "axis_groups",
           "pareto_figure", "heatmap_figure", "breakdown_figure", "validation_figure", "FORMATS"]

FORMATS = ("png", "svg", "pdf")
STANDARD_PAIRS = (("decode_tokens_per_s", "user_tokens_per_s"), ("decode_tokens_per_s", "energy_per_token_J"))
BREAKDOWN = (("t_attention_s", "attention"), ("t_ffn_s", "FFN"), ("t_moe_s", "MoE"), ("t_other_s", "other"),
             ("t_comm_exposed_s", "comm (exposed)"))
LABELS = {"decode_tokens_per_s": "system decode tokens/s", "user_tokens_per_s": "per-user tokens/s",
          "energy_per_token_J": "J / token", "tokens_per_J": "tokens / J", "tpot_s": "TPOT (s)",
          "ttft_s": "TTFT (s)", "prefill_tokens_per_s": "prefill tokens/s", "power_W": "power / chip (W)",
          "memory_bytes": "memory / chip (B)", "temperature_C": "temperature (°C)"}
MAX_TICKS = 40          # tick labels per heatmap axis (thinned beyond)
MAX_ANNOTATED = 120     # cells written into the heatmap


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


def _log_if_wide(ax, axis: str, v):
    v = np.asarray(v, float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) and v.max() / v.min() > 30:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


# ---------------------------------------------------------------- figures
def pareto_figure(points: dict, front: dict | None = None, pairs=None, color_by: str | None = None,
                  title: str = ""):
    """One panel per metric pair: grey ``points``, their 2-D front (line) and ``front`` (a
    Pareto set, e.g. the run's) coloured by ``color_by`` when given."""
    pairs = [p for p in (pairs or STANDARD_PAIRS) if p[0] in points and p[1] in points]
    if front is None or color_by not in front:
        color_by = None
    fig = _figure(5.0 * max(len(pairs), 1), 4.2)
    axs = fig.subplots(1, max(len(pairs), 1), squeeze=False)[0]
    for ax, (mx, my) in zip(axs, pairs, strict=False):
        x, y = np.asarray(points[mx], float), np.asarray(points[my], float)
        ax.scatter(x, y, s=6, c="0.75", label=f"feasible ({len(x):,})", rasterized=len(x) > 2000)
        keep = pareto_mask(x, y, higher_is_better(mx), higher_is_better(my))
        o = np.argsort(x[keep])
        ax.plot(x[keep][o], y[keep][o], "-o", c="k", lw=1.0, ms=2.5, label=f"2-D front ({int(keep.sum())})")
        if front is not None and mx in front and my in front:
            style = {"c": front[color_by], "cmap": "viridis"} if color_by else {"c": "tab:orange"}
            sc = ax.scatter(front[mx], front[my], s=22, zorder=3, label=f"Pareto set ({len(front[mx])})", **style)
            if color_by:
                fig.colorbar(sc, ax=ax, label=LABELS.get(color_by, color_by))
        _log_if_wide(ax, "x", x)
        _log_if_wide(ax, "y", y)
        ax.set_xlabel(LABELS.get(mx, mx))
        ax.set_ylabel(LABELS.get(my, my))
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def heatmap_figure(cols: dict, x: str, y: str, metric: str, higher: bool | None = None, title: str = ""):
    """Best ``metric`` per (x, y) cell over the rows where ``cols["feasible"]`` (default all);
    ``cols``: per-row axis labels and metric values."""
    higher = higher_is_better(metric) if higher is None else higher
    xc, xi = _categories(np.asarray(cols[x]))
    yc, yi = _categories(np.asarray(cols[y]))
    ok = np.asarray(cols.get("feasible", np.ones(len(xi), bool)), bool)
    grid = np.full((len(yc), len(xc)), -np.inf if higher else np.inf)
    (np.maximum if higher else np.minimum).at(grid, (yi[ok], xi[ok]), np.asarray(cols[metric], float)[ok])
    grid[~np.isfinite(grid)] = np.nan
    fig = _figure(min(3.0 + 0.45 * len(xc), 18.0), min(2.5 + 0.35 * len(yc), 14.0))
    ax = fig.subplots()
    from matplotlib.colors import LogNorm

    fin = grid[np.isfinite(grid)]
    norm = LogNorm() if len(fin) and fin.min() > 0 and fin.max() / fin.min() > 30 else None
    im = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", origin="lower", cmap="viridis",
                   interpolation="nearest", norm=norm)
    fig.colorbar(im, ax=ax, label=f"best {LABELS.get(metric, metric)}")
    for setter, labs, rot in ((ax.set_xticks, xc, 90 if sum(map(len, xc)) > 60 else 0),
                              (ax.set_yticks, yc, 0)):
        step = max(1, -(-len(labs) // MAX_TICKS))
        setter(range(0, len(labs), step), labs[::step], rotation=rot, fontsize=7)
    if grid.size <= MAX_ANNOTATED:
        for (r, c), val in np.ndenumerate(grid):
            if np.isfinite(val):
                ax.text(c, r, _short(val), ha="center", va="center", fontsize=6,
                        color="k" if im.norm(val) > 0.6 else "w")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title or f"best ({'highest' if higher else 'lowest'}) {metric} per cell over the other axes "
                 "(blank: no feasible design)", fontsize=9)
    return fig


def _row_labels(top: dict, n: int) -> tuple[list[str], str]:
    """Per-row labels (rank, mapping, axis values that differ) and the values all rows share."""
    cols = [c for c in top if _is_axis(c) and not c.startswith("mapping.")]
    vary = [c for c in cols if len({str(v) for v in top[c][:n]}) > 1]
    maps = _mapping_labels({k: v[:n] for k, v in top.items()}) if any(c.startswith("mapping.") for c in top) else None
    rows = [" ".join([f"#{int(top['rank'][i])}" if "rank" in top else f"#{i + 1}",
                      *([str(maps[i])] if maps is not None else []),
                      *(f"{c.split('.')[-1]}={_fmt(top[c][i])}" for c in vary)]) for i in range(n)]
    common = ", ".join(f"{c.split('.')[-1]}={_fmt(top[c][0])}" for c in cols if c not in vary) if n else ""
    return rows, common


def breakdown_figure(top: dict, n: int = 10, objective: str | None = None, title: str = ""):
    """Stacked bars (ms) of the decode step of the first ``n`` rows of ``top``."""
    n = min(n, len(top.get("t_attention_s", ())))
    fig = _figure(9.0, 1.2 + 0.38 * max(n, 1))
    ax = fig.subplots()
    left = np.zeros(n)
    for key, name in BREAKDOWN:
        if key in top and np.any(top[key][:n]):
            w = 1e3 * np.asarray(top[key][:n], float)
            ax.barh(range(n), w, left=left, label=name)
            left += w
    if "t_comm_s" in top and "t_comm_exposed_s" in top:
        hidden = 1e3 * np.clip(np.asarray(top["t_comm_s"][:n] - top["t_comm_exposed_s"][:n], float), 0, None)
        if hidden.any():
            ax.barh(range(n), hidden, left=left, label="comm (hidden)", color="none", edgecolor="0.4", hatch="//")
    if objective and objective in top:
        for i in range(n):
            v = float(top[objective][i])
            ax.text(left[i], i, f"  {v:,.0f}" if abs(v) >= 1e3 else f"  {v:.3g}", va="center", fontsize=7)
    labels, common = _row_labels(top, n)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15 * max(left.max(initial=0.0), 1e-9))
    ax.set_xlabel("decode step, one pipeline stage (ms)" + (f"; bar label: {objective}" if objective else ""))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or f"decode-step breakdown of the top {n} designs" + (f" (all: {common})" if common else ""),
                 fontsize=9)
    return fig


def validation_figure(val: dict):
    """Predicted vs measured, one log-log panel per set, coloured by panel, MAPE in the title."""
    from matplotlib.ticker import NullFormatter

    sets = list(dict.fromkeys(val["set"].astype(str)))
    fig = _figure(4.3 * len(sets), 4.2)
    axs = fig.subplots(1, len(sets), squeeze=False)[0]
    for ax, s in zip(axs, sets, strict=True):
        sel = val["set"].astype(str) == s
        meas, pred = np.asarray(val["measured"][sel], float), np.asarray(val["predicted"][sel], float)
        panels = val["panel"][sel].astype(str) if "panel" in val else np.full(sel.sum(), s, dtype=object)
        split = val["split"][sel].astype(str) if "split" in val else np.full(sel.sum(), "", dtype=object)
        for panel in dict.fromkeys(panels):
            for sp, marker in (("calibration", "s"), ("holdout", "o"), ("", "o")):
                m = (panels == panel) & ((split == sp) if sp else ~np.isin(split, ["calibration", "holdout"]))
                if m.any():
                    ax.scatter(meas[m], pred[m], s=14, marker=marker, label=f"{panel} {sp}".strip()[:40])
        ok = np.isfinite(pred) & (meas > 0)
        lo, hi = np.min([meas[ok], pred[ok]]), np.max([meas[ok], pred[ok]])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        for f in (0.9, 1.1):
            ax.plot([lo, hi], [lo * f, hi * f], ":", c="0.5", lw=0.7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        mape = 100 * np.mean(np.abs(pred[ok] / meas[ok] - 1))
        ax.set_title(f"{s}: MAPE {mape:.2f} % ({int(ok.sum())} cases)", fontsize=9)
        ax.set_xlabel("measured")
        ax.set_ylabel("jaxstack (dotted: ±10 %)")
        ax.legend(fontsize=6)
    return fig


# ---------------------------------------------------------------- the whole directory
def _save(fig, out: Path, name: str, formats) -> list[str]:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{out}: cannot create the output directory ({e.strerror})") from None
    for fmt in formats:
        with io.atomic_writer(out / f"{name}.{fmt}", "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=130)
    return [str(out / f"{name}.{fmt}") for fmt in formats]


def _heatmap_axes(run: RunData, x, y, notes) -> tuple[str, str] | None:
    """The heatmap's (x, y) axis names, or None with a note; ConfigError for bad --x/--y."""
    if run.dump is None:
        if x or y:
            raise ConfigError(f"{run.path}: no dump (dump.parquet / dump.csv), so no heatmap over --x/--y; "
                              "re-run the sweep with --dump (spaces up to 2^21 points, or with --max-points)")
        notes.append(f"heatmap skipped: {run.path} has no dump (dump.parquet / dump.csv; the top-k/Pareto rows "
                     "do not cover the grid); re-run the sweep with --dump")
        return None
    groups = axis_groups(run.dump)
    if len(groups) < 2:
        msg = f"the run sweeps fewer than two axes ({', '.join(groups) or 'none'})"
        if x or y:
            raise ConfigError(f"{run.path}: no heatmap: {msg}")
        notes.append(f"heatmap skipped: {msg}")
        return None
    ranked = sorted(groups, key=lambda g: -len(np.unique(groups[g].astype(str))))
    gx = _pick_axis(groups, x) if x else next(g for g in ranked if not y or g != _pick_axis(groups, y))
    gy = _pick_axis(groups, y) if y else next(g for g in ranked if g != gx)
    if gx == gy:
        raise ConfigError(f"--x and --y name the same axis '{gx}'")
    if not run.dump["feasible"].any():
        notes.append("heatmap skipped: no feasible design in the dump")
        return None
    return gx, gy


def plot_run(run_dir, out=None, formats=("png", "svg"), x=None, y=None, metric=None, top_n=10):
    """Write the standard figures of ``run_dir`` to ``out`` (default ``run_dir/plots``).

    Returns (files written, notes): a note says why a figure was skipped."""
    run = load_run(run_dir)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"--format {','.join(formats)}: allowed: {', '.join(FORMATS)}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("matplotlib is not installed: pip install 'jaxstack[plot]'") from None
    out = Path(out) if out is not None else run.path / "plots"
    if run.kind == "validate":
        return _save(validation_figure(run.validation), out, "validation", formats), []
    s, files, notes = run.summary, [], []
    if not len(run.top["index"]):
        bad = ", ".join(f"{k} {v:,}" for k, v in s.get("counts", {}).items() if k != "ok" and v)
        raise ConfigError(f"{run.path}: nothing to plot: no feasible design in {s.get('points', 0):,} points "
                          f"(infeasible: {bad or 'none'})")
    metric = metric or s["objective"]
    if metric not in run.top:
        allowed = [c for c in run.top if not _is_axis(c) and c not in NOT_METRICS]
        raise ConfigError(f"--metric {metric}: not a metric of this run; allowed: {', '.join(allowed)}")
    heat = _heatmap_axes(run, x, y, notes)          # checks --x/--y before anything is drawn
    pm = tuple(s.get("pareto_metrics") or ())
    pairs = []
    for pair in [*zip(pm, pm[1:], strict=False), *([(pm[0], pm[2])] if len(pm) == 3 else []), *STANDARD_PAIRS]:
        if set(pair) not in [set(q) for q in pairs]:
            pairs.append(pair)
    src = "every feasible point (dump)" if run.dump is not None else "top-k and Pareto rows only (no dump)"
    fig = pareto_figure(run.points, run.pareto, pairs, pm[2] if len(pm) == 3 else None, f"{run.path.name}: {src}")
    files += _save(fig, out, "pareto", formats)
    if heat is not None:
        groups = axis_groups(run.dump)
        cols = {heat[0]: groups[heat[0]], heat[1]: groups[heat[1]], metric: run.dump[metric],
                "feasible": run.dump["feasible"]}
        files += _save(heatmap_figure(cols, *heat, metric), out, "heatmap", formats)
    if "t_attention_s" in run.top:
        files += _save(breakdown_figure(run.top, top_n, s["objective"]), out, "breakdown", formats)
    else:
        notes.append("breakdown skipped: top.csv has no t_*_s columns")
    return files, notes
