"""L5: the ``jaxstack`` command line (glue only; no model logic here)."""

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

__all__ = ["main"]


def _add_sweep(sub):
    from . import sweep_cli

    sweep_cli.add_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxstack", description=__doc__,
                                epilog="--debug (anywhere): show the Python traceback of an internal error; "
                                "--calibration FILE (anywhere): apply a `jaxstack calibrate` file to every design")
    sub = p.add_subparsers(dest="command", required=True)
    from . import eval_cli

    eval_cli.add_parser(sub)
    from . import validate_cli

    validate_cli.add_parser(sub)
    from . import presets_cli

    presets_cli.add_parser(sub)
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
    from . import validate_cli

    validate_cli.add_calibrate_parser(sub)
    from . import disagg_cli

    disagg_cli.add_parser(sub)
    return p


EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Exit codes: 0 done (infeasible points included), 2 bad input (one line
    naming the file, key and allowed values), 1 internal error (one line; the traceback with
    ``--debug`` or ``JAXSTACK_DEBUG=1``), 130 interrupted."""
    from ..edges import cache
    from ..edges.io import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("JAXSTACK_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    calibration = None
    if "--calibration" in argv:                      # global: applies to every design of any command
        i = argv.index("--calibration")
        if i + 1 >= len(argv):
            print("jaxstack: error: --calibration needs a FILE (written by `jaxstack calibrate`)", file=sys.stderr)
            return EXIT_INPUT
        calibration = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    args = build_parser().parse_args(argv)
    cache.enable()
    try:
        from ..edges.io import use_calibration

        use_calibration(calibration)            # None: no user calibration for this command
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"jaxstack: error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:            # `jaxstack ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("jaxstack: interrupted (a sweep or search with --out resumes with --resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:             # noqa: BLE001 - the last line of defence: never a raw traceback
        if debug:
            traceback.print_exc()
        msg = " ".join(str(e).split())[:300]
        print(f"jaxstack: internal error: {type(e).__name__}: {msg}\n  (a bug: please report it with the command line; "
              "rerun with --debug or JAXSTACK_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
