"""L4: provably optimistic bounds of the model's objective, for the hierarchical search.

``search.py`` prunes a whole sub-grid of a space when an upper bound of its best objective
(maximise-form) cannot beat the current k-th best exact value. Every bound here is derived
from the model's own equations (``evaluate``, ``schedule.stage_time``) and is only valid
because of the properties listed with it; ``tests/test_search.py`` checks bound >= exact
on random designs of several presets.

**B1 TPOT lower bound.** ``evaluate`` sets TPOT = f * (step_time + o), f = max(pp, mb), o the
engine's host time per step (``serving.step_overhead``), with
step_time = 1 / ((1 - h) / t_cool + h / t_hot) from ``thermal.solve``, h in [0, 1] and
t_hot >= t_cool, so step_time >= t_cool: the mean over the KV_POINTS decode lengths of
``stage_time(.., temperature = refresh threshold - HOT_OFFSET_K).total``. Nothing of the
power, leakage or thermal state enters t_cool; hence

    TPOT >= f (t_cool + o),   decode tok/s = batch / TPOT <= batch / (f (t_cool + o)),
    user tok/s <= 1 / (f (t_cool + o)),   scaled decode tok/s = f_clk batch / TPOT <= that (f_clk <= 1).

Speculative decoding: the step verifies 1 + k tokens and TPOT carries the factor
g = (1 + k draft_cost) / E (``serving.spec_time_factor``, a function of the design's own
values), so the bound is f g (t_cool + o) with t_cool at 1 + k query tokens.

Offline (``serving.regime = 1``): ``evaluate`` runs the design at its running batch B (from
the KV budget and the engine's limits, neither of which reads the fabric or the power
model; ``as_run`` resolves them the same way), with TPOT = tpot(B) + t_pre / O >= tpot(B),
decode tok/s = fill B / TPOT with fill <= 1 (``serving.offline_fill``) and scaled decode
tok/s = B / TPOT_scaled <= B / TPOT: every bound above holds with batch = B. Online is
refused by ``search``: under Poisson load the decode step runs at the mean number in the
system, which can be below B, so tpot(B) is not a lower bound there.

**B2 communication.** stage_time = C + E: C (= total - exposed) is the compute of the stage
and does not read the fabric; E >= 0 is the exposed communication. With overlap off every
collective is exposed in full: x = H + B of the cheapest algorithm (``network._pick``),
FSDP adds max(layer, gather) - layer, the PP send is exposed. Each algorithm's H is linear
in hop latencies and the collective overhead with non-negative coefficients, and its B
falls with every level's bandwidth (B_l = efficiency x link bandwidth x links, capped by
the crossbar), so the minimum over algorithms, and t_cool, are monotone: non-increasing in
``link_bandwidth`` and ``bandwidth_efficiency``, non-decreasing in ``hop_latency`` and
``collective_overhead`` (``MONOTONE``; bandwidths only on unpacketised fabrics, where the
first hop's header credit cannot enter). So for a box of these values the optimistic
corner gives t_cool <= that of every point in it, and the bound is exact at the corner.
With overlap on, the wave-pipelined exposure of a collective with sequential cost
S = H + B next to an op of compute C_op in W waves (``overlap.overlapped``) is
x = min(C_op / W + max(C_op (W-1)/W, H + B (W-1)/W) + H + B/W, C_op + S) - C_op, so
x >= max(H + B/W, S - C_op) >= max(H_min (1 - 1/W) + S/W, S - C_op), H_min = the latency
of the least-latency algorithm (the selected one has H >= H_min; H + B/W grows with H at
fixed S). The selection of the algorithm by H + B (not by x) makes x itself non-monotone in
the fabric (seen in practice), so with overlap on the bound uses, per block b (attention,
dense FFN, MoE; their overlapped ops lie inside the block's compute T_b), the overlap-off
exposure E_b, its latency floor L_b = the overlap-off exposure of the block's collectives
when each takes its least-latency algorithm and pays its latency alone (``latency_plans``:
every bandwidth term 0; only on unpacketised fabrics, where no latency term reads a
bandwidth; else 0),
W = the largest wave count of any overlapped op (every ``LayerCosts.waves_*`` field) and
    t_on >= C + pp_send + sum_b max(L_b (1 - 1/W) + E_b / W, E_b - T_b) + E_fsdp / W
(summing per-collective bounds; smaller W only raises each term; per layer FSDP's
max(layer, gather) keeps the inequality). E_b and L_b are monotone in the fabric (L_b does
not read bandwidths), so this bound is too. Both forms are a function of the design's own values, so any design
and any box corner may be bounded.

**B5 compute boxes.** Along ``chip.clock``, ``dram.transfer_rate`` and ``dram.efficiency``
(``COMPUTE_MONOTONE``; read by no feasibility check, the running batch or the collectives; and
``chip.sram_capacity`` / ``sram_bandwidth`` where no point has a die-area budget, ``SRAM_MONOTONE``:
more SRAM fits more tiles and raises the per-unit caps, more SRAM bandwidth shortens the fill)
every compute time falls or stays: the tensor and vector rates, the SRAM fill and the
per-unit caps scale with the clock (and the DRAM does not read it); the DRAM bandwidth is
linear in the transfer rate and the efficiency (row, bank and refresh terms are in transfer
cycles or ratios) and the wave size does not read them; each GEMM keeps the fastest of its
tiles (a minimum of non-increasing times). So C and every block's compute T_b are
non-increasing along them and E_b does not move. The overlapped form above is not monotone (a
faster chip shortens T_b and changes the tiles, hence W), so for boxes that span these (``b5``) its
per-block term uses W -> infinity, max(L_b, E_b - T_b) (L_b (1 - 1/W) + E_b / W >= L_b as
L_b <= E_b), and drops E_fsdp / W:
    t_on >= C + pp_send + sum_b max(L_b, E_b - T_b) = (C - sum_b T_b) + pp_send + sum_b max(L_b + T_b, E_b),
monotone in them and the fabric. On 12,000 random designs it is 0.5 % looser than B1-B2
at the median (``tests/test_search.py``); such an axis becomes a monotone role, so the
paper-scale space's level 1 bounds 4x fewer groups (its clock axis).

**B6 overlap pairs.** With ``mapping.overlap`` on, every collective's exposure is at most its
sequential cost and nothing else reads the flag, so t_cool(on) <= t_cool(off) point by point
(memory, the running batch and the pipeline factor are the same): the bound of a box with
overlap on also bounds the same box with it off. Level 1 of ``search`` bounds one group of
each pair (``overlap_siblings``); level 2 bounds each group's own nodes.

**B3 feasibility.** Device count, divisibility, batch >= dp pp and memory (weights + KV +
activations > usable DRAM) do not depend on the fabric's bandwidths and latencies or on
power: ``evaluate``'s own checks (``_reason`` at a temperature of -inf, memory shrunk by
MEM_MARGIN against float32 rounding) prune exactly. Thermal feasibility is never pruned on.

**B4 limits.** A limit prunes only through a bound that is optimistic for it:
``user_tokens_per_s`` / ``decode_tokens_per_s`` / ``scaled_decode_tokens_per_s`` minima
and a ``tpot_s`` maximum through B1, ``memory_bytes`` (exact, B3) both ways; any other
limit is checked on the exact evaluation only.

Objectives: the maximise-form bound is batch / (f t_cool) for decode (and scaled) tok/s,
1 / (f t_cool) for user tok/s, -f t_cool for tpot_s, -memory for memory_bytes (exact),
+inf (no pruning) for the rest. Comparisons use a relative MARGIN (1e-4, float32 rounding
of two compiled programs); ``free_leaves`` finds, from the traced bound itself (jaxpr
dead-code elimination), the leaves no bound reads (TDP, energies, thermal constants).
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..physics import relax
from ..physics.lean import strong
from ..recipe import serving
from ..recipe.evaluate import HOT_OFFSET_K, KV_POINTS, _reason, memory_parts, memory_use
from ..recipe.ops import design_context, param_count, shard
from ..recipe.schedule import block_comm, collectives, compose, layers, linear_part, plans
from ..types.design import Design
from .space import Space, leaf_paths

__all__ = ["MONOTONE", "COMPUTE_MONOTONE", "SRAM_MONOTONE", "MARGIN", "MEM_MARGIN", "BOUNDED_OBJECTIVES",
           "decode_time_bound", "structural", "bound_point", "bound_node", "bound_point_b5", "bound_node_b5",
           "free_leaves", "objective_bound", "limit_dead", "below", "Roles", "roles", "overlap_siblings"]

# leaf -> +1 if larger values give a smaller (optimistic) t_cool, -1 if smaller ones do (B2)
MONOTONE = {**{("fabric", lv, "link_bandwidth"): 1 for lv in ("l1", "l2", "l3")},
            **{("fabric", lv, "hop_latency"): -1 for lv in ("l1", "l2", "l3")},
            ("fabric", "bandwidth_efficiency"): 1, ("fabric", "collective_overhead"): -1}
BANDWIDTH_LEAVES = {p for p, s in MONOTONE.items() if s > 0}
# leaves that only speed up compute, along which the B5 form of the bound is monotone: the chip
# clock, the DRAM transfer rate and the DRAM efficiency (larger is never slower)
COMPUTE_MONOTONE = {("chip", "clock"): 1, ("dram", "transfer_rate"): 1, ("dram", "efficiency"): 1}
# ... and the per-unit SRAM where no die-area budget trades it against compute units (chip.die_area = 0
# at every point: more SRAM fits more tiles and raises the per-unit caps, bandwidth shortens the fill)
SRAM_MONOTONE = {("chip", "sram_capacity"): 1, ("chip", "sram_bandwidth"): 1}
MARGIN = 1e-4
MEM_MARGIN = 1e-5
SCHEDULE_LEAVES = {("request", "batch")}   # with mapping.*: the schedule (inner loop) of search
FEAS_MAX = 2**23                          # largest product of structural axes checked up front
BOUNDED_OBJECTIVES = ("decode_tokens_per_s", "scaled_decode_tokens_per_s", "user_tokens_per_s", "tpot_s",
                      "memory_bytes")


def decode_time_bound(d: Design, point: bool = False, b5: bool = False):
    """B1 + B2: lower bounds (s) of TPOT for ONE design point (vmap outside): over the box of
    fabrics no faster than ``d``'s (``b5``: and clocks, DRAM rates and efficiencies no higher,
    B5) and, with ``point``, of ``d`` itself (f t_cool: tight).
    The KV_POINTS cool decode steps share one linear part (``schedule.linear_part``), composed
    with overlap off (and, for ``point``, as the design has it)."""
    s = shard(d)
    r = d.request
    thr = d.dram.refresh_double_temp
    hot = jnp.stack([relax.step((thr - HOT_OFFSET_K) - thr)])
    ctx = design_context(d, hot=hot)
    q, dec = jnp.ones_like(ctx.bw) + d.serving.spec_tokens, jnp.array([True])     # 1 + k verified tokens
    kv = r.input_len + r.output_len * jnp.linspace(0.0, 1.0, KV_POINTS)
    pl = plans(d, s)
    part = linear_part(d, s, pl, ctx, q, dec, np.zeros(KV_POINTS, int))    # shared by every composition
    on = d.mapping.overlap > 0.5
    d0 = dataclasses.replace(d, mapping=dataclasses.replace(d.mapping, overlap=jnp.zeros_like(d.mapping.overlap)))
    st = compose(d0, s, pl, part, kv)
    # latency floor: the least-latency algorithm of each collective (its α; bandwidth terms 0)
    lat = block_comm(collectives(d, s, latency_plans(pl), _row(part.lin), q[0], dec[0]))
    packets = (d.fabric.l1.packet_payload > 0) | (d.fabric.l2.packet_payload > 0) | (d.fabric.l3.packet_payload > 0)
    waves = [getattr(part.lin, n)[0] for n in part.lin._fields if n.startswith("waves")]   # the decode variant's
    W = jnp.maximum(jnp.ceil(jnp.max(jnp.stack(waves), axis=0)), 1.0)
    compute_t = st.total - st.exposed
    hidden = 0.0
    for e, n, c, t in zip((st.exposed_attn, st.exposed_ffn, st.exposed_moe), layers(d, s), lat,
                          (st.attention, st.ffn, st.moe), strict=True):
        h = jnp.where(packets, 0.0, jnp.minimum(n * c, e))
        # B5: across compute speeds the wave count W moves with the tiles; h(1 - 1/W) + e/W >= h for any W
        hidden = hidden + jnp.maximum(h if b5 else h * (1.0 - 1.0 / W) + e / W, e - t)
    t_on = compute_t + st.comm_pp + hidden + (0.0 if b5 else st.exposed_fsdp / W)
    box = jnp.where(on, jnp.minimum(t_on, st.total), st.total)
    own = jnp.where(on, compose(d, s, pl, part, kv).total, st.total) if point else jnp.zeros_like(box)
    f = jnp.maximum(s.pp, s.mb) * serving.spec_time_factor(d)     # x the design's own speculation factor
    o = d.serving.step_overhead
    return f * (jnp.mean(box) + o), f * (jnp.mean(own) + o)


def latency_plans(pl: dict) -> dict:
    """``pl`` with every bandwidth and store-and-forward term 0: ``collective_plan.cost`` then picks
    the least-latency algorithm and returns its latency α (+ overhead). On an unpacketised
    fabric α does not read any bandwidth (B2's latency floor)."""
    return {op: p._replace(coef=(p.coef[0], jnp.zeros_like(p.coef[1]), jnp.zeros_like(p.coef[2]), p.coef[3]))
            for op, p in pl.items()}


def _row(tree):
    return jax.tree_util.tree_map(lambda x: x[0], tree)


def as_run(d: Design) -> Design:
    """``d`` as ``evaluate`` runs it: the engine's limits resolved and ``request.batch`` the
    running batch (offline: from the KV budget and limits; static: unchanged). B1-B4 then
    hold for the offline regime too (module docstring)."""
    d = strong(d)                   # Python-float leaves: one conversion each (lean.strong)
    s = shard(d)
    d = serving.resolve_limits(d, s, param_count(d.model))
    weights, kv_token, act = memory_parts(d, s)
    batch = serving.running_batch(d, s, weights, act, kv_token)
    return dataclasses.replace(d, request=dataclasses.replace(d.request, batch=batch))


def structural(d: Design):
    """B3: (feasible apart from temperature, memory bytes per chip) for ONE design point."""
    s = shard(d)
    w, kv, act = memory_use(d, s)
    mem = w + kv + act
    reason = _reason(d, s, mem * (1.0 - MEM_MARGIN), jnp.float32(-1e30))
    return reason == 0, mem


def bound_point(d: Design):
    """(TPOT lower bound s of the box at ``d``, memory bytes, structurally feasible, batch)."""
    d = as_run(d)
    ok, mem = structural(d)
    return decode_time_bound(d)[0], mem, ok, d.request.batch


def bound_node(d: Design):
    """``bound_point`` and the TPOT lower bound of ``d`` itself (level 2 of ``search``)."""
    d = as_run(d)
    ok, mem = structural(d)
    box, own = decode_time_bound(d, point=True)
    return box, mem, ok, d.request.batch, own


def bound_point_b5(d: Design):
    """``bound_point`` of a box that also spans slower compute (B5: clock, DRAM rate, efficiency)."""
    d = as_run(d)
    ok, mem = structural(d)
    return decode_time_bound(d, b5=True)[0], mem, ok, d.request.batch


def bound_node_b5(d: Design):
    """``bound_node`` of a box that also spans slower compute (B5)."""
    d = as_run(d)
    ok, mem = structural(d)
    box, own = decode_time_bound(d, point=True, b5=True)
    return box, mem, ok, d.request.batch, own


# names for the on-disk executable cache of search's steps (edges/cache.py, engines/step.py)
bound_point.cache_key = "jaxstack.bound_point"
bound_node.cache_key = "jaxstack.bound_node"
bound_point_b5.cache_key = "jaxstack.bound_point_b5"
bound_node_b5.cache_key = "jaxstack.bound_node_b5"


def free_leaves(fn, base: Design) -> set[tuple[str, ...]] | None:
    """Leaf paths ``fn(design)`` provably does not read (jaxpr dead-code elimination), or
    None when JAX's internals are not available (then nothing counts as free)."""
    try:
        from jax._src.interpreters import partial_eval as pe
    except ImportError:           # pragma: no cover - depends on the JAX version
        return None
    flat, treedef = jax.tree_util.tree_flatten_with_path(base)
    paths = [tuple(k.name for k in p) for p, _ in flat]

    def g(*leaves):
        return jax.tree_util.tree_leaves(fn(jax.tree_util.tree_unflatten(treedef, list(leaves))))

    try:
        closed = jax.make_jaxpr(g)(*[jnp.float32(v) for _, v in flat])
        _, used = pe.dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars))
    except Exception:             # pragma: no cover - internal API changed
        return None
    return {p for p, u in zip(paths, used, strict=True) if not u}


