"""Hierarchical search at paper scale: exactness vs the sweep, wall time, pruning, ablation.

    python benchmarks/bench_search.py --small                        # CI size: ~5e4-point check, 1 DRAM row
    python benchmarks/bench_search.py --check-points 1e6 --zip-rows all --ablation
    python benchmarks/bench_search.py --check-points 1e8              # exhaustive check at 1e8 points (long on CPU)
    python benchmarks/bench_search.py --zip-rows 6,9,11 --batches 1024   # a fraction of the hardware loop

Three questions:
1. ``check``: on a sub-space of ``spaces/deepstack-decode.yaml`` with about
   ``--check-points`` points (batch 1024, a subset of every axis, all 6,666 mappings), does
   ``search`` return exactly the exhaustive ``sweep``'s top-k (indices and float32 values)?
   Reports both wall times.
2. ``search``: DeepSeek-V3 decode on 256 stacked chips, ``spaces/deepstack-decode.yaml`` with
   ``request.batch`` fixed to each of ``--batches`` (2.96e13 points each): wall time on this
   device, points pruned by feasibility / level-1 bounds, bound and exact evaluations. With
   ``--zip-rows`` (indices into the 40 (m, n) DRAM rows) only that fraction of the hardware
   outer loop is searched; the full-space level-1 work is then extrapolated from the exact
   count of feasible groups (level 0 of the full space, ``plan_only``) at the measured
   level-1 rate, plus the measured level-2 time (an estimate: level 2 depends on how many
   groups survive, which the fraction shows for its own rows only).
3. ``ablation`` (``--ablation``): DeepStack Table 4's stages as nested restricted searches
   (``jaxstack.ablation``), best decode tok/s per stage and gain vs the previous one, next to
   DeepStack's numbers (9.47x at batch 1024, 2.79x at batch 4).

Compile time (3 compiled steps, plus the sweep's) is reported apart from run time. Prints ONE
JSON line on stdout, a human summary on stderr.
"""

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPACE = ROOT / "spaces" / "deepstack-decode.yaml"
# axis subsets of the check sub-space, grown until it holds about --check-points points
CHECK_GROWTH = [("zip", [6]), ("chip.compute_units", [8, 16]), ("fabric.l1.link_bandwidth_GBps", [256, 1024]),
                ("fabric.l3.hop_latency_ns", [500, 125]), ("chip.sram_bandwidth", [256, 1024]),
                ("fabric.l3.link_bandwidth_GBps", [100, 400]), ("dram.channels_per_layer", [16, 32]),
                ("chip.clock_GHz", [1.8, 2.1]), ("zip", [6, 5]), ("chip.sram_capacity_KiB", [256, 128]),
                ("fabric.l2.link_bandwidth_GBps", [128, 512]), ("chip.tdp_W", [100, 50]),
                ("fabric.l1.hop_latency_ns", [50, 12.5]), ("zip", [6, 5, 8, 3]), ("chip.compute_units", [4, 8, 16, 32]),
                ("fabric.l2.hop_latency_ns", [150, 37.5]), ("fabric.l1.link_bandwidth_GBps", [256, 512, 1024, 64])]


def _log(*a):
    print(*a, file=sys.stderr, flush=True)


def check_space(target: int):
    """A sub-space of deepstack-decode.yaml (batch 1024) of about ``target`` points."""
    from jaxstack.edges import io
    from jaxstack.engines.space import space_from_dict

    full = io.load_yaml(SPACE)
    data = copy.deepcopy(full)
    data["axes"] = {k: v for k, v in full["axes"].items() if k != "request.batch"}
    data["base"]["request"]["batch"] = 1024
    pick = {k: [v["choices"][0]] if "choices" in v else None for k, v in data["axes"].items()}
    pick["chip.compute_units"], pick["zip"] = [8], [6]
    zip0 = full["zip"][0]
    size = lambda: 6666 * len(pick["zip"]) * _prod(len(v) for k, v in pick.items() if k != "zip")  # noqa: E731
    base = {"chip.sram_capacity_KiB": 256, "chip.sram_bandwidth": 256, "chip.clock_GHz": 1.8, "chip.tdp_W": 100,
            "dram.channels_per_layer": 16, "fabric.l1.link_bandwidth_GBps": 256, "fabric.l2.link_bandwidth_GBps": 128,
            "fabric.l3.link_bandwidth_GBps": 100, "fabric.l1.hop_latency_ns": 50, "fabric.l2.hop_latency_ns": 150,
            "fabric.l3.hop_latency_ns": 500}
    pick.update({k: [v] for k, v in base.items()})
    for key, vals in CHECK_GROWTH:
        old = pick[key]
        pick[key] = vals
        if size() > target * 1.5:
            pick[key] = old
            break
    for k in data["axes"]:
        data["axes"][k] = {"choices": pick[k]}
    data["zip"] = [{c: [zip0[c][i] for i in pick["zip"]] for c in zip0}]
    return space_from_dict(data, f"deepstack-decode check sub-space (~{target:.0e})")


def _prod(xs):
    out = 1
    for x in xs:
        out *= x
    return out


