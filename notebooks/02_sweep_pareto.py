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
# # 02 — A small sweep and its Pareto front
#
# A *space* is a base design plus axes (schema in `jaxstack/engines/space.py`, examples in
# `spaces/*.yaml`). `jaxstack.sweep` streams every point through ONE compiled
# `jit(vmap(evaluate))` with the reducers fused in: top-k by an objective, a Pareto front
# over 2-3 metrics, infeasible counts by reason and (small spaces) a dump of every point.
#
# CLI equivalent: `jaxstack sweep SPACE.yaml --pareto decode_tokens_per_s,user_tokens_per_s,energy_per_token_J
# --dump --out runs/x && jaxstack plot runs/x`.

# %%
import os

# Small batches: XLA compile time dominates; LLVM -O0 roughly halves it (results equal to float32 rounding).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402, F401 - in Jupyter: inline display of figures
import numpy as np  # noqa: E402

from jaxstack.engines import plot  # noqa: E402
from jaxstack.engines.space import space_from_dict  # noqa: E402
from jaxstack.engines.sweep import sweep  # noqa: E402

SMALL = os.environ.get("JAXSTACK_NOTEBOOK_SMALL") == "1"          # CI: smaller sizes
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("JAXSTACK_NOTEBOOK_OUT", HERE / "out"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The space
# Llama-3-70B on one 8x B200 node: HBM efficiency and data rate, NVLink bandwidth, batch,
# weight precision, and every mapping of 8 GPUs over TP x DP x PP (with and without
# FSDP). A 50 ms TPOT limit marks slower points infeasible (`slo`).

# %%
n = 3 if SMALL else 5
spec = {
    "version": 1,
    "base": {"hardware": "b200", "fabric": "nvlink-b200x8", "model": "llama-3-70b",
             "request": {"batch": 64, "input_len": 1024, "output_len": 1024}},
    "axes": {
        "dram.efficiency": {"range": [0.70, 0.90], "count": n},
        "dram.transfer_rate_GHz": {"range": [5.0, 9.0], "count": n},
        "fabric.l1.link_bandwidth_GBps": {"choices": [450, 900] if SMALL else [200, 450, 900, 1800]},
        "request.batch": {"range": [1, 1024], "count": 11, "scale": "log"},
        "model.weight_bytes": {"choices": [2.0, 1.0]},                   # BF16, FP8
    },
    "mapping": {"factorizations": 8, "axes": ["tp", "dp", "pp"], "fsdp": [0, 1]},
    "limits": {"tpot_ms": {"max": 50}},
    "objective": "decode_tokens_per_s",
    "pareto": ["decode_tokens_per_s", "user_tokens_per_s", "energy_per_token_J"],
}
space = space_from_dict(spec, "notebook-02")
print(f"{space.size:,} points over {len(space.axes)} axes: " + ", ".join(f"{a.name} ({a.size})" for a in space.axes))

# %% [markdown]
# ## Sweep (one compile), keep the top 10, the 3-metric Pareto front and every point

# %%
run_dir = OUT / "02_run"
shutil.rmtree(run_dir, ignore_errors=True)               # a run directory holds one run
res = sweep(space, top_k=10, out=run_dir, dump=True, progress=False)
t = res.timings
print(f"{res.points:,} points, {res.feasible:,} feasible; compile {t['compile_s']:.1f} s, "
      f"run {t['run_s']:.2f} s ({t['points_per_s']:,.0f} points/s)")
print("infeasible by reason:", {k: v for k, v in res.counts.items() if k != "ok" and v})

# %%
mapping = lambda r: " ".join(f"{a}{int(r[f'mapping.{a}'])}" for a in ("tp", "dp", "pp")  # noqa: E731
                             if r[f"mapping.{a}"] > 1) + (" fsdp" if r["mapping.fsdp"] else "")
print(f"{'#':>2} {'HBM eff':>7} {'HBM GHz':>7} {'NVLink':>6} {'batch':>5} {'w B':>3} {'mapping':>12} "
      f"{'tok/s':>9} {'tok/s/user':>10} {'J/token':>8}")
for r in res.top:
    print(f"{r['rank']:2d} {r['dram.efficiency']:7.2f} {r['dram.transfer_rate_GHz']:7.1f} "
          f"{r['fabric.l1.link_bandwidth_GBps']:6g} {r['request.batch']:5g} {r['model.weight_bytes']:3g} "
          f"{mapping(r):>12} "
          f"{r['decode_tokens_per_s']:9,.0f} {r['user_tokens_per_s']:10.1f} {r['energy_per_token_J']:8.3f}")

# %% [markdown]
# ## The Pareto front: system throughput vs per-user speed vs energy
# Grey: every feasible point (the dump); line: the 2-D front of each panel; coloured: the
# sweep's 3-metric Pareto set (colour = J/token). Moving right along the front buys system
# throughput with larger batches at the cost of per-user speed, and lowers J/token.

# %%
points = {k: v[res.dump["feasible"]] for k, v in res.dump.items()}
front = {k: np.array([r[k] for r in res.pareto]) for k in res.pareto[0]}
pairs = [("decode_tokens_per_s", "user_tokens_per_s"), ("decode_tokens_per_s", "energy_per_token_J"),
         ("user_tokens_per_s", "energy_per_token_J")]
fig = plot.pareto_figure(points, front, pairs, color_by="energy_per_token_J",
                         title=f"Llama-3-70B on 8x B200: {res.feasible:,} feasible designs")
fig.savefig(OUT / "02_pareto.png", dpi=110)
print(f"Pareto set: {len(res.pareto)} designs; wrote {OUT / '02_pareto.png'}")
fig  # noqa: B018 - displays the figure in Jupyter

# %% [markdown]
# ## The standard figures of the run directory (same as `jaxstack plot RUN_DIR`)

# %%
files, notes = plot.plot_run(run_dir, out=OUT / "02_plots", formats=("png",))
print("\n".join(files + notes))
