"""L4: the sweep engine: stream a design space through one compiled ``jit(vmap(evaluate))``.

Contract (DESIGN.md "Sweep engine contract")::

    space = load_space("spaces/quickstart.yaml")
    res = sweep(space, objective="decode_tokens_per_s", top_k=10, out="runs/q")
    res.best                      # {'index': ..., <axis columns in user units>, <metrics>}

- Points are visited by global index in fixed-shape chunks (the last one padded and
  masked), so the whole sweep compiles once. Per chunk only the chunk base crosses to the
  device (as mixed-radix digits; see ``space.decode_offsets``), and only small reducer
  state comes back (``reducers``): top-k, Pareto candidates, counts by reason, an
  objective histogram; the optional ``dump`` returns every point (small spaces only).
- Decode, ``vmap(evaluate_fn)`` (constant leaves are not batched), limits and reducers are
  fused in the same jit. The next chunk is dispatched before the host merges the previous
  one, so host work overlaps device work.
- ``out``: a run directory with ``manifest.json`` and ``state.npz`` written atomically
  (tmp + ``os.replace``) every ``checkpoint_every_s``; ``resume=True`` continues after a
  kill with exactly the answer of an uninterrupted run, and refuses a changed space.
  At the end: ``top.csv``, ``pareto.csv`` (+ ``.parquet`` with pyarrow), ``summary.json``.
- Devices: each chunk is sharded over ``devices`` (default ``jax.local_devices()``) on a
  1-D mesh; reducers run per shard. Processes: after ``jax.distributed.initialize``,
  process p takes chunks p, p+P, ...; states are merged with ``process_allgather``.
"""

import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .. import __version__
from ..edges import cache, io
from . import hoist as hoisting
from . import reducers, winners
from . import sample as sampling
from .rundir import (  # noqa: F401 - re-exported: the run-directory API lived here before
    SweepResult,
    _atomic_write,
    _collect_dumps,
    _has_pyarrow,
    _open_rundir,
    _rows,
    _save_npz,
    _write_json,
    _write_table,
    build_result,
    dump_columns,
    resume_state,
    write_outputs,
)
from .space import (
    Space,
    check_metric,
    check_pareto,
    host_digits,
    load_space,
)
from .step import (  # noqa: F401 - folded, base_leaves_of, _targets: re-exported (the API of earlier versions)
    NR,
    _compiled,
    _plan,
    _targets,
    base_leaves_of,
    folded,
    quick_options,
)

__all__ = ["sweep", "SweepResult", "auto_chunk", "DEFAULT_OBJECTIVE", "DUMP_MAX_POINTS", "dump_columns", "resume_state",
           "map_chunks"]

DEFAULT_OBJECTIVE = "decode_tokens_per_s"
DUMP_MAX_POINTS = 2**21
CPU_CHUNK_PER_DEVICE = 2**12       # measured best on a 2-core CPU (bench_sweep.py: 2^12 170k, 2^13 114k points/s)
ACCEL_CHUNK_PER_DEVICE = 2**23     # H200, old core: 2^23 points per step 4x faster than 2^18
ACCEL_MIN_CHUNK = 2**18
ACCEL_BYTES_PER_POINT = 8192       # device memory budgeted per point of a step (a power of two)


def _default_evaluate():
    from ..recipe.evaluate import evaluate

    return evaluate


_HOIST: dict = {}


def _resumed_hoist(out, space: Space, proc: int, nproc: int):
    """The hoisted axes of the run being resumed (its manifest; a run of an earlier version,
    without the key, was flat), or None when there is no readable manifest of this space."""
    import json

    path = Path(out) / f"manifest{f'.p{proc}' if nproc > 1 else ''}.json"
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    names = [a.name for a in space.axes]
    if old.get("space_hash") != space.hash or any(n not in names for n in old.get("hoisted", [])):
        return None
    return tuple(names.index(n) for n in old.get("hoisted", []))


