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
# # 07 — Serving under load: aggregated vs disaggregated
#
# Llama-3-70B (2048-token prompts, 256 generated tokens) on an HGX H100 box (TP8) and on
# 16 of the 3D-DRAM-stacked reference chips (`stacked-3d` on its `stacked-256` fabric, TP16:
# a 12 GB stack per chip needs 16 chips for the 140 GB of BF16 weights; the mapping uses 16
# of the fabric's 256 chips). For each, the output tokens/s per chip a deployment can
# sustain against the p99 TPOT its users see:
#
# * **aggregated** (one engine does prefill and decode, `serving.regime = online`): Poisson
#   arrivals at a rising rate; each rate gives a throughput and a p99 TPOT (`serving.py`);
# * **disaggregated** (`jaxstack.disagg`): a prefill pool and a decode pool (same mapping) at the
#   best replica ratio; the decode pool's `max_num_seqs` sets its batch, trading TPOT for
#   throughput.

# %%
import os

os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxstack.edges import io  # noqa: E402
from jaxstack.recipe.disagg import disaggregated  # noqa: E402
from jaxstack.recipe.evaluate import evaluate  # noqa: E402

SMALL = os.environ.get("JAXSTACK_NOTEBOOK_SMALL") == "1"          # CI: fewer points
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("JAXSTACK_NOTEBOOK_OUT", HERE / "out"))
OUT.mkdir(parents=True, exist_ok=True)

SYSTEMS = {"8x H100": ("h100-sxm", "nvlink-h100x8", 8), "16x stacked-3d": ("stacked-3d", "stacked-256", 16)}
REQUEST = {"batch": 8, "input_len": 2048, "output_len": 256}


def design(hw, fabric, tp, **serving):
    return io.design_from_dict({"hardware": hw, "fabric": fabric, "model": "llama-3-70b", "mapping": {"tp": tp},
                                "request": REQUEST, "serving": serving})


# %% [markdown]
# ## Aggregated: one engine, Poisson load
# One `jit(vmap(evaluate))` over both systems and every arrival rate. Unstable rates
# (arrivals beyond the engine) are infeasible and dropped.

# %%
rates = np.geomspace(0.5, 200.0, 10 if SMALL else 40)
points = [(name, lam) for name in SYSTEMS for lam in rates]
batch = jax.tree_util.tree_map(lambda *x: np.asarray(x, np.float32),
                               *[design(*SYSTEMS[n], regime="online", arrival_rate=float(lam)) for n, lam in points])
m = jax.jit(jax.vmap(evaluate))(batch)
agg = {}
for i, (name, _) in enumerate(points):
    if bool(m.feasible[i]):
        chips = SYSTEMS[name][2]
        agg.setdefault(name, []).append((float(m.tpot_p99_s[i]), float(m.decode_tokens_per_s[i]) / chips))
for name, pts in agg.items():
    print(f"{name}: {len(pts)} stable rates, up to {max(t for _, t in pts):,.0f} output tok/s per chip")

# %% [markdown]
# ## Disaggregated: a prefill pool and a decode pool
# The decode pool's `max_num_seqs` caps its running batch; each cap gives one point at the
# best prefill:decode ratio (`disagg.py`: requests/s per chip = 1 / (c_p / r_p + c_d / r_d)).

# %%
caps = [4, 32, 256] if SMALL else [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
dis = {}
for name, (hw, fabric, tp) in SYSTEMS.items():
    for cap in caps:
        r = disaggregated(design(hw, fabric, tp), design(hw, fabric, tp, max_num_seqs=cap))
        if r["feasible"]:
            dis.setdefault(name, []).append((r["tpot_s"], r["output_tokens_per_s_per_chip"]))
    best = max(dis.get(name, [(0.0, 0.0)]), key=lambda p: p[1])
    print(f"{name}: disaggregated best {best[1]:,.0f} output tok/s per chip at TPOT {best[0] * 1e3:.1f} ms")

# %%
fig, axs = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
for ax, name in zip(axs, SYSTEMS, strict=True):
    for label, data, style in (("aggregated (online, p99 TPOT)", agg, "o-"),
                               ("disaggregated (TPOT)", dis, "s--")):
        pts = sorted(data.get(name, []))
        if pts:
            ax.plot([t * 1e3 for t, _ in pts], [v for _, v in pts], style, ms=4, label=label)
    ax.set_title(f"Llama-3-70B on {name}")
    ax.set_xlabel("TPOT (ms)")
    ax.set_ylabel("output tokens/s per chip")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "07_serving.png", dpi=110)
print(f"wrote {OUT / '07_serving.png'}")
