"""L5: ``jaxstack validate`` — predicted vs measured on the shipped measurement sets."""

import sys
from pathlib import Path

from ..edges import io
from ..engines import validate
from ..validation import SET_MODULES

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("validate", help="compare predictions with real measurements",
                       description="Evaluate every validation case, print per-case and per-set errors, "
                                   "write a CSV, summary.json and a predicted-vs-measured plot.")
    p.add_argument("--set", action="append", choices=sorted(SET_MODULES), help="set(s) to run (default: all)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--cases", action="store_true", help="print every case")
    p.add_argument("--out", default="runs/validate", help="output directory (default: runs/validate)")
    p.add_argument("--fit", action="store_true", help="re-fit the calibration model (software-stack overheads per "
                   "engine, achieved hardware fractions per GPU; calibration.py) on the calibration rows first")
    p.add_argument("--fit-only", action="append", metavar="NAME",
                   help="with --fit: fit only this software stack's or GPU preset's constants (repeatable; e.g. "
                   "vllm), the others held at the shipped model's values")
    p.add_argument("--uncalibrated", action="store_true", help="ignore fitted constants (raw presets)")
    p.add_argument("--record", action="store_true", help="store the errors as the regression baseline")
    p.add_argument("--logo", action="store_true",
                   help="leave-one-GPU-out: fit the calibration model without any row of one GPU, score that "
                   "GPU's rows (what to expect on hardware nobody measured; ~2 min)")
    p.add_argument("--data", action="append", metavar="FILE",
                   help="your own measurements (CSV or YAML; columns in jaxstack/engines/userdata.py and the README): "
                   "scored like the shipped sets (only these unless --set is given too)")
    p.set_defaults(func=run)
    return p


def add_calibrate_parser(sub):
    p = sub.add_parser("calibrate", help="fit global constants on your own measurements",
                       description="Fit the software-stack and kernel constants (per-kernel overhead, per-collective "
                       "overhead, attention bandwidth efficiency) on the calibration rows of a measurement file and "
                       "write them to a YAML file; apply it with --calibration FILE in any command.")
    p.add_argument("--data", required=True, metavar="FILE", help="measurements (CSV or YAML) with a split column")
    p.add_argument("--out", required=True, metavar="FILE", help="calibration YAML to write")
    p.add_argument("--param", action="append", metavar="PATH:LO:HI",
                   help="a constant to fit with its range in the path's unit, e.g. chip.op_overhead_us:0.5:20 "
                   "(default: the three of userdata.DEFAULT_PARAMS)")
    p.set_defaults(func=run_calibrate)
    return p


def run_calibrate(args) -> int:
    from ..engines import userdata

    params = userdata.DEFAULT_PARAMS
    if args.param:
        params = []
        for item in args.param:
            parts = item.split(":")
            try:
                path, lo, hi = parts[0], float(parts[1]), float(parts[2])
            except (IndexError, ValueError):
                raise io.ConfigError(f"--param '{item}': expected PATH:LO:HI, e.g. chip.op_overhead_us:0.5:20") \
                    from None
            io.convert_value(path, lo, "--param")
            io.convert_value(path, hi, "--param")
            if not 0 < lo < hi:
                raise io.ConfigError(f"--param '{item}': allowed: 0 < LO < HI (the grid is in log space)")
            params.append((path, lo, hi))
    doc = userdata.calibrate(args.data, args.out, tuple(params))
    print(f"fitted on {doc['split']['calibration']} calibration rows ({doc['split']['holdout']} held out): "
          f"MAPE {doc['error']['calibration_mape_pct']:.2f} %")
    for k, v in doc["fitted"].items():
        print(f"  {k:40s} {v:g}")
    print(f"wrote {args.out}; apply it with: jaxstack validate --data {args.data} --calibration {args.out}")
    return 0


