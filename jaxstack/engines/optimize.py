"""L4: gradient-guided co-optimisation of hardware and schedule over a design space.

Contract::

    res = optimize(load_space("spaces/quickstart.yaml"), objective="decode_tokens_per_s",
                   constraints=["power_W<=700"], optimizer="adam", lr=0.05, steps=150, starts=8)
    res.best                # {'index': ..., <axis columns in user units>, <exact metrics>}
    res.exact_evaluations   # points evaluated exactly (vs res.space.size for a sweep)

Method
1. Parameters. An axis with one numeric column, at least 2 values and a leaf that is not
   an enum, a mapping leaf, a topology integer or a 0/1 flag (``range`` axes and numeric
   ``choices``: layers, compute units, clock, SRAM, link bandwidths, batch, ...) becomes a
   continuous parameter z in [0, 1] over the axis's range, in log space when every value is
   positive: x = exp(log lo + z (log hi - log lo)), else x = lo + z (hi - lo). Integer
   leaves are relaxed to reals. Every other axis (presets, ``zip:`` groups, the mapping
   factorisations, enums, flags) is *discrete*: the product of their rows ("combos") is
   enumerated and each combo gets ``starts`` random starts in the same vmapped batch. With
   more than ``max_combos`` combos, each (at most ``max_screen``, sampled) is first
   evaluated exactly at ``screen`` random grid points and the best ``max_combos`` are kept.
2. Descent. Loss per start (``grad.Spec``): -log objective (maximised) or log objective
   (minimised) + w_t * sum of squared relative violations (``--constraint``s, the space's
   ``limits:``, and the model's memory / batch / DRAM-temperature masks); w_t grows
   geometrically from ``weight[0]`` to ``weight[1]`` and tau anneals geometrically from
   ``tau[0]`` (smooth) to ``tau[1]`` (sharp) over the steps; tau is traced, so the whole
   schedule uses one compile. Any optax first-order optimizer by name
   (``getattr(optax, name)(lr)``), vmapped over starts, then projection onto [0, 1].
3. Snap and verify. Each start's z is snapped to the nearest grid value of every
   parameter (in its own scale); the snapped points and their +-1-step neighbours per
   parameter are evaluated EXACTLY (relaxed off; one ``jit(vmap(evaluate))``), limits as in
   ``sweep``; then up to ``polish`` rounds of exact local search around the best
   ``polish_width`` feasible points (single and pairwise +-1 steps of the parameters, and
   every kept discrete combination at the same parameters) until the best stops improving. The best feasible
   point is returned; every distinct exact evaluation is counted.

Not done: gradients through discrete axes (enumerated instead); a certificate of global
optimality (``sweep`` or ``search`` give that).
"""

import dataclasses
import itertools
import math
import time

import jax
import numpy as np

from ..edges import io
from ..types.metrics import HIGHER_IS_BETTER, Reason
from . import grad
from .space import Limit, Space, check_metric, leaf_paths, metric_fields
from .space import _limit as _parse_limit

__all__ = ["optimize", "OptimizeResult", "Param", "parameters", "parse_constraint", "grid_rows",
           "DEFAULTS"]

DEFAULTS = {"optimizer": "adam", "lr": 0.05, "steps": 150, "starts": 8, "tau": (0.3, 0.02),
            "weight": (1.0, 1e3), "max_combos": 64, "screen": 4, "max_screen": 4096, "polish": 8,
            "polish_width": 4}
_FLAG_LEAVES = {("mapping",), ("fabric", "kind"), ("fabric", "size"), ("fabric", "dim_x"),
                ("fabric", "dim_y"), ("fabric", "ack_round_trip"), ("thermal", "dram_beside")}


