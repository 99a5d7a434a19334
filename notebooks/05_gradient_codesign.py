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
# # 05 — Gradient co-design: sensitivities and `optimize`
#
# The model is differentiable in *relaxed* mode (`jaxstack/physics/relax.py`: every ceil, max, min
# and step has a smooth surrogate of temperature tau). That gives two tools:
#
# 1. **Sensitivities** (`jaxstack.grad.sensitivities`, CLI `jaxstack eval --grad`):
#    d(metric)/d(parameter) and the elasticity d ln metric / d ln parameter for every
#    continuous hardware parameter of one design — which knob matters most.
# 2. **Co-optimisation** (`jaxstack.optimize.optimize`, CLI `jaxstack optimize SPACE.yaml`):
#    the numeric axes of a design space become continuous parameters (log scale), descended
#    with optax from many random starts at once (vmap) while tau anneals from smooth to sharp;
#    discrete axes (the mapping) are enumerated; the results are snapped to the grid and
#    verified exactly with their grid neighbours.
#
# Compile cost: the relaxed gradient of the whole model compiles once per process (a few
# minutes on a 2-core CPU the first time). `grad.enable_compile_cache()` keeps it on disk
# (~/.cache/jaxstack/jax), so a second run of this notebook starts in seconds.

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from jaxstack.engines import grad
from jaxstack.edges import io
from jaxstack.types.metrics import HIGHER_IS_BETTER
from jaxstack.engines.optimize import optimize, parameters
from jaxstack.engines.space import space_from_dict

SMALL = os.environ.get("JAXSTACK_NOTEBOOK_SMALL") == "1"          # CI: smaller sizes
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("JAXSTACK_NOTEBOOK_OUT", HERE / "out"))
OUT.mkdir(parents=True, exist_ok=True)
print("compile cache:", grad.enable_compile_cache())

# %% [markdown]
# ## Which knob matters most? Elasticities of decode throughput
# Llama-3-70B on 256 stacked-3d chips (TP 8 x PP 4 x DP 8, batch 256). An elasticity of
# 0.9 means +1 % of the parameter gives +0.9 % tokens/s.

# %%
design = io.design_from_dict({
    "hardware": "stacked-3d", "fabric": "stacked-256", "model": "llama-3-70b",
    "request": {"batch": 256, "input_len": 1024, "output_len": 1024},
    "mapping": {"tp": 8, "pp": 4, "dp": 8}})
t0 = time.perf_counter()
sens = grad.sensitivities(design, "decode_tokens_per_s", tau=grad.DEFAULT_TAU)
print(f"{time.perf_counter() - t0:.1f} s (compile included); decode tok/s exact {sens['exact']:.1f}, "
      f"relaxed {sens['relaxed']:.1f} (tau {sens['tau']}), feasible {sens['feasible']}")
top = [r for r in sens["rows"] if r["elasticity"] is not None][:10 if SMALL else 16]
for r in top[:6]:
    print(f"  {r['key']:40s} elasticity {r['elasticity']:+.3f}")

# %%
fig, ax = plt.subplots(figsize=(7, 0.32 * len(top) + 1.2))
vals = [r["elasticity"] for r in top][::-1]
ax.barh([r["key"] for r in top][::-1], vals, color=["tab:blue" if v > 0 else "tab:red" for v in vals])
ax.axvline(0, color="k", lw=0.6)
ax.set_xlabel("elasticity  d ln(decode tok/s) / d ln(parameter)")
ax.set_title("Sensitivity of decode throughput (stacked-3d, Llama-3-70B)")
fig.tight_layout()
fig.savefig(OUT / "05_elasticities.png", dpi=110)
print(f"wrote {OUT / '05_elasticities.png'}")

# %% [markdown]
# ## Co-optimise layers, clock, link bandwidth and batch with the mapping
# A space of DRAM layers x clock x L1 link bandwidth x batch x every (tp, dp) factorisation of
# 256; maximise tokens per joule under a 30 ms TPOT limit. The mapping axis is discrete:
# its 9 rows are enumerated, each with `starts` random starts.

# %%
space = space_from_dict({
    "version": 1,
    "base": {"hardware": "stacked-3d", "fabric": "stacked-256", "model": "llama-3-70b",
             "request": {"batch": 256, "input_len": 1024, "output_len": 1024}},
    "axes": {"dram.total_layers": {"range": [2, 16], "step": 2},
             "chip.clock_GHz": {"range": [1.2, 2.1], "count": 4},
             "fabric.l1.link_bandwidth_GBps": {"choices": [64, 128, 256, 512]},
             "request.batch": {"range": [16, 1024], "count": 7, "scale": "log"}},
    "mapping": {"factorizations": 256, "axes": ["tp", "dp"]},
    "limits": {"tpot_ms": {"max": 30}},
}, "<notebook 05>")
params, discrete = parameters(space)
print(f"{space.size:,} grid points; continuous: {[p.name for p in params]}; "
      f"discrete: {[space.axes[a].name for a in discrete]}")
objective = "tokens_per_J"
t0 = time.perf_counter()
res = optimize(space, objective, steps=30 if SMALL else 120, starts=2 if SMALL else 6, seed=0)
print(f"{time.perf_counter() - t0:.1f} s; {res.exact_evaluations} exact evaluations "
      f"({space.size / res.exact_evaluations:.0f}x fewer than the sweep), {res.relaxed_evaluations} relaxed")
best = res.best
print({k: best[k] for k in [p.name for p in params] + ["mapping.tp", "mapping.dp", objective, "tpot_s", "power_W"]})

# %% [markdown]
# ## The trajectory
# Relaxed objective of every start against the step (thin lines; best start thick), the tau
# annealing schedule, and the exactly verified optimum after snapping (dashed).

# %%
tr = res.trajectory
sign = 1.0 if HIGHER_IS_BETTER[objective] else -1.0
feasible_end = tr["violation"][-1] < 1e-3
score = np.where(feasible_end, sign * tr["objective"][-1], -np.inf)
b = int(np.argmax(score))
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
ax1.plot(tr["objective"], color="0.75", lw=0.6)
ax1.plot(tr["objective"][:, b], color="tab:blue", lw=2, label=f"best start (mapping row {tr['combo'][b]})")
ax1.axhline(best[objective], color="k", ls="--", label="snapped + verified exactly")
ax1.set_xlabel("step")
ax1.set_ylabel(f"relaxed {objective}")
ax1.set_ylim(0, 1.3 * max(best[objective], float(np.max(np.where(feasible_end, tr["objective"][-1], 0)))))
ax1.legend(fontsize=8)
twin = ax1.twinx()
twin.semilogy(tr["tau"], color="tab:orange", lw=1)
twin.set_ylabel("tau", color="tab:orange")
z = tr["z"][:, b]
for j, p in enumerate(params):
    ax2.plot(p.x(z[:, j])[0] / p.per_user / (p.grid[-1] / p.per_user), label=p.name)
ax2.set_xlabel("step")
ax2.set_ylabel("parameter / its maximum (best start)")
ax2.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "05_trajectory.png", dpi=110)
print(f"wrote {OUT / '05_trajectory.png'}")
