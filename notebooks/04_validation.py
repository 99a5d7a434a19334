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
# # 04 — Validation: predicted vs measured
#
# `jaxstack.validation` ships measurement sets described as jaxstack inputs (provenance in
# `jaxstack/validation/data/*/PROVENANCE.md`): vLLM decode throughput on 8x B200, fused
# kernels on 8x H100, and ASTRA-sim/NS-3 collectives. `validate.run_sets` evaluates every
# case (global constants fitted once per preset on a declared calibration split, never per
# point) and `validate.summarize` reports MAPE and the weighted error per set, panel and
# split, next to DeepStack's own predictions where the data has them.
#
# CLI equivalent: `jaxstack validate --cases --out runs/validate && jaxstack plot runs/validate`.
#
# With `JAXSTACK_NOTEBOOK_SMALL=1` (CI) only the two sets that do not compile the full model
# are run (kernels, collectives: a few seconds); the vLLM set adds one ~30 s compile.

# %%
import os

# Small batches: XLA compile time dominates; LLVM -O0 roughly halves it (results equal to float32 rounding).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402, F401 - in Jupyter: inline display of figures
import numpy as np  # noqa: E402

from jaxstack.engines import plot, validate  # noqa: E402
from jaxstack.validation import SET_MODULES  # noqa: E402

SMALL = os.environ.get("JAXSTACK_NOTEBOOK_SMALL") == "1"          # CI: smaller sizes
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("JAXSTACK_NOTEBOOK_OUT", HERE / "out"))
OUT.mkdir(parents=True, exist_ok=True)

sets = [s for s in SET_MODULES if not (SMALL and s == "vllm-8xb200")]
print("sets:", ", ".join(sets))

# %%
t0 = time.perf_counter()
rows = validate.run_sets(sets)
print(f"{len(rows)} cases in {time.perf_counter() - t0:.1f} s")
summary = validate.summarize(rows)


def pct(e, key):
    return f"{e[key]:6.2f}" if e else "     -"


print(f"{'set':18s} {'panel':34s} {'n':>4s} {'MAPE %':>7s} {'wtd %':>6s} {'hold %':>7s} {'DeepStack %':>11s}")
for e in summary:
    a = e["all"]
    print(f"{e['set']:18s} {e['panel'][:34]:34s} {a['n']:4d} {pct(a, 'mape_pct'):>7s} {pct(a, 'weighted_pct')} "
          f"{pct(e['holdout'], 'mape_pct'):>7s} {pct(e['deepstack'], 'mape_pct'):>11s}")

# %% [markdown]
# ## Predicted vs measured
# One log-log panel per set, coloured by panel; squares are calibration cases, circles
# held-back ones; dotted lines are ±10 %.

# %%
val = {k: np.array([r.get(k, np.nan) for r in rows], dtype=object if k in ("set", "panel", "case", "split") else float)
       for k in ("set", "panel", "case", "split", "measured", "predicted")}
fig = plot.validation_figure(val)
fig.savefig(OUT / "04_validation.png", dpi=110)
print(f"wrote {OUT / '04_validation.png'}")
fig  # noqa: B018 - displays the figure in Jupyter

# %% [markdown]
# ## The worst cases

# %%
err = 100 * (val["predicted"] / val["measured"] - 1)
for i in np.argsort(-np.abs(err))[:8]:
    print(f"{val['set'][i]:18s} {str(val['case'][i])[:44]:44s} {val['split'][i]:12s} {err[i]:+7.1f} %")
