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
# # 03 — Every parallel mapping of a fixed machine
#
# Fixed hardware: 256 3D-DRAM-stacked chips (`stacked-3d`) on the three-level
# `stacked-256` fabric (4-chip switch, 2x2 board mesh, 4x4 torus of boards), serving
# DeepSeek-V3 decode. The `mapping:` block of a space enumerates every ordered
# factorisation of 256 into (TP, EP, SP, CP, DP, PP), times FSDP on/off and MoE TP->EP
# on/off. Here the designs are decoded on the host (`Space.designs`) and evaluated with a
# single `jax.jit(jax.vmap(evaluate))` call: one compile, then every mapping at once.

# %%
import os

# Small batches: XLA compile time dominates; LLVM -O0 roughly halves it (results equal to float32 rounding).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxstack.recipe.evaluate import evaluate  # noqa: E402
from jaxstack.types.metrics import Reason  # noqa: E402
from jaxstack.engines.space import space_from_dict  # noqa: E402

SMALL = os.environ.get("JAXSTACK_NOTEBOOK_SMALL") == "1"          # CI: smaller sizes
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("JAXSTACK_NOTEBOOK_OUT", HERE / "out"))
OUT.mkdir(parents=True, exist_ok=True)

# %%
spec = {
    "version": 1,
    "base": {"hardware": "stacked-3d", "fabric": "stacked-256", "model": "deepseek-v3",
             "request": {"batch": 256, "input_len": 1024, "output_len": 1024},
             "overrides": {"model.weight_bytes": 1.0}},              # FP8 weights
    "axes": {"request.batch": {"choices": [256] if SMALL else [64, 256, 1024]}},
    "mapping": {"factorizations": 256, "fsdp": [0, 1], "moe_tp_to_ep": [0, 1],
                "axes": ["tp", "ep", "dp", "pp"] if SMALL else ["tp", "ep", "sp", "cp", "dp", "pp"]},
}
space = space_from_dict(spec, "notebook-03")
idx = np.arange(space.size)
designs = space.designs(idx)                     # a Design whose leaves have a leading axis
print(f"{space.size:,} designs: " + ", ".join(f"{a.name} ({a.size})" for a in space.axes))

# %%
t0 = time.perf_counter()
m = jax.block_until_ready(jax.jit(jax.vmap(evaluate))(designs))
print(f"compile + evaluate {space.size:,} designs: {time.perf_counter() - t0:.1f} s")
f = {k: np.asarray(getattr(m, k)) for k in ("decode_tokens_per_s", "user_tokens_per_s", "energy_per_token_J",
                                            "memory_bytes", "t_comm_s", "tpot_s")}
ok, reason = np.asarray(m.feasible), np.asarray(m.reason)
print(f"feasible {ok.sum():,} / {len(ok):,}; infeasible by reason:",
      {r.name: int((reason == r).sum()) for r in Reason if r and (reason == r).any()})

# %% [markdown]
# ## Throughput by mapping
# For each mapping, the best feasible system decode throughput over the batch sizes.

# %%
maps = space.axes[-1]                            # the mapping axis: one row per mapping
digit = np.array([space.digits(int(i))[-1] for i in idx])
cols = dict(zip(maps.columns, np.array(maps.display, dtype=float).T, strict=True))


def label(j):
    deg = [f"{a}{int(cols[f'mapping.{a}'][j])}" for a in ("tp", "ep", "sp", "cp", "dp", "pp")
           if f"mapping.{a}" in cols and cols[f"mapping.{a}"][j] > 1]
    flags = [t for t, k in (("fsdp", "mapping.fsdp"), ("moe→ep", "mapping.moe_tp_to_ep")) if cols[k][j]]
    return " ".join(deg + flags) or "1"


best = np.full(maps.size, np.nan)
np.fmax.at(best, digit[ok], f["decode_tokens_per_s"][ok])
order = [j for j in np.argsort(-np.nan_to_num(best, nan=-1)) if np.isfinite(best[j])]
print(f"{np.isfinite(best).sum():,} of {maps.size:,} mappings have a feasible design; best 10:")
for j in order[:10]:
    sel = ok & (digit == j)
    i = idx[sel][np.argmax(f["decode_tokens_per_s"][sel])]
    print(f"  {label(j):28s} {best[j]:10,.0f} tok/s  batch {designs.request.batch[i]:5g}  "
          f"{f['user_tokens_per_s'][i]:6.1f} tok/s/user  {f['energy_per_token_J'][i]:.3f} J/token")

# %%
top = order[:25]
fig, ax = plt.subplots(figsize=(8, 0.25 * len(top) + 1.2), layout="constrained")
ax.barh(range(len(top)), best[top], color="tab:blue")
ax.set_yticks(range(len(top)), [label(j) for j in top], fontsize=7)
ax.invert_yaxis()
ax.set_xlabel("best system decode tokens/s over batch")
ax.set_title(f"DeepSeek-V3 on 256 stacked chips: top {len(top)} of {np.isfinite(best).sum()} feasible mappings",
             fontsize=9)
fig.savefig(OUT / "03_mappings.png", dpi=110)

# %% [markdown]
# ## Throughput vs per-user speed, by pipeline depth
# Each point is a feasible (mapping, batch); colour = PP degree.

# %%
pp = np.asarray(designs.mapping.pp)
fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
sc = ax.scatter(f["user_tokens_per_s"][ok], f["decode_tokens_per_s"][ok], c=np.log2(pp[ok]), s=8, cmap="viridis")
fig.colorbar(sc, ax=ax, label="log2(PP)")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("per-user tokens/s")
ax.set_ylabel("system decode tokens/s")
fig.savefig(OUT / "03_by_pp.png", dpi=110)
print(f"wrote {OUT / '03_mappings.png'}, {OUT / '03_by_pp.png'}")
