"""L4: hierarchical branch-and-bound search: the exhaustive sweep's exact top-k, pruned.

Contract::

    res = search(load_space("spaces/deepstack-decode.yaml"), top_k=10, fix={"request.batch": [1024]})
    res.top          # == sweep(...).top of the same (restricted) space: same designs, same values

The axes of a space fall into four roles (``roles``):
- schedule: the ``mapping`` factorisation axis (x flags) and axes setting only
  ``request.batch`` / ``mapping.*`` leaves (inner loop: the best mapping per hardware);
- monotone: axes whose every leaf is in ``bounds.MONOTONE`` (fabric link bandwidths, hop
  latencies, ...; bandwidths only on unpacketised fabrics) or ``bounds.COMPUTE_MONOTONE`` (the chip
  clock, the DRAM transfer rate and efficiency: then every bound is of B5's form): the bound is
  monotone along them;
- free: axes no bound reads (jaxpr dead-code elimination: TDP, energies, thermal constants);
- hardware: everything else (outer loop).
A *group* is one hardware x schedule point; its sub-grid is every monotone x free point.

Level 0 (``bounds`` B3): structural feasibility (device count, divisibility, batch, memory)
depends only on a few axes (found by the same DCE); it is evaluated once on their product
and only feasible combinations are enumerated. Level 1 streams the groups in fixed-shape
chunks through one compiled ``jit(vmap(bounds.bound_point))`` at the optimistic corner of
the monotone axes (bound B1+B2 of the whole sub-grid, shared by its 7^3 x 5^3 x ... points)
(a group with overlap off takes its overlap-on sibling's bound, ``bounds`` B6)
and keeps the groups whose bound reaches the incumbent T (the k-th best exact value so far,
raised by exact evaluations of the best corners, "seeds"). Level 2 explores each surviving
group best-first as a staircase over the monotone axes (positions sorted optimistic-first):
a node's children step one axis further (each node has one parent, so nothing is visited
twice); a node whose bound is below T is cut with all its descendants (monotone bound), a
node that reaches T is evaluated exactly over all its free combinations with the same
``jit(vmap(evaluate))`` as ``sweep`` (same decode, same limits, same (value desc, index asc)
order in ``reducers.TopK``). A cut needs bound < T by the relative ``bounds.MARGIN``, so
ties are always evaluated: the result is exactly the exhaustive top-k.

``out``: a run directory like ``sweep``'s (manifest.json + state.npz written atomically after
a level-1 super-chunk, at most every ``checkpoint_every_s``); ``resume=True`` continues after
a kill (level 2 reruns from the end-of-level-1 checkpoint) with the same answer, and refuses
a changed space or options. Chunks are sharded over ``devices``; with several processes
(``jax.distributed``) process p takes super-chunks p, p+P, ... and top-k states are merged.
"""

import hashlib
import math
import time
from pathlib import Path

import jax
import numpy as np

from .. import __version__
from ..edges import io
from ..types.metrics import HIGHER_IS_BETTER, Reason
from . import bounds, reducers
from .bounds import Roles, roles
from .rundir import SearchResult
from .space import check_metric, load_space, metric_fields
from .space_axes import restrict
from .step import digits_step
from .sweep import (
    DEFAULT_OBJECTIVE,
    _progress_bar,
    _rows,
    _save_npz,
    _write_json,
    _write_table,
    auto_chunk,
    map_chunks,
    resume_state,
)

__all__ = ["search", "SearchResult", "SUPER_CHUNKS", "Roles", "roles", "restrict"]

SUPER_CHUNKS = 8                 # level-1 chunks between seedings / checkpoints
SMALL_GROUPS = 2**20             # fewer level-1 groups: level 1 uses the level-2 step too (one compile less)
SURVIVOR_CAP = 2**21             # level-1 survivors before a level-2 pass raises the incumbent
_COUNTERS = ("points", "feasibility_pruned", "groups", "level1_pruned", "bound_evals", "exact_evals", "seeds")


def _grid(lists) -> np.ndarray:
    """Every combination of the digit lists, first list slowest: int64[prod, len(lists)]."""
    if not lists:
        return np.zeros((1, 0), np.int64)
    return np.stack(np.meshgrid(*lists, indexing="ij"), -1).reshape(-1, len(lists)).astype(np.int64)


