# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 — How many DRAM layers? Stack depth vs batch size, and the thermal terrain
#
# DeepStack's DRAM-layer study (its Figs. 16-18): stacking more DRAM layers on a logic die
# buys capacity and (with more connected layers) bandwidth, but every layer adds power,
# heat and refresh, and the vertical connectivity is capped by the bond pitch. Which depth
# wins depends on the batch size: small batches are bandwidth-bound on the weights, large
# batches on the KV cache and on compute.
#
# This notebook sweeps DeepSeek-V3 decode on the 256-chip stacked system over stack depth
# m (all layers connected, n = m), batch size, the cooling and every mapping of the 256
# chips, keeps every point (`dump=True`) and reduces the dump in numpy:
# 1. a **heatmap** of the best power-wall-scaled decode throughput per (depth, batch),
#    normalised per batch (which depth wins at which batch);
# 2. the **thermal terrain**: DRAM temperature of the best design per (depth, cooling) at
#    batch 1024 (cooling = the junction-to-ambient resistance `thermal.r_base`), with the
#    85 °C refresh-doubling and 95 °C limit contours.
#
# CLI equivalent of the sweep: write the dict below as YAML and run
# `jaxstack sweep SPACE.yaml --dump --out runs/dram && jaxstack plot runs/dram`.
# The full-size study with SRAM options is `python benchmarks/bench_dram_study.py`.

# %%
import os

# Small batches: XLA compile time dominates; LLVM -O0 roughly halves it (results equal to float32 rounding).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxstack.engines.space import space_from_dict  # noqa: E402
from jaxstack.engines.sweep import dump_columns, sweep  # noqa: E402

