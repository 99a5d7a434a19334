"""L5: ``jaxstack validate`` — predicted vs measured on the shipped measurement sets."""

import sys

from . import io, validate
from .validation import SET_MODULES

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("validate", help="compare predictions with real measurements",
                       description="Evaluate every validation case, print per-case and per-set errors, "
                                   "write a CSV, summary.json and a predicted-vs-measured plot.")
    p.add_argument("--set", action="append", choices=sorted(SET_MODULES), help="set(s) to run (default: all)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--cases", action="store_true", help="print every case")
    p.add_argument("--out", default="runs/validate", help="output directory (default: runs/validate)")
    p.add_argument("--fit", action="store_true", help="re-fit the global calibration constants first")
    p.add_argument("--uncalibrated", action="store_true", help="ignore fitted constants (raw presets)")
    p.add_argument("--record", action="store_true", help="store the errors as the regression baseline")
    p.set_defaults(func=run)
    return p


def _pct(e, key):
    return f"{e[key]:6.2f}" if e else "     -"


def run(args) -> int:
    io.check_out_dir(args.out)
    if (args.fit or args.record) and not io.in_source_checkout():
        raise io.ConfigError(f"--{'fit' if args.fit else 'record'}: rewrites the calibration / baseline shipped "
                             "inside the package; allowed only in a source checkout (git clone + pip install -e)")
    names = args.set or list(SET_MODULES)
    if args.fit:
        for name in names:
            if name in validate.FITS:
                res = validate.fit(name)
                print(f"fitted {name}: {res['fitted']} (calibration MAPE {res['calibration_mape_pct']:.2f} %)",
                      file=sys.stderr)
    rows = validate.run_sets(names, calibrated=not args.uncalibrated)
    summary = validate.summarize(rows)
    files = validate.write_outputs(rows, summary, args.out)
    if args.record:
        rec = {e["set"]: {k: round(e["all"][k], 3) for k in ("mape_pct", "weighted_pct")}
               for e in summary if e["panel"] == "*"}
        io.write_text_atomic(validate.RECORDED, io.dumps_json(rec, indent=2) + "\n")
    if args.json:
        print(io.dumps_json(summary), end="")
        print()
        return 0
    if args.cases:
        print(f"{'case':40s} {'split':12s} {'measured':>12s} {'predicted':>12s} {'err %':>7s} {'DeepStack %':>11s}")
        for r in rows:
            ds = f"{100 * (r['deepstack'] / r['measured'] - 1):+11.1f}" if r.get("deepstack") == r.get("deepstack") \
                and "deepstack" in r else f"{'':>11s}"
            print(f"{r['case'][:40]:40s} {r['split']:12s} {r['measured']:12.5g} {r['predicted']:12.5g} "
                  f"{100 * (r['predicted'] / r['measured'] - 1):+7.1f} {ds}")
        print()
    print(f"{'set':18s} {'panel':28s} {'n':>4s} | {'MAPE %':>6s} {'wtd %':>6s} | {'cal MAPE':>8s} "
          f"{'hold MAPE':>9s} | {'DeepStack MAPE':>14s} {'wtd':>6s}")
    for e in summary:
        a = e["all"]
        print(f"{e['set']:18s} {e['panel'][:28]:28s} {a['n']:4d} | {_pct(a, 'mape_pct')} {_pct(a, 'weighted_pct')} | "
              f"{_pct(e['calibration'], 'mape_pct'):>8s} {_pct(e['holdout'], 'mape_pct'):>9s} | "
              f"{_pct(e['deepstack'], 'mape_pct'):>14s} {_pct(e['deepstack'], 'weighted_pct')}")
    print("\nwrote: " + ", ".join(files))
    return 0
