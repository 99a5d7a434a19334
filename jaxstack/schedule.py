"""L3: one pipeline stage's step time for prefill and decode, with its communication.

Stage composition (DeepStack §2.0, per stage of L_s = ceil(L / pp) layers):
    t_stage = L_s (t_attn + t_norms + c_attn) + L_dense,s (t_ffn + c_ffn)
              + L_moe,s (t_moe + c_moe) + t_lm_head + c_pp
where L_dense,s / L_moe,s split L_s in the model's dense/MoE proportion. Communication
per layer (groups placed innermost-first in the order TP, EP, SP, CP, DP, PP):
    attention: all-reduce over TP of T h a bytes; Ulysses SP: 2 all-to-alls of T h a / tp;
               CP: all-gather + reduce-scatter of the partial outputs (decode) or an
               all-gather of the KV shard (prefill)
    dense FFN: all-reduce over TP
    MoE:       dispatch + combine all-to-all over the ep_moe group (T_own k h a each),
               all-reduce over TP (shared experts / TP partial sums)
    stage:     PP send of the micro-batch activations (T h a)
    FSDP:      per-layer weight all-gather over DP, overlapped: max(layer, gather)
No compute–communication overlap yet (exposed = all); tile-level overlap is issue 5.
"""

from typing import NamedTuple

import jax.numpy as jnp

from . import network, relax
from .design import Design
from .ops import LayerCosts, Shard, kv_bytes_per_token, layer_costs, weight_elems

__all__ = ["StageTime", "stage_time"]


class StageTime(NamedTuple):
    total: jnp.ndarray
    attention: jnp.ndarray
    ffn: jnp.ndarray
    moe: jnp.ndarray
    other: jnp.ndarray
    comm: jnp.ndarray
    flops: jnp.ndarray
    dram_bytes: jnp.ndarray
    link_bytes: jnp.ndarray


def _c(lat_bw):
    lat, bw = lat_bw
    return lat + bw


def stage_time(d: Design, s: Shard, q_len, kv_len, *, decode: bool) -> StageTime:
    lc: LayerCosts = layer_costs(d, s, q_len, kv_len, decode=decode)
    f, w = d.fabric, d.model
    a, h, T = w.act_bytes, w.hidden_size, lc.tokens
    tp, ep, sp, cp = s.tp, s.ep, s.sp, s.cp
    L = w.num_hidden_layers
    L_s = relax.cdiv(L, s.pp)
    dense_frac = jnp.where(s.is_moe, jnp.minimum(w.first_k_dense_replace, L) / L, 1.0)
    L_dense, L_moe = L_s * dense_frac, L_s * (1.0 - dense_frac)

    x = T * h * a                                           # activations of the linear layers
    ar_tp = network.all_reduce(f, 1.0, tp, x)
    sp_a2a = network.all_to_all(f, tp * ep, sp, x / tp)
    if decode:
        cp_bytes = lc.reqs * h / (tp * sp) * a
        cp_c = _c(network.all_gather(f, tp * ep * sp, cp, cp_bytes)) + _c(
            network.reduce_scatter(f, tp * ep * sp, cp, cp_bytes))
        cp_link = 2 * cp_bytes
    else:
        cp_bytes = lc.reqs * q_len * kv_bytes_per_token(d, s)
        cp_c = _c(network.all_gather(f, tp * ep * sp, cp, cp_bytes))
        cp_link = cp_bytes
    c_attn = _c(ar_tp) + 2 * _c(sp_a2a) + cp_c
    c_ffn = _c(ar_tp)
    moe_stride = jnp.where(d.mapping.moe_tp_to_ep > 0.5, 1.0, tp)
    t_own = T * ep / s.ep_moe
    a2a_bytes = t_own * w.num_experts_per_tok * h * a * w.moe_imbalance
    c_moe = 2 * _c(network.all_to_all(f, moe_stride, s.ep_moe, a2a_bytes)) + _c(ar_tp)
    c_moe = jnp.where(s.is_moe, c_moe, 0.0)
    c_pp = jnp.where(s.pp > 1, _c(network.p2p(f, tp * ep * sp * cp * s.dp, x)), 0.0)

    attn_t = lc.attention.time + lc.norms.time
    layer_attn = attn_t + c_attn
    layer_dense = lc.dense_ffn.time + c_ffn
    layer_moe = lc.moe.time + c_moe
    # FSDP: gather this layer's weights over DP while computing (max of the two)
    attn_w, dense_w, moe_w, _ = weight_elems(d, s)
    fsdp = d.mapping.fsdp > 0.5
    g_stride = tp * ep * sp * cp

    def gathered(t_layer, elems):
        t_g = _c(network.all_gather(f, g_stride, s.dp, elems * w.weight_bytes))
        return jnp.where(fsdp & (s.dp > 1), relax.maximum(t_layer, t_g), t_layer)

    total = (L_s * gathered(layer_attn, attn_w) + L_dense * gathered(layer_dense, dense_w)
             + L_moe * gathered(layer_moe, moe_w) + lc.lm_head.time + c_pp)
    comm = L_s * c_attn + L_dense * c_ffn + L_moe * c_moe + c_pp
    flops = (L_s * (lc.attention.flops + lc.norms.flops) + L_dense * lc.dense_ffn.flops
             + L_moe * lc.moe.flops + lc.lm_head.flops)
    dram = (L_s * (lc.attention.nbytes + lc.norms.nbytes) + L_dense * lc.dense_ffn.nbytes
            + L_moe * lc.moe.nbytes + lc.lm_head.nbytes)
    # bytes put on links by this chip (α–β bandwidth terms, coarse): AR 2x, others 1x
    link = (L_s * (2 * x * (tp > 1) + 2 * x / tp * (sp > 1) + cp_link * (cp > 1))
            + L_dense * 2 * x * (tp > 1)
            + L_moe * jnp.where(s.is_moe, 2 * a2a_bytes * (s.ep_moe > 1) + 2 * x * (tp > 1), 0.0)
            + x * (s.pp > 1))
    return StageTime(total, L_s * lc.attention.time, L_dense * lc.dense_ffn.time, L_moe * lc.moe.time,
                     L_s * lc.norms.time + lc.lm_head.time, comm, flops, dram, link)