@dataclasses.dataclass(frozen=True, eq=False)
class Param:
    """One continuous parameter: axis ``axis`` of the space, its grid sorted ascending."""

    axis: int
    name: str                 # the axis column (YAML key with unit suffix)
    leaf: int                 # leaf position in the Design
    grid: np.ndarray          # sorted SI values
    order: np.ndarray         # axis row of each sorted value
    log: bool
    per_user: float           # SI per user unit of ``name``

    @property
    def t(self) -> np.ndarray:
        return np.log(self.grid) if self.log else self.grid

    def x(self, z):
        """SI value and dx/dz at z in [0, 1]."""
        t = self.t
        v = t[0] + np.asarray(z) * (t[-1] - t[0])
        return (np.exp(v), np.exp(v) * (t[-1] - t[0])) if self.log else (v, np.full_like(v, t[-1] - t[0]))

    def z(self, sorted_idx):
        t = self.t
        return (t[sorted_idx] - t[0]) / (t[-1] - t[0])

    def snap(self, z) -> np.ndarray:
        """Sorted-grid position nearest to z (in the parameter's own scale)."""
        t = self.t
        v = t[0] + np.clip(z, 0.0, 1.0) * (t[-1] - t[0])
        return np.abs(v[..., None] - t).argmin(-1)


def _is_continuous(space: Space, a: int) -> bool:
    ax = space.axes[a]
    if len(ax.columns) != 1 or len(ax.targets) != 1 or ax.size < 2 or ax.columns[0] in ("hardware", "fabric",
                                                                                       "model", "mapping"):
        return False
    t = ax.targets[0]
    _names, unit, _f = io.resolve_path(ax.columns[0], space.path)
    if t[0] == "mapping" or (t[0], t[-1]) in grad.SKIPPED or unit == "enum":
        return False
    vals = ax.table[:, 0]
    return not set(np.unique(vals).tolist()) <= {0.0, 1.0} and not any(isinstance(r[0], str) for r in ax.display)


def parameters(space: Space) -> tuple[list[Param], list[int]]:
    """(continuous parameters, indices of the discrete axes with more than one row) of ``space``."""
    pos = {p: i for i, p in enumerate(leaf_paths(space.base))}
    params, discrete = [], []
    for a, ax in enumerate(space.axes):
        if not _is_continuous(space, a):
            if ax.size > 1:
                discrete.append(a)
            continue
        vals = ax.table[:, 0]
        order = np.argsort(vals, kind="stable")
        _names, _unit, factor = io.resolve_path(ax.columns[0], space.path)
        params.append(Param(a, ax.columns[0], pos[ax.targets[0]], vals[order], order,
                            bool(np.all(vals > 0)), factor))
    return params, discrete


def parse_constraint(text: str) -> Limit:
    """'power_W<=700', 'tpot_ms<=50', 'user_tokens_per_s>=20', 'memory_GiB<=100' -> Limit (SI)."""
    for op, kind in (("<=", "max"), (">=", "min"), ("<", "max"), (">", "min")):
        if op in text:
            key, _, val = text.partition(op)
            try:
                v = float(val.strip())
            except ValueError:
                break
            return _parse_limit(key.strip(), {kind: v}, "--constraint")
    raise io.ConfigError(f"--constraint '{text}': expected METRIC<=VALUE or METRIC>=VALUE, e.g. power_W<=700")


class _Layout:
    """The space's base leaf row and, per axis, the leaf positions it sets."""

    def __init__(self, space: Space):
        self.space = space
        self.base, self.treedef = grad.leaf_matrix(space.base)
        pos = {p: i for i, p in enumerate(leaf_paths(space.base))}
        self.pos = [[pos[t] for t in ax.targets] for ax in space.axes]

    def rows(self, digits, params=(), z=None) -> np.ndarray:
        digits = np.asarray(digits, np.int64).reshape(-1, len(self.space.axes))
        rows = np.repeat(self.base, len(digits), 0)
        for a, ax in enumerate(self.space.axes):
            if self.pos[a]:
                rows[:, self.pos[a]] = ax.table[digits[:, a]].astype(np.float32)
        for j, p in enumerate(params if z is not None else ()):
            rows[:, p.leaf] = p.x(z[:, j])[0]
        return rows


def grid_rows(space: Space, digits, params=(), z=None) -> np.ndarray:
    """(N, L) leaf rows (``grad.leaf_matrix`` layout) of axis digits (N, A); with ``z`` (N, P)
    the ``params`` take their continuous values x(z) instead of their grid rows."""
    return _Layout(space).rows(digits, params, z)


