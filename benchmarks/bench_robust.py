"""Robustness of the model far from the presets: 10^6 random designs whose continuous
hardware leaves are each multiplied by a log-uniform factor in [0.25, 4] (then put back in
their declared domains), evaluated in chunks. Counts the points per Reason and checks that
no metric of any point (feasible or not) is NaN or infinite (issue 18).

    python benchmarks/bench_robust.py              # 10^6 designs
    python benchmarks/bench_robust.py --n 1e5      # quicker
    python benchmarks/bench_robust.py --smoke      # 2e4 (CI-sized)

Prints ONE JSON line (device kind, JAX version, n, seconds, reason counts, non-finite
counts) and a human summary on stderr.
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=lambda s: int(float(s)), default=1_000_000, help="designs")
    ap.add_argument("--chunk", type=lambda s: int(float(s)), default=50_000, help="designs per evaluate call")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    n = 20_000 if args.smoke else args.n

    import jax
    import numpy as np
    from designs import jittered_designs

    from jaxstack.recipe.evaluate import evaluate
    from jaxstack.types.metrics import Metrics, Reason

    fn = jax.jit(jax.vmap(evaluate))
    names = [f.name for f in dataclasses.fields(Metrics)]
    reasons = np.zeros(len(Reason), np.int64)
    nonfinite = dict.fromkeys(names, 0)
    nonfinite_feasible = 0
    compile_s = run_s = 0.0
    for i, start in enumerate(range(0, n, args.chunk)):
        m_n = min(args.chunk, n - start)
        d = jittered_designs(args.chunk, seed=1000 + i)
        t0 = time.perf_counter()
        m = jax.block_until_ready(fn(d))
        dt = time.perf_counter() - t0
        if i == 0:
            compile_s = dt
        else:
            run_s += dt
        feas = np.asarray(m.feasible)[:m_n]
        reasons += np.bincount(np.asarray(m.reason)[:m_n], minlength=len(Reason))
        bad_any = np.zeros(m_n, bool)
        for k in names:
            bad = ~np.isfinite(np.asarray(getattr(m, k), np.float64)[:m_n])
            nonfinite[k] += int(bad.sum())
            bad_any |= bad
        nonfinite_feasible += int((bad_any & feas).sum())
    out = {"bench": "robust", "device_kind": jax.devices()[0].device_kind, "jax_version": jax.__version__,
           "n": n, "jitter": [0.25, 4.0], "first_chunk_s_incl_compile": round(compile_s, 2),
           "run_s": round(run_s, 2), "reasons": {r.name: int(reasons[int(r)]) for r in Reason},
           "nonfinite_values": sum(nonfinite.values()), "nonfinite_feasible_points": nonfinite_feasible}
    print(json.dumps(out))
    feas = out["reasons"]["ok"]
    print(f"{n:,} jittered designs: {feas:,} feasible ({100 * feas / n:.1f} %), "
          f"{out['reasons']['numerical']:,} numerical ({100 * out['reasons']['numerical'] / n:.3f} %); "
          f"non-finite values: {out['nonfinite_values']} (feasible points with one: {nonfinite_feasible}); "
          f"reasons {out['reasons']}", file=sys.stderr)
    return 0 if out["nonfinite_values"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