SMALL = os.environ.get("JAXSTACK_NOTEBOOK_SMALL") == "1"          # CI: smaller sizes
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("JAXSTACK_NOTEBOOK_OUT", HERE / "out"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The space
# Depth m = n from 1 to 16 (a `zip:` group moves both leaves together), batch from 4 to
# 1024, the junction-to-ambient resistance of the cooling from a cold plate (0.3 K/W; the
# preset's 0.56 K/W) to weak air cooling (4 K/W), and every TP x EP x DP x PP factorisation of 256 chips with and without MoE TP->EP and
# overlap. Objective: `scaled_decode_tokens_per_s` (decode tokens/s after the power wall).

# %%
depths = [1, 2, 4, 6, 8, 12, 16] if SMALL else list(range(1, 17))
batches = [4, 64, 1024] if SMALL else [1, 4, 16, 64, 256, 1024]
r_bases = [0.56, 2.0, 4.0] if SMALL else [0.3, 0.56, 1.0, 1.5, 2.0, 3.0, 4.0]
spec = {
    "version": 1,
    "base": {"hardware": "stacked-3d", "fabric": "stacked-256", "model": "deepseek-v3",
             "request": {"batch": 64, "input_len": 1024, "output_len": 1024}},
    "zip": [{"dram.total_layers": depths, "dram.connected_layers": depths}],
    "axes": {"request.batch": {"choices": batches},
             "thermal.r_base_K_per_W": {"choices": r_bases}},
    "mapping": {"factorizations": 256, "axes": ["tp", "ep", "dp", "pp"],
                "moe_tp_to_ep": [0, 1], "overlap": [0, 1] if not SMALL else [1]},
    "objective": "scaled_decode_tokens_per_s",
}
space = space_from_dict(spec, "notebook-06")
print(f"{space.size:,} points over {len(space.axes)} axes: " + ", ".join(f"{a.name} ({a.size})" for a in space.axes))

# %%
res = sweep(space, top_k=10, dump=True, progress=False)
t = res.timings
print(f"{res.points:,} points, {res.feasible:,} feasible; compile {t['compile_s']:.1f} s, "
      f"run {t['run_s']:.2f} s ({t['points_per_s']:,.0f} points/s)")
print("infeasible by reason:", {k: v for k, v in res.counts.items() if k != "ok" and v})
d = dump_columns(space, res.dump)             # axis columns in user units + every metric
ok = d["feasible"].astype(bool)


# %% [markdown]
# ## Reduce the dump: the best design per cell
# `best(x, y, metric)` returns, for every (x, y) cell, the index of the feasible point with
# the highest objective (a max over everything else: mappings, the other axes).

# %%
def best(x_col, y_col, where=None):
    """(x values, y values, index of the best feasible point per cell or -1)."""
    xs, ys = np.unique(d[x_col]), np.unique(d[y_col])
    keep = ok if where is None else ok & where
    obj = np.where(keep, d["scaled_decode_tokens_per_s"], -np.inf)
    idx = np.full((len(ys), len(xs)), -1)
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            cell = np.flatnonzero((d[x_col] == xv) & (d[y_col] == yv))
            k = cell[np.argmax(obj[cell])]
            idx[i, j] = k if np.isfinite(obj[k]) else -1
    return xs, ys, idx


def take(idx, col):
    return np.where(idx >= 0, d[col][np.maximum(idx, 0)], np.nan)


layers_col = "dram.total_layers"
xs, ys, idx = best(layers_col, "request.batch", where=d["thermal.r_base_K_per_W"] == 0.56)
tput = take(idx, "scaled_decode_tokens_per_s")
rel = tput / np.nanmax(tput, axis=1, keepdims=True)
for b, row, r in zip(ys, tput, rel, strict=True):
    j = int(np.nanargmax(row))
    print(f"batch {b:6g}: best depth m = {xs[j]:g} ({row[j]:,.0f} tok/s); within 2 % of it: "
          + ", ".join(f"{x:g}" for x, v in zip(xs, r, strict=True) if v >= 0.98))

# %% [markdown]
# ## Heatmap: which depth wins at which batch (the preset's cooling, 0.56 K/W)
# Colour: throughput relative to the best depth of the same batch (1 = best); the text is
# the absolute decode tokens/s of that cell's best design.

# %%
fig, ax = plt.subplots(figsize=(7.5, 3.6))
im = ax.imshow(rel, aspect="auto", cmap="viridis", vmin=max(0.0, np.nanmin(rel)), vmax=1.0, origin="lower")
ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
ax.set_xlabel("DRAM layers m (= connected layers n)")
ax.set_ylabel("batch")
for i in range(len(ys)):
    for j in range(len(xs)):
        if np.isfinite(tput[i, j]):
            ax.text(j, i, f"{tput[i, j]:,.0f}", ha="center", va="center", fontsize=6,
                    color="white" if rel[i, j] < 0.75 else "black")
        else:
            ax.text(j, i, "—", ha="center", va="center", fontsize=7, color="gray")
fig.colorbar(im, ax=ax, label="tok/s / best of the batch")
ax.set_title("DeepSeek-V3 decode on 256 stacked chips: best design per (depth, batch)")
fig.tight_layout()
fig.savefig(OUT / "06_depth_batch_heatmap.png", dpi=110)
fig  # noqa: B018 - displays the figure in Jupyter

# %% [markdown]
# ## Thermal terrain: DRAM temperature of the best design per (depth, cooling), batch 1024
# Worse cooling heats the whole stack; deeper stacks add DRAM power and thermal resistance
# between the logic die and the sink; above 85 °C refresh doubles (slower, more power) and
# above 95 °C the design is infeasible, so the best design per cell may change.
# Contours: 85 °C (refresh doubles) and 95 °C (the DRAM limit: infeasible above).

# %%
big = max(batches)
xs2, ts, idx2 = best(layers_col, "thermal.r_base_K_per_W", where=d["request.batch"] == big)
dram_t = take(idx2, "dram_temperature_C")
junction = take(idx2, "temperature_C")
tput2 = take(idx2, "scaled_decode_tokens_per_s")
fig, axs = plt.subplots(1, 2, figsize=(11, 3.8))
im = axs[0].imshow(dram_t, aspect="auto", cmap="inferno", origin="lower")
axs[0].set_title(f"DRAM temperature (°C) of the best design, batch {big:g}")
if np.nanmax(dram_t) > 85:
    axs[0].contour(dram_t, levels=[85, 95], colors=["white", "cyan"], linewidths=1)
fig.colorbar(im, ax=axs[0])
im2 = axs[1].imshow(tput2 / 1e3, aspect="auto", cmap="viridis", origin="lower")
axs[1].set_title("its decode throughput (k tok/s, power-wall scaled)")
fig.colorbar(im2, ax=axs[1])
for ax in axs:
    ax.set_xticks(range(len(xs2)), [f"{x:g}" for x in xs2])
    ax.set_yticks(range(len(ts)), [f"{y:g}" for y in ts])
    ax.set_xlabel("DRAM layers m (= n)")
    ax.set_ylabel("junction-to-ambient R (K/W)")
fig.tight_layout()
fig.savefig(OUT / "06_thermal_terrain.png", dpi=110)
hot = np.nanmax(dram_t)
print(f"DRAM temperature of the best designs: {np.nanmin(dram_t):.1f}-{hot:.1f} °C; "
      f"junction {np.nanmin(junction):.1f}-{np.nanmax(junction):.1f} °C")
fig  # noqa: B018 - displays the figure in Jupyter

# %% [markdown]
# ## The whole terrain, not just the winners
# Every feasible point of batch 1024 with the preset's cooling: DRAM temperature vs throughput, coloured by
# depth. The best designs sit at moderate depth: beyond it the extra layers add heat and
# refresh without bandwidth the decode step can use.

# %%
sel = ok & (d["request.batch"] == big) & (d["thermal.r_base_K_per_W"] == 0.56)
fig, ax = plt.subplots(figsize=(6.5, 3.8))
sc = ax.scatter(d["scaled_decode_tokens_per_s"][sel], d["dram_temperature_C"][sel], c=d[layers_col][sel],
                s=4, cmap="plasma", alpha=0.6)
ax.set_xscale("log")
ax.set_xlabel("decode tokens/s (power-wall scaled)")
ax.set_ylabel("DRAM temperature (°C)")
fig.colorbar(sc, ax=ax, label="DRAM layers m")
ax.set_title(f"DeepSeek-V3, 256 chips, batch {big:g}: {int(sel.sum()):,} feasible designs")
fig.tight_layout()
fig.savefig(OUT / "06_terrain_scatter.png", dpi=110)
fig  # noqa: B018 - displays the figure in Jupyter