# ---------------------------------------------------------------- the engine
class _Search:
    """Host state of one search (what a checkpoint holds) and its two levels."""

    def __init__(self, space, objective, k, allowed, rl, devices, evaluate_fn):
        self.space, self.objective, self.k, self.allowed, self.rl = space, objective, k, allowed, rl
        self.sign = np.float32(1.0 if HIGHER_IS_BETTER[objective] else -1.0)
        self.fields = tuple(metric_fields())
        self.col = self.fields.index(objective)
        self.strides = np.array([math.prod(space.radices[a + 1:]) for a in range(len(space.axes))], np.int64)
        self.lim = [(self.fields.index(m.metric), np.float32(-np.inf if m.lo is None else m.lo),
                     np.float32(np.inf if m.hi is None else m.hi)) for m in space.limits]
        self.chunk = auto_chunk(devices)
        self.xchunk = max(self.chunk // 4, len(devices))
        self.block = max(int(SUPER_CHUNKS * self.chunk), 1)
        self.devices, self.evaluate_fn, self.compile_s = devices, evaluate_fn, 0.0
        self.top = reducers.TopK(k, len(self.fields))
        self.count = dict.fromkeys(_COUNTERS, 0)
        self.seeded = np.zeros(0, np.int64)
        self.surv_i, self.surv_u = np.zeros(0, np.int64), np.zeros(0)
        self.pending, self.n_pending = [], 0
        self.pos, self.run_s = 0, 0.0
        self.group_axes = [a for a in rl.hardware + rl.schedule if a not in rl.feasibility]
        self.radix = [len(allowed[a]) for a in self.group_axes]
        self.nR = math.prod(self.radix)
        self.sub = math.prod(len(allowed[a]) for a in rl.monotone + rl.free)
        self.free = _grid([allowed[a] for a in rl.free])
        self.sizes = np.array([len(o) for o in rl.order], np.int64)
        self.siblings = bounds.overlap_siblings(space, allowed)     # B6: one bound per overlap pair

    # ---- points
    @property
    def T(self) -> float:
        return float(self.top.values[-1]) if len(self.top.index) >= self.k else -np.inf

    def level0(self):
        """Feasible combinations of the structural axes (B3), evaluated once."""
        fz = self.rl.feasibility
        combos = _grid([self.allowed[a] for a in fz])
        self.kind1 = "node" if len(combos) * self.nR < SMALL_GROUPS else "bound"
        if fz:
            d = self._digits(np.zeros(len(combos), np.int64), combos=combos)
            ok = self._call(self.kind1, d)[2]
            combos = combos[ok > 0.5]
        self.combos = combos
        total = math.prod(len(a) for a in self.allowed)
        self.count["points"] = total
        self.count["feasibility_pruned"] = total - len(combos) * self.nR * self.sub
        self.n_groups = len(combos) * self.nR

    def _digits(self, items, combos=None, pos=None, free=None) -> np.ndarray:
        """Digits [n, A] of group ``items`` at monotone positions ``pos`` (default: the corner)."""
        rl, n = self.rl, len(items)
        d = np.zeros((n, len(self.space.axes)), np.int32)
        p, r = np.divmod(items, self.nR)
        d[:, list(rl.feasibility)] = (self.combos[p] if combos is None else combos).reshape(n, -1)
        for a, rad in zip(reversed(self.group_axes), reversed(self.radix), strict=True):
            r, j = np.divmod(r, rad)
            d[:, a] = self.allowed[a][j]
        for j, a in enumerate(rl.monotone):
            d[:, a] = rl.order[j][0 if pos is None else pos[:, j]]
        for j, a in enumerate(rl.free):
            d[:, a] = self.allowed[a][0] if free is None else free[:, j]
        return d

    def _call(self, kind: str, digits):
        """Compiled step ``kind`` (bound | node | exact; compiled on first use) over digits."""
        b5 = self.rl.b5                   # a clock / DRAM-rate axis in the boxes: the B5 bounds
        fn = {"bound": bounds.bound_point_b5 if b5 else bounds.bound_point,
              "node": bounds.bound_node_b5 if b5 else bounds.bound_node, "exact": self.evaluate_fn}[kind]
        chunk = self.xchunk if kind == "exact" else self.chunk
        call, c = digits_step(self.space, kind, fn, self.devices, chunk)
        self.compile_s += c
        return tuple(map_chunks(call, digits, chunk))

    def _bound(self, digits, node: bool = False):
        """Maximise-form upper bounds (-inf: pruned by B3/B4) of the box at each row of
        ``digits`` and, with ``node``, of the point itself."""
        out = self._call("node" if node else self.kind1, digits)
        t_lb, mem, ok, batch = out[:4]
        self.count["bound_evals"] += len(digits)
        dead = (ok < 0.5) | bounds.limit_dead(self.space.limits, t_lb, batch, mem)
        u = np.where(dead, -np.inf, bounds.objective_bound(self.objective, t_lb, batch, mem))
        if not node:
            return u
        dead |= bounds.limit_dead(self.space.limits, out[4], batch, mem)
        return u, np.where(dead, -np.inf, bounds.objective_bound(self.objective, out[4], batch, mem))

    def _exact(self, digits):
        """Exact evaluation (sweep semantics) merged into the top-k; seeds are skipped."""
        index = digits.astype(np.int64) @ self.strides
        keep = ~np.isin(index, self.seeded)
        digits, index = digits[keep], index[keep]
        if not len(index):
            return
        f, feasible, reason = self._call("exact", digits)
        self.count["exact_evals"] += len(index)
        ok = feasible.astype(bool)
        for j, lo, hi in self.lim:
            ok &= ~((f[:, j] < lo) | (f[:, j] > hi))
        obj = self.sign * f[:, self.col]
        self.top.merge(index, np.where(ok & ~np.isnan(obj), obj, -np.inf).astype(np.float32), f)

    # ---- level 1
    def level1_block(self, block: int):
        lo = block * self.block
        items = np.arange(lo, min(lo + self.block, self.n_groups), dtype=np.int64)
        d = self._digits(items)
        if self.siblings is None:
            u = self._bound(d)
        else:                          # a group with overlap off takes its overlap-on sibling's bound (B6)
            m, rep = self.siblings
            d[:, m] = rep[d[:, m]]
            _, first, inv = np.unique(d.astype(np.int64) @ self.strides, return_index=True, return_inverse=True)
            u = self._bound(d[first])[inv.reshape(-1)]
        live = ~bounds.below(u, self.T) & (u > -np.inf)
        items, u = items[live], u[live]
        if len(items):                 # seeds: exact corners of the block's best groups
            best = np.argsort(-u, kind="stable")[: min(self.k, len(u))]
            best = best[~bounds.below(u[best], self.T)]
            d = self._digits(items[best])
            self._exact(d)
            self.seeded = np.union1d(self.seeded, d.astype(np.int64) @ self.strides)
            self.count["seeds"] += len(best)
        self.pending.append((items, u))        # joined when needed (re-joining per block was quadratic)
        self.n_pending += len(items)
        if len(self.surv_i) + self.n_pending > SURVIVOR_CAP:
            self.compact()
            if len(self.surv_i) > SURVIVOR_CAP // 2:
                top = np.argsort(-self.surv_u, kind="stable")[: SURVIVOR_CAP // 4]
                self.level2(self.surv_i[top], self.surv_u[top])
                rest = np.ones(len(self.surv_i), bool)
                rest[top] = False
                self.surv_i, self.surv_u = self.surv_i[rest], self.surv_u[rest]

    def join(self):
        """Fold the pending level-1 survivors into ``surv_i`` / ``surv_u``."""
        if self.pending:
            self.surv_i = np.concatenate([self.surv_i] + [p[0] for p in self.pending])
            self.surv_u = np.concatenate([self.surv_u] + [p[1] for p in self.pending])
            self.pending, self.n_pending = [], 0

    def compact(self):
        self.join()
        keep = ~bounds.below(self.surv_u, self.T)
        self.surv_i, self.surv_u = self.surv_i[keep], self.surv_u[keep]

    # ---- level 2
    def level2(self, items, u):
        """Staircase over the monotone axes of every group in ``items``, one generation (sum
        of positions) at a time, best bound first; exact evaluations batched per generation."""
        nm, rep = len(self.rl.monotone), len(self.free)
        fr_i, fr_p = np.asarray(items, np.int64), np.zeros((len(items), nm), np.int16)
        fr_last, fr_u = np.zeros(len(items), np.int16), np.asarray(u, np.float64)
        while len(fr_i):
            keep = ~bounds.below(fr_u, self.T)
            order = np.argsort(-fr_u[keep], kind="stable")
            fr_i, fr_p, fr_last, fr_u = (x[keep][order] for x in (fr_i, fr_p, fr_last, fr_u))
            nxt, todo = [], []
            for lo in range(0, len(fr_i), self.chunk):
                live = ~bounds.below(fr_u[lo:lo + self.chunk], self.T)
                ti, tp, tl = (x[lo:lo + self.chunk][live] for x in (fr_i, fr_p, fr_last))
                if not len(ti):
                    continue
                un, up = self._bound(self._digits(ti, pos=tp), node=True)
                ok = ~bounds.below(un, self.T) & (un > -np.inf)
                ev = ok & ~bounds.below(up, self.T) & (up > -np.inf)   # the node's own points may reach T
                todo.append((ti[ev], tp[ev]))
                ti, tp, tl, un = ti[ok], tp[ok], tl[ok], un[ok]
                for j in range(nm):        # children: one step further along axes j >= last
                    c = (tl <= j) & (tp[:, j] + 1 < self.sizes[j])
                    cp = tp[c].copy()
                    cp[:, j] += 1
                    nxt.append((ti[c], cp, np.full(int(c.sum()), j, np.int16), un[c]))
                if sum(len(t[0]) for t in todo) * rep >= self.xchunk:
                    todo = self._exact_nodes(todo, rep)
            self._exact_nodes(todo, rep)
            if not nxt:
                break
            fr_i, fr_p, fr_last, fr_u = (np.concatenate([t[k] for t in nxt]) for k in range(4))

    def _exact_nodes(self, todo, rep):
        ei = np.concatenate([t[0] for t in todo]) if todo else np.zeros(0, np.int64)
        if len(ei):
            ep = np.concatenate([t[1] for t in todo])
            self._exact(self._digits(np.repeat(ei, rep), pos=np.repeat(ep, rep, 0),
                                     free=np.tile(self.free, (len(ei), 1)) if self.free.shape[1] else None))
        return []

    # ---- checkpoint
    def arrays(self) -> dict:
        self.join()
        return {**self.top.arrays("top_"), "seeded": self.seeded, "surv_i": self.surv_i, "surv_u": self.surv_u,
                "pos": np.int64(self.pos), "run_s": np.float64(self.run_s),
                "counters": np.array([self.count[c] for c in _COUNTERS], np.int64)}

    def load(self, z: dict):
        self.top.load(z, "top_")
        self.seeded, self.surv_i, self.surv_u = z["seeded"], z["surv_i"], z["surv_u"]
        self.pos, self.run_s = int(z["pos"]), float(z["run_s"])
        self.count.update(zip(_COUNTERS, (int(x) for x in z["counters"]), strict=True))


def search(space, *, objective: str | None = None, top_k: int = 10, fix: dict | None = None, allowed=None,
           out=None, resume: bool = False, devices=None, evaluate_fn=None, seed_indices=(),
           checkpoint_every_s: float = 5.0, progress=None, on_block=None, plan_only: bool = False) -> SearchResult:
    """The exact top-k of ``space`` (restricted by ``fix`` or per-axis ``allowed`` digits).

    ``seed_indices``: global indices known to lie in the space (e.g. the previous stage's
    best in an ablation), evaluated first so that pruning starts from their values.
    ``on_block``: optional callback(blocks_done, counters) after each level-1 super-chunk
    (after its checkpoint). ``plan_only``: stop after level 0 (counts of points, feasible
    groups and sub-grid sizes, no top). Statistics count design points: feasibility_pruned (level 0),
    level1_pruned (whole sub-grids), exact_evals; bound_evals counts bound evaluations.
    """
    if isinstance(space, (str, Path)):
        space = load_space(space)
    objective = check_metric(objective or space.objective or DEFAULT_OBJECTIVE, "search", "objective")
    if isinstance(top_k, bool) or int(top_k) < 1:
        raise io.ConfigError(f"search: key 'top_k': {top_k!r}; allowed: an integer >= 1")
    if space.size >= 2**62:
        raise io.ConfigError(f"search: {space.size:.3g} points; allowed: < 2^62 (int64 indices)")
    regimes = [float(space.base.serving.regime)] + [float(v) for a in space.axes for j, t in enumerate(a.targets)
                                                     if t == ("serving", "regime") for v in a.table[:, j]]
    if max(regimes) > 1.5:
        raise io.ConfigError(f"{space.path}: key 'serving.regime': search's bounds hold for the static and offline "
                             "regimes; allowed: static, offline (use sweep --sample or optimize for online or "
                             "concurrency serving)")
    allowed = [np.asarray(a, np.int64) for a in (allowed if allowed is not None else restrict(space, fix))]
    devices = list(devices or jax.local_devices())
    if evaluate_fn is None:
        from ..recipe.evaluate import evaluate as evaluate_fn
    rl = roles(space, allowed)
    s = _Search(space, objective, int(top_k), allowed, rl, devices, evaluate_fn)
    t_start = time.perf_counter()
    s.level0()
    nproc, proc = jax.process_count(), jax.process_index()
    run_id = {"space_hash": space.hash, "objective": objective, "top_k": int(top_k), "block": s.block,
              "processes": nproc, "allowed": hashlib.sha256(b"".join(a.tobytes() for a in allowed)).hexdigest()[:16],
              "seeds": [int(i) for i in seed_indices]}
    rundir, sfx = (Path(out) if out is not None else None), (f".p{proc}" if nproc > 1 else "")
    phase = 0
    if rundir is not None:
        phase = _open(rundir, sfx, run_id, resume, s)
    if s.pos == 0 and phase == 0 and len(seed_indices):
        d = np.array([space.digits(int(i)) for i in seed_indices], np.int32)
        s._exact(d)
        s.seeded = np.union1d(s.seeded, d.astype(np.int64) @ s.strides)
    n_blocks = -(-s.n_groups // s.block)
    mine = range(proc, n_blocks, nproc)
    bar = _progress_bar(len(mine), progress, unit="block", desc="search level 1")
    run0, last = s.run_s, time.perf_counter()

    def checkpoint(ph):
        if rundir is not None:
            s.run_s = run0 + time.perf_counter() - t_start
            _save_npz(rundir / f"state{sfx}.npz", {**s.arrays(), "phase": np.int64(ph)})
            _write_json(rundir / f"manifest{sfx}.json", {**run_id, "space": space.path, "phase": ph,
                        "blocks_done": s.pos, "blocks_mine": len(mine), "counters": s.count,
                        "jaxstack_version": __version__, "updated": time.time()})

    if plan_only:
        mine, phase = range(0), 2
    if phase == 0:
        for b in mine[s.pos:]:
            s.level1_block(b)
            s.pos += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(T=f"{s.T:.4g}", survivors=len(s.surv_i) + s.n_pending, exact=s.count["exact_evals"])
            if time.perf_counter() - last >= checkpoint_every_s:
                s.compact()
                checkpoint(0)
                last = time.perf_counter()
            if on_block is not None:
                on_block(s.pos, dict(s.count))
        s.compact()
        checkpoint(0)
        t1, c1 = time.perf_counter(), s.compile_s
        s.count["groups"] = s.n_groups
        s.count["level1_pruned"] = (s.n_groups - len(s.surv_i)) * s.sub
        s.level2(s.surv_i, s.surv_u)
        s.surv_i, s.surv_u = np.zeros(0, np.int64), np.zeros(0)
        checkpoint(1)
    else:
        t1, c1 = time.perf_counter(), s.compile_s
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t_start
    run = max(wall - s.compile_s, 1e-9)
    if nproc > 1:
        st = reducers.RunState(s.k, s.fields, (), (), 1, 1, len(Reason))
        st.top = s.top
        st.allgather()
    c = s.count
    stats = {**c, "space_points": space.size, "pruned": c["points"] - c["exact_evals"],
             "pruned_fraction": 1.0 - c["exact_evals"] / max(c["points"], 1), "incumbent": s.T,
             "monotone_axes": [space.axes[a].name for a in rl.monotone],
             "free_axes": [space.axes[a].name for a in rl.free],
             "schedule_axes": [space.axes[a].name for a in rl.schedule],
             "hardware_axes": [space.axes[a].name for a in rl.hardware],
             "feasibility_axes": [space.axes[a].name for a in rl.feasibility]}
    timings = {"compile_s": s.compile_s, "run_s": run, "wall_s": wall, "run_s_total": s.run_s or wall,
               "level1_s": t1 - t_start - c1, "level2_s": time.perf_counter() - t1 - (s.compile_s - c1),
               "bound_evals_per_s": c["bound_evals"] / run, "exact_evals_per_s": c["exact_evals"] / run,
               "points_per_s": c["points"] / run, "chunk": s.chunk,
               "exact_chunk": s.xchunk, "devices": len(devices), "processes": nproc,
               "device_kind": devices[0].device_kind, "jax_version": jax.__version__}
    stats["groups"], stats["sub_grid"] = s.n_groups, s.sub
    rows = _rows(space, s.fields, s.top.index, s.top.fields)
    res = SearchResult(space, objective, rows, stats, timings, str(rundir) if rundir else None)
    if rundir is not None and proc == 0 and not plan_only:
        _write_table(rundir / "top", res.top)
        _write_json(rundir / "summary.json", res.summary())
    return res


def _open(rundir: Path, sfx: str, run_id: dict, resume: bool, s: _Search) -> int:
    """Create ``rundir`` or (``resume``) check and load its state; returns the phase."""
    arrays = resume_state(rundir, sfx, run_id, resume, "search", s.space)
    if arrays is None:
        return 0
    s.load(arrays)
    return int(arrays["phase"])
