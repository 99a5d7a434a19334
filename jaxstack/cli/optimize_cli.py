"""L5: ``jaxstack optimize SPACE.yaml`` (glue only: parse flags, run ``optimize``, print a table).

Examples::

    jaxstack optimize spaces/quickstart.yaml --steps 150 --starts 8
    jaxstack optimize spaces/quickstart.yaml --objective tokens_per_J --constraint 'tpot_ms<=30' \\
        --constraint 'power_W<=900' --optimizer adam --lr 0.05 --json
    jaxstack optimize S.yaml --out runs/opt          # + trajectory.csv, top.csv, summary.json

The continuous axes of the space are optimised by gradient descent through the relaxed
model; discrete axes are enumerated; the result is snapped to the grid and verified
exactly (``jaxstack/engines/optimize.py``). The first run compiles the relaxed gradient (minutes
on a CPU); compiled code is cached in ~/.cache/jaxstack/jax ($JAXSTACK_CACHE_DIR, 'off'
disables it).
"""

import argparse
import csv
import sys
from pathlib import Path

from ..edges import io

__all__ = ["add_parser", "run"]


def _pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START,END (e.g. 0.3,0.02), got {text!r}") from None
    if a <= 0 or b <= 0:
        raise argparse.ArgumentTypeError(f"expected positive values, got {text!r}")
    return a, b


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..engines.optimize import DEFAULTS

    p = subparsers.add_parser(
        "optimize", help="gradient co-optimisation of a design space's continuous axes, verified exactly",
        description="Optimise a space YAML by gradient descent in relaxed mode, snap to the grid and verify "
        "exactly.\n\n" + __doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("space", help="space YAML (see jaxstack/engines/space.py for the schema)")
    p.add_argument("--objective", help="metric (default: the space's, else decode_tokens_per_s); direction "
                   "from metrics.HIGHER_IS_BETTER")
    p.add_argument("--constraint", action="append", default=[], metavar="METRIC<=V",
                   help="e.g. 'power_W<=700', 'tpot_ms<=50', 'memory_GiB<=100', 'user_tokens_per_s>=20' "
                   "(repeatable; added to the space's limits)")
    p.add_argument("--optimizer", default=DEFAULTS["optimizer"], help="optax optimizer name (default adam)")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="learning rate in normalised [0, 1] "
                   f"parameter units (default {DEFAULTS['lr']})")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help=f"descent steps (default {DEFAULTS['steps']})")
    p.add_argument("--starts", type=int, default=DEFAULTS["starts"],
                   help=f"random starts per discrete combination (default {DEFAULTS['starts']})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tau", type=_pair, default=DEFAULTS["tau"], metavar="START,END",
                   help="relaxation temperature, annealed geometrically (default 0.3,0.02)")
    p.add_argument("--weight", type=_pair, default=DEFAULTS["weight"], metavar="START,END",
                   help="constraint penalty weight schedule (default 1,1000)")
    p.add_argument("--max-combos", type=int, default=DEFAULTS["max_combos"],
                   help="discrete combinations optimised (more are screened exactly first)")
    p.add_argument("--polish", type=int, default=DEFAULTS["polish"],
                   help="exact local-search rounds (single and pairwise +-1 steps, discrete swaps)")
    p.add_argument("--top-k", type=int, default=10, help="designs to print (default 10)")
    p.add_argument("--out", help="directory: trajectory.csv, top.csv, summary.json")
    p.add_argument("--json", action="store_true", help="print the summary and rows as JSON")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..edges.io import ConfigError
    from ..engines.grad import enable_compile_cache
    from ..engines.optimize import optimize, parameters
    from ..engines.space import load_space
    from .sweep_cli import format_table

    io.check_out_dir(args.out)

    for name in ("steps", "starts", "top_k", "max_combos"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: {getattr(args, name)}; allowed: an integer >= 1")
    enable_compile_cache()
    space = load_space(args.space)
    params, disc = parameters(space)
    if not args.json:
        print(f"{space.path}: {space.size:,} grid points; {len(params)} continuous parameters "
              f"({', '.join(p.name + (' [log]' if p.log else '') for p in params) or 'none'})", file=sys.stderr)
        if disc:
            print("  discrete (enumerated): " + ", ".join(f"{space.axes[a].name} ({space.axes[a].size})" for a in disc),
                  file=sys.stderr)
        print("  compiling the relaxed gradient (minutes on a CPU the first time) ...", file=sys.stderr)
    res = optimize(space, args.objective, args.constraint, optimizer=args.optimizer, lr=args.lr, steps=args.steps,
                   starts=args.starts, seed=args.seed, tau=args.tau, weight=args.weight, max_combos=args.max_combos,
                   polish=args.polish, top_k=args.top_k)
    if args.out:
        write_outputs(res, Path(args.out))
    summ = res.summary()
    if args.json:
        print(io.dumps_json({**summ, "top": res.top}, indent=None, default=float))
        return 0
    for note in res.notes:
        print(f"note: {note}")
    lim = ", ".join(x.describe() for x in res.limits) or "none"
    print(f"\nbest {len(res.top)} feasible designs by {res.objective} ({summ['direction']}), limits: {lim}:")
    print(format_table(space, res.top, res.objective))
    print(f"\n{res.exact_evaluations:,} exact evaluations ({summ['fewer_points_than_sweep']:,.0f}x fewer than the "
          f"{space.size:,}-point sweep) + {res.relaxed_evaluations:,} relaxed gradient evaluations "
          f"({res.combos_optimised} combos x {args.starts} starts x {args.steps} steps)")
    t = res.timings
    print(f"time {t['total_s']:.1f} s (first step incl. compile {t['first_step_s']:.1f} s, {t['device_kind']})")
    if args.out:
        print(f"results in {args.out}/ (trajectory.csv, top.csv, summary.json)")
    return 0


def write_outputs(res, out: Path):
    """trajectory.csv (one row per step and start, parameters in user units), top.csv, summary.json."""
    out.mkdir(parents=True, exist_ok=True)
    tr = res.trajectory
    names = [p.name for p in res.params]
    with io.atomic_writer(out / "trajectory.csv", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "start", "combo", "tau", "weight", "loss", f"relaxed_{res.objective}", "violation", *names])
        for s in range(len(tr["tau"])):
            xs = [p.x(tr["z"][s][:, j])[0] / p.per_user for j, p in enumerate(res.params)]
            for b in range(tr["z"].shape[1]):
                w.writerow([s, b, int(tr["combo"][b]), f"{tr['tau'][s]:.6g}", f"{tr['weight'][s]:.6g}",
                            f"{tr['loss'][s][b]:.6g}", f"{tr['objective'][s][b]:.6g}", f"{tr['violation'][s][b]:.6g}",
                            *(f"{x[b]:.6g}" for x in xs)])
    if res.top:
        with io.atomic_writer(out / "top.csv", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(res.top[0]))
            w.writeheader()
            w.writerows(res.top)
    io.write_text_atomic(out / "summary.json", io.dumps_json(res.summary(), indent=1, default=float) + "\n")