# ---------------------------------------------------------------- host side (numpy)
def objective_bound(objective: str, t_lb, batch, mem) -> np.ndarray:
    """Maximise-form upper bound of ``objective`` (float64 array; +inf = no bound)."""
    t = np.maximum(np.asarray(t_lb, np.float64), 1e-300)
    if objective in ("decode_tokens_per_s", "scaled_decode_tokens_per_s"):
        return np.asarray(batch, np.float64) / t
    if objective == "user_tokens_per_s":
        return 1.0 / t
    if objective == "tpot_s":
        return -t
    if objective == "memory_bytes":
        return -np.asarray(mem, np.float64)
    return np.full(np.shape(t), np.inf)


def below(bound, threshold) -> np.ndarray:
    """bound < threshold by more than the relative MARGIN (a bound there cannot reach it)."""
    b = np.asarray(bound, np.float64)
    with np.errstate(invalid="ignore"):
        return b + MARGIN * np.abs(b) < threshold


def limit_dead(limits, t_lb, batch, mem) -> np.ndarray:
    """True where some limit is violated by every point the bound covers (B4)."""
    t = np.maximum(np.asarray(t_lb, np.float64), 1e-300)
    batch, mem = np.asarray(batch, np.float64), np.asarray(mem, np.float64)
    dead = np.zeros(np.shape(t), bool)
    for lim in limits:
        if lim.metric in ("decode_tokens_per_s", "scaled_decode_tokens_per_s", "user_tokens_per_s"):
            up = batch / t if lim.metric != "user_tokens_per_s" else 1.0 / t
            if lim.lo is not None:
                dead |= below(up, lim.lo)
        elif lim.metric == "tpot_s" and lim.hi is not None:
            dead |= below(-t, -lim.hi)
        elif lim.metric == "memory_bytes":
            if lim.hi is not None:
                dead |= mem * (1.0 - MEM_MARGIN) > lim.hi
            if lim.lo is not None:
                dead |= mem * (1.0 + MEM_MARGIN) < lim.lo
    return dead


