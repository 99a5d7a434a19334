"""L4: streaming reducers of the sweep engine: on-device per chunk, merged on the host.

Device side (traced inside the sweep's single jit, once per *shard* of a chunk under
``shard_map``, so a sharded chunk reduces locally on each device):

- ``top_k``: ``lax.top_k`` of the objective masked to -inf where infeasible or padded.
  ``lax.top_k`` keeps the lower position first among equal values, so the per-shard set is
  exactly the shard's best k under the order (value desc, index asc).
- ``pareto_candidates``: a bounded candidate set that never drops a non-dominated point
  unless more than ``cap`` survive (counted, reported as ``pareto_dropped``). With two
  metrics it is the exact shard front (sort by m0 desc, m1 desc, index; keep points whose
  m1 beats the running maximum; on CPU the points a higher m0 bin dominates are dropped
  first, so usually only a few hundred are sorted: +15 % on a pruned hbm-whatif sweep).
  With three, points dominated by any of a fixed set of
  scalarisation optima ("seeds", all Pareto-optimal) are removed.
- ``counts`` (``jnp.bincount`` of the reason code, padded points in an extra bucket) and a
  log2 histogram of the objective over feasible points.

Host side: ``TopK`` and ``Front`` hold small numpy states. Their merges are deterministic
and order-independent (total order: value desc, then global index asc; a Pareto point is
kept iff no point dominates it and no equal point has a lower index), so a resumed, a
multi-device and a multi-process run give exactly the answer of a plain run.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["top_k", "pareto_candidates", "counts", "log2_histogram", "TopK", "Front",
           "HIST_BINS", "HIST_OFFSET", "RunState"]

HIST_BINS = 128          # log2 bins 2**-64 ... 2**63 of the objective value
HIST_OFFSET = 64
PREFILTER = 512          # 2-metric front: survivors of the bin filter sorted (more: the whole shard)
PREFILTER_BINS = 64      # m0 bins of that filter


# ---------------------------------------------------------------- device side
def top_k(key, k: int):
    """Top-k of one shard. key: float32[per] (-inf = excluded) -> (values, positions) [k]."""
    vals, pos = lax.top_k(key, k)
    return vals, pos.astype(jnp.int32)


def _seed_weights(m: int) -> np.ndarray:
    """Strictly positive scalarisation weights: a simplex lattice plus near-lexicographic ones."""
    n = 6
    lat = [(a, b, n - a - b) for a in range(1, n) for b in range(1, n - a)] if m == 3 else \
        [(a, n - a) for a in range(1, n)]
    eps = [1.0, 1e-3, 1e-6][:m]
    lex = {tuple(eps[(i + j) % m] for j in range(m)) for i in range(m)}
    lex |= {tuple(reversed(t)) for t in lex}
    w = np.array(sorted(lat) + sorted(lex), dtype=np.float32)
    return w / w.sum(axis=1, keepdims=True)


def _front_sorted(xs, keys, mask, cap: int):
    """The front of the points ``xs`` (``keys``: their shard positions, the tie order; ``mask``:
    the shard's points that count): sort by m0 desc, m1 desc, position, keep each point whose
    m1 beats the running maximum, and the first ``cap`` of those in sorted order."""
    n0, n1, order = lax.sort((-xs[:, 0], -xs[:, 1], keys), num_keys=3)
    del n0
    s1 = -n1
    prev = jnp.concatenate([jnp.full((1,), -jnp.inf, xs.dtype), lax.cummax(s1)[:-1]])
    cand = mask[order] & (s1 > prev)
    score = jnp.where(cand, -jnp.arange(xs.shape[0], dtype=jnp.float32), -jnp.inf)
    _, j = lax.top_k(score, cap)
    return order[j], cand[j], jnp.sum(cand, dtype=jnp.int32)


def _front_2d(x, ok, cap: int, prefilter: bool = False):
    per = x.shape[0]
    pos = jnp.arange(per, dtype=jnp.int32)
    if not prefilter or per <= 2 * PREFILTER:
        return _front_sorted(x, pos, ok, cap)
    # A point is dominated by any point of a strictly higher m0 bin with m1 at least its own
    # (bins are monotone in m0, so a higher bin means a strictly larger m0): drop those in
    # O(n), then sort only the survivors (the first PREFILTER by position; when more survive,
    # the whole shard). Dropping dominated points changes neither the front nor its sorted
    # order, so the candidates and their order are the same.
    x0, x1 = x[:, 0], x[:, 1]
    lo = jnp.min(jnp.where(ok, x0, jnp.inf))
    hi = jnp.max(jnp.where(ok, x0, -jnp.inf))
    width = jnp.where(hi > lo, hi - lo, 1.0)
    b = jnp.clip(jnp.floor((jnp.where(ok, x0, lo) - lo) / width * PREFILTER_BINS), 0, PREFILTER_BINS - 1)
    b = b.astype(jnp.int32)
    top = jax.ops.segment_max(jnp.where(ok, x1, -jnp.inf), b, num_segments=PREFILTER_BINS)
    above = jnp.concatenate([lax.cummax(top, reverse=True)[1:], jnp.full((1,), -jnp.inf, x.dtype)])
    keep = ok & ~(above[b] >= x1)

    def survivors(_):
        _, idx = lax.top_k(jnp.where(keep, -pos.astype(jnp.float32), -jnp.inf), PREFILTER)
        return _front_sorted(jnp.where(keep[idx][:, None], x[idx], -jnp.inf), idx, keep, cap)

    return lax.cond(jnp.sum(keep) <= PREFILTER, survivors, lambda _: _front_sorted(x, pos, ok, cap), None)


def _front_seeded(x, ok, cap: int):
    lo = jnp.min(jnp.where(ok[:, None], x, jnp.inf), axis=0)
    hi = jnp.max(jnp.where(ok[:, None], x, -jnp.inf), axis=0)
    span = jnp.where(hi > lo, hi - lo, 1.0)[None, :]
    xn = jnp.where(ok[:, None], (x - jnp.where(ok.any(), lo, 0.0)[None, :]) / span, 0.0)
    w = jnp.asarray(_seed_weights(x.shape[1]))
    s = jnp.where(ok[:, None], xn @ w.T, -jnp.inf)            # [per, K]
    seed = jnp.argmax(s, axis=0)                                 # [K]
    sx, sok = x[seed], ok[seed]
    ge = jnp.all(sx[None, :, :] >= x[:, None, :], axis=-1)
    gt = jnp.any(sx[None, :, :] > x[:, None, :], axis=-1)
    dom = jnp.any(sok[None, :] & ge & gt, axis=1)
    cand = ok & ~dom
    score = jnp.where(cand, jnp.sum(xn, axis=1), -jnp.inf)
    _, j = lax.top_k(score, cap)
    return j.astype(jnp.int32), cand[j], jnp.sum(cand, dtype=jnp.int32)


def pareto_candidates(x, ok, cap: int, prefilter: bool = False):
    """Candidates of one shard. x: float32[per, m] (maximise), ok: bool[per]. ``prefilter``
    (two metrics): drop points a higher m0 bin dominates before the sort (CPU: the sort of
    the whole shard was ~30 % of a pruned sweep step; the result is the same).

    Returns (pos int32[cap], sel bool[cap], n_candidates int32[]).
    """
    ok = ok & jnp.all(jnp.isfinite(x), axis=-1)
    x = jnp.where(ok[:, None], x, -jnp.inf)
    if x.shape[-1] == 2:
        return _front_2d(x, ok, cap, prefilter)
    return _front_seeded(x, ok, cap)


def counts(code, n: int):
    """Histogram of int codes in [0, n] (n = padding bucket) -> int32[n + 1]."""
    return jnp.bincount(code, length=n + 1).astype(jnp.int32)


def log2_histogram(value, ok):
    """Counts of floor(log2(value)) for ok & value > 0, in HIST_BINS bins."""
    good = ok & (value > 0) & jnp.isfinite(value)
    b = jnp.clip(jnp.floor(jnp.log2(jnp.where(good, value, 1.0))), -HIST_OFFSET, HIST_BINS - HIST_OFFSET - 1)
    code = jnp.where(good, b.astype(jnp.int32) + HIST_OFFSET, HIST_BINS)
    return jnp.bincount(code, length=HIST_BINS + 1)[:HIST_BINS].astype(jnp.int32)


# ---------------------------------------------------------------- host side
@dataclasses.dataclass
class TopK:
    """Best ``k`` points by (value desc, index asc). ``values`` are maximise-form."""

    k: int
    n_fields: int
    index: np.ndarray = None
    values: np.ndarray = None
    fields: np.ndarray = None

    def __post_init__(self):
        if self.index is None:
            self.index = np.zeros(0, np.int64)
            self.values = np.zeros(0, np.float32)
            self.fields = np.zeros((0, self.n_fields), np.float32)

    def merge(self, index, values, fields):
        keep = np.isfinite(values)
        idx = np.concatenate([self.index, np.asarray(index, np.int64)[keep]])
        val = np.concatenate([self.values, np.asarray(values, np.float32)[keep]])
        fld = np.concatenate([self.fields, np.asarray(fields, np.float32)[keep]])
        order = np.lexsort((idx, -val.astype(np.float64)))[: self.k]
        self.index, self.values, self.fields = idx[order], val[order], fld[order]

    def arrays(self, prefix: str) -> dict:
        return {f"{prefix}index": self.index, f"{prefix}values": self.values, f"{prefix}fields": self.fields}

    def load(self, arrays: dict, prefix: str):
        self.index = np.asarray(arrays[f"{prefix}index"], np.int64)
        self.values = np.asarray(arrays[f"{prefix}values"], np.float32)
        self.fields = np.asarray(arrays[f"{prefix}fields"], np.float32).reshape(-1, self.n_fields)


def _beaten(xa, ia, xb, ib) -> np.ndarray:
    """bool[len(b)]: b_j is dominated by some a_i, or equals one with a lower index."""
    if len(xa) == 0 or len(xb) == 0:
        return np.zeros(len(xb), bool)
    ge = np.all(xa[:, None, :] >= xb[None, :, :], axis=-1)
    gt = np.any(xa[:, None, :] > xb[None, :, :], axis=-1)
    tie = ge & ~gt & (ia[:, None] < ib[None, :])
    return np.any((ge & gt) | tie, axis=0)


@dataclasses.dataclass
class Front:
    """Exact Pareto front (maximise-form ``x``) of everything merged, capped at ``capacity``."""

    m: int
    n_fields: int
    capacity: int
    dropped: int = 0
    index: np.ndarray = None
    x: np.ndarray = None
    fields: np.ndarray = None

    def __post_init__(self):
        if self.index is None:
            self.index = np.zeros(0, np.int64)
            self.x = np.zeros((0, self.m), np.float32)
            self.fields = np.zeros((0, self.n_fields), np.float32)

    def merge(self, index, x, fields, dropped: int = 0):
        index = np.asarray(index, np.int64)
        x = np.asarray(x, np.float32).reshape(-1, self.m)
        fields = np.asarray(fields, np.float32).reshape(-1, self.n_fields)
        self.dropped += int(dropped)
        x64, f64 = x.astype(np.float64), self.x.astype(np.float64)
        new = ~_beaten(f64, self.index, x64, index)             # new points not beaten by the front
        index, x, fields, x64 = index[new], x[new], fields[new], x64[new]
        new = ~_beaten(x64, index, x64, index)                   # among themselves
        index, x, fields, x64 = index[new], x[new], fields[new], x64[new]
        old = ~_beaten(x64, index, f64, self.index)              # front points beaten by new ones
        idx = np.concatenate([self.index[old], index])
        xs = np.concatenate([self.x[old], x])
        fl = np.concatenate([self.fields[old], fields])
        order = np.lexsort((idx, *(-xs[:, j].astype(np.float64) for j in reversed(range(self.m)))))
        if len(order) > self.capacity:
            self.dropped += len(order) - self.capacity
            order = order[: self.capacity]
        self.index, self.x, self.fields = idx[order], xs[order], fl[order]

    def arrays(self, prefix: str) -> dict:
        return {f"{prefix}index": self.index, f"{prefix}x": self.x, f"{prefix}fields": self.fields,
                f"{prefix}dropped": np.array(self.dropped, np.int64)}

    def load(self, arrays: dict, prefix: str):
        self.index = np.asarray(arrays[f"{prefix}index"], np.int64)
        self.x = np.asarray(arrays[f"{prefix}x"], np.float32).reshape(-1, self.m)
        self.fields = np.asarray(arrays[f"{prefix}fields"], np.float32).reshape(-1, self.n_fields)
        self.dropped = int(arrays[f"{prefix}dropped"])


# ---------------------------------------------------------------- multi-process merge
def _split64(a) -> np.ndarray:
    a = np.asarray(a, np.int64)
    return np.stack([(a >> 31).astype(np.int32), (a & (2**31 - 1)).astype(np.int32)], -1)


def _join64(a) -> np.ndarray:
    a = np.asarray(a, np.int64)
    return (a[..., 0] << 31) | a[..., 1]


def _pad(a, n, fill):
    a = np.asarray(a)
    out = np.full((n, *a.shape[1:]), fill, a.dtype)
    out[: len(a)] = a
    return out


class RunState:
    """All host-side reducer state of one sweep (one process): what a checkpoint holds."""

    def __init__(self, k: int, fields: tuple[str, ...], pareto: tuple[str, ...], pareto_signs,
                 cap: int, front_capacity: int, n_reasons: int):
        self.fields, self.pareto, self.cap, self.n_reasons = fields, pareto, cap, n_reasons
        self.cols = [fields.index(m) for m in pareto]
        self.signs = np.array(pareto_signs, np.float32)
        self.top = TopK(k, len(fields))
        self.front = Front(len(pareto), len(fields), front_capacity) if pareto else None
        self.counts = np.zeros(n_reasons, np.int64)
        self.hist = np.zeros(HIST_BINS, np.int64)
        self.pos = 0            # chunks of this process merged so far (in order)
        self.points = 0
        self.run_s = 0.0

    def merge_chunk(self, o: dict, base: int, per: int, n_valid: int, index_map=None, global_pos: bool = False):
        """Fold one chunk's device output (numpy) into the state; ``base`` = its first index,
        or ``index_map`` = the global index of each chunk position (a sampled run), or
        ``global_pos``: the positions already are global indices (a hoisted sweep)."""
        nf = len(self.fields)
        offs = (np.arange(o["top_pos"].shape[0], dtype=np.int64) * per)[:, None]

        def glob(pos):
            if global_pos:
                return np.asarray(pos, np.int64).ravel()
            local = (offs + pos).ravel()
            return base + local if index_map is None else index_map[np.minimum(local, len(index_map) - 1)]

        self.top.merge(glob(o["top_pos"]), o["top_values"].ravel(), o["top_fields"].reshape(-1, nf))
        if self.front is not None:
            sel = o["par_sel"].ravel()
            fl = o["par_fields"].reshape(-1, nf)[sel]
            self.front.merge(glob(o["par_pos"])[sel], fl[:, self.cols] * self.signs, fl,
                             dropped=int(np.maximum(o["par_n"] - self.cap, 0).sum()))
        self.counts += np.asarray(o["counts"]).reshape(-1, o["counts"].shape[-1]).sum(0)[: self.n_reasons]
        self.hist += np.asarray(o["hist"]).reshape(-1, o["hist"].shape[-1]).sum(0)   # summed over shards
        self.points += n_valid
        self.pos += 1

    def arrays(self) -> dict:
        return {**self.top.arrays("top_"), **(self.front.arrays("par_") if self.front else {}),
                "counts": self.counts, "hist": self.hist, "pos": np.int64(self.pos),
                "points": np.int64(self.points), "run_s": np.float64(self.run_s)}

    def load(self, arrays: dict):
        self.top.load(arrays, "top_")
        if self.front is not None:
            self.front.load(arrays, "par_")
        self.counts = arrays["counts"].astype(np.int64)
        self.hist = arrays["hist"].astype(np.int64)
        self.pos, self.points, self.run_s = int(arrays["pos"]), int(arrays["points"]), float(arrays["run_s"])

    def allgather(self):
        """Merge every process's state into this one (same result on every process)."""
        _allgather_merge(self.top, self.front, self)


def _allgather_merge(top, front, state):
    """Merge every process's reducer state (fixed shapes; int64 split into two int32)."""
    from jax.experimental import multihost_utils

    k = top.k
    mine = {"top_index": _split64(_pad(top.index, k, -1)), "top_n": np.int32(len(top.index)),
            "top_values": _pad(top.values, k, -np.inf), "top_fields": _pad(top.fields, k, 0),
            "counts": _split64(state.counts), "hist": _split64(state.hist),
            "points": _split64(np.int64(state.points))}
    if front is not None:
        c = front.capacity
        mine.update({"par_index": _split64(_pad(front.index, c, -1)), "par_n": np.int32(len(front.index)),
                     "par_x": _pad(front.x, c, 0), "par_fields": _pad(front.fields, c, 0),
                     "par_dropped": _split64(np.int64(front.dropped))})
    allv = jax.tree_util.tree_map(np.asarray, multihost_utils.process_allgather(mine))
    nproc = allv["top_n"].shape[0]
    merged_top = TopK(top.k, top.n_fields)
    for p in range(nproc):
        n = int(allv["top_n"][p])
        merged_top.merge(_join64(allv["top_index"][p])[:n], allv["top_values"][p][:n], allv["top_fields"][p][:n])
    top.index, top.values, top.fields = merged_top.index, merged_top.values, merged_top.fields
    state.counts = _join64(allv["counts"]).sum(0)
    state.hist = _join64(allv["hist"]).sum(0)
    state.points = int(_join64(allv["points"]).sum())
    if front is not None:
        merged = Front(front.m, front.n_fields, front.capacity)
        for p in range(nproc):
            n = int(allv["par_n"][p])
            merged.merge(_join64(allv["par_index"][p])[:n], allv["par_x"][p][:n], allv["par_fields"][p][:n],
                         dropped=int(_join64(allv["par_dropped"][p])))
        front.index, front.x, front.fields, front.dropped = merged.index, merged.x, merged.fields, merged.dropped