# ---------------------------------------------------------------- result
@dataclasses.dataclass
class OptimizeResult:
    """What ``optimize`` found. ``top`` rows are like ``SweepResult.top`` (rank, global index,
    axis columns in user units, exact metrics in SI); ``trajectory`` holds per step and
    start: tau, weight, loss, relaxed objective (SI), violation and z (normalised params)."""

    space: Space
    objective: str
    limits: tuple[Limit, ...]
    params: list[Param]
    discrete: list[str]
    combos: int                   # discrete combinations in the space
    combos_optimised: int
    top: list[dict]
    exact_evaluations: int
    relaxed_evaluations: int
    trajectory: dict
    timings: dict
    notes: list[str]

    @property
    def best(self) -> dict | None:
        return self.top[0] if self.top else None

    def summary(self) -> dict:
        return {"space": self.space.path, "space_points": self.space.size, "objective": self.objective,
                "direction": "max" if HIGHER_IS_BETTER[self.objective] else "min",
                "limits": [dataclasses.asdict(lim) for lim in self.limits],
                "parameters": [{"name": p.name, "log": p.log, "values": int(len(p.grid))} for p in self.params],
                "discrete_axes": self.discrete, "combos": self.combos, "combos_optimised": self.combos_optimised,
                "exact_evaluations": self.exact_evaluations, "relaxed_evaluations": self.relaxed_evaluations,
                "fewer_points_than_sweep": self.space.size / max(self.exact_evaluations, 1),
                "best": self.best, "top_k": len(self.top), "timings": self.timings, "notes": self.notes}


# ---------------------------------------------------------------- the optimiser
class _Exact:
    """Exact evaluations with memo by global index, limits applied as in ``sweep``."""

    def __init__(self, space, limits, objective, evaluate_fn):
        self.space, self.limits, self.objective, self.evaluate_fn = space, limits, objective, evaluate_fn
        self.sign = 1.0 if HIGHER_IS_BETTER[objective] else -1.0
        self.seen: dict[int, dict] = {}
        self.layout = _Layout(space)
        self.treedef = self.layout.treedef

    def __call__(self, digits: np.ndarray) -> list[dict]:
        digits = np.asarray(digits, np.int64).reshape(-1, len(self.space.axes))
        idx = [self.space.index(d) for d in digits]
        new = sorted({i for i in idx if i not in self.seen})
        if new:
            nd = np.array([self.space.digits(i) for i in new], np.int64).reshape(len(new), -1)
            m = grad.exact_batch(self.layout.rows(nd), self.treedef, self.evaluate_fn)
            ok = m["feasible"].copy()
            for lim in self.limits:
                v = m[lim.metric]
                ok &= (v >= (-np.inf if lim.lo is None else lim.lo)) & (v <= (np.inf if lim.hi is None else lim.hi))
            for k, i in enumerate(new):
                row = {"index": i, **self.space.values(i), **{f: float(m[f][k]) for f in metric_fields()},
                       "feasible": bool(ok[k]), "reason_code": int(m["reason"][k])}
                row["score"] = self.sign * row[self.objective] if ok[k] else -np.inf
                self.seen[i] = row
        return [self.seen[i] for i in idx]

    def best(self, k: int) -> list[dict]:
        good = [r for r in self.seen.values() if r["feasible"]]
        return sorted(good, key=lambda r: (-r["score"], r["index"]))[:k]


def _neighbours(params, digits, pairs: bool = False) -> np.ndarray:
    """+-1 sorted-grid step per parameter around each digit row (the rows themselves
    included); with ``pairs`` also every +-1 step of two parameters at once (moves along a
    binding constraint, e.g. a larger batch with a faster clock under a TPOT limit)."""
    steps = []
    for p in params:
        inv = np.empty(len(p.order), np.int64)
        inv[p.order] = np.arange(len(p.order))
        steps.append((p, inv[digits[:, p.axis]]))

    def moved(moves):
        nd = digits.copy()
        for (p, k), s in moves:
            nd[:, p.axis] = p.order[np.clip(k + s, 0, len(p.order) - 1)]
        return nd

    out = [digits] + [moved([(st, s)]) for st in steps for s in (-1, 1)]
    if pairs:
        out += [moved([(a, s), (b, t)]) for a, b in itertools.combinations(steps, 2) for s in (-1, 1) for t in (-1, 1)]
    return np.unique(np.concatenate(out), axis=0)


