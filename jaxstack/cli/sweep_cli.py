"""L5: ``jaxstack sweep SPACE.yaml`` (glue only: parse flags, run ``sweep``, print a table).

Examples::

    jaxstack sweep spaces/quickstart.yaml --top-k 10
    jaxstack sweep spaces/deepstack-decode.yaml --max-points 1e8 --out runs/ds --pareto \\
        decode_tokens_per_s,user_tokens_per_s
    jaxstack sweep spaces/deepstack-decode.yaml --out runs/ds --resume       # after a kill
    # two hosts (or two local processes), each takes every other chunk:
    jaxstack sweep S.yaml --processes 2 --process-id 0 --coordinator host0:12345 --out runs/x

Multi-process flags fall back to ``JAXSTACK_PROCESSES``, ``JAXSTACK_PROCESS_ID`` and
``JAXSTACK_COORDINATOR``.
"""

import argparse
import os
import sys

from ..edges import io

__all__ = ["add_parser", "run", "format_table"]

# metric -> (header, unit suffix, factor from SI) for the printed table
_SHOWN = {
    "decode_tokens_per_s": ("decode tok/s", 1.0), "user_tokens_per_s": ("user tok/s", 1.0),
    "tpot_s": ("TPOT ms", 1e3), "ttft_s": ("TTFT ms", 1e3), "tokens_per_J": ("tok/J", 1.0),
    "energy_per_token_J": ("J/tok", 1.0), "power_W": ("W/chip", 1.0),
    "temperature_C": ("°C", 1.0), "memory_bytes": ("mem GiB", 2.0**-30),
    "prefill_tokens_per_s": ("prefill tok/s", 1.0),
}
_DEFAULT_SHOWN = ("decode_tokens_per_s", "user_tokens_per_s", "tpot_s", "power_W", "memory_bytes")
MAX_AUTO_CPU_DEVICES = 8
LONG_SWEEP_POINTS = 1e11


def _count(text: str) -> int:
    """An integer count that may be written 1e6 or 1_000_000."""
    try:
        v = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count like 1000000 or 1e6, got {text!r}") from None
    if v < 1 or v != int(v):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(v)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sweep", help="sweep a design space YAML; print and save the best designs",
        description="Sweep a design space YAML on device; print and save the best designs.\n\n"
        + __doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("space", help="space YAML (see jaxstack/engines/space.py for the schema)")
    p.add_argument("--top-k", type=_count, default=10, help="designs to keep (default 10)")
    p.add_argument("--objective", help="metric to rank by (default: the space's, else decode_tokens_per_s)")
    p.add_argument("--pareto", help="2-3 comma-separated metrics for a Pareto front")
    p.add_argument("--out", help="run directory: manifest, checkpoint, top.csv, pareto.csv, summary.json")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--max-points", type=_count,
                   help="only the first N points in index order (a prefix: the last axes vary fastest, so a "
                   "small N sees one corner of the space)")
    p.add_argument("--sample", type=_count, metavar="N",
                   help="visit N distinct points spread over the whole space (a seeded golden-ratio "
                   "permutation of the index, sample.py) instead of a prefix; resumable")
    p.add_argument("--seed", type=int, default=0, help="with --sample: which sample (default 0)")
    p.add_argument("--chunk", type=_count, help="points per compiled step (default: auto)")
    p.add_argument("--prune", dest="prune", action="store_true", default=None,
                   help="compute only the ranked and limited metrics in the sweep and the others for the "
                        "returned rows afterwards (default: automatic, on for large sweeps; winners.py)")
    p.add_argument("--no-prune", dest="prune", action="store_false", help="compute every metric of every point")
    p.add_argument("--no-hoist", dest="hoist", action="store_false",
                   help="visit points in index order with one flat vmap (default: axes that touch only cheap "
                        "parts of the model vary inside a nested vmap; same answer, faster)")
    p.add_argument("--dump", action="store_true", help="also write every point (small spaces)")
    p.add_argument("--dump-format", choices=("auto", "parquet", "csv"), default="auto",
                   help="with --dump: auto = Parquet when pyarrow is installed (pip install jaxstack[parquet]), "
                   "else CSV")
    p.add_argument("--json", action="store_true", help="print the summary and rows as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--cpu-devices", type=int,
                   help=f"split the host CPU into N JAX devices and shard each chunk over them "
                        f"(default: one per core, at most {MAX_AUTO_CPU_DEVICES}; 1 = off; no effect on GPU runs)")
    env = os.environ.get
    p.add_argument("--processes", type=int, default=int(env("JAXSTACK_PROCESSES", "1")),
                   help="number of processes (hosts) sharing the sweep")
    p.add_argument("--process-id", type=int, default=int(env("JAXSTACK_PROCESS_ID", "0")))
    p.add_argument("--coordinator", default=env("JAXSTACK_COORDINATOR"),
                   help="host:port of process 0 for jax.distributed")
    p.set_defaults(func=run)
    return p