def _hoisted(space: Space, evaluate_fn, per_shard: int) -> tuple[int, ...]:
    """Axes to hoist (``hoist.choose_inner``; cached per space and model); () when a block of
    the inner combinations would not fit a shard's share of the chunk."""
    key = (space.hash, evaluate_fn)
    if key not in _HOIST:
        def choose():
            return list(hoisting.choose_inner(evaluate_fn, space.base, _targets(space), space.radices)[0])

        fkey = getattr(evaluate_fn, "cache_key", None)     # jaxstack's model: the choice (it traces) on disk
        _HOIST[key] = tuple(choose() if fkey is None else cache.memo("hoist", f"hoist\n{fkey}\n{space.hash}", choose))
    inner = _HOIST[key]
    return inner if inner and math.prod(space.radices[a] for a in inner) <= per_shard else ()


def _progress_bar(total: int, progress, unit: str = "pt", desc: str = "sweep"):
    """tqdm on a terminal (rate, ETA); off when stderr is not a TTY or $CI is set."""
    enabled = bool(progress) if progress is not None else sys.stderr.isatty() and not os.environ.get("CI")
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, unit_scale=unit == "pt", dynamic_ncols=True, smoothing=0.1,
                desc=desc, file=sys.stderr)


# ---------------------------------------------------------------- the engine
def map_chunks(fn, rows: np.ndarray, chunk: int, *args) -> list[np.ndarray]:
    """``fn(rows_chunk, *args)`` (compiled for ``chunk`` rows) over ``rows`` in fixed-size
    chunks, the last one padded by repeating its last row; every chunk is dispatched before
    any result is fetched. Returns each output concatenated and trimmed to ``len(rows)``; an
    output that is a tuple of arrays (e.g. gradient leaves) is stacked on a last axis."""
    n = len(rows)
    if n == 0:
        raise ValueError("map_chunks: no rows")
    outs = []
    for s in range(0, n, chunk):
        part = rows[s:s + chunk]
        if len(part) < chunk:
            part = np.concatenate([part, np.repeat(part[-1:], chunk - len(part), 0)])
        outs.append(fn(part, *args))
    outs = [[np.stack(o, -1) if isinstance(o, tuple) else np.asarray(o) for o in jax.device_get(out)]
            for out in outs]
    return [np.concatenate([o[k] for o in outs])[:n] for k in range(len(outs[0]))]