def run_check(target: int, k: int) -> dict:
    from jaxstack.engines.search import search
    from jaxstack.engines.sweep import sweep

    space = check_space(target)
    _log(f"check: {space.size:,} points")
    t0 = time.perf_counter()
    sr = search(space, top_k=k, progress=False)
    t_search = time.perf_counter() - t0
    t0 = time.perf_counter()
    sw = sweep(space, top_k=k, progress=False)
    t_sweep = time.perf_counter() - t0
    a = [(r["index"], r["decode_tokens_per_s"]) for r in sr.top]
    b = [(r["index"], r["decode_tokens_per_s"]) for r in sw.top]
    out = {"points": space.size, "equal": a == b, "search_run_s": sr.timings["run_s"],
           "search_compile_s": sr.timings["compile_s"], "search_wall_s": t_search,
           "sweep_run_s": sw.timings["run_s"], "sweep_compile_s": sw.timings["compile_s"], "sweep_wall_s": t_sweep,
           "exact_evals": sr.stats["exact_evals"], "bound_evals": sr.stats["bound_evals"], "best": a[:3]}
    o = out
    _log(f"check: search == sweep top-{k}: {a == b}; search {o['search_run_s']:.1f} s (+{o['search_compile_s']:.0f} "
         f"s compile, {o['exact_evals']:,} exact), sweep {o['sweep_run_s']:.1f} s (+{o['sweep_compile_s']:.0f} s)")
    return out


def run_search(batch: int, zip_rows, k: int) -> dict:
    import numpy as np

    from jaxstack.engines.search import search
    from jaxstack.engines.space import load_space
    from jaxstack.engines.space_axes import restrict

    space = load_space(SPACE)
    allowed = restrict(space, {"request.batch": [batch]})
    zi = [a.name for a in space.axes].index("zip[0]")
    plan = search(space, top_k=k, allowed=allowed, plan_only=True, progress=False).stats
    if zip_rows is not None:
        allowed[zi] = np.array(zip_rows)
    res = search(space, top_k=k, allowed=allowed, progress=False)
    s, t = res.stats, res.timings
    frac = s["groups"] / max(plan["groups"], 1)
    est = t["level1_s"] / max(frac, 1e-12) + t["level2_s"]
    out = {"batch": batch, "zip_rows": zip_rows, "points": plan["points"], "groups_full": plan["groups"],
           "feasibility_pruned_full": plan["feasibility_pruned"], "groups_searched": s["groups"],
           "fraction_of_groups": frac, "run_s": t["run_s"], "wall_s": t["wall_s"], "compile_s": t["compile_s"],
           "level1_s": t["level1_s"],
           "level2_s": t["level2_s"], "bound_evals": s["bound_evals"], "exact_evals": s["exact_evals"],
           "level1_pruned": s["level1_pruned"], "feasibility_pruned": s["feasibility_pruned"],
           "points_searched": s["points"], "full_space_estimate_s": est if zip_rows is not None else t["run_s"],
           "best": {kk: v for kk, v in (res.best or {}).items() if not kk.startswith("t_")}}
    _log(f"search batch {batch}: {s['points']:.3g} points ({frac:.1%} of the {plan['groups']:,} feasible groups) in "
         f"{t['run_s']:.1f} s (+{t['compile_s']:.0f} s compile; level 1 {t['level1_s']:.1f} s, level 2 "
         f"{t['level2_s']:.1f} s); feasibility-pruned {s['feasibility_pruned']:.3g}, level-1-pruned "
         f"{s['level1_pruned']:.3g}, bounds {s['bound_evals']:,}, exact {s['exact_evals']:,}; best "
         f"{res.best['decode_tokens_per_s'] if res.best else float('nan'):,.1f} tok/s"
         + (f"; full space ~{est:.0f} s (extrapolated)" if zip_rows is not None else ""))
    return out


def run_ablation(batch: int, zip_rows) -> dict:
    import numpy as np

    from jaxstack.cli.search_cli import DEEPSTACK_TABLE4, format_ablation
    from jaxstack.engines import ablation as ab
    from jaxstack.engines.space import load_space

    space = load_space(SPACE)
    allowed = ab.restrict(space, {"request.batch": [batch]})
    if zip_rows is not None:     # the stacking stage searches these rows (and the baseline row)
        zi = [a.name for a in space.axes].index("zip[0]")
        allowed[zi] = np.array(sorted(set(zip_rows) | {ab.baseline(space, zi)}))
    rows = ab.ablation(space, allowed=allowed, progress=False)
    ref = DEEPSTACK_TABLE4.get(batch)
    _log(f"ablation batch {batch}:\n" + format_ablation(rows, ref))
    return {"batch": batch, "stages": [{kk: v for kk, v in r.items() if kk != "best"} | {
        "mapping": {m: r["best"][m] for m in r["best"] if m.startswith("mapping.")} if r["best"] else None}
        for r in rows], "deepstack": ref}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="CI size: 5e4-point check, one DRAM row, no ablation")
    ap.add_argument("--check-points", type=float, default=1e6, help="size of the exhaustive check (0 = skip)")
    ap.add_argument("--batches", default="4,1024")
    ap.add_argument("--zip-rows", default="6", help="DRAM (m, n) rows searched (indices 0-39) or 'all'")
    ap.add_argument("--ablation", action="store_true", help="also run the Table-4 ablation per batch")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--cpu-devices", type=int, default=1, help="JAX CPU devices to shard chunks over")
    args = ap.parse_args(argv)
    import jax

    import jaxstack  # noqa: F401 - before JAX's backend starts: its XLA:CPU defaults (edges/xla.py)

    if args.cpu_devices > 1:
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    if args.small:
        args.check_points, args.zip_rows = 5e4, "6"
    zip_rows = None if args.zip_rows == "all" else [int(x) for x in args.zip_rows.split(",")]
    out = {"device_kind": jax.devices()[0].device_kind, "devices": len(jax.devices()), "jax_version": jax.__version__,
           "cpu_count": os.cpu_count()}
    if args.check_points:
        out["check"] = run_check(int(args.check_points), args.top_k)
    out["search"] = [run_search(int(b), zip_rows, args.top_k) for b in args.batches.split(",")]
    if args.ablation:
        out["ablation"] = [run_ablation(int(b), zip_rows) for b in args.batches.split(",")]
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
