"""L5: the ``jaxstack`` command line (glue only; no model logic here)."""

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _add_sweep(sub):
    from . import sweep_cli

    sweep_cli.add_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxstack", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    from . import eval_cli

    eval_cli.add_parser(sub)
    from . import validate_cli

    validate_cli.add_parser(sub)
    ps = sub.add_parser("presets", help="list hardware, fabric and model presets")
    ps.set_defaults(func=_presets)
    try:
        _add_sweep(sub)
    except ImportError:  # sweep engine not present in this build
        pass
    from . import search_cli

    search_cli.add_parser(sub)
    from . import plot_cli

    plot_cli.add_parser(sub)
    from . import optimize_cli

    optimize_cli.add_parser(sub)
    return p


def _presets(args) -> int:
    from . import io

    for kind in ("hardware", "fabric", "model"):
        print(f"{kind}:")
        for name in io.preset_names(kind):
            src = io.load_preset(kind, name)["source"]
            print(f"  {name:24s} {str(src)[:90]}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from . import cache
    from .io import ConfigError

    args = build_parser().parse_args(argv)
    cache.enable()
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"jaxstack: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