def auto_chunk(devices) -> int:
    """Default points per step: small on CPU (cache-resident working set); on an accelerator
    ACCEL_CHUNK_PER_DEVICE (the measured best, benchmarks/README.md), fewer when the device's
    memory holds less than ACCEL_BYTES_PER_POINT per point (a power of two, >= 2^18)."""
    if devices[0].platform == "cpu":
        return CPU_CHUNK_PER_DEVICE * len(devices)
    per = ACCEL_CHUNK_PER_DEVICE
    try:
        limit = int((devices[0].memory_stats() or {}).get("bytes_limit", 0))
    except Exception:     # pragma: no cover - backends without memory statistics
        limit = 0
    if limit > 0:
        fit = 1 << max(int(limit // ACCEL_BYTES_PER_POINT).bit_length() - 1, 0)
        per = max(min(per, fit), ACCEL_MIN_CHUNK)
    return per * len(devices)


def sweep(space, *, objective: str | None = None, top_k: int = 10, pareto=None, chunk: int | None = None,
          out=None, resume: bool = False, max_points: int | None = None, evaluate_fn=None,
          dump: bool = False, devices=None, checkpoint_every_s: float = 5.0, progress=None,
          pareto_cap: int = 256, front_capacity: int = 4096, on_chunk=None,
          dump_format: str = "auto", sample: int | None = None, seed: int = 0, hoist: bool = True,
          prune: bool | None = None, quick_compile: bool | None = None) -> "SweepResult":
    """Evaluate every point of ``space`` (or the first ``max_points``) and reduce on device.

    Args:
      space: a ``Space`` or a path to a space YAML.
      objective: metric to rank by (default: the space's, else decode_tokens_per_s);
        direction from ``metrics.HIGHER_IS_BETTER``.
      top_k: designs kept by objective. pareto: 2-3 metrics (default: the space's).
      chunk: points per compiled step (default ``auto_chunk``; rounded up to a multiple of
        the device count, and down to the space size for tiny spaces).
      out / resume: run directory; continue a killed run with the same final answer.
      evaluate_fn: ``Design -> Metrics`` for one point (default ``jaxstack.evaluate``).
      dump: also return every point's metrics (spaces up to ``DUMP_MAX_POINTS``).
      devices: devices to shard each chunk over (default: this process's local devices).
      on_chunk: optional callback(chunk_id, points_done) after each merged chunk.
      sample / seed: visit ``sample`` distinct points spread over the whole space instead of
        a prefix (``sample.py``: a seeded golden-ratio permutation of the index); resumable.
      hoist: on a whole-space sweep, vary the axes that touch only cheap parts of the model
        inside a nested vmap (``hoist.py``; same answer, visited in block order).
      prune: compute only the objective, Pareto and limited metrics in the steps and the
        others for the returned rows afterwards (``winners.py``; same answer); None: when the
        sweep is large enough to repay the returned rows' own compile (``winners.worth_it``).
      quick_compile: compile the step with XLA:CPU's quick options (~3x faster to compile,
        ~4x slower per point; CPU only); None: for at most ``step.FAST_COMPILE_POINTS`` points.
    Returns:
      ``SweepResult`` (top rows with global index, axis values in user units, all metrics).
    """
    if isinstance(space, (str, Path)):
        space = load_space(space)
    objective = check_metric(objective or space.objective or DEFAULT_OBJECTIVE, "sweep", "objective")
    pareto = check_pareto(pareto, "sweep", "pareto") if pareto is not None else space.pareto
    if isinstance(top_k, bool) or int(top_k) < 1:
        raise io.ConfigError(f"sweep: key 'top_k': {top_k!r}; allowed: an integer >= 1")
    evaluate_fn = evaluate_fn or _default_evaluate()
    if dump_format not in ("auto", "parquet", "csv"):
        raise io.ConfigError(f"sweep: key 'dump_format': {dump_format!r}; allowed: auto, parquet, csv")
    if sample is not None and max_points is not None:
        raise io.ConfigError("sweep: keys 'sample' and 'max_points': give one of them")
    if sample is not None and (isinstance(sample, bool) or int(sample) < 1 or space.size > sampling.MAX_SIZE):
        raise io.ConfigError(f"sweep: key 'sample': {sample!r}; allowed: an integer >= 1 (spaces up to 2^62 points)")
    weyl = sampling.weyl(space.size, seed) if sample is not None else None
    total = space.size if max_points is None and sample is None else min(space.size, int(max_points or sample))
    if total < 1:
        raise io.ConfigError(f"sweep: key 'max_points': {max_points!r}; allowed: >= 1")
    if dump and total > DUMP_MAX_POINTS:
        raise io.ConfigError(f"sweep: key 'dump': {total:,} points; allowed: at most "
                             f"{DUMP_MAX_POINTS:,} (use --max-points)")
    devices = list(devices or jax.local_devices())
    shards = len(devices)
    keep = winners.kept(objective, pareto, [lim.metric for lim in space.limits])
    prune = not dump and (winners.worth_it(total, devices[0].platform) if prune is None else bool(prune))
    model_fn = evaluate_fn
    evaluate_fn = winners.pruned(evaluate_fn, keep) if prune else evaluate_fn   # dumps hold every metric
    chunk = max(1, min(int(chunk or auto_chunk(devices)), total))
    chunk = -(-chunk // shards) * shards
    inner = ()
    if hoist and weyl is None and total == space.size:
        inner = _resumed_hoist(out, space, jax.process_index(), jax.process_count()) if resume and out else None
        inner = _hoisted(space, evaluate_fn, chunk // shards) if inner is None else inner
    if inner:                     # blocks of n_outer outer rows x every inner combination
        n_in = math.prod(space.radices[a] for a in inner)
        outer_radices = tuple(r for a, r in enumerate(space.radices) if a not in inner)
        n_outer_total = math.prod(outer_radices)
        n_outer = max(1, min(chunk // n_in // shards, -(-n_outer_total // shards))) * shards
        chunk = n_outer * n_in
        n_chunks = -(-n_outer_total // n_outer)
        inner_digits = np.stack([host_digits(i, tuple(space.radices[a] for a in inner)) for i in range(n_in)])
        strides = hoisting.strides(space.radices)
    else:
        n_outer = 0
        n_chunks = -(-total // chunk)
    nproc, proc = jax.process_count(), jax.process_index()
    if dump and nproc > 1:
        raise io.ConfigError("sweep: key 'dump': not supported with several processes")
    mine = range(proc, n_chunks, nproc)          # lazy: a 2.5e14-point space has 1e10 chunks
    plan = _plan(space, objective, pareto, int(top_k), int(pareto_cap), shards, chunk, dump,
                 devices[0].platform, sampled=weyl is not None, inner=inner, n_outer=n_outer)
    # few points: XLA:CPU's quick compile beats a faster program (step.quick_options)
    plan = dataclasses.replace(plan, fast_compile=quick_options(total, quick_compile) is not None)
    st = reducers.RunState(int(top_k), plan.fields, pareto, plan.pareto_signs, plan.cap, int(front_capacity), NR)
    dumps: dict[int, dict] = {}
    run_id = {"space_hash": space.hash, "objective": objective, "top_k": int(top_k),
              "pareto": list(pareto), "chunk": chunk, "points": total, "dump": dump,
              "processes": nproc, "pareto_cap": int(pareto_cap), "front_capacity": int(front_capacity),
              **({"sample": int(sample), "seed": int(seed)} if weyl is not None else {}),
              **({"hoisted": [space.axes[a].name for a in inner]} if inner else {})}
    rundir = Path(out) if out is not None else None
    sfx = f".p{proc}" if nproc > 1 else ""
    if rundir is not None:
        _open_rundir(rundir, sfx, run_id, resume, space, st)

    mesh = Mesh(np.array(devices), ("d",)) if shards > 1 else None
    rep = NamedSharding(mesh, P()) if mesh is not None else devices[0]
    put = lambda x: jax.device_put(x, rep)  # noqa: E731
    bounds = np.array([[-np.inf if lim.lo is None else lim.lo, np.inf if lim.hi is None else lim.hi]
                       for lim in space.limits], np.float32).reshape(-1, 2)
    offsets = np.arange(n_outer if inner else chunk, dtype=np.int32)
    put_rows = (lambda x: jax.device_put(x, NamedSharding(mesh, P("d")))) if mesh is not None else put
    args = [put(np.array(jax.tree_util.tree_leaves(space.base), np.float32)),
            tuple(put(a.table.astype(np.float32)) for a in space.axes),
            (put_rows(np.zeros((chunk, len(space.axes)), np.int32)) if weyl
             else put(np.zeros(len(outer_radices) if inner else len(space.axes), np.int32))),
            put(np.int32(n_outer if inner else chunk)), put(bounds), put_rows(offsets),
            put(inner_digits.astype(np.int32) if inner else np.zeros((1, 1), np.int32))]
    finished = rundir is not None and st.pos >= len(mine)     # resuming a complete run: nothing to compile
    step, compile_s = (None, 0.0) if finished else _compiled(plan, evaluate_fn, devices, tuple(args))

    sampled: dict[int, np.ndarray] = {}

    def sampled_index(c):
        if c not in sampled:
            n_valid = min(chunk, total - c * chunk)
            idx = sampling.indices(*weyl, space.size, c * chunk, n_valid)
            sampled[c] = np.concatenate([idx, np.full(chunk - n_valid, idx[0], np.int64)])  # pad: masked
        return sampled[c]

    def n_points(c):
        """Valid points of chunk c (and its count in dispatch units: outer rows when hoisted)."""
        if inner:
            rows = min(n_outer, n_outer_total - c * n_outer)
            return rows * (chunk // n_outer), rows
        n = min(chunk, total - c * chunk)
        return n, n

    def dispatch(c):
        if weyl is not None:
            args[2] = put_rows(sampling.digits(sampled_index(c), space.radices))
        elif inner:
            args[2] = put(np.array(host_digits(c * n_outer, outer_radices), np.int32).reshape(-1))
        else:
            args[2] = put(np.array(space.digits(c * chunk), np.int32).reshape(-1))
        args[3] = put(np.int32(n_points(c)[1]))
        return c, step(*args)

    def merge(c, outs):
        o = jax.device_get(outs)
        n_valid = n_points(c)[0]
        index_map = sampled.pop(c) if weyl is not None else None
        if inner:                 # positions are per shard in index order; the digits say which point
            o["top_pos"] = o["top_digits"].astype(np.int64) @ strides
            if "par_digits" in o:
                o["par_pos"] = o["par_digits"].astype(np.int64) @ strides
            index_map = None
            if dump:
                index_map = hoisting.block_index(space.radices, inner, c * n_outer, n_outer)
        st.merge_chunk(o, c * chunk, chunk // shards, n_valid, None if inner else index_map,
                       global_pos=bool(inner))
        if dump:
            dumps[c] = {"fields": o["dump_fields"][:n_valid], "feasible": o["dump_feasible"][:n_valid],
                        "reason": o["dump_reason"][:n_valid],
                        "index": (index_map[:n_valid] if index_map is not None
                                  else np.arange(c * chunk, c * chunk + n_valid, dtype=np.int64))}
            if rundir is not None:
                _save_npz(rundir / "dump" / f"chunk_{c:09d}.npz", dumps[c])
        if bar is not None:
            bar.update(n_valid)
        if on_chunk is not None:
            on_chunk(c, st.points)

    def checkpoint(done: bool):
        if rundir is not None:
            _save_npz(rundir / f"state{sfx}.npz", st.arrays())
            _write_json(rundir / f"manifest{sfx}.json", {
                **run_id, "space": space.path, "jaxstack_version": __version__, "n_chunks": n_chunks,
                "chunks_done": st.pos, "chunks_mine": len(mine), "points_done": st.points,
                "complete": done, "process": proc, "updated": time.time()})

    if dump and rundir is not None:
        (rundir / "dump").mkdir(exist_ok=True)
    last = n_chunks - 1                            # the only chunk that may be partial
    bar = _progress_bar(len(mine) * chunk - (chunk - n_points(last)[0] if last in mine else 0), progress)
    if bar is not None:
        bar.update(st.points)
    t_start = last_ckpt = time.perf_counter()
    run0, pts0 = st.run_s, st.points
    pending = None
    for c in mine[st.pos:]:
        nxt = dispatch(c)                 # the device works on chunk c while the host merges c - 1
        if pending is not None:
            merge(*pending)
        pending = nxt
        if time.perf_counter() - last_ckpt >= checkpoint_every_s and st.pos > 0:
            st.run_s = run0 + time.perf_counter() - t_start
            checkpoint(False)
            last_ckpt = time.perf_counter()
    if pending is not None:
        merge(*pending)
    wall = time.perf_counter() - t_start
    st.run_s = run0 + wall
    checkpoint(True)
    if bar is not None:
        bar.close()

    if nproc > 1:
        st.allgather()
    timings = {"compile_s": compile_s, "run_s": wall, "run_s_total": st.run_s,
               "points_this_session": st.points - pts0,
               "points_per_s": (st.points - pts0) / wall if wall > 0 else 0.0,
               "chunk": chunk, "chunks": n_chunks, "devices": shards, "processes": nproc,
               "hoisted": [space.axes[a].name for a in inner], "pruned": prune, "quick_compile": plan.fast_compile,
               "device_kind": devices[0].device_kind, "jax_version": jax.__version__}
    dump_arrays = _collect_dumps(dumps, rundir, n_chunks, plan.fields, sort=bool(inner)) if dump else None
    res = build_result(space, objective, pareto, plan.fields, st, total, timings, dump_arrays,
                       str(rundir) if rundir else None)
    if prune:
        winners.complete([res.top, res.pareto], space, model_fn, keep)
    res = dataclasses.replace(res, dump_format=dump_format)
    if rundir is not None and proc == 0:
        write_outputs(res, rundir)
    return res

