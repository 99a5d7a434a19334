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
# # 01 — Quickstart: evaluate one design
#
# One design point = hardware preset + fabric preset + model preset + request + mapping.
# `jaxstack.evaluate(design)` returns every serving metric (SI units) for that
# point. It is a pure JAX function written for ONE point: `jax.jit(jax.vmap(evaluate))`
# evaluates a whole batch of designs in one compiled call. Compiling the model takes
# ~20-40 s on a laptop CPU; after that every batch with the same shapes costs milliseconds.
# So this notebook evaluates the design *and* a few what-if variants in one call.
#
# CLI equivalent: `jaxstack eval --hardware b200 --fabric nvlink-b200x8 --model llama-3-70b
# --tp 8 --batch 64 --input-len 1024 --output-len 1024`.

# %%
import os

# Small batches: XLA compile time dominates; LLVM -O0 roughly halves it (results equal to float32 rounding).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402, F401 - in Jupyter: inline display of figures
import numpy as np  # noqa: E402

from jaxstack.edges import io  # noqa: E402
from jaxstack.recipe import ops
from jaxstack.recipe.evaluate import evaluate  # noqa: E402
from jaxstack.types.metrics import METRIC_UNITS, Reason  # noqa: E402
from jaxstack.engines.plot import breakdown_figure  # noqa: E402

SMALL = os.environ.get("JAXSTACK_NOTEBOOK_SMALL") == "1"          # CI: smaller sizes
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("JAXSTACK_NOTEBOOK_OUT", HERE / "out"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A design from presets
# `io.design_from_dict` takes the same keys as a design YAML file (`jaxstack presets` lists
# the names). Every leaf is a number in SI units; `overrides` set leaves by dotted path
# with a unit suffix.

# %%
design = io.design_from_dict({
    "hardware": "b200", "fabric": "nvlink-b200x8", "model": "llama-3-70b",
    "request": {"batch": 64, "input_len": 1024, "output_len": 1024},
    "mapping": {"tp": 8},
    "overrides": {"dram.efficiency": 0.85},
})
hbm_GiB = design.dram.capacity_per_layer * design.dram.total_layers / 2**30
print(f"B200: {design.chip.compute_units:g} SMs, HBM {hbm_GiB:g} GiB; "
      f"NVLink {design.fabric.l1.link_bandwidth / 1e9:g} GB/s per GPU; "
      f"Llama-3-70B: hidden {design.model.hidden_size:g}, {design.model.num_hidden_layers:g} layers")

# %% [markdown]
# ## The design and its what-if variants, as one batch
# A design is a pytree of numbers: a variant changes a leaf (`io.set_path`, with the SI
# value from `io.convert_value`), and a batch is the same pytree with a leading axis.

# %%
whatifs = [("baseline", {}), ("NVLink 450 GB/s", {"fabric.l1.link_bandwidth_GBps": 450}),
           ("HBM efficiency 0.7", {"dram.efficiency": 0.7}), ("batch 256", {"request.batch": 256}),
           ("FP8 weights", {"model.weight_bytes": 1.0})]
if SMALL:
    whatifs = whatifs[:3]
variants = []
for _label, changes in whatifs:
    d = design
    for path, value in changes.items():
        names, si = io.convert_value(path, value)
        d = io.set_path(d, names, si)
    variants.append(d)
batch = jax.tree_util.tree_map(lambda *xs: np.array(xs, np.float32), *variants)


# %% [markdown]
# ## One compile: metrics and the per-block cost of one layer
# Besides `evaluate`, the op table of one decoder layer (`ops.layer_costs`: attention,
# attention core, dense FFN, MoE, norms, LM head, each with time / FLOPs / DRAM bytes on
# one chip) is computed in the same compiled function, at the mean decode KV length.

# %%
def point(d):
    kv = d.request.input_len + 0.5 * d.request.output_len
    return evaluate(d), ops.layer_costs(d, ops.shard(d), 1.0, kv, decode=True)


point_batch = jax.jit(jax.vmap(point))
t0 = time.perf_counter()
metrics, layer = jax.block_until_ready(point_batch(batch))
print(f"compile + first call: {time.perf_counter() - t0:.1f} s")
t0 = time.perf_counter()
jax.block_until_ready(point_batch(batch))
print(f"second call (no recompile): {1e3 * (time.perf_counter() - t0):.1f} ms for {len(variants)} designs")

# %%
m0 = jax.tree_util.tree_map(lambda x: x[0], metrics)              # the baseline design
print(f"feasible: {bool(m0.feasible)} (reason: {Reason(int(m0.reason)).name})")
for name, unit in METRIC_UNITS.items():
    print(f"  {name:24s} {float(getattr(m0, name)):12.5g} {unit}")

# %% [markdown]
# ## Per-op breakdown
# The decode step of one pipeline stage (`t_*_s` metrics: all layers of the stage), and
# one layer's blocks on one chip with their arithmetic intensity (FLOP per DRAM byte): at
# batch 64 every block is far below a B200's ridge point (~280 FLOP/B), i.e. memory-bound.

# %%
step = {k: float(getattr(m0, k)) for k in
        ("t_attention_s", "t_ffn_s", "t_moe_s", "t_other_s", "t_comm_s", "t_comm_exposed_s")}
total = sum(v for k, v in step.items() if k != "t_comm_s")
for k, v in step.items():
    print(f"  {k:18s} {1e3 * v:8.3f} ms  {100 * v / total:5.1f} %")
print(f"  TPOT {1e3 * float(m0.tpot_s):.3f} ms, {float(m0.decode_tokens_per_s):,.0f} tokens/s system, "
      f"{float(m0.user_tokens_per_s):.1f} tokens/s per user")

print(f"\n{'block (one layer, one chip)':28s} {'time us':>9s} {'GFLOP':>9s} {'DRAM MB':>9s} {'FLOP/B':>7s}")
for name in ("attention", "attn_core", "dense_ffn", "moe", "norms", "lm_head"):
    c = getattr(layer, name)
    t, f, b = float(c.time[0]), float(c.flops[0]), float(c.nbytes[0])
    print(f"{name:28s} {1e6 * t:9.2f} {f / 1e9:9.3f} {b / 1e6:9.2f} {f / b if b else 0:7.1f}")

# %% [markdown]
# ## What if?

# %%
rows = {k: np.asarray(getattr(metrics, k)) for k in METRIC_UNITS}
for i, (label, _) in enumerate(whatifs):
    print(f"{label:20s} {rows['decode_tokens_per_s'][i]:10,.0f} tok/s  TPOT {1e3 * rows['tpot_s'][i]:7.2f} ms"
          f"  {rows['energy_per_token_J'][i]:.3f} J/token")

# %%
rows["rank"] = np.arange(1, len(whatifs) + 1)
fig = breakdown_figure(rows, n=len(whatifs), objective="decode_tokens_per_s",
                       title="decode step: " + ", ".join(f"#{i + 1} {w[0]}" for i, w in enumerate(whatifs)))
fig.savefig(OUT / "01_whatif_breakdown.png", dpi=110)
print(f"wrote {OUT / '01_whatif_breakdown.png'}")
fig  # noqa: B018 - displays the figure in Jupyter
