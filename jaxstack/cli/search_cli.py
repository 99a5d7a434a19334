"""L5: ``jaxstack search SPACE.yaml`` (glue only: parse flags, run ``search``, print tables).

Examples::

    jaxstack search spaces/deepstack-decode.yaml --fix request.batch=1024 --top-k 10 --out runs/s1024
    jaxstack search spaces/deepstack-decode.yaml --fix request.batch=4 --constraint "tpot_ms<=50"
    jaxstack search spaces/deepstack-decode.yaml --fix request.batch=1024 --out runs/s1024 --resume
    jaxstack search spaces/deepstack-decode.yaml --fix request.batch=1024 --ablation --out runs/ab1024

``--fix COLUMN=V[,V...]`` restricts an axis to the listed values (user units, as in the
YAML; zip columns and ``mapping.tp`` etc. too); ``--constraint`` adds a limit
(``METRIC<=X`` or ``METRIC>=X``, unit suffixes as in ``limits:``, e.g. ``tpot_ms<=50``).
The top designs are exactly those ``jaxstack sweep`` would report for the same space.
"""

import argparse
import dataclasses
import math
import re
import sys

from ..edges import io
from . import sweep_cli

__all__ = ["add_parser", "run", "parse_fix", "add_constraints", "format_ablation"]

_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(<=|>=)\s*([-+0-9.eE_]+)\s*$")
# DeepStack Table 4 (DEEPSTACK.md §4.2): DeepSeek-V3 decode, 256 devices, STPS per stage
DEEPSTACK_TABLE4 = {4: (177.06, 256.37, 256.37, 314.16, 340.53, 493.29, 494.12),
                    1024: (5729.18, 21252.31, 24487.83, 31349.86, 38061.04, 51094.46, 54280.33)}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "search", help="hierarchical branch-and-bound search of a space: the sweep's exact top-k, pruned",
        description="Hierarchical design-space search with provable pruning.\n\n" + __doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("space", help="space YAML (see jaxstack/engines/space.py for the schema)")
    p.add_argument("--objective", help="metric to rank by (default: the space's, else decode_tokens_per_s)")
    p.add_argument("--constraint", action="append", default=[], metavar="METRIC<=X",
                   help="extra limit, e.g. tpot_ms<=50 or user_tokens_per_s>=20 (repeatable)")
    p.add_argument("--fix", action="append", default=[], metavar="COLUMN=V[,V]",
                   help="restrict an axis to these values, e.g. request.batch=1024 (repeatable)")
    p.add_argument("--top-k", type=sweep_cli._count, default=10, help="designs to keep (default 10)")
    p.add_argument("--out", help="run directory: manifest, checkpoint, top.csv, summary.json (ablation.csv)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--ablation", action="store_true",
                   help="DeepStack Table-4 style ablation: 7 nested restricted searches (jaxstack/engines/ablation.py)")
    p.add_argument("--json", action="store_true", help="print the summary and rows as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--cpu-devices", type=int, help="split the host CPU into N JAX devices (as jaxstack sweep)")
    p.add_argument("--processes", type=int, default=1, help="number of processes (hosts) sharing the search")
    p.add_argument("--process-id", type=int, default=0)
    p.add_argument("--coordinator", help="host:port of process 0 for jax.distributed")
    p.set_defaults(func=run)
    return p


def parse_fix(items) -> dict:
    """``["request.batch=4,1024", ...]`` -> {"request.batch": [4, 1024]} (numbers where possible)."""
    from ..edges.io import ConfigError

    out = {}
    for item in items:
        col, eq, vals = item.partition("=")
        if not eq or not col.strip() or not vals.strip():
            raise ConfigError(f"--fix: {item!r}; expected COLUMN=VALUE[,VALUE...], e.g. request.batch=1024")
        out[col.strip()] = [_number(v.strip()) for v in vals.split(",") if v.strip()]
    return out


def _number(text: str):
    try:
        v = float(text)
    except ValueError:
        return text
    return int(v) if v.is_integer() else v


def add_constraints(space, items):
    """The space with extra limits (its hash changes, so --resume notices)."""
    from ..edges.io import ConfigError
    from ..engines.space import _limit

    limits = list(space.limits)
    for item in items:
        m = _CONSTRAINT.match(item)
        if not m:
            raise ConfigError(f"--constraint: {item!r}; expected METRIC<=X or METRIC>=X, e.g. tpot_ms<=50")
        key, op, val = m.groups()
        limits.append(_limit(key, {"max" if op == "<=" else "min": float(val.replace("_", ""))}, "--constraint"))
    if not items:
        return space
    canonical = {**space.canonical, "limits": [[lim.metric, lim.lo, lim.hi] for lim in limits]}
    return dataclasses.replace(space, limits=tuple(limits), canonical=canonical)