def _swaps(disc, combos, digits) -> np.ndarray:
    """Every kept discrete combination (mapping, presets, ...) at each row's continuous digits."""
    if not disc or len(combos) < 2:
        return digits
    rows = np.repeat(digits, len(combos), 0)
    return _fill(disc, np.tile(combos, (len(digits), 1)), rows)


def optimize(space: Space, objective: str | None = None, constraints=(), *, optimizer: str = "adam",
             lr: float = DEFAULTS["lr"], steps: int = DEFAULTS["steps"], starts: int = DEFAULTS["starts"],
             seed: int = 0, tau=DEFAULTS["tau"], weight=DEFAULTS["weight"], max_combos: int = DEFAULTS["max_combos"],
             screen: int = DEFAULTS["screen"], max_screen: int = DEFAULTS["max_screen"],
             polish: int = DEFAULTS["polish"], polish_width: int = DEFAULTS["polish_width"], top_k: int = 10,
             evaluate_fn=None, progress=None) -> OptimizeResult:
    """Co-optimise the continuous axes of ``space`` by gradient descent in relaxed mode, then
    snap to the grid and verify exactly (module docstring). ``constraints``: strings like
    'power_W<=700' or ``Limit`` objects, added to the space's ``limits:``. ``progress``:
    optional callback(step, best relaxed loss)."""
    import optax

    t_start = time.perf_counter()
    objective = check_metric(objective or space.objective or "decode_tokens_per_s", "optimize", "objective")
    limits = tuple(space.limits) + tuple(c if isinstance(c, Limit) else parse_constraint(c) for c in constraints)
    params, disc = parameters(space)
    if not params:
        raise io.ConfigError(f"{space.path}: no continuous axes to optimise (numeric range/choices axes); "
                             "use `jaxstack sweep`")
    try:
        opt = getattr(optax, optimizer)(lr)
    except (AttributeError, TypeError) as e:
        raise io.ConfigError(f"--optimizer '{optimizer}': not an optax optimizer taking a learning rate ({e})") \
            from None
    rng = np.random.default_rng(seed)
    ex = _Exact(space, limits, objective, evaluate_fn)
    notes: list[str] = []
    combos, n_combos = _combos(ex, params, disc, max_combos, screen, max_screen, rng, notes)
    combo_of = np.repeat(np.arange(len(combos)), starts)
    digits0 = _fill(disc, combos[combo_of], np.zeros((len(combo_of), len(space.axes)), np.int64))
    z0 = rng.random((len(combo_of), len(params))).astype(np.float32)
    z0[::starts] = 0.5                                    # one start per combo at the box centre
    spec = grad.make_spec(objective, maximise=HIGHER_IS_BETTER[objective], use_log=True,
                          limits=[(lim.metric, lim.lo, lim.hi) for lim in limits])
    z, traj, t_first = _descend(ex, params, digits0, z0, spec, opt, steps, tau, weight, progress)
    t_descent = time.perf_counter() - t_start
    _verify(ex, params, disc, combos, digits0, z, ~traj["structural"], polish, polish_width, notes)
    top = [{"rank": i + 1, **{k: v for k, v in r.items() if k not in ("score", "feasible", "reason_code")}}
           for i, r in enumerate(ex.best(top_k))]
    traj["combo"] = combo_of
    timings = {"first_step_s": t_first, "descent_s": t_descent, "total_s": time.perf_counter() - t_start,
               "device_kind": jax.devices()[0].device_kind, "jax_version": jax.__version__}
    return OptimizeResult(space, objective, limits, params, [space.axes[a].name for a in disc], n_combos,
                          len(combos), top, len(ex.seen), steps * len(combo_of), traj, timings, notes)


