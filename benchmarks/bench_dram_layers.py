"""Effective 3D-DRAM bandwidth vs stack depth (DeepStack Fig. 15): all layers connected, 1-16.

    python benchmarks/bench_dram_layers.py            # JSON line on stdout, summary on stderr,
                                                      # docs/img/dram_layers.png (needs matplotlib)
    python benchmarks/bench_dram_layers.py --no-plot

For every depth m = n the stacked-3d reference chip is re-derived: its SM count is the most
that fits the logic-die area (``area.compute_units``; the bound is raised to DeepStack's 128
so that area, not the preset's 8, decides), and the usable bandwidth is
``memory.effective_bandwidth``: peak x row-cycle x refresh x efficiency, capped by Little's
law (SMEM per SM over the round trip) and by the SRAM bandwidth (SMEM BW / 2). Two curves:
- "best": the best (SMEM, L1) of DeepStack's space per depth (SMEM 128/256/512 KiB, L1
  128/256/512/1024 B/cycle), which is what DeepStack's Fig. 15 reports (peak at 9, -39.62 %
  at 12; DEEPSTACK.md §4.2);
- "preset": the reference chip's own 256 KiB / 256 B/cycle.
Deeper stacks add bandwidth per connected layer but every vertical port takes logic-die area
from the SMs, and fewer SMs buffer and move less (Little's law, SRAM bandwidth): an interior
optimum.
"""

import argparse
import dataclasses
import itertools
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxstack.edges import io  # noqa: E402
from jaxstack.physics import area, memory  # noqa: E402

DEPTHS = np.arange(1, 17)
SMEM_KIB = (128, 256, 512)
L1_BPC = (128, 256, 512, 1024)
MAX_UNITS = 128.0  # DeepStack searches SM counts 1-128


def curves():
    p = io.load_preset("hardware", "stacked-3d")
    chip0, dram0 = p["chip"], p["dram"]
    grid = list(itertools.product(DEPTHS, SMEM_KIB, L1_BPC))
    m = np.array([g[0] for g in grid], np.float32)
    chip = dataclasses.replace(chip0, compute_units=np.full_like(m, MAX_UNITS),
                               sram_capacity=np.array([g[1] * 1024.0 for g in grid], np.float32),
                               sram_bandwidth=np.array([g[2] for g in grid], np.float32))
    chip = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), m.shape), chip)
    dram = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), m.shape), dram0)
    dram = dataclasses.replace(dram, total_layers=jnp.asarray(m), connected_layers=jnp.asarray(m))

    def one(c, d):
        u = area.compute_units(c, d)
        return (memory.effective_bandwidth(d, c), memory.dram_bandwidth(d), u,
                memory.littles_law_cap(c, d, u), memory.sram_cap(c, u), area.area_feasible(c, d))

    bw, dram_bw, units, little, smem, ok = (np.asarray(x, np.float64) for x in jax.vmap(one)(chip, dram))
    bw = np.where(ok > 0, bw, 0.0)
    best, preset = [], []
    for depth in DEPTHS:
        sel = [i for i, g in enumerate(grid) if g[0] == depth]
        i = max(sel, key=lambda j: bw[j])
        j = next(k for k in sel if grid[k][1] == chip0.sram_capacity / 1024 and grid[k][2] == chip0.sram_bandwidth)
        for out, k in ((best, i), (preset, j)):
            out.append({"layers": int(depth), "bandwidth_GBps": bw[k] / 1e9, "dram_GBps": dram_bw[k] / 1e9,
                        "sms": int(units[k]), "smem_KiB": grid[k][1], "l1_B_per_cycle": grid[k][2],
                        "littles_law_GBps": little[k] / 1e9, "sram_cap_GBps": smem[k] / 1e9})
    return best, preset


def summary(curve):
    bws = np.array([c["bandwidth_GBps"] for c in curve])
    k = int(np.argmax(bws))
    peak = curve[k]["layers"]
    at12 = bws[DEPTHS.tolist().index(12)]
    return {"peak_layers": peak, "peak_GBps": float(bws[k]), "drop_at_12_pct": float(100 * (1 - at12 / bws[k])),
            "interior": 1 < peak < int(DEPTHS[-1])}


def plot(best, preset, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: skipping the PNG (pip install 'jaxstack[plot]')", file=sys.stderr)
        return None
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for curve, label, style in ((best, "best SMEM/L1 per depth", "o-"), (preset, "256 KiB / 256 B/cycle", "s--")):
        x = [c["layers"] for c in curve]
        ax.plot(x, [c["bandwidth_GBps"] / 1e3 for c in curve], style, label=label, ms=4)
    ax.plot([c["layers"] for c in best], [c["dram_GBps"] / 1e3 for c in best], ":", color="gray",
            label="DRAM alone (no SM caps)")
    ax.set_xlabel("DRAM layers (all connected)")
    ax.set_ylabel("effective bandwidth (TB/s)")
    ax.set_title("stacked-3d: effective DRAM bandwidth vs stack depth")
    ax2 = ax.twinx()
    ax2.step([c["layers"] for c in best], [c["sms"] for c in best], where="mid", color="tab:green", alpha=0.4)
    ax2.set_ylabel("SMs (best config)", color="tab:green")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "dram_layers.png"))
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    best, preset = curves()
    result = {"figure": "DeepStack Fig. 15", "deepstack": {"peak_layers": 9, "drop_at_12_pct": 39.62},
              "best": summary(best), "preset": summary(preset), "curve_best": best, "curve_preset": preset}
    png = None if args.no_plot else plot(best, preset, Path(args.out))
    result["png"] = png
    print(json.dumps(result))
    for name, curve in (("best", best), ("preset", preset)):
        s = result[name]
        print(f"{name:6s}: peak {s['peak_GBps']:.0f} GB/s at {s['peak_layers']} layers, "
              f"{s['drop_at_12_pct']:.1f} % lower at 12 (DeepStack: 9 layers, 39.62 %)", file=sys.stderr)
        print("        " + " ".join(f"{c['layers']}:{c['bandwidth_GBps']:.0f}({c['sms']})" for c in curve),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