# ---------------------------------------------------------------- axis roles (search.py)
@dataclasses.dataclass(frozen=True, eq=False)
class Roles:
    """Axis positions by role; ``order[j]`` = allowed digits of monotone axis j, optimistic first."""

    schedule: tuple[int, ...]
    hardware: tuple[int, ...]
    monotone: tuple[int, ...]
    order: tuple[np.ndarray, ...]
    free: tuple[int, ...]
    feasibility: tuple[int, ...]       # group axes read by the structural check (level 0)
    b5: bool = False                   # a monotone axis sets a compute leaf: the B5 bounds (bound_*_b5)


_USED: dict = {}


def _structural_ok(d: Design):
    return structural(d)[0]


def _used(fn, base) -> set | None:
    key = (fn, jax.tree_util.tree_structure(base))
    if key not in _USED:
        free = free_leaves(fn, base)
        _USED[key] = None if free is None else set(leaf_paths(base)) - free
    return _USED[key]


def roles(space: Space, allowed) -> Roles:
    """Classify the axes (module docstring); ``allowed`` from ``restrict``."""
    used = _used(bound_point, space.base)
    feas = _used(_structural_ok, space.base)
    flat = _flat(space)
    packet = any(float(v) > 0 for p, v in flat if p[-1] == "packet_payload")
    area = any(float(v) > 0 for p, v in flat if p[-1] == "die_area")     # SRAM trades against compute units
    speed = {**COMPUTE_MONOTONE, **({} if area else SRAM_MONOTONE)}
    sign = {**MONOTONE, **speed}
    sched, hw, mono, order, free, fz, b5 = [], [], [], [], [], [], False
    for i, a in enumerate(space.axes):
        t = set(a.targets)
        rows = allowed[i]
        if a.name == "mapping" or (t and all(p in SCHEDULE_LEAVES or p[0] == "mapping" for p in t)):
            sched.append(i)
        elif used is not None and not (t & used):
            free.append(i)
        elif t and feas is not None and not (t & feas) and all(
                p in speed or (p in MONOTONE and not (packet and p in BANDWIDTH_LEAVES)) for p in t):
            key = np.stack([-sign[p] * a.table[rows, a.targets.index(p)] for p in a.targets], -1)
            perm = np.lexsort(key.T[::-1])
            if all(np.all(np.diff(key[perm, j]) >= 0) for j in range(key.shape[1])):
                mono.append(i)
                order.append(rows[perm])
                b5 |= bool(t & set(speed))
                continue
            hw.append(i)
        else:
            hw.append(i)
        if i in sched + hw and (feas is None or (t & feas) or a.name == "mapping"):
            fz.append(i)
    if math.prod(len(allowed[i]) for i in fz) > FEAS_MAX:
        fz = []
    return Roles(tuple(sched), tuple(hw), tuple(mono), tuple(order), tuple(free), tuple(fz), b5)