def _combos(ex: _Exact, params, disc, max_combos, screen, max_screen, rng, notes):
    """Digit rows (C, len(disc)) of the discrete combinations to optimise, and how many exist:
    all of them, or the best ``max_combos`` by an exact screen at ``screen`` random grid
    points each (of at most ``max_screen`` combinations, sampled)."""
    space = ex.space
    sizes = [space.axes[a].size for a in disc]
    n = math.prod(sizes)
    if n <= max_combos:
        return np.array(list(itertools.product(*(range(s) for s in sizes))), np.int64).reshape(n, -1), n
    pool = (np.array(list(itertools.product(*(range(s) for s in sizes))), np.int64) if n <= max_screen
            else np.unique(np.stack([rng.integers(0, s, max_screen) for s in sizes], -1), axis=0))
    dig = np.repeat(_fill(disc, pool, np.zeros((len(pool), len(space.axes)), np.int64)), screen, 0)
    for p in params:
        dig[:, p.axis] = rng.integers(0, len(p.grid), len(dig))
    scores = np.array([r["score"] for r in ex(dig)]).reshape(len(pool), screen).max(1)
    combos = pool[np.argsort(-scores, kind="stable")[:max_combos]]
    notes.append(f"{n:,} discrete combinations of {', '.join(space.axes[a].name for a in disc)}; {len(pool):,} "
                 f"screened exactly at {screen} random grid points each, the best {len(combos)} optimised")
    return combos, n


def _descend(ex: _Exact, params, digits0, z, spec, opt, steps, tau, weight, progress):
    """Projected first-order descent of every start at once (tau and the penalty weight
    follow geometric schedules); returns final z, the trajectory and the first step's time."""
    init, update = jax.jit(jax.vmap(opt.init)), jax.jit(jax.vmap(opt.update))
    state = init(z)
    leaf = [p.leaf for p in params]
    k_obj = int(np.argmax(spec.sel))
    traj: dict = {k: [] for k in ("tau", "weight", "loss", "objective", "violation", "z")}
    t_first = None
    for s in range(steps):
        frac = s / max(steps - 1, 1)
        tau_s = tau[0] * (tau[1] / tau[0]) ** frac
        w_s = weight[0] * (weight[1] / weight[0]) ** frac
        t0 = time.perf_counter()
        r = grad.relaxed_batch(ex.layout.rows(digits0, params, z), ex.treedef, spec._replace(weight=np.float32(w_s)),
                               tau_s, ex.evaluate_fn)
        t_first = time.perf_counter() - t0 if t_first is None else t_first
        dxdz = np.stack([p.x(z[:, j])[1] for j, p in enumerate(params)], -1)
        g = np.nan_to_num(r["grad"][:, leaf] * dxdz, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
        for k, v in (("tau", tau_s), ("weight", w_s), ("loss", r["loss"]), ("objective", r["fields"][:, k_obj]),
                     ("violation", r["violation"]), ("z", z.copy())):
            traj[k].append(v)
        upd, state = update(g, state, z)
        z = np.clip(z + np.asarray(upd), 0.0, 1.0).astype(np.float32)      # projection onto the box
        if progress is not None:
            progress(s, float(np.min(r["loss"])))
    out = {k: np.asarray(v) for k, v in traj.items()}
    out["structural"] = np.isin(r["reason"], [int(Reason.device_count), int(Reason.divisibility)])
    return z, out, t_first


def _verify(ex: _Exact, params, disc, combos, digits0, z, runnable, polish, polish_width, notes):
    """Snap every start (except those whose mapping cannot run) to the grid, evaluate the
    snapped points and their +-1 neighbours exactly, then polish by exact local search around
    the best few: single and pairwise +-1 steps, and every kept discrete combination."""
    space = ex.space
    snapped = digits0.copy()
    for j, p in enumerate(params):
        snapped[:, p.axis] = p.order[p.snap(z[:, j])]
    ex(_neighbours(params, snapped[runnable] if runnable.any() else snapped))
    for _ in range(polish):               # exact local search around the best few
        best = ex.best(polish_width)
        if not best:
            notes.append("no feasible grid point near the relaxed optima; try more --starts or looser limits")
            break
        n_before = len(ex.seen)
        at = np.array([space.digits(b["index"]) for b in best], np.int64)
        ex(np.unique(np.concatenate([_neighbours(params, at, pairs=True), _swaps(disc, combos, at)]), axis=0))
        if len(ex.seen) == n_before or ex.best(1)[0]["index"] == best[0]["index"]:
            break


def _fill(disc, combo_digits, digits):
    for j, a in enumerate(disc):
        digits[:, a] = combo_digits[:, j]
    return digits
