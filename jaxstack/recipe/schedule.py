"""L3: one pipeline stage's step time for prefill and decode, with its communication.

Stage composition (DeepStack §2.0, per stage of L_s = ceil(L / pp) layers):
    t_stage = L_s (t_attn + t_norms + x_attn) + L_dense,s (t_ffn + x_ffn)
              + L_moe,s (t_moe + x_moe) + t_lm_head + c_pp
where L_dense,s / L_moe,s split L_s in the model's dense/MoE proportion and x_* is the
EXPOSED communication of the block. Communication per layer (groups placed innermost-first
in the order TP, EP, SP, CP, DP, PP), each collective as (latency H, bandwidth B):
    attention: all-reduce over TP of T h a bytes; Ulysses SP: 2 all-to-alls of T h a / tp;
               CP: all-gather + reduce-scatter of the partial outputs (decode) or an
               all-gather of the KV shard (prefill)
    dense FFN: all-reduce over TP
    MoE:       dispatch + combine all-to-all over the ep_moe group (T_own k h a each),
               all-reduce over TP (shared experts / TP partial sums)
    stage:     PP send of the micro-batch activations (T h a), exposed
    FSDP:      per-layer weight all-gather over DP, prefetched: max(layer, gather)
Tile-level overlap (``mapping.overlap`` = 1, DeepStack §2.6, ``overlap.overlapped``): each
collective is wave-pipelined with the op that produces or consumes it —
    TP all-reduce after attention  <-> output projection GEMM (GEMM + reduce-scatter/all-gather)
    TP all-reduce after dense FFN  <-> down projection GEMM
    MoE dispatch + combine + AR    <-> routed-expert GEMMs (MoE + all-reduce, pipelined a2a)
    SP all-to-alls + CP collectives <-> attention core (attention + all-to-all)
with W = the op's waves (``ops``): x = overlapped(C, H, B, W) - C, so
max(C, H + B) - C <= x <= H + B; with overlap off x = H + B.

Resolved once per design point: the collectives of the six groups (``plans``: one geometry
pass, each algorithm traced once on the vector of groups) and the chip (``compute.Ctx``).
``stage_times`` costs V stage variants (prefill, decode KV points, hot decode) over L linear
variants (prefill, cool decode, hot decode): the linear ops and collectives once per linear
variant, the attention core and the composition per variant, both as ``vmap`` over the
variant axis so the stage is traced once.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..physics import collective_plan, compute, lean, overlap, power, relax
from ..physics.lean import total, where
from ..types.design import Design
from .ops import Linear, Shard, assemble, core_cost, design_context, kv_bytes_per_token, linear_costs, weight_elems

__all__ = ["StageTime", "stage_time", "stage_times", "linear_part", "compose", "layers", "block_comm", "collectives",
           "plans"]


class StageTime(NamedTuple):
    total: jnp.ndarray
    attention: jnp.ndarray
    ffn: jnp.ndarray
    moe: jnp.ndarray
    other: jnp.ndarray
    comm: jnp.ndarray          # all communication of the stage (sequential sum)
    exposed: jnp.ndarray       # communication not hidden by overlap or FSDP prefetch
    comm_attn: jnp.ndarray     # per stage (x layers): attention-block collectives
    comm_ffn: jnp.ndarray
    comm_moe: jnp.ndarray
    comm_pp: jnp.ndarray
    comm_fsdp: jnp.ndarray
    exposed_attn: jnp.ndarray
    exposed_ffn: jnp.ndarray
    exposed_moe: jnp.ndarray
    exposed_fsdp: jnp.ndarray
    flops: jnp.ndarray
    vector_flops: jnp.ndarray  # FLOPs on the vector units (norms, activations, routing, rope)
    dram_bytes: jnp.ndarray
    link_bytes: jnp.ndarray    # bytes this chip puts on links, all levels
    link_l1: jnp.ndarray       # ... of which on fabric level 1 / 2 / 3 (a collective's bytes on
    link_l2: jnp.ndarray       #     the outermost level its group spans, power.link_bytes_by_level)
    link_l3: jnp.ndarray
    attn_core: jnp.ndarray     # attention core (KV reads) time, per stage
    attn_flops: jnp.ndarray    # attention core FLOPs (16-bit math), per stage


def _sum(*parts):
    """Add (latency, bandwidth) pairs term by term."""
    return total(p[0] for p in parts), total(p[1] for p in parts)


def _exposed(on, compute, lat_bw, waves):
    """Communication left after wave-pipelining it with ``compute`` (all of it when off)."""
    H, B = lat_bw
    return where(on, overlap.overlapped(compute, H, B, waves) - compute, H + B)


# the design point's collective groups: each op's plan holds its own groups, in this order
_OPS = {"all_reduce": [0], "all_gather": [1, 2], "all_to_all": [3, 4], "p2p": [5]}
TP, CP, FSDP, SP, MOE, PP = 0, 0, 1, 0, 1, 0


def plans(d: Design, s: Shard) -> dict:
    """The design point's collectives resolved once (``collective_plan.plans``) on its six groups:
    TP (all-reduce), CP and DP/FSDP (all-gathers), SP and the MoE group (all-to-alls) and
    the PP neighbour (send). One geometry pass, shared by every stage and KV point."""
    tp, ep, sp, cp = s.tp, s.ep, s.sp, s.cp
    moe_stride = where(d.mapping.moe_tp_to_ep > 0.5, 1.0, tp)
    g_stride = tp * ep * sp * cp
    one = jnp.ones_like(tp)
    stride = jnp.stack([one, tp * ep * sp, g_stride, tp * ep, moe_stride, g_stride * s.dp])
    size = jnp.stack([tp, cp, s.dp, sp, s.ep_moe, 2.0 * one])
    return collective_plan.plans(d.fabric, stride, size, _OPS)


class _Comm(NamedTuple):
    """The collectives of one linear variant (latency, bandwidth) and their byte counts."""

    ar_tp: tuple
    sp_a2a: tuple
    cp_c: tuple
    moe_c: tuple
    c_pp: jnp.ndarray
    cp_link: jnp.ndarray
    a2a_bytes: jnp.ndarray


def collectives(d: Design, s: Shard, pl: dict, lin: Linear, q_len, decode) -> _Comm:
    w = d.model
    a, h, T = w.act_bytes, w.hidden_size, lin.tokens
    tp, sp = s.tp, s.sp
    x = T * h * a                                           # activations of the linear layers
    ar_tp = collective_plan.cost(pl["all_reduce"], TP, x)
    sp_a2a = collective_plan.cost(pl["all_to_all"], SP, x / tp)
    # CP: decode all-gathers + reduce-scatters the partial outputs; prefill all-gathers the KV shard
    cp_bytes = where(decode, lin.reqs * h / (tp * sp) * a, lin.reqs * q_len * kv_bytes_per_token(d, s))
    ag = collective_plan.cost(pl["all_gather"], CP, cp_bytes)
    cp_c = (where(decode, ag[0] + ag[0], ag[0]), where(decode, ag[1] + ag[1], ag[1]))
    cp_link = where(decode, 2 * cp_bytes, cp_bytes)
    t_own = T * s.ep / s.ep_moe
    a2a_bytes = t_own * w.num_experts_per_tok * h * a * w.moe_imbalance
    a2a = collective_plan.cost(pl["all_to_all"], MOE, a2a_bytes)
    moe_c = _sum(a2a, a2a, ar_tp)
    moe_c = (where(s.is_moe, moe_c[0], 0.0), where(s.is_moe, moe_c[1], 0.0))
    c_pp = where(s.pp > 1, total(collective_plan.cost(pl["p2p"], PP, x)), 0.0)
    return _Comm(ar_tp, sp_a2a, cp_c, moe_c, c_pp, cp_link, a2a_bytes)


def layers(d: Design, s: Shard):
    """Layers of one stage: (all, dense-FFN, MoE) = (L_s, L_dense,s, L_moe,s)."""
    w = d.model
    L = w.num_hidden_layers
    L_s = relax.cdiv(L, s.pp)
    n_moe = jnp.floor((L - jnp.minimum(w.first_k_dense_replace, L)) / w.moe_layer_step)
    dense_frac = where(s.is_moe, (L - n_moe) / L, 1.0)
    return L_s, L_s * dense_frac, L_s * (1.0 - dense_frac)


def _seq(cm: _Comm):
    return _sum(cm.sp_a2a, cm.sp_a2a, cm.cp_c)              # around the attention core


def block_comm(cm: _Comm, seq=None):
    """Sequential communication per layer of the attention, dense-FFN and MoE blocks (s);
    ``seq``: the collectives around the attention core when already summed (``_seq``)."""
    return total(cm.ar_tp) + total(_seq(cm) if seq is None else seq), total(cm.ar_tp), total(cm.moe_c)


def _compose(d: Design, s: Shard, pl: dict, ctx: compute.Ctx, lin: Linear, cm: _Comm, q_len, kv_len,
             decode) -> StageTime:
    """One stage step of one variant from its linear part, its collectives and its KV length."""
    lc = assemble(lin, core_cost(d, s, ctx, lin.reqs, q_len, kv_len, decode))
    f, w = d.fabric, d.model
    a, h, T = w.act_bytes, w.hidden_size, lc.tokens
    tp, ep, sp, cp = s.tp, s.ep, s.sp, s.cp
    L_s, L_dense, L_moe = layers(d, s)
    on = d.mapping.overlap > 0.5
    x = T * h * a
    ar_tp, moe_c, c_pp = cm.ar_tp, cm.moe_c, cm.c_pp
    seq_c = _seq(cm)
    c_attn, c_ffn, c_moe = block_comm(cm, seq_c)

    x_attn = (_exposed(on, lc.o_proj.time, ar_tp, lc.waves_o)
              + _exposed(on, lc.attn_core.time, seq_c, lc.waves_core))
    x_ffn = _exposed(on, lc.ffn_down.time, ar_tp, lc.waves_down)
    x_moe = _exposed(on, lc.experts.time, moe_c, lc.waves_experts)
    attn_t = lc.attention.time + lc.norms.time
    layer_attn = attn_t + x_attn
    layer_dense = lc.dense_ffn.time + x_ffn
    layer_moe = lc.moe.time + x_moe
    # FSDP: gather the next layer's weights over DP while computing this one (max of the two)
    attn_w, dense_w, moe_w, _ = weight_elems(d, s)
    fsdp = (d.mapping.fsdp > 0.5) & (s.dp > 1)
    g_stride = tp * ep * sp * cp

    gc = where(fsdp, lean.total(collective_plan.cost(pl["all_gather"], FSDP, jnp.stack([attn_w, dense_w, moe_w])
                                          * w.weight_bytes)), 0.0)
    gc_attn, gc_dense, gc_moe = lean.unstack(gc, 3)

    def gathered(t_layer, t_g):
        return where(fsdp, relax.maximum(t_layer, t_g), t_layer)

    g_attn, g_dense, g_moe = gathered(layer_attn, gc_attn), gathered(layer_dense, gc_dense), gathered(layer_moe, gc_moe)
    total = L_s * g_attn + L_dense * g_dense + L_moe * g_moe + lc.lm_head.time + c_pp
    comm_fsdp = L_s * gc_attn + L_dense * gc_dense + L_moe * gc_moe
    exposed_fsdp = L_s * (g_attn - layer_attn) + L_dense * (g_dense - layer_dense) + L_moe * (g_moe - layer_moe)
    comm = L_s * c_attn + L_dense * c_ffn + L_moe * c_moe + c_pp + comm_fsdp
    exposed = L_s * x_attn + L_dense * x_ffn + L_moe * x_moe + c_pp + exposed_fsdp
    flops = (L_s * (lc.attention.flops + lc.norms.flops) + L_dense * lc.dense_ffn.flops
             + L_moe * lc.moe.flops + lc.lm_head.flops)
    vflops = L_s * (lc.norms.flops + lc.vflops_attn) + L_dense * lc.vflops_ffn + L_moe * lc.vflops_moe
    dram = (L_s * (lc.attention.nbytes + lc.norms.nbytes) + L_dense * lc.dense_ffn.nbytes
            + L_moe * lc.moe.nbytes + lc.lm_head.nbytes)
    # bytes put on links by this chip (α–β bandwidth terms, coarse: AR 2x, others 1x), per
    # collective on the outermost fabric level its group spans (one vector of the 6 groups)
    moe_stride = where(d.mapping.moe_tp_to_ep > 0.5, 1.0, tp)
    on_links = [
        (1.0, tp, (L_s + L_dense + L_moe * s.is_moe) * 2 * x),        # TP all-reduces
        (tp * ep, sp, L_s * 2 * x / tp),                               # Ulysses all-to-alls
        (tp * ep * sp, cp, L_s * cm.cp_link),                          # CP gathers
        (moe_stride, s.ep_moe, L_moe * s.is_moe * 2 * cm.a2a_bytes),   # MoE dispatch + combine
        (tp * ep * sp * cp * s.dp, 2.0 * (s.pp > 1), x),               # PP send
        (g_stride, s.dp * fsdp, (L_s * attn_w + L_dense * dense_w + L_moe * moe_w) * w.weight_bytes
         * (1.0 - 1.0 / s.dp)),                                        # FSDP gathers
    ]
    stride, size, nbytes = (_vec([g[i] for g in on_links]) for i in range(3))
    lv = power.link_bytes_by_level(f, stride, size, where(size > 1.5, nbytes, 0.0))
    l1, l2, l3 = (jnp.sum(x) for x in lv)
    return StageTime(total, L_s * lc.attention.time, L_dense * lc.dense_ffn.time, L_moe * lc.moe.time,
                     L_s * lc.norms.time + lc.lm_head.time, comm, exposed, L_s * c_attn, L_dense * c_ffn,
                     L_moe * c_moe, c_pp, comm_fsdp, L_s * x_attn, L_dense * x_ffn, L_moe * x_moe, exposed_fsdp,
                     flops, vflops, dram, l1 + l2 + l3, l1, l2, l3, L_s * lc.attn_core.time,
                     L_s * lc.attn_core.flops)


def _vec(xs):
    xs = [jnp.asarray(x, jnp.result_type(float)) for x in xs]
    return jnp.stack([jnp.broadcast_to(x, jnp.broadcast_shapes(*(y.shape for y in xs))) for x in xs])


class LinearPart(NamedTuple):
    """The KV-independent part of V stage variants (``linear_part``), ready to compose."""

    ctx: compute.Ctx           # the chip, DRAM bandwidth per variant
    lin: Linear                # linear ops per variant
    comm: _Comm                # their collectives
    q_len: jnp.ndarray
    decode: jnp.ndarray


def linear_part(d: Design, s: Shard, pl: dict, ctx: compute.Ctx, q_len, decode, lin_of, batch=None) -> LinearPart:
    """The linear ops and collectives of L linear variants (``q_len``, ``decode``, ``ctx.bw``
    and, if given, ``batch`` on the L axis), once each, gathered to the V variants by the
    static index ``lin_of``."""
    axes = _ctx_axes(ctx)
    batch = jnp.broadcast_to(d.request.batch, q_len.shape) if batch is None else batch
    lin, cm = jax.vmap(lambda c, q, dec, b: _linear(d, s, pl, c, q, dec, b), in_axes=(axes, 0, 0, 0))(
        ctx, q_len, decode, batch)
    take = lambda x: lean.take(x, lin_of)  # noqa: E731
    lin, cm = jax.tree_util.tree_map(take, (lin, cm))
    return LinearPart(ctx._replace(bw=take(ctx.bw)), lin, cm, take(q_len), take(decode))


def compose(d: Design, s: Shard, pl: dict, part: LinearPart, kv_len) -> StageTime:
    """The V stage variants of ``part`` at their KV lengths (attention core + composition);
    ``d`` may differ from ``linear_part``'s design in ``mapping.overlap`` only."""
    return jax.vmap(lambda c, li, co, q, kv, dec: _compose(d, s, pl, c, li, co, q, kv, dec),
                    in_axes=(_ctx_axes(part.ctx), 0, 0, 0, 0, 0))(*part[:3], part.q_len, kv_len, part.decode)