def _run_logo(args) -> int:
    from ..engines import calibration

    res = calibration.leave_one_gpu_out()
    io.write_text_atomic(Path(args.out) / "leave_one_out.json", io.dumps_json(res, indent=2) + "\n")
    if args.json:
        print(io.dumps_json(res))
        return 0
    print(f"{'held-out GPU':13s} {'family':17s} {'rows':>4s} | {'held-out MAPE':>13s} {'raw presets':>11s} "
          f"{'fitted with it':>14s} | held-out GPU's constants from")
    for r in res:
        print(f"{r['held_out']:13s} {r['family']:17s} {r['test_rows']:4d} | {r['held_out_mape_pct']:13.2f} "
              f"{r['raw_mape_pct']:11.2f} {r['fitted_with_it_mape_pct']:14.2f} | "
              + ("its family" if r["prior"] == "family" else "every fitted GPU (no family member measured)"))
    print("held-out MAPE per set: " + "; ".join(
        f"{r['held_out']} " + ", ".join(f"{k} {v:.2f}" for k, v in r["per_set"].items()) for r in res))
    for r in res:
        if "engines_from_full_fit_mape_pct" in r:
            print(f"{r['held_out']}: engines measured on no other GPU ({', '.join(r['engines_only_here'])}) keep their "
                  f"raw overheads; with every engine's constants from the full fit (not held out: it saw these rows) "
                  f"the hardware's transfer alone scores {r['engines_from_full_fit_mape_pct']:.2f} %")
    print(f"\nwrote {Path(args.out) / 'leave_one_out.json'}")
    return 0


def _pct(e, key):
    return f"{e[key]:6.2f}" if e else "     -"


def run(args) -> int:
    io.check_out_dir(args.out)
    if args.logo:
        return _run_logo(args)
    if (args.fit or args.record) and not io.in_source_checkout():
        raise io.ConfigError(f"--{'fit' if args.fit else 'record'}: rewrites the calibration / baseline shipped "
                             "inside the package; allowed only in a source checkout (git clone + pip install -e)")
    names = args.set or ([] if args.data else list(SET_MODULES))
    if args.data and (args.fit or args.record):
        raise io.ConfigError("--data: not with --fit / --record (those refit the shipped sets); use "
                             "`jaxstack calibrate --data FILE --out my-calibration.yaml`")
    if args.fit_only and not args.fit:
        raise io.ConfigError("--fit-only: only with --fit")
    if args.fit:
        from ..engines import calibration

        only = tuple(args.fit_only) if args.fit_only else None
        doc = calibration.fit(only=only)
        calibration.write(doc, only=only)
        err = doc["error"]
        print(f"fitted the calibration model on {', '.join(doc['split'])}: calibration MAPE "
              + ", ".join(f"{k} {v:.2f} % (from {err['start_mape_pct'][k]:.2f} %)"
                          for k, v in err["calibration_mape_pct"].items())
              + f" -> {calibration.JOINT}", file=sys.stderr)
    rows = validate.run_sets(names, calibrated=not args.uncalibrated) if names else []
    if args.data:
        from ..engines import userdata

        for f in args.data:
            rows += userdata.evaluate_rows(userdata.load(f), calibrated=not args.uncalibrated)
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
            # an online row's load on the model's engine: near 1, latency turns on the last per cent of capacity
            load = (f"  load {r['load_factor']:.3f}" if r.get("metric") in validate.LATENCY_METRICS
                    and "load_factor" in r else "")
            print(f"{r['case'][:40]:40s} {r['split']:12s} {r['measured']:12.5g} {r['predicted']:12.5g} "
                  f"{100 * (r['predicted'] / r['measured'] - 1):+7.1f} {ds}{load}")
        print()
    print(f"{'set':18s} {'panel':28s} {'n':>4s} | {'MAPE %':>6s} {'wtd %':>6s} | {'cal MAPE':>8s} "
          f"{'hold MAPE':>9s} | {'DeepStack MAPE':>14s} {'wtd':>6s}")
    for e in summary:
        a = e["all"]
        print(f"{e['set']:18s} {e['panel'][:28]:28s} {a['n']:4d} | {_pct(a, 'mape_pct')} {_pct(a, 'weighted_pct')} | "
              f"{_pct(e['calibration'], 'mape_pct'):>8s} {_pct(e['holdout'], 'mape_pct'):>9s} | "
              f"{_pct(e['deepstack'], 'mape_pct'):>14s} {_pct(e['deepstack'], 'weighted_pct')}")
    missing = validate.unscored(rows)
    if missing:
        print("not scored, infeasible in the model: " + "; ".join(
            f"{s} " + ", ".join(f"{n} {name}" for name, n in sorted(c.items())) for s, c in sorted(missing.items())))
    print("\nwrote: " + ", ".join(files))
    return 0
