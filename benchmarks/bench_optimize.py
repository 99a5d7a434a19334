"""Gradient co-optimisation vs exhaustive sweep: how often does ``optimize`` find the grid
optimum, and with how many fewer evaluated points?

    python benchmarks/bench_optimize.py                 # 50 problems on a 1,935,360-point space
    python benchmarks/bench_optimize.py --small         # 10 problems on a 387,072-point space
    python benchmarks/bench_optimize.py --problems 20 --steps 80 --starts 2

Space (built here; Llama-3-70B decode on 256 stacked-3d chips): DRAM layers 2..16 x
connected layers {1, 2, 4, 8} x compute units 4..32 x clock 1.2..2.1 GHz x SRAM
{128, 256, 512} KiB x L1 link {64..512} GB/s x batch 16..1024 (7 values) x every
factorisation of 256 into (tp, pp, dp) (45; --small: (tp, dp), 9) = 1,935,360 points.

Method: one exhaustive ``sweep(dump=True)`` gives every metric of every point; each of the
``--problems`` random problems (objective among decode_tokens_per_s / tokens_per_J /
user_tokens_per_s; 1-2 random constraints among power_W, memory and TPOT, each with a
threshold at a random 20-80 % quantile of its feasible values) takes its exhaustive
optimum from the dump (numpy) and runs ``optimize`` (all problems share its two compiled
functions). Reported per problem and in total: objective ratio optimiser / exhaustive
(within 2 % = success; goal >= 90 %), exact evaluations vs grid points (goal >= 100x fewer),
relaxed gradient evaluations, times; and the agreement of the optimiser's exact metrics with
the sweep's at the same index.

Prints ONE JSON line on stdout and a human summary on stderr.
"""

import argparse
import json
import sys
import time

import numpy as np

OBJECTIVES = ("decode_tokens_per_s", "tokens_per_J", "user_tokens_per_s")
CONSTRAINTS = {"power_W": ("power_W", 1.0), "memory_bytes": ("memory_GiB", 2.0**-30), "tpot_s": ("tpot_ms", 1e3)}


def space_dict(small: bool) -> dict:
    return {
        "version": 1,
        "description": "bench_optimize: Llama-3-70B decode on 256 stacked-3d chips",
        "base": {"hardware": "stacked-3d", "fabric": "stacked-256", "model": "llama-3-70b",
                 "request": {"batch": 256, "input_len": 1024, "output_len": 1024}},
        "axes": {"dram.total_layers": {"range": [2, 16], "step": 2},
                 "dram.connected_layers": {"choices": [1, 2, 4, 8]},
                 "chip.compute_units": {"range": [4, 32], "count": 4, "scale": "log"},
                 "chip.clock_GHz": {"range": [1.2, 2.1], "count": 4},
                 "chip.sram_capacity_KiB": {"choices": [128, 256, 512]},
                 "fabric.l1.link_bandwidth_GBps": {"choices": [64, 128, 256, 512]},
                 "request.batch": {"range": [16, 1024], "count": 7, "scale": "log"}},
        "mapping": {"factorizations": 256, "axes": ["tp", "dp"] if small else ["tp", "pp", "dp"]},
        "objective": "decode_tokens_per_s",
    }


