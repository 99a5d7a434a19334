"""DRAM-layer study (DeepStack Figs. 16-18): DeepSeek-V3 on 256 stacked chips, stack depth m = 1..16.

    python benchmarks/bench_dram_study.py               # JSON on stdout, table on stderr,
                                                        # docs/img/dram_study.png (needs matplotlib)
    python benchmarks/bench_dram_study.py --small       # m in {1, 4, 8, 12, 16}, fewer SRAM options

For every depth m (all layers connected, n = m, as DeepStack's study) and batch size (4 and
1024 by default), the best design over the on-chip choices (SMEM 128/256/512 KiB x L1
128/256/512/1024 B/cycle; the SM count is what fits the logic-die area, at most 128) and
EVERY mapping of the 256 chips (tp, ep, sp, cp, dp, pp factorisations x FSDP x MoE TP->EP x
overlap) is found by exhaustive evaluation. Objective: decode throughput after the power
wall (``scaled_decode_tokens_per_s``: clocks scale by (TDP / P)^(1/3) above the 100 W TDP),
among feasible designs (memory, DRAM <= 95 C). The table reports, per (batch, m), the best
throughput, its junction / DRAM temperature, power, clock scale and mapping, plus the best
prefill depth (prefill tokens/s x its own power-wall clock scale).
"""

import argparse
import dataclasses
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxstack.edges import io  # noqa: E402
from jaxstack.engines.space import factorizations  # noqa: E402
from jaxstack.recipe.evaluate import evaluate  # noqa: E402
from jaxstack.types.mapping import AXES  # noqa: E402

CHUNK = 1 << 16


def mappings():
    rows = []
    for fac in factorizations(256, len(AXES)):
        deg = dict(zip(AXES, fac, strict=True))
        for fsdp, t2e, ov in itertools.product((0, 1), (0, 1), (0, 1)):
            if (fsdp and deg["dp"] == 1) or (t2e and deg["tp"] == 1):
                continue
            rows.append([*fac, fsdp, t2e, ov])
    return np.array(rows, np.float32)


def grid(depths, batches, smem, l1):
    maps = mappings()
    hw = np.array(list(itertools.product(depths, smem, l1)), np.float32)
    out = []
    for b in batches:
        i, j = np.meshgrid(np.arange(len(hw)), np.arange(len(maps)), indexing="ij")
        out.append(np.concatenate([np.full((i.size, 1), b, np.float32), hw[i.ravel()], maps[j.ravel()]], 1))
    return np.concatenate(out)  # columns: batch, m, smem KiB, l1, tp ep sp cp dp pp, fsdp, t2e, overlap


def designs(base, rows):
    n = len(rows)
    d = jax.tree_util.tree_map(lambda x: np.full(n, x, np.float32), base)
    c = lambda k: rows[:, k]  # noqa: E731
    chip = dataclasses.replace(d.chip, compute_units=np.full(n, 128.0, np.float32), sram_capacity=c(2) * 1024,
                               sram_bandwidth=c(3))
    dram = dataclasses.replace(d.dram, total_layers=c(1), connected_layers=c(1))
    mp = dataclasses.replace(d.mapping, **{a: c(4 + k) for k, a in enumerate(AXES)}, fsdp=c(10),
                             moe_tp_to_ep=c(11), overlap=c(12))
    req = dataclasses.replace(d.request, batch=c(0))
    return dataclasses.replace(d, chip=chip, dram=dram, mapping=mp, request=req)


FIELDS = ("feasible", "scaled_decode_tokens_per_s", "decode_tokens_per_s", "prefill_tokens_per_s", "prefill_power_W",
          "temperature_C", "dram_temperature_C", "power_W", "frequency_scale", "refresh_hot_fraction", "tpot_s")


def run(depths, batches, smem, l1, model):
    base = io.design_from_dict({"hardware": "stacked-3d", "fabric": "stacked-256", "model": model,
                                "request": {"batch": 1, "input_len": 1024, "output_len": 1024}}, "dram study")
    rows = grid(depths, batches, smem, l1)
    f = jax.jit(jax.vmap(evaluate))
    out = {k: [] for k in FIELDS}
    t0 = time.perf_counter()
    compile_s = None
    for s in range(0, len(rows), CHUNK):
        part = rows[s:s + CHUNK]
        pad = np.concatenate([part, np.repeat(part[-1:], CHUNK - len(part), 0)]) if len(part) < CHUNK else part
        m = f(designs(base, pad))
        jax.block_until_ready(m)
        if compile_s is None:
            compile_s = time.perf_counter() - t0
            t1 = time.perf_counter()
        for k in FIELDS:
            out[k].append(np.asarray(getattr(m, k))[:len(part)])
    run_s = time.perf_counter() - t1
    res = {k: np.concatenate(v) for k, v in out.items()}
    tdp = float(base.chip.tdp)
    res["prefill_scaled"] = res["prefill_tokens_per_s"] * np.minimum(1.0, (tdp / res["prefill_power_W"]) ** (1 / 3))
    return rows, res, compile_s, run_s