def _init_jax(args):
    import jax

    from ..edges.io import ConfigError

    n = args.cpu_devices
    auto = n is None
    if auto:   # ~15% more points/s on a 2-core CPU than one device (benchmarks/bench_sweep.py)
        n = 1 if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "") else \
            min(os.cpu_count() or 1, MAX_AUTO_CPU_DEVICES)
    if n < 1:
        raise ConfigError(f"--cpu-devices: {n}; allowed: an integer >= 1")
    if n > 1:
        try:
            jax.config.update("jax_num_cpu_devices", n)
        except RuntimeError:          # JAX already started in this process (e.g. in-process use)
            if not auto:
                raise ConfigError("--cpu-devices: JAX has already started in this process") from None
    if args.processes > 1:
        if not args.coordinator:
            raise ConfigError("--processes > 1 needs --coordinator host:port (or JAXSTACK_COORDINATOR)")
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.processes,
                                   process_id=args.process_id)


def run(args) -> int:
    from ..engines.space import load_space, structural_check
    from ..engines.sweep import sweep

    io.check_out_dir(args.out)
    _init_jax(args)
    space = load_space(args.space)
    structural_check(space)
    if not args.json:
        print(describe(space), file=sys.stderr)
        n = min(space.size, args.max_points or args.sample or space.size)
        if args.sample:
            print(f"sampling {n:,} of {space.size:,} points (seed {args.seed})", file=sys.stderr)
        if n > LONG_SWEEP_POINTS:
            print(f"note: {n:.3g} points; at ~1e6 points/s per device this takes ~{n / 1e6 / 86400:,.0f} "
                  "device-days; use --max-points (or a search) for a first look", file=sys.stderr)
    res = sweep(space, objective=args.objective, top_k=args.top_k, pareto=args.pareto,
                chunk=args.chunk, out=args.out, resume=args.resume, max_points=args.max_points,
                dump=args.dump, progress=False if args.no_progress else None, dump_format=args.dump_format,
                sample=args.sample, seed=args.seed, hoist=args.hoist,
                prune=args.prune)
    import jax

    if jax.process_index() != 0:
        return 0
    if args.json:
        print(io.dumps_json({**res.summary(), "top": res.top, "pareto": res.pareto}, indent=None, default=str))
        return 0
    print(f"\nbest {len(res.top)} of {res.feasible:,} feasible / {res.points:,} points by "
          f"{res.objective} ({'max' if res.summary()['direction'] == 'max' else 'min'}):")
    print(format_table(res.space, res.top, res.objective))
    if res.pareto:
        print(f"\nPareto front over {', '.join(res.pareto_metrics)}: {len(res.pareto)} designs"
              + (f" ({res.pareto_dropped} candidates dropped at the cap)" if res.pareto_dropped else ""))
        print(format_table(res.space, res.pareto[:20], res.objective, extra=res.pareto_metrics))
    bad = ", ".join(f"{k} {v:,}" for k, v in res.counts.items() if k != "ok" and v)
    print(f"\ninfeasible: {bad or 'none'}")
    t = res.timings
    if t["points_this_session"] == 0 and args.resume:
        print(f"the run in {res.out} was already complete ({res.points:,} points): printed from it, nothing "
              "compiled or evaluated")
    else:
        print(f"{t['points_this_session']:,} points in {t['run_s']:.2f} s = {t['points_per_s']:,.0f} points/s "
              f"(compile {t['compile_s']:.1f} s{', quick' if t.get('quick_compile') else ''}, {t['devices']} "
              f"{t['device_kind']} device(s), chunk {t['chunk']:,}"
              + (f"; hoisted: {', '.join(h.removeprefix('axes.') for h in t['hoisted'])})" if t.get("hoisted")
                 else ")"))
    if res.out:
        print(f"results in {res.out}/ (top.csv, summary.json{', pareto.csv' if res.pareto_metrics else ''})")
    return 0


