"""Speed-up of the vectorised model over the float64 scalar reference (tests/reference.py).

    python benchmarks/bench_reference.py                 # 200 scalar points, numpy 2e4, jit(vmap) 1e6
    python benchmarks/bench_reference.py --batch 1e5 --ref-batch 1e5
    python benchmarks/bench_reference.py --smoke         # tiny, for CI

``tests/reference.py`` is an independent plain-Python + numpy float64 re-implementation of
``jaxstack.evaluate`` written from the module docstrings (the test oracle; it agrees with the
model to ~3e-7). It works element-wise on python floats or on numpy arrays of points, so it
is timed three ways on random designs from ``tests/designs.py`` (every preset, dense / MoE /
MLA, random mappings, requests and perturbations):

  reference, scalar   one design as a dict of python floats, looped over ``--scalar-points``
                      designs (the cost of a hand-written per-point Python model);
  reference, numpy    one call on float64 arrays of ``--ref-batch`` designs, per point;
  jaxstack, jit       ``jax.jit(evaluate)`` on one device-resident design after compile,
                      mean over the same scalar designs (``block_until_ready`` each call);
  jaxstack, vmap      ``jax.jit(jax.vmap(evaluate))`` on ``--batch`` float32 designs after
                      compile, best of ``--repeat`` runs, per point.

Speed-up = reference s/point / jaxstack s/point, all measured in the same run. As a sanity
check the script also reports the largest relative difference of TPOT / TTFT between the
numpy reference and jaxstack on the reference batch (same designs).

Prints ONE JSON line on stdout (device kind, JAX and numpy versions, sizes, seconds per point,
ratios), then a human summary on stderr.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def _point(tree, i):
    """Design ``i`` of a nested dict of arrays, as a nested dict of python floats."""
    if isinstance(tree, dict):
        return {k: _point(v, i) for k, v in tree.items()}
    return float(tree[i])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scalar-points", type=int, default=200, help="designs looped one by one (python floats)")
    ap.add_argument("--ref-batch", type=float, default=2e4, help="designs in the numpy-vectorised reference call")
    ap.add_argument("--batch", type=float, default=1e6, help="designs in the jit(vmap) batch")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs of each batched call (best kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    args = ap.parse_args(argv)

    import jax
    import numpy as np
    from designs import as_dict, random_designs
    from reference import reference

    from jaxstack.recipe.evaluate import evaluate

    n_scalar = 5 if args.smoke else args.scalar_points
    n_ref = 200 if args.smoke else int(args.ref_batch)
    n_jax = 2_000 if args.smoke else int(args.batch)
    repeat = 1 if args.smoke else max(1, args.repeat)

    def best(fn):
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
        return min(runs)

    # ---- reference, scalar: python floats, one design at a time
    small = random_designs(n_scalar, seed=args.seed)
    small_np = as_dict(small)
    points = [_point(small_np, i) for i in range(n_scalar)]
    with np.errstate(all="ignore"):
        reference(points[0])                             # warm-up
        t0 = time.perf_counter()
        scalar_tpot = [reference(p)["tpot_s"] for p in points]
        ref_scalar = (time.perf_counter() - t0) / n_scalar

    # ---- jaxstack, jit: one design per call, same designs
    single = jax.jit(evaluate)
    singles = [jax.device_put(jax.tree_util.tree_map(lambda x, i=i: np.float32(x[i]), small)) for i in range(n_scalar)]
    t0 = time.perf_counter()
    jax.block_until_ready(single(singles[0]))
    compile_single = time.perf_counter() - t0
    t0 = time.perf_counter()
    jit_tpot = [float(jax.block_until_ready(single(d)).tpot_s) for d in singles]
    jax_single = (time.perf_counter() - t0) / n_scalar

    # ---- reference, numpy-vectorised
    batch = random_designs(max(n_ref, n_jax), seed=args.seed + 1)
    ref_in = as_dict(jax.tree_util.tree_map(lambda x: x[:n_ref], batch))
    with np.errstate(all="ignore"):
        ref_out = {}
        ref_numpy = best(lambda: ref_out.update(reference(ref_in))) / n_ref

    # ---- jaxstack, jit(vmap): compile on the big shape, then time; agreement on the ref slice
    batched = jax.jit(jax.vmap(evaluate))
    big = jax.device_put(jax.tree_util.tree_map(lambda x: x[:n_jax], batch))
    t0 = time.perf_counter()
    m = jax.block_until_ready(batched(big))
    first = time.perf_counter() - t0
    run = best(lambda: jax.block_until_ready(batched(big)))
    jax_vmap = run / n_jax

    def rel(a, b):   # on the designs both batches share (the first min(n_ref, n_jax))
        k = min(len(a), len(b))
        a, b = np.asarray(a, np.float64)[:k], np.asarray(b, np.float64)[:k]
        return float(np.max(np.abs(a / b - 1.0)))

    agree = {"tpot_rel_max": rel(m.tpot_s, ref_out["tpot_s"]), "ttft_rel_max": rel(m.ttft_s, ref_out["ttft_s"]),
             "scalar_vs_jit_tpot_rel_max": rel(jit_tpot, scalar_tpot)}

    dev = jax.devices()
    out = {
        "bench": "reference", "device_kind": dev[0].device_kind, "platform": dev[0].platform, "devices": len(dev),
        "cpu_count": os.cpu_count(), "jax_version": jax.__version__, "numpy_version": np.__version__,
        "smoke": args.smoke, "scalar_points": n_scalar, "ref_batch": n_ref, "batch": n_jax, "repeat": repeat,
        "per_point_s": {"reference_scalar": ref_scalar, "reference_numpy": ref_numpy, "jaxstack_jit": jax_single,
                        "jaxstack_vmap": jax_vmap},
        "compile_s": {"jit": compile_single, "vmap": first - run},
        "speedup": {"vmap_vs_reference_scalar": ref_scalar / jax_vmap, "vmap_vs_reference_numpy": ref_numpy / jax_vmap,
                    "jit_vs_reference_scalar": ref_scalar / jax_single, "numpy_vs_scalar": ref_scalar / ref_numpy},
        "agreement": agree,
    }
    print(json.dumps(out))
    pp = out["per_point_s"]
    sp = out["speedup"]
    p = lambda *a: print(*a, file=sys.stderr)  # noqa: E731
    p(f"\n{dev[0].device_kind} ({os.cpu_count()} CPUs), JAX {jax.__version__}, numpy {np.__version__}; "
      f"compile {compile_single:.1f} s (jit) / {first - run:.1f} s (vmap)")
    p(f"{'model':28s} {'points':>10s} {'s/point':>10s} {'points/s':>12s} {'vmap speed-up':>14s}")
    for name, key, n in (("reference, scalar (python)", "reference_scalar", n_scalar),
                         ("reference, numpy float64", "reference_numpy", n_ref),
                         ("jaxstack, jit(evaluate)", "jaxstack_jit", n_scalar),
                         ("jaxstack, jit(vmap(evaluate))", "jaxstack_vmap", n_jax)):
        p(f"{name:28s} {n:>10,} {pp[key]:10.3e} {1 / pp[key]:12,.0f} {pp[key] / jax_vmap:13,.0f}x")
    p(f"jit(vmap) is {sp['vmap_vs_reference_scalar']:,.0f}x the scalar reference and "
      f"{sp['vmap_vs_reference_numpy']:,.0f}x the numpy-vectorised one per point; one jit call is "
      f"{sp['jit_vs_reference_scalar']:,.0f}x a scalar reference call. Agreement (float32 vs float64): "
      f"TPOT {agree['tpot_rel_max']:.1e}, TTFT {agree['ttft_rel_max']:.1e} max rel. diff.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