def problems(dump: dict, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    ok = dump["feasible"]
    out = []
    for _ in range(n):
        cons = []
        for metric in rng.choice(list(CONSTRAINTS), size=rng.integers(1, 3), replace=False):
            key, per = CONSTRAINTS[str(metric)]
            q = rng.uniform(0.2, 0.8)
            v = float(np.quantile(dump[str(metric)][ok], q)) * per
            cons.append(f"{key}<={v:.6g}")
        out.append({"objective": str(rng.choice(OBJECTIVES)), "constraints": cons})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="9 mappings instead of 45, 10 problems, 60 steps")
    ap.add_argument("--problems", type=int, help="random problems (default 50; --small 10)")
    ap.add_argument("--steps", type=int, help="descent steps (default 100; --small 60)")
    ap.add_argument("--starts", type=int, default=4, help="random starts per discrete combination")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", action="store_true", help="persistent XLA compilation cache (grad.enable_compile_cache)")
    args = ap.parse_args(argv)
    n_prob = args.problems or (10 if args.small else 50)
    steps = args.steps or (60 if args.small else 100)

    import jax

    from jaxstack.engines import grad
    from jaxstack.engines.optimize import optimize, parse_constraint
    from jaxstack.engines.space import space_from_dict
    from jaxstack.engines.sweep import sweep
    from jaxstack.types.metrics import HIGHER_IS_BETTER

    if args.cache:
        grad.enable_compile_cache()
    space = space_from_dict(space_dict(args.small), "<bench_optimize>")
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    log(f"space: {space.size:,} points; exhaustive sweep (dump) ...")
    t0 = time.perf_counter()
    ref = sweep(space, dump=True, progress=False)
    sweep_s = time.perf_counter() - t0
    dump = ref.dump
    log(f"  {ref.points:,} points, {ref.feasible:,} feasible, {sweep_s:.1f} s "
        f"(compile {ref.timings['compile_s']:.1f} s)")
    rows = []
    for k, prob in enumerate(problems(dump, n_prob, args.seed)):
        obj, cons = prob["objective"], prob["constraints"]
        sign = 1.0 if HIGHER_IS_BETTER[obj] else -1.0
        ok = dump["feasible"].copy()
        for c in cons:
            lim = parse_constraint(c)
            ok &= dump[lim.metric] <= lim.hi
        i_best = int(np.argmax(np.where(ok, sign * dump[obj], -np.inf)))
        best = float(dump[obj][i_best])
        t1 = time.perf_counter()
        res = optimize(space, obj, cons, steps=steps, starts=args.starts, seed=args.seed + k)
        dt = time.perf_counter() - t1
        got = res.best[obj] if res.best else float("nan")
        ratio = got / best if sign > 0 else best / got
        agree = abs(res.best[obj] / dump[obj][res.best["index"]] - 1.0) if res.best else float("nan")
        rows.append({"objective": obj, "constraints": cons, "exhaustive": best, "exhaustive_index": i_best,
                     "optimised": got, "index": res.best["index"] if res.best else None, "ratio": ratio,
                     "within_2pct": bool(ratio >= 0.98), "exact_evaluations": res.exact_evaluations,
                     "relaxed_evaluations": res.relaxed_evaluations, "time_s": dt, "sweep_agreement": agree,
                     "feasible_points": int(ok.sum())})
        log(f"  {k + 1:2d}/{n_prob} {obj:20s} {' '.join(cons):44s} ratio {ratio:.4f} "
            f"exact {res.exact_evaluations:5d} ({space.size / res.exact_evaluations:,.0f}x fewer) {dt:5.1f} s")
    ratios = np.array([r["ratio"] for r in rows])
    exact = np.array([r["exact_evaluations"] for r in rows])
    relaxed = np.array([r["relaxed_evaluations"] for r in rows])
    times = np.array([r["time_s"] for r in rows])
    summary = {
        "benchmark": "bench_optimize", "device_kind": jax.devices()[0].device_kind, "jax_version": jax.__version__,
        "space_points": space.size, "problems": n_prob, "steps": steps, "starts": args.starts, "small": args.small,
        "fraction_within_2pct": float(np.mean(ratios >= 0.98)),
        "fraction_exact_optimum": float(np.mean(ratios >= 1 - 1e-6)),
        "median_ratio": float(np.median(ratios)), "worst_ratio": float(np.min(ratios)),
        "median_exact_evaluations": float(np.median(exact)), "max_exact_evaluations": int(exact.max()),
        "median_fewer_exact_points": float(space.size / np.median(exact)),
        "min_fewer_exact_points": float(space.size / exact.max()),
        "median_relaxed_evaluations": float(np.median(relaxed)),
        "median_fewer_points_incl_relaxed": float(space.size / np.median(exact + relaxed)),
        "sweep_s": sweep_s, "sweep_compile_s": ref.timings["compile_s"], "first_problem_s": float(times[0]),
        "median_problem_s": float(np.median(times[1:] if len(times) > 1 else times)),
        "max_sweep_disagreement": float(np.nanmax([r["sweep_agreement"] for r in rows])),
        "rows": rows,
    }
    print(json.dumps(summary, default=float))
    log(f"\n{n_prob} problems on {space.size:,} points: {100 * summary['fraction_within_2pct']:.0f} % within 2 % "
        f"of the exhaustive optimum (goal >= 90 %), {100 * summary['fraction_exact_optimum']:.0f} % exactly "
        f"optimal, worst "
        f"ratio {summary['worst_ratio']:.4f}")
    log(f"exact evaluations: median {summary['median_exact_evaluations']:.0f} = "
        f"{summary['median_fewer_exact_points']:,.0f}x fewer than the grid "
        f"(worst {summary['min_fewer_exact_points']:,.0f}x; "
        f"goal >= 100x); with relaxed gradient evaluations counted too: "
        f"{summary['median_fewer_points_incl_relaxed']:,.0f}x fewer")
    log(f"time: sweep {sweep_s:.0f} s; first problem {times[0]:.0f} s (compiles), then median "
        f"{summary['median_problem_s']:.1f} s per problem; optimiser vs sweep metrics max rel. diff "
        f"{summary['max_sweep_disagreement']:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
