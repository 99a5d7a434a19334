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
"""

from typing import NamedTuple

import jax.numpy as jnp

from jaxstack.physics import overlap, power, relax
from jaxstack.types.design import Design

from . import network
from .ops import LayerCosts, Shard, kv_bytes_per_token, layer_costs, weight_elems

__all__ = ["StageTime", "stage_time"]


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
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def _exposed(on, compute, lat_bw, waves):
    """Communication left after wave-pipelining it with ``compute`` (all of it when off)."""
    H, B = lat_bw
    return jnp.where(on, overlap.overlapped(compute, H, B, waves) - compute, H + B)


def stage_time(d: Design, s: Shard, q_len, kv_len, *, decode: bool, temperature=None) -> StageTime:
    lc: LayerCosts = layer_costs(d, s, q_len, kv_len, decode=decode, temperature=temperature)
    f, w = d.fabric, d.model
    a, h, T = w.act_bytes, w.hidden_size, lc.tokens
    tp, ep, sp, cp = s.tp, s.ep, s.sp, s.cp
    L = w.num_hidden_layers
    L_s = relax.cdiv(L, s.pp)
    dense_frac = jnp.where(s.is_moe, jnp.minimum(w.first_k_dense_replace, L) / L, 1.0)
    L_dense, L_moe = L_s * dense_frac, L_s * (1.0 - dense_frac)
    on = d.mapping.overlap > 0.5

    x = T * h * a                                           # activations of the linear layers
    ar_tp = network.all_reduce(f, 1.0, tp, x)
    sp_a2a = network.all_to_all(f, tp * ep, sp, x / tp)
    if decode:
        cp_bytes = lc.reqs * h / (tp * sp) * a
        cp_c = _sum(network.all_gather(f, tp * ep * sp, cp, cp_bytes),
                    network.reduce_scatter(f, tp * ep * sp, cp, cp_bytes))
        cp_link = 2 * cp_bytes
    else:
        cp_bytes = lc.reqs * q_len * kv_bytes_per_token(d, s)
        cp_c = network.all_gather(f, tp * ep * sp, cp, cp_bytes)
        cp_link = cp_bytes
    seq_c = _sum(sp_a2a, sp_a2a, cp_c)                      # around the attention core
    c_attn = sum(ar_tp) + sum(seq_c)
    c_ffn = sum(ar_tp)
    moe_stride = jnp.where(d.mapping.moe_tp_to_ep > 0.5, 1.0, tp)
    t_own = T * ep / s.ep_moe
    a2a_bytes = t_own * w.num_experts_per_tok * h * a * w.moe_imbalance
    a2a = network.all_to_all(f, moe_stride, s.ep_moe, a2a_bytes)
    moe_c = _sum(a2a, a2a, ar_tp)
    moe_c = (jnp.where(s.is_moe, moe_c[0], 0.0), jnp.where(s.is_moe, moe_c[1], 0.0))
    c_moe = sum(moe_c)
    c_pp = jnp.where(s.pp > 1, sum(network.p2p(f, tp * ep * sp * cp * s.dp, x)), 0.0)

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

    def gathered(t_layer, elems):
        t_g = jnp.where(fsdp, sum(network.all_gather(f, g_stride, s.dp, elems * w.weight_bytes)), 0.0)
        return jnp.where(fsdp, relax.maximum(t_layer, t_g), t_layer), t_g

    g_attn, gc_attn = gathered(layer_attn, attn_w)
    g_dense, gc_dense = gathered(layer_dense, dense_w)
    g_moe, gc_moe = gathered(layer_moe, moe_w)
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
    # collective on the outermost fabric level its group spans
    on_links = [
        (1.0, tp, (L_s + L_dense + L_moe * s.is_moe) * 2 * x),        # TP all-reduces
        (tp * ep, sp, L_s * 2 * x / tp),                               # Ulysses all-to-alls
        (tp * ep * sp, cp, L_s * cp_link),                             # CP gathers
        (moe_stride, s.ep_moe, L_moe * s.is_moe * 2 * a2a_bytes),      # MoE dispatch + combine
        (tp * ep * sp * cp * s.dp, 2.0 * (s.pp > 1), x),               # PP send
        (g_stride, s.dp * fsdp, (L_s * attn_w + L_dense * dense_w + L_moe * moe_w) * w.weight_bytes
         * (1.0 - 1.0 / s.dp)),                                        # FSDP gathers
    ]
    levels = [power.link_bytes_by_level(f, stride, size, jnp.where(size > 1.5, nbytes, 0.0))
              for stride, size, nbytes in on_links]
    l1, l2, l3 = (sum(lv[i] for lv in levels) for i in range(3))
    return StageTime(total, L_s * lc.attention.time, L_dense * lc.dense_ffn.time, L_moe * lc.moe.time,
                     L_s * lc.norms.time + lc.lm_head.time, comm, exposed, L_s * c_attn, L_dense * c_ffn,
                     L_moe * c_moe, c_pp, comm_fsdp, L_s * x_attn, L_dense * x_ffn, L_moe * x_moe, exposed_fsdp,
                     flops, vflops, dram, l1 + l2 + l3, l1, l2, l3, L_s * lc.attn_core.time,
                     L_s * lc.attn_core.flops)