def _ctx_axes(ctx):
    return ctx._replace(**{k: None for k in ctx._fields})._replace(bw=0)


def stage_times(d: Design, s: Shard, pl: dict, ctx: compute.Ctx, q_len, decode, kv_len, lin_of, batch=None):
    """Stage steps of V variants that share L linear variants: ``q_len``, ``decode``,
    ``ctx.bw`` (the DRAM temperature) and ``batch`` (default: ``request.batch``) have the L
    axis; ``kv_len`` and the static index array ``lin_of`` (variant -> linear variant) the V
    axis. The KV-independent work (every GEMM, vector op and collective) is done once per
    linear variant; only the attention core and
    the stage composition run per variant."""
    return compose(d, s, pl, linear_part(d, s, pl, ctx, q_len, decode, lin_of, batch), kv_len)


def _linear(d, s, pl, ctx, q_len, decode, batch=None):
    lin = linear_costs(d, s, ctx, q_len, decode, batch)
    return lin, collectives(d, s, pl, lin, q_len, decode)


def stage_time(d: Design, s: Shard, q_len, kv_len, *, decode: bool, temperature=None) -> StageTime:
    """One stage step (one variant; ``temperature`` in degC, None = not hot)."""
    pl = plans(d, s)
    ctx = design_context(d, temperature)
    lin, cm = _linear(d, s, pl, ctx, q_len, decode)
    return _compose(d, s, pl, ctx, lin, cm, q_len, kv_len, decode)