def overlap_siblings(space: Space, allowed):
    """(mapping axis position, rep) where ``rep[r]`` is the allowed mapping row equal to row r
    but for ``mapping.overlap`` = 1 (r itself if none), or None without an overlap column (B6).
    With overlap every collective's exposure is at most its sequential cost
    (``overlap.overlapped``: x = min(..., C_op + S) - C_op <= S) and nothing else reads the flag,
    so t_cool(overlap on) <= t_cool(off) point by point: a box's bound with overlap on bounds the
    same box with it off, and level 1 of ``search`` bounds one group of each such pair."""
    m = next((i for i, a in enumerate(space.axes) if a.name == "mapping"), None)
    if m is None or "mapping.overlap" not in space.axes[m].columns:
        return None
    table = space.axes[m].table
    col = space.axes[m].columns.index("mapping.overlap")
    rest = [j for j in range(table.shape[1]) if j != col]
    on = {tuple(table[r, rest]): r for r in allowed[m] if table[r, col] > 0.5}
    rep = np.arange(len(table))
    for r in allowed[m]:
        rep[r] = on.get(tuple(table[r, rest]), r)
    return m, rep


def _flat(space: Space):
    flat = jax.tree_util.tree_flatten_with_path(space.base)[0]
    out = [(tuple(k.name for k in p), v) for p, v in flat]
    for a in space.axes:
        out += [(t, v) for j, t in enumerate(a.targets) for v in a.table[:, j]]
    return out
