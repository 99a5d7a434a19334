"""L5: ``jaxstack plot RUN_DIR`` (glue only: parse flags, call ``plot.plot_run``, list files).

Examples::

    jaxstack sweep spaces/hbm-whatif.yaml --sample 1e5 --dump --out runs/q && jaxstack plot runs/q
    jaxstack plot runs/q --x request.batch --y mapping --metric energy_per_token_J --format svg
    jaxstack validate --out runs/validate && jaxstack plot runs/validate      # predicted vs measured

Figures go to ``RUN_DIR/plots/`` (or ``--out``): ``pareto``, ``heatmap`` (needs a sweep
with ``--dump``), ``breakdown``; ``validation`` for a ``jaxstack validate`` directory.
Needs matplotlib: ``pip install 'jaxstack[plot]'``.
"""

import argparse
import sys

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "plot", help="standard figures (Pareto, heatmap, breakdown) of a sweep run directory",
        description="Plot a `jaxstack sweep --out` run directory (or `jaxstack validate --out`).\n\n"
        + __doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="run directory written by `jaxstack sweep --out` (or `jaxstack validate --out`)")
    p.add_argument("--out", help="where the figures go (default: RUN_DIR/plots)")
    p.add_argument("--format", default="png,svg", help="comma-separated: png, svg, pdf (default png,svg)")
    p.add_argument("--x", help="heatmap x axis: a swept column (e.g. request.batch), its last part, or 'mapping'")
    p.add_argument("--y", help="heatmap y axis (default: the two swept axes with the most values)")
    p.add_argument("--metric", help="heatmap metric (default: the run's objective)")
    p.add_argument("--top", type=int, default=10, help="designs in the breakdown (default 10)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..edges import io
    from ..engines.plot import plot_run

    io.check_out_dir(args.out)
    formats = tuple(f.strip().lower().lstrip(".") for f in args.format.split(",") if f.strip())
    files, notes = plot_run(args.run_dir, out=args.out, formats=formats, x=args.x, y=args.y,
                            metric=args.metric, top_n=max(1, args.top))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for f in files:
        print(f)
    return 0