def best_table(rows, res, depths, batches):
    table = []
    for b in batches:
        for m in depths:
            sel = np.flatnonzero((rows[:, 0] == b) & (rows[:, 1] == m) & res["feasible"])
            if len(sel) == 0:
                table.append({"batch": int(b), "layers": int(m), "feasible": 0})
                continue
            i = sel[np.argmax(res["scaled_decode_tokens_per_s"][sel])]
            j = sel[np.argmax(res["prefill_scaled"][sel])]
            r = rows[i]
            table.append({
                "batch": int(b), "layers": int(m), "feasible": int(len(sel)),
                "decode_scaled_tok_s": float(res["scaled_decode_tokens_per_s"][i]),
                "decode_unscaled_tok_s": float(res["decode_tokens_per_s"][i]),
                "junction_C": float(res["temperature_C"][i]), "dram_C": float(res["dram_temperature_C"][i]),
                "power_W": float(res["power_W"][i]), "clock_scale": float(res["frequency_scale"][i]),
                "refresh_hot": float(res["refresh_hot_fraction"][i]), "tpot_ms": float(1e3 * res["tpot_s"][i]),
                "mapping": " ".join(f"{a}{int(v)}" for a, v in zip(AXES, r[4:10], strict=True) if v > 1)
                + "".join(s for s, v in ((" fsdp", r[10]), (" moe->ep", r[11]), (" overlap", r[12])) if v),
                "smem_KiB": int(r[2]), "l1_B_per_cycle": int(r[3]),
                "prefill_scaled_tok_s": float(res["prefill_scaled"][j]),
            })
    return table


def plot(table, batches, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: skipping the PNG (pip install 'jaxstack[plot]')", file=sys.stderr)
        return None
    fig, axs = plt.subplots(1, len(batches), figsize=(5.2 * len(batches), 3.8), squeeze=False)
    for ax, b in zip(axs[0], batches, strict=True):
        t = [r for r in table if r["batch"] == b and r["feasible"]]
        x = [r["layers"] for r in t]
        ax.plot(x, [r["decode_scaled_tok_s"] / 1e3 for r in t], "o-", label="decode (power-wall scaled)")
        ax.plot(x, [r["decode_unscaled_tok_s"] / 1e3 for r in t], ":", color="gray", label="decode, no wall")
        ax.set_xlabel("DRAM layers m (= connected n)")
        ax.set_ylabel("best throughput (k tok/s)")
        ax.set_title(f"DeepSeek-V3, 256 chips, batch {b}")
        ax2 = ax.twinx()
        ax2.plot(x, [r["junction_C"] for r in t], "s--", color="tab:red", ms=3, label="junction")
        ax2.plot(x, [r["dram_C"] for r in t], "^--", color="tab:orange", ms=3, label="DRAM")
        ax2.axhline(85, color="tab:red", lw=0.6, alpha=0.5)
        ax2.axhline(95, color="tab:red", lw=0.6, ls=":")
        ax2.set_ylabel("temperature of that design (°C)", color="tab:red")
        ax.legend(fontsize=7, loc="lower left")
        ax2.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[4, 1024])
    ap.add_argument("--model", default="deepseek-v3")
    ap.add_argument("--small", action="store_true", help="5 depths, one SRAM option (CI-sized)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "dram_study.png"))
    ap.add_argument("--no-plot", action="store_true")
    a = ap.parse_args(argv)
    depths = [1, 4, 8, 12, 16] if a.small else list(range(1, 17))
    smem, l1 = ((256,), (256,)) if a.small else ((128, 256, 512), (128, 256, 512, 1024))
    rows, res, compile_s, run_s = run(depths, a.batches, smem, l1, a.model)
    table = best_table(rows, res, depths, a.batches)
    summary = {}
    for b in a.batches:
        t = [r for r in table if r["batch"] == b and r["feasible"]]
        if t:
            dec = max(t, key=lambda r: r["decode_scaled_tok_s"])
            pre = max(t, key=lambda r: r["prefill_scaled_tok_s"])
            summary[str(b)] = {"best_decode_layers": dec["layers"], "best_decode_tok_s": dec["decode_scaled_tok_s"],
                               "best_prefill_layers": pre["layers"]}
    png = None if a.no_plot else plot(table, a.batches, Path(a.out))
    print(json.dumps({
        "benchmark": "dram_study", "device": jax.devices()[0].device_kind, "platform": platform.machine(),
        "jax": jax.__version__, "points": int(len(rows)), "compile_s": round(compile_s, 2), "run_s": round(run_s, 2),
        "points_per_s": round(len(rows) / max(run_s, 1e-9)), "summary": summary, "table": table, "png": png}))
    for r in table:
        if not r["feasible"]:
            print(f"batch {r['batch']:5d} m={r['layers']:2d}: no feasible design", file=sys.stderr)
            continue
        print(f"batch {r['batch']:5d} m={r['layers']:2d}: {r['decode_scaled_tok_s']:10.0f} tok/s (no wall "
              f"{r['decode_unscaled_tok_s']:10.0f})  Tj {r['junction_C']:5.1f} C  DRAM {r['dram_C']:5.1f} C  "
              f"{r['power_W']:5.1f} W  f {r['clock_scale']:.2f}  {r['mapping']}  SMEM {r['smem_KiB']} L1 "
              f"{r['l1_B_per_cycle']}  prefill {r['prefill_scaled_tok_s']:9.0f}", file=sys.stderr)
    print(f"summary: {summary}; {len(rows):,} points, compile {compile_s:.1f} s, run {run_s:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