def _short_headers(labels: list[str]) -> dict[str, str]:
    """Shortest dotted suffix of each label that is still unique."""
    out = {}
    for lab in labels:
        parts = lab.split(".")
        for n in range(1, len(parts) + 1):
            cand = ".".join(parts[-n:])
            if sum(1 for o in labels if o.split(".")[-n:] == parts[-n:]) == 1:
                out[lab] = cand
                break
        else:
            out[lab] = lab
    return out


def _mapping_text(row: dict) -> str:
    degs = [f"{a}{int(row[f'mapping.{a}'])}" for a in ("tp", "ep", "sp", "cp", "dp", "pp")
            if f"mapping.{a}" in row and int(row[f"mapping.{a}"]) > 1]
    flags = [n for n, key in (("fsdp", "mapping.fsdp"), ("moe→ep", "mapping.moe_tp_to_ep"),
                              ("overlap", "mapping.overlap")) if row.get(key)]
    return " ".join(degs + flags) or "1"


def _fmt(v) -> str:
    if isinstance(v, str):
        return v
    v = float(v)
    if v == int(v) and abs(v) < 1e7:
        return str(int(v))
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"


def format_table(space, rows: list[dict], objective: str, extra=()) -> str:
    """Readable table: axis columns that differ between the rows (user units), the
    mapping, key metrics; axis values shared by every row go on one line above it."""
    if not rows:
        return "  (no feasible design)"
    cols = [c for a in space.axes if a.size > 1 for c in a.columns if not c.startswith("mapping.")]
    varying = [c for c in cols if len({r[c] for r in rows}) > 1]
    common = [c for c in cols if c not in varying]
    has_map = any(c.startswith("mapping.") for c in space.columns)
    metrics = list(dict.fromkeys([objective, *extra, *_DEFAULT_SHOWN]))
    short = _short_headers(cols)
    head = ["#", *(short[c] for c in varying)] + (["mapping"] if has_map else [])
    head += [_SHOWN.get(m, (m, 1.0))[0] for m in metrics]
    body = []
    for r in rows:
        line = [str(r["rank"]), *(_fmt(r[c]) for c in varying)] + ([_mapping_text(r)] if has_map else [])
        line += [_fmt(r[m] * _SHOWN.get(m, (m, 1.0))[1]) for m in metrics]
        body.append(line)
    width = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, width, strict=True))  # noqa: E731
    lines = [f"  all rows: {', '.join(f'{short[c]}={_fmt(rows[0][c])}' for c in common)}"] if common else []
    return "\n".join(lines + [fmt(head), fmt(["-" * w for w in width])] + [fmt(b) for b in body])


def describe(space) -> str:
    """A few human lines: axes, sizes, total."""
    lines = [f"{space.path}: {space.size:,} points ({space.size:.3g}) over {len(space.axes)} axes"]
    for a in space.axes:
        if a.name == "mapping":         # named degrees (tp8 dp2 fsdp), not bare tuples
            shown = ", ".join(_mapping_text(dict(zip(a.columns, r, strict=True))) for r in a.display[:4])
        elif len(a.columns) > 1:        # zip groups: name=value pairs
            shown = ", ".join("(" + " ".join(f"{c.rsplit('.', 1)[-1]}={v}" for c, v in zip(a.columns, r, strict=True))
                              + ")" for r in a.display[:4])
        else:
            shown = ", ".join(str(r[0]) for r in a.display[:4])
        more = ", ..." if a.size > 4 else ""
        lines.append(f"  {a.name:40s} {a.size:6d}  [{shown}{more}]")
    return "\n".join(lines)
