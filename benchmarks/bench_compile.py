"""Compile cost of the model: traced size, lowering and XLA compile time, and the wall time
of a cold and a warm ``jaxstack`` command.

    python benchmarks/bench_compile.py               # everything (a few minutes on 2 cores)
    python benchmarks/bench_compile.py --no-legacy   # without the pre-restructuring core
    python benchmarks/bench_compile.py --no-cli      # in-process numbers only

For each program (``evaluate`` of one point, the sweep step = ``jit(vmap(evaluate))`` on a
chunk, the relaxed gradient ``grad(decode_tokens_per_s)`` of one point, and with
``--legacy`` the same ``evaluate`` from ``tests/legacy``, the core this replaced): top-level
and total jaxpr equations (nested jaxprs counted), StableHLO lines, ``lower`` s and XLA
``compile`` s with the persistent cache off (a cold compile); ``evaluate_1pt_opts`` is the
one-point program as ``jaxstack eval`` compiles it (``jaxstack.edges.xla.single_point_options``).
Then each CLI command runs twice as a subprocess on a fresh, empty cache directory: ``cold`` (compiles and writes the
cache) and ``warm`` (loads it), wall seconds including Python and JAX start-up.

Prints ONE JSON line (device kind, JAX version, sizes, seconds) and a human summary on stderr.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

EVAL_ARGS = ["eval", "--hardware", "b200", "--fabric", "nvlink-b200x8", "--model", "llama-3-70b", "--tp", "8",
             "--batch", "64", "--input-len", "1024", "--output-len", "1024"]
EVAL_ARGS_2 = ["eval", "--hardware", "h200", "--fabric", "nvlink-h100x8", "--model", "mixtral-8x7b", "--tp", "4",
               "--ep", "2", "--batch", "32", "--input-len", "2048", "--output-len", "512"]
SWEEP_ARGS = ["sweep", str(ROOT / "spaces" / "hbm-whatif.yaml"), "--max-points", "20000", "--top-k", "3"]
GRAD_ARGS = EVAL_ARGS + ["--grad"]


def _count(jaxpr) -> int:
    n = 0
    for e in jaxpr.eqns:
        n += 1
        for p in e.params.values():
            inner = getattr(p, "jaxpr", None)
            if inner is not None:
                n += _count(getattr(inner, "jaxpr", inner))
    return n


def program(name, fn, *args, options=None) -> dict:
    import jax

    closed = jax.make_jaxpr(fn)(*args)
    t0 = time.perf_counter()
    lowered = jax.jit(fn, compiler_options=options).lower(*args)
    lower_s = time.perf_counter() - t0
    hlo_lines = lowered.as_text().count("\n")
    t0 = time.perf_counter()
    lowered.compile()
    compile_s = time.perf_counter() - t0
    return {"program": name, "jaxpr_eqns": len(closed.jaxpr.eqns), "jaxpr_eqns_total": _count(closed.jaxpr),
            "stablehlo_lines": hlo_lines, "lower_s": round(lower_s, 3), "compile_s": round(compile_s, 3)}


def cli(name, argv, cache_dir) -> dict:
    env = {**os.environ, "JAXSTACK_CACHE_DIR": cache_dir, "PYTHONPATH": str(ROOT)}
    env.pop("XLA_FLAGS", None)
    out = {"command": name, "argv": " ".join(argv)}
    for run in ("cold", "warm"):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "jaxstack.cli", *argv], env=env, capture_output=True, text=True)
        out[f"{run}_s"] = round(time.perf_counter() - t0, 2)
        if p.returncode != 0:
            out[f"{run}_error"] = p.stderr.strip().splitlines()[-1:]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-legacy", dest="legacy", action="store_false", help="skip the pre-restructuring core")
    ap.add_argument("--no-cli", dest="cli", action="store_false", help="skip the subprocess timings")
    ap.add_argument("--chunk", type=int, default=4096, help="designs per sweep step (default 4096)")
    args = ap.parse_args(argv)

    import jax
    import numpy as np

    jax.config.update("jax_enable_compilation_cache", False)     # cold compiles in this process
    from designs import base_design, random_designs

    from jaxstack.physics import relax
    from jaxstack.recipe.evaluate import evaluate

    d = base_design()
    batch = random_designs(args.chunk, seed=0)

    def grad_fn(x):
        with relax.relaxed(0.05):
            return jax.grad(lambda y: evaluate(y).decode_tokens_per_s)(x)

    from jaxstack.edges import xla

    rows = [program("evaluate", evaluate, d),
            # what `jaxstack eval` and point_evaluator compile: XLA:CPU's one-point options (edges/xla.py)
            program("evaluate_1pt_opts", evaluate, d, options=xla.single_point_options()),
            # float32 leaves (what the engines, point_evaluator and `jaxstack eval` pass)
            program("evaluate_f32", evaluate, jax.tree_util.tree_map(np.float32, d)),
            program("sweep_step", jax.vmap(evaluate), batch), program("relaxed_grad", grad_fn, d)]
    if args.legacy:
        from legacy.evaluate import evaluate as legacy

        rows.append(program("legacy_evaluate", legacy, d))
    cmds = []
    if args.cli:
        with tempfile.TemporaryDirectory() as cache:
            cmds.append(cli("eval", EVAL_ARGS, cache))
            t0 = time.perf_counter()
            env = {**os.environ, "JAXSTACK_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
            env.pop("XLA_FLAGS", None)
            subprocess.run([sys.executable, "-m", "jaxstack.cli", *EVAL_ARGS_2], env=env, capture_output=True)
            cmds.append({"command": "eval, other values (warm)", "argv": " ".join(EVAL_ARGS_2),
                         "warm_s": round(time.perf_counter() - t0, 2)})
            cmds.append(cli("sweep", SWEEP_ARGS, cache))
            cmds.append(cli("eval --grad", GRAD_ARGS, cache))
    dev = jax.devices()[0]
    print(json.dumps({"bench": "compile", "device": dev.device_kind, "platform": dev.platform,
                      "jax": jax.__version__, "cores": os.cpu_count(), "chunk": args.chunk, "programs": rows,
                      "commands": cmds}))
    for r in rows:
        print(f"{r['program']:18s} {r['jaxpr_eqns']:7,d} eqns ({r['jaxpr_eqns_total']:,d} total) "
              f"{r['stablehlo_lines']:7,d} StableHLO lines  lower {r['lower_s']:6.2f} s  "
              f"compile {r['compile_s']:6.2f} s", file=sys.stderr)
    for c in cmds:
        cold = f"cold {c['cold_s']:6.2f} s  " if "cold_s" in c else " " * 15
        print(f"jaxstack {c['command']:28s} {cold}warm {c['warm_s']:6.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
