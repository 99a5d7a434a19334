"""Sweep throughput: compile time and steady-state full-model points/s vs N.

    python benchmarks/bench_sweep.py                       # hbm-whatif (the former quickstart): 1e5, 1e6
                                                           # (1e6 > its 693,000 points: the whole space, hoisted,
                                                           # then again without hoisting, and pruned
                                                           # (winners.py), for comparison)
    python benchmarks/bench_sweep.py --space spaces/deepstack-decode.yaml --sizes 1e5,1e6,1e7,1e8
    python benchmarks/bench_sweep.py --cpu-devices 2       # shard over 2 CPU "devices"
    python benchmarks/bench_sweep.py --smoke               # tiny, for CI

Method (brax ``test_utils.benchmark`` style): the first sweep of a space includes tracing
and XLA compilation, reported as ``compile_s`` (AOT ``lower().compile()`` inside ``sweep``);
every size is then swept with the compiled step and timed end to end (decode, evaluate,
limits, reducers, host merges, no run directory), each size ``--repeat`` times, best kept.
Flatness = min/max points/s over the sizes swept in one space (1.0 = no slowdown with N). Peak host RSS
(``ru_maxrss``) after each size shows that memory does not grow with N.

Prints ONE JSON line (device kind, JAX version, sizes, chunk, compile s, run s, points/s),
then a human summary on stderr.
"""

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _count(s: str) -> int:
    return int(float(s))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default=str(ROOT / "spaces" / "hbm-whatif.yaml"), help="space YAML")
    ap.add_argument("--sizes", default="1e5,1e6", help="comma-separated N (max points)")
    ap.add_argument("--chunk", type=_count, help="points per step (default: sweep's auto)")
    ap.add_argument("--cpu-devices", type=int,
                    help="split the CPU into N JAX devices (default: as `jaxstack sweep`, one per core)")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per size (best kept)")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--no-compare-flat", dest="compare_flat", action="store_false",
                    help="skip the whole-space sweep without hoisting (the comparison row)")
    ap.add_argument("--no-compare-pruned", dest="compare_pruned", action="store_false",
                    help="skip the whole-space sweep with pruning forced on (the comparison row)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    args = ap.parse_args(argv)

    import jax

    from jaxstack.cli.sweep_cli import MAX_AUTO_CPU_DEVICES

    n_cpu = args.cpu_devices or min(os.cpu_count() or 1, MAX_AUTO_CPU_DEVICES)
    if n_cpu > 1:
        jax.config.update("jax_num_cpu_devices", n_cpu)
    from jaxstack.engines.space import load_space
    from jaxstack.engines.sweep import auto_chunk, sweep

    sizes = [20_000] if args.smoke else [_count(s) for s in args.sizes.split(",")]
    space = load_space(args.space)
    chunk = args.chunk or auto_chunk(jax.local_devices())
    if args.smoke:
        chunk = min(chunk, 4096)
    sizes = [max(n, chunk) for n in sizes]     # a smaller N would shrink the chunk: a recompile

    t0 = time.perf_counter()          # first sweep: trace + compile (+ one chunk)
    compile_s = sweep(space, top_k=args.top_k, chunk=chunk, max_points=chunk, progress=False,
                      quick_compile=False).timings["compile_s"]
    print(f"[{Path(space.path).name}] {space.size:.3g} points; first sweep {time.perf_counter() - t0:.1f} s "
          f"(compile {compile_s:.1f} s)", file=sys.stderr)
    def measure(n, hoist=True, prune=None):
        best, comp, wall = None, 0.0, float("inf")
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            r = sweep(space, top_k=args.top_k, chunk=chunk, max_points=n, progress=False, hoist=hoist, prune=prune,
                      quick_compile=False)     # the optimised program: this measures points/s
            wall = min(wall, time.perf_counter() - t0)      # whole call: with the returned rows' completion
            comp = max(comp, r.timings["compile_s"])
            if best is None or r.timings["run_s"] < best.timings["run_s"]:
                best = r
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        t = best.timings
        row = {"n": best.points, "run_s": t["run_s"], "points_per_s": t["points_per_s"], "feasible": best.feasible,
               "peak_rss_MiB": round(rss, 1), "hoisted": t["hoisted"], "chunk": t["chunk"],
               "compile_s": round(comp, 2), "pruned": t["pruned"], "wall_s": round(wall, 3)}
        print(f"  N={best.points:>12,}  {t['run_s']:8.2f} s  {t['points_per_s']:>12,.0f} pts/s"
              f"  feasible {best.feasible:,}  peak RSS {rss:,.0f} MiB"
              + (f"  hoisted: {', '.join(t['hoisted'])} (chunk {t['chunk']:,})" if t["hoisted"] else "  flat")
              + ("  pruned" if t["pruned"] else ""),
              file=sys.stderr)
        return row

    rows = [measure(n) for n in sizes]
    # the comparisons sweep the whole space again: only where the last size already did (a space of
    # 10^14 points is not swept whole twice more; session 17: that hung the GPU script's first step)
    whole = rows[-1]["n"] >= space.size
    # the same whole-space sweep without hoisting, in the same run (the previous engine's layout)
    flat = measure(space.size, hoist=False) if whole and rows[-1]["hoisted"] and args.compare_flat else None
    # and pruned (winners.py: automatic only from winners.MIN_POINTS points), unless it already was
    pruned = measure(space.size, prune=True) if whole and not rows[-1]["pruned"] and args.compare_pruned else None

    pps = [r["points_per_s"] for r in rows]
    # flatness compares one layout across N: the flat rows (and the flat whole-space comparison)
    same = [r["points_per_s"] for r in rows + ([flat] if flat else []) if not r["hoisted"]] or pps
    dev = jax.local_devices()
    out = {
        "bench": "sweep", "device_kind": dev[0].device_kind, "platform": dev[0].platform,
        "devices": len(dev), "cpu_count": os.cpu_count(), "jax_version": jax.__version__,
        "space": Path(space.path).name, "chunk": chunk, "compile_s": round(compile_s, 2),
        "sizes": [r["n"] for r in rows],
        "run_s": [round(r["run_s"], 4) for r in rows], "points_per_s": [round(p) for p in pps],
        "peak_rss_MiB": [r["peak_rss_MiB"] for r in rows],
        "steady_points_per_s": round(pps[-1]), "flatness": round(min(same) / max(same), 3),
        "model": "jaxstack.recipe.evaluate (full model)",
        "hoisted": rows[-1]["hoisted"], "hoisted_compile_s": rows[-1]["compile_s"],
        **({"flat_points_per_s": round(flat["points_per_s"]),
            "hoist_speedup": round(rows[-1]["points_per_s"] / flat["points_per_s"], 2)} if flat else {}),
        "pruned": rows[-1]["pruned"],
        **({"pruned_points_per_s": round(pruned["points_per_s"]), "pruned_wall_s": pruned["wall_s"],
            "unpruned_wall_s": rows[-1]["wall_s"],
            "prune_speedup": round(pruned["points_per_s"] / rows[-1]["points_per_s"], 2)} if pruned else {}),
    }
    print(json.dumps(out))
    print(f"\n{dev[0].device_kind} x{len(dev)} ({os.cpu_count()} CPUs), JAX {jax.__version__}, chunk {chunk:,}: "
          f"steady {pps[-1]:,.0f} full-model points/s at N={rows[-1]['n']:,}; flatness {out['flatness']}; "
          f"compile {compile_s:.1f} s; "
          f"peak RSS {rows[-1]['peak_rss_MiB']:,.0f} MiB"
          + (f"; without hoisting {flat['points_per_s']:,.0f} points/s ({out['hoist_speedup']}x)" if flat else "")
          + (f"; pruned {pruned['points_per_s']:,.0f} points/s ({out['prune_speedup']}x)" if pruned else ""),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