def run(args) -> int:
    from ..engines.ablation import ablation
    from ..engines.search import search
    from ..engines.space import load_space, structural_check

    args.dump = False
    io.check_out_dir(args.out)
    sweep_cli._init_jax(args)
    space = add_constraints(load_space(args.space), args.constraint)
    structural_check(space)
    fix = parse_fix(args.fix)
    progress = False if args.no_progress else None
    if not args.json:
        print(sweep_cli.describe(space), file=sys.stderr)
    if args.ablation:
        rows = ablation(space, objective=args.objective, fix=fix, top_k=args.top_k, out=args.out,
                        resume=args.resume, progress=progress)
        return _report_ablation(space, rows, fix, args)
    res = search(space, objective=args.objective, top_k=args.top_k, fix=fix, out=args.out, resume=args.resume,
                 progress=progress)
    import jax

    if jax.process_index() != 0:
        return 0
    if args.json:
        print(io.dumps_json({**res.summary(), "top": res.top}, indent=None, default=str))
        return 0
    s, t = res.stats, res.timings
    print(f"\nbest {len(res.top)} of {s['points']:,} points by {res.objective} "
          f"({res.summary()['direction']}), exact top-k of the (restricted) space:")
    print(sweep_cli.format_table(space, res.top, res.objective))
    print(f"\nroles: hardware {_names(s['hardware_axes'])}; schedule {_names(s['schedule_axes'])}; "
          f"monotone {_names(s['monotone_axes'])}; free {_names(s['free_axes'])}")
    print(f"points {s['points']:,}: infeasible by capacity/structure {s['feasibility_pruned']:,}, pruned by "
          f"level-1 bounds {s['level1_pruned']:,} ({s['groups']:,} groups), evaluated exactly "
          f"{s['exact_evals']:,} ({_percent(s['pruned_fraction'])} pruned); {s['bound_evals']:,} bound evaluations")
    print(f"{t['run_s']:.1f} s (+ compile {t['compile_s']:.1f} s; level 1 {t['level1_s']:.1f} s, level 2 "
          f"{t['level2_s']:.1f} s) = {t['points_per_s']:.3g} points/s, {t['bound_evals_per_s']:,.0f} bounds/s, "
          f"{t['devices']} {t['device_kind']} device(s)")
    if res.out:
        print(f"results in {res.out}/ (top.csv, summary.json)")
    return 0


def _percent(p: float) -> str:
    """A share near 1 as a percentage with the two leading digits of what is left:
    0.98333 -> 98.3 %, 1 - 3.3e-9 -> 99.99999967 %."""
    rest = 100.0 * (1.0 - p)
    if rest <= 0:
        return "100 %"
    return f"{100.0 * p:.{max(0, 1 - math.floor(math.log10(rest)))}f} %"


def _names(names) -> str:
    return ", ".join(n.removeprefix("axes.") for n in names) or "-"


def format_ablation(rows, reference=None) -> str:
    """Stage table: best objective, gain vs the previous stage, cumulative, DeepStack's numbers."""
    head = ["#", "stage", "best", "gain", "cumulative", "mapping", "points", "exact", "s"]
    if reference:
        head += ["DeepStack", "DS gain"]
    body = []
    for i, r in enumerate(rows):
        best = r["best"] or {}
        line = [str(r["stage"]), r["name"], f"{r['value']:,.1f}", f"{r['gain']:.2f}x" if i else "",
                f"{r['cumulative']:.2f}x", sweep_cli._mapping_text(best) if best else "-", f"{r['points']:.3g}",
                f"{r['exact_evals']:,}", f"{r['wall_s']:.0f}"]
        if reference:
            ref = reference[i]
            line += [f"{ref:,.1f}", f"{ref / reference[i - 1]:.2f}x" if i else ""]
        body.append(line)
    width = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, width, strict=True))  # noqa: E731
    lines = [fmt(head), fmt(["-" * w for w in width])] + [fmt(b) for b in body]
    if rows and reference and rows[0]["value"] > 0:
        ours, theirs = rows[-1]["value"] / rows[0]["value"], reference[-1] / reference[0]
        lines.append(f"total: {ours:.2f}x (DeepStack {theirs:.2f}x)")
    return "\n".join(lines)


def _report_ablation(space, rows, fix, args) -> int:
    import jax

    from ..engines.sweep import _write_json, _write_table

    if jax.process_index() != 0:
        return 0
    batch = fix.get("request.batch", [None])
    m = space.base.model
    deepseek = float(m.hidden_size) == 7168 and float(m.n_routed_experts) == 256 and float(m.kv_lora_rank) == 512
    ref = DEEPSTACK_TABLE4.get(batch[0]) if len(batch) == 1 and deepseek else None
    if args.out:
        from pathlib import Path

        flat = [{k: v for k, v in r.items() if k != "best"} for r in rows]
        _write_table(Path(args.out) / "ablation", flat)
        _write_json(Path(args.out) / "ablation.json", {"space": space.path, "fix": fix, "stages": rows,
                                                       "deepstack_table4": ref})
    if args.json:
        print(io.dumps_json({"stages": rows, "deepstack_table4": ref}, indent=None, default=str))
        return 0
    print(f"\nablation of {rows[0]['objective'] if rows else ''} (nested restricted searches, exact per stage):")
    print(format_ablation(rows, ref))
    for r in rows:
        if r["best"]:
            cols = [c for a in space.axes if a.name != "mapping" for c in a.columns]
            print(f"  stage {r['stage']}: " + ", ".join(f"{c}={r['best'][c]}" for c in cols))
    return 0
