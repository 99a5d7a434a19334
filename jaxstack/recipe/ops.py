"""L3: the transformer layer as an op table, costed on one chip.

For one design point and one phase (prefill or decode) this module says how much work
each op of one layer does on one chip after sharding, and returns its roofline cost.
Token accounting (per pipeline stage, per chip):
    dp_attn = dp * ep                        (EP ranks act as DP for attention/dense ops)
    mb      = micro_batches, or pp when 0    pipeline micro-batches
    reqs    = ceil(ceil(batch / dp_attn) / mb)   requests in one micro-batch
    T       = ceil(reqs * q_len / (sp * cp))     tokens through the linear layers
Attention runs all ``reqs`` requests on num_attention_heads / (tp * sp) heads over
kv_len / cp keys. MoE layers run on ep_moe ranks with tp_moe-way sharded experts, where
(module-flexible, DeepStack §2.4) moe_tp_to_ep turns ep_moe = min(tp * ep, E),
tp_moe = tp * ep / ep_moe. A rank receives T * ep * k / ep_moe * imbalance expert
assignments; of its E / ep_moe experts it reads the expected number touched,
E_loc * (1 - (1 - k / E)^(T * ep * r)), which is what makes small-batch MoE decode cheap;
r = ``model.moe_routing_independence`` (1: every token picks independently and uniformly;
below 1 a batch's tokens co-route and touch fewer experts, session 13).
The routed experts' grouped GEMMs take their tiled time / chip.moe_gemm_efficiency (the
engine's MoE kernels against its dense GEMMs; a calibration constant, 1 by default).
GQA: KV per token per layer per chip = 2 * head_dim * max(kv_heads / (tp * sp), 1) * kv_bytes.
MLA (kv_lora_rank > 0): the latent (kv_lora_rank + qk_rope_head_dim) * kv_bytes is
replicated over TP; decode uses the absorbed form (2*kv_lora_rank + rope FLOP per
query-key pair per head, x2), prefill the expanded one.
GEMM cost: ``compute.gemm`` (weights streamed once per step). The ops that a tile-level
overlap pipelines with a collective (attention output projection, dense down projection,
expert GEMMs, attention core) are also returned alone with their wave counts; attention
work items = reqs * heads * ceil(q_len / ATTN_Q_BLOCK). Kernel count per layer
follows vLLM's launch sequence (model_executor/models/llama.py, deepseek_v2.py): GQA
attention 6 (norm, qkv, rope, cache write, attention, o), SwiGLU FFN 4 (norm, gate_up,
act, down); MLA adds the latent norms and the second absorbed BMM (+3); MoE adds router,
top-k, align, grouped GEMMs (3: up, SwiGLU, down; the SwiGLU moves 3 x assignments x the
rank's expert width activations, as the dense FFN's does, session 12), combine and, with shared
experts, their gate/up, SwiGLU (session 12) and down; every
FP8/FP4 GEMM adds an activation-quantisation kernel. Each kernel pays ``chip.op_overhead``.

Traced size (compile cost is a feature): the layer is split into its KV-independent part
(``linear_costs``: every GEMM and vector kernel, each set costed by ONE vectorised call of
``compute.tiling`` / ``compute.elementwise_ctx`` on the resolved chip ``compute.Ctx``) and
its attention core (``core_cost``), so the decode KV points share the linear part and only
the core is costed per KV length (``schedule.stage_times``).
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

from ..physics import compute, relax
from ..physics.compute import Cost
from ..physics.lean import clip, total, unstack, where
from ..types.design import Design
from ..types.workload import expert_bytes, expert_operand_bytes, gemm_act_operand_bytes, gemm_operand_bytes

__all__ = ["param_count", "Shard", "shard", "kv_held", "keys_attended", "LayerCosts", "layer_costs", "Linear",
           "linear_costs", "core_cost",
           "assemble", "design_context",
           "kv_bytes_per_token", "weight_elems", "PREFILL_CHUNK_TOKENS"]

# vLLM's default max_num_batched_tokens for chunked prefill: bounds the activation working set.
PREFILL_CHUNK_TOKENS = 8192.0
# share of untouched experts that counts as none (linear_costs)
MISS_TOL = 1e-5
# query rows per attention tile (FlashAttention-2/3 BLOCK_M 128); decode has one block per request
ATTN_Q_BLOCK = 128.0


class Shard(NamedTuple):
    tp: jnp.ndarray
    ep: jnp.ndarray
    sp: jnp.ndarray
    cp: jnp.ndarray
    dp: jnp.ndarray
    pp: jnp.ndarray
    dp_attn: jnp.ndarray
    ep_moe: jnp.ndarray
    tp_moe: jnp.ndarray
    is_moe: jnp.ndarray
    is_mla: jnp.ndarray
    mb: jnp.ndarray
    elems: tuple = ()     # ``weight_elems``, derived once here (memory and the FSDP gathers read it)


def shard(d: Design) -> Shard:
    m, w = d.mapping, d.model
    E = w.n_routed_experts
    is_moe = E > 0
    tpep = m.tp * m.ep
    ep_moe_t = jnp.minimum(tpep, jnp.maximum(E, 1.0))
    ep_moe = where(m.moe_tp_to_ep > 0.5, ep_moe_t, m.ep)
    tp_moe = tpep / ep_moe
    mb = where(m.micro_batches > 0.5, m.micro_batches, m.pp)
    s = Shard(m.tp, m.ep, m.sp, m.cp, m.dp, m.pp, m.dp * m.ep, ep_moe, tp_moe, is_moe, w.kv_lora_rank > 0, mb)
    return s._replace(elems=_weight_elems(d, s))


def kv_bytes_per_token(d: Design, s: Shard):
    """KV-cache bytes per token per layer held on one chip."""
    w = d.model
    gqa = 2.0 * w.head_dim * jnp.maximum(w.num_key_value_heads / (s.tp * s.sp), 1.0) * w.kv_bytes
    mla = (w.kv_lora_rank + w.qk_rope_head_dim) * w.kv_bytes
    return where(s.is_mla, mla, gqa)


def kv_held(w, tokens):
    """KV tokens a request of ``tokens`` tokens holds per layer, averaged over the layers: the
    sliding-window layers (share ``sliding_window_layers``) keep at most ``sliding_window``."""
    f = where(w.sliding_window > 0, w.sliding_window_layers, 0.0)
    return tokens - f * jnp.maximum(tokens - w.sliding_window, 0.0)


def keys_attended(w, kv_len, q_len, decode):
    """Keys a query attends to, averaged over the layers: ``kv_len`` (decode: the cache; prefill:
    the causal mean (I + 1) / 2 of an I-token prompt) in full-attention layers; in the share
    ``sliding_window_layers`` with a window W, min(kv_len, W) in decode and, in an I > W prefill,
    the mean over positions p of min(p, W), W - W (W - 1) / (2 I)."""
    win = w.sliding_window
    f = where(win > 0, w.sliding_window_layers, 0.0)
    pre = where(q_len > win, win - win * (win - 1.0) / (2.0 * jnp.maximum(q_len, 1.0)), kv_len)
    windowed = where(decode, jnp.minimum(kv_len, win), jnp.minimum(pre, kv_len))
    return kv_len - f * (kv_len - windowed)


def _add(*cs: Cost) -> Cost:
    return Cost(*(total(x) for x in zip(*cs, strict=True)))


def weight_elems(d: Design, s: Shard):
    """Per-chip weight elements: (attention per layer, dense FFN per dense layer,
    MoE per MoE layer, embedding + LM head on the heaviest stage); ``shard`` derives them once."""
    return s.elems


def _weight_elems(d: Design, s: Shard):
    w = d.model
    h, nh = w.hidden_size, w.num_attention_heads
    gqa = h * (nh + 2 * w.num_key_value_heads) * w.head_dim / s.tp + nh * w.head_dim * h / s.tp
    qk = w.qk_nope_head_dim + w.qk_rope_head_dim
    q_in = where(w.q_lora_rank > 0, w.q_lora_rank, h)
    mla = (h * w.q_lora_rank + q_in * nh * qk / s.tp + h * (w.kv_lora_rank + w.qk_rope_head_dim)
           + w.kv_lora_rank * nh * (w.qk_nope_head_dim + w.v_head_dim) / s.tp + nh * w.v_head_dim * h / s.tp)
    attn = where(s.is_mla, mla, gqa)
    dense = (2.0 + w.mlp_gated) * h * w.intermediate_size / s.tp
    # routed experts counted at weight_bytes each: scaled by their own width (expert_weight_bytes)
    experts = w.n_routed_experts / s.ep_moe * 3.0 * h * w.moe_intermediate_size / s.tp_moe * expert_ratio(w)
    moe = experts + 3.0 * h * w.moe_intermediate_size * w.n_shared_experts / s.tp + h * w.n_routed_experts
    embed = w.vocab_size * h / s.tp * where(s.pp > 1, 1.0, 2.0 - w.tie_word_embeddings)
    return attn, dense, moe, embed


def expert_ratio(m):
    """Bytes of a routed-expert weight over ``weight_bytes``: 1 unless the experts are quantised
    apart (``model.expert_weight_bytes``); element counts times it are at ``weight_bytes`` each."""
    return expert_bytes(m) / m.weight_bytes


def param_count(m):
    """Parameters of the whole model (every layer, embedding and LM head; as ``weight_elems``
    with no sharding, routed experts quantised apart at their share of ``weight_bytes``): what an
    engine's ``param_count x weight_bytes`` engine-size estimate uses."""
    h, nh, L = m.hidden_size, m.num_attention_heads, m.num_hidden_layers
    gqa = h * (nh + 2 * m.num_key_value_heads) * m.head_dim + nh * m.head_dim * h
    qk = m.qk_nope_head_dim + m.qk_rope_head_dim
    q_in = where(m.q_lora_rank > 0, m.q_lora_rank, h)
    mla = (h * m.q_lora_rank + q_in * nh * qk + h * (m.kv_lora_rank + m.qk_rope_head_dim)
           + m.kv_lora_rank * nh * (m.qk_nope_head_dim + m.v_head_dim) + nh * m.v_head_dim * h)
    attn = where(m.kv_lora_rank > 0, mla, gqa)
    moe = ((m.n_routed_experts * expert_ratio(m) + m.n_shared_experts) * 3.0 * h * m.moe_intermediate_size
           + h * m.n_routed_experts)
    span = L - jnp.minimum(m.first_k_dense_replace, L)
    n_moe = where(m.n_routed_experts > 0, jnp.ceil(span / m.moe_layer_step), 0.0)
    embed = m.vocab_size * h * (2.0 - m.tie_word_embeddings)
    return L * attn + n_moe * moe + (L - n_moe) * (2.0 + m.mlp_gated) * h * m.intermediate_size + embed


class LayerCosts(NamedTuple):
    attention: Cost      # projections + attention core of one layer
    attn_core: Cost      # the KV-dependent part alone (for the breakdown)
    dense_ffn: Cost      # one dense FFN layer
    moe: Cost            # one MoE layer (router, routed and shared experts)
    norms: Cost          # norms + residual adds of one layer
    lm_head: Cost        # final norm + LM head (once per step, last stage)
    tokens: jnp.ndarray  # T, tokens through the linear layers per chip
    reqs: jnp.ndarray    # requests per micro-batch on one attention rank
    o_proj: Cost         # attention output projection (part of ``attention``), overlaps the TP all-reduce
    ffn_down: Cost       # dense down projection (part of ``dense_ffn``), overlaps the TP all-reduce
    experts: Cost        # routed-expert GEMMs (part of ``moe``), overlap dispatch/combine + all-reduce
    waves_o: jnp.ndarray
    waves_down: jnp.ndarray
    waves_experts: jnp.ndarray
    waves_core: jnp.ndarray  # attention core, overlaps the SP all-to-alls and CP gathers
    vflops_attn: jnp.ndarray  # vector-unit FLOPs inside ``attention`` (rope, MLA latent norms)
    vflops_ffn: jnp.ndarray   # ... inside ``dense_ffn`` (SwiGLU activation)
    vflops_moe: jnp.ndarray   # ... inside ``moe`` (routing, top-k, combine, the experts' SwiGLUs)


class Linear(NamedTuple):
    """The KV-independent costs of one layer (one variant: phase x DRAM temperature);
    ``attn_pre`` / ``attn_post`` are the attention block's costs before / after its core."""

    attn_pre: Cost
    attn_post: Cost
    dense_ffn: Cost
    moe: Cost
    norms: Cost
    lm_head: Cost
    tokens: jnp.ndarray
    reqs: jnp.ndarray
    o_proj: Cost
    ffn_down: Cost
    experts: Cost
    waves_o: jnp.ndarray
    waves_down: jnp.ndarray
    waves_experts: jnp.ndarray
    waves_core: jnp.ndarray
    vflops_attn: jnp.ndarray
    vflops_ffn: jnp.ndarray
    vflops_moe: jnp.ndarray


def _stack(xs):
    xs = [jnp.asarray(x) for x in xs]
    shape = jnp.broadcast_shapes(*(x.shape for x in xs))
    return jnp.stack([jnp.broadcast_to(x, shape) for x in xs])


def linear_costs(d: Design, s: Shard, ctx: compute.Ctx, q_len, decode, batch=None) -> Linear:
    """Per-chip cost of the KV-independent ops of one layer for ``q_len`` query tokens per
    request of ``batch`` (default ``request.batch``); ``decode`` (bool, may be traced) selects
    the decode forms. Every GEMM of the
    layer is costed by ONE ``compute.tiling`` call on a vector of shapes, every vector op by
    one ``compute.elementwise_ctx`` call."""
    w = d.model
    wb, ab = w.weight_bytes, gemm_act_operand_bytes(w)
    # activation quantisation kernel: dynamic per-token quant of every GEMM input narrower than
    # the activations (W8A8 / W4A4); it writes the operand the GEMM then reads
    quantised = (ab < w.act_bytes).astype(wb.dtype)
    h, nh, hd = w.hidden_size, w.num_attention_heads, w.head_dim
    reqs = relax.cdiv(relax.cdiv(d.request.batch if batch is None else batch, s.dp_attn), s.mb)
    T = relax.cdiv(reqs * q_len, s.sp * s.cp)
    mla, gqa = s.is_mla.astype(h.dtype), 1.0 - s.is_mla.astype(h.dtype)
    qk = w.qk_nope_head_dim + w.qk_rope_head_dim
    has_qa = (w.q_lora_rank > 0).astype(h.dtype) * mla
    q_in = where(w.q_lora_rank > 0, w.q_lora_rank, h)
    inter = w.intermediate_size / s.tp
    E, k, mi = w.n_routed_experts, w.num_experts_per_tok, w.moe_intermediate_size
    on = s.is_moe.astype(h.dtype)
    si = w.n_shared_experts * mi / s.tp
    has_sh = on * (w.n_shared_experts > 0).astype(h.dtype)
    lm_T = where(decode, T, relax.cdiv(reqs, s.sp * s.cp))
    # the layer's dense GEMMs (M, K, N, on), in a fixed order
    gemms = [(T, h, (nh + 2 * w.num_key_value_heads) * hd / s.tp, gqa),      # 0 qkv (GQA)
             (T, nh * hd / s.tp, h, gqa),                                    # 1 o (GQA)
             (T, h, w.q_lora_rank, has_qa),                                  # 2 MLA q_a
             (T, q_in, nh * qk / s.tp, mla),                                 # 3 MLA q_b
             (T, h, w.kv_lora_rank + w.qk_rope_head_dim, mla),               # 4 MLA kv_a
             (T, w.kv_lora_rank, nh * (w.qk_nope_head_dim + w.v_head_dim) / s.tp, mla),  # 5 MLA kv_b
             (T, nh * w.v_head_dim / s.tp, h, mla),                          # 6 o (MLA)
             (T, h, (1.0 + w.mlp_gated) * inter, 1.0),                       # 7 gate/up (up alone: non-gated)
             (T, inter, h, 1.0),                                             # 8 down
             (T, h, 2 * si, has_sh),                                         # 9 shared gate/up
             (T, si, h, has_sh),                                             # 10 shared down
             (T, h, E, on),                                                  # 11 router
             (lm_T, h, w.vocab_size / s.tp, 1.0)]                            # 12 LM head
    # routed experts: two grouped GEMMs over the touched experts
    e_safe = jnp.maximum(E, 1.0)
    assign = T * s.ep * k / s.ep_moe * w.moe_imbalance
    # expected share of a rank's experts no token picks; below MISS_TOL every expert counts as
    # touched (rows per expert stay an exact ratio: the tile ceilings' 1e-6 tolerance never straddles)
    miss = jnp.power(clip(1.0 - k / e_safe, 0.0, 1.0), T * s.ep * w.moe_routing_independence)
    touched = E / s.ep_moe * (1.0 - where(miss < MISS_TOL, 0.0, miss))
    g = jnp.maximum(touched, 1e-6)
    rows = assign / g
    third = 3.0 * mi / s.tp_moe / 3.0  # exact for N = 3 x intermediate (N * 2/3 is not)
    n_g = len(gemms)
    M = _stack([x[0] for x in gemms] + [rows, rows])
    K = _stack([x[1] for x in gemms] + [h, third])
    N = _stack([x[2] for x in gemms] + [2.0 * third, h])
    groups = _stack([1.0] * n_g + [g, g])
    # the routed experts' two GEMMs: their own weight width and tensor rate (expert_weight_bytes)
    xon = np.arange(n_g + 2).reshape((-1,) + (1,) * (M.ndim - 1)) >= n_g
    tl = compute.tiling(ctx._replace(inv_rate=where(xon, ctx.inv_rate_x, ctx.inv_rate)), M, K, N,
                        where(xon, expert_bytes(w), wb), ab, groups, w.act_bytes)
    gon = _stack([x[3] for x in gemms])
    Mg, Kg, Ng = M[:n_g], K[:n_g], N[:n_g]

    # vector kernels: activation quantisation of every FP8/FP4 GEMM (vLLM dynamic per-token
    # quant), rotary embedding + KV-cache write, MLA latent norms + second absorbed BMM,
    # SwiGLU activation, routing (top-k, sort/align, combine), 2 fused add + RMSNorm, the routed
    # experts' SwiGLU between their grouped GEMMs (its launch is one of the experts' three), the
    # shared experts' SwiGLU (a launch of its own, as the dense FFN's)
    kv_tok = kv_bytes_per_token(d, s)
    qkv_width = where(s.is_mla, nh * qk / s.tp + w.kv_lora_rank + w.qk_rope_head_dim,
                          (nh + 2 * w.num_key_value_heads) * hd / s.tp)
    lat = w.q_lora_rank + w.kv_lora_rank
    vec = [(6.0 * T * qkv_width, 2.0 * T * qkv_width * w.act_bytes + T * kv_tok, 2.0),           # rope
           (10.0 * T * lat * mla, 3.0 * T * lat * w.act_bytes * mla, 3.0 * mla),                  # MLA extra
           (4.0 * T * inter, (2.0 + w.mlp_gated) * T * inter * w.act_bytes, 1.0),                # act
           (10.0 * T * E * on, (4.0 * T * E + assign * h * w.act_bytes) * on, 3.0 * on),          # route
           (2 * 5.0 * T * h, 2 * 3.0 * T * h * w.act_bytes, 2.0),                                 # norms
           (4.0 * assign * third * on, 3.0 * assign * third * w.act_bytes * on, 0.0),            # expert act
           (4.0 * T * si * has_sh, 3.0 * T * si * w.act_bytes * has_sh, has_sh)]                  # shared act
    qon = gon * quantised       # 16-bit GEMM inputs need no quantisation pass
    q_moved = Mg * Kg * (w.act_bytes + ab) * qon
    el = compute.elementwise_ctx(ctx, jnp.concatenate([2.0 * Mg * Kg * qon, _stack([v[0] for v in vec])]),
                                 jnp.concatenate([q_moved, _stack([v[1] for v in vec])]),
                                 jnp.concatenate([qon, _stack([v[2] for v in vec])]))

    # each GEMM with its quantisation kernel, as vectors over the GEMMs; the vector kernels' and
    # the GEMMs' costs cut into rows once (one split per field, not a slice and a squeeze per row)
    parts = [lax.split(x, (n_g,) + (1,) * len(vec)) for x in (el.time, el.flops, el.nbytes)]
    el_t, el_f, el_b = (p[0] for p in parts)                  # the GEMMs' quantisation kernels
    v_rows = [[lax.reshape(r, ()) for r in p[1:]] for p in parts]   # [field][vector kernel]
    g_time = compute.keep((tl.time[:n_g] * gon + gon * ctx.overhead) + el_t)
    g_flops = compute.keep(2.0 * Mg * Kg * Ng * gon + el_f)
    g_bytes = compute.keep(tl.nbytes[:n_g] * gon + el_b)
    g_rows = unstack((g_time, g_flops, g_bytes), n_g)

    def gemm(i):
        return Cost(*g_rows[i])

    def vector(j):
        return Cost(*(rows[j] for rows in v_rows))

    qkv_gqa, o_gqa, o_mla = gemm(0), gemm(1), gemm(6)
    mla_proj = Cost(*(jnp.sum(x[2:7]) for x in (g_time, g_flops, g_bytes)))   # GEMMs 2-6: q_a .. o (MLA)
    rope, mla_extra, act, route, norms, expert_act, shared_act = (vector(j) for j in range(7))
    down = gemm(8)
    dense = _add(gemm(7), act, down)
    up, dn = n_g, n_g + 1
    experts = Cost((tl.time[up] + tl.time[dn]) / d.chip.moe_gemm_efficiency * on + 3.0 * on * ctx.overhead,
                   2.0 * assign * h * (3.0 * mi / s.tp_moe) * on, (tl.nbytes[up] + tl.nbytes[dn]) * on)
    shared = _add(gemm(9), shared_act, gemm(10))
    moe = _add(gemm(11), route, expert_act, experts, shared)
    o_proj = _add(o_gqa, o_mla)
    waves_o = where(s.is_mla, tl.waves[6], tl.waves[1])
    heads = nh / (s.tp * s.sp)
    waves_core = compute.attention_waves_ctx(ctx.U, reqs * heads * relax.ceil(q_len / ATTN_Q_BLOCK))
    return Linear(_add(qkv_gqa, o_gqa, mla_proj, rope), mla_extra, dense, moe, norms, gemm(12), T, reqs, o_proj,
                  down, experts, waves_o, tl.waves[8], tl.waves[up] + tl.waves[dn], waves_core,
                  rope.flops + mla_extra.flops, act.flops, route.flops + expert_act.flops + shared_act.flops)


def core_cost(d: Design, s: Shard, ctx: compute.Ctx, reqs, q_len, kv_len, decode) -> Cost:
    """The attention core of one layer: ``reqs`` requests of ``q_len`` queries over ``kv_len``
    keys (causal halving folded in), heads split over tp*sp, keys over cp."""
    w = d.model
    nh, hd = w.num_attention_heads, w.head_dim
    qk = w.qk_nope_head_dim + w.qk_rope_head_dim
    heads = nh / (s.tp * s.sp)
    kv_eff = keys_attended(w, kv_len, q_len, decode) / s.cp
    pairs = reqs * q_len * heads * kv_eff  # query-key pairs
    # absorbed MLA in decode: scores over the latent + rope part, values over the latent
    mla_pair = where(decode, 2.0 * (2.0 * w.kv_lora_rank + w.qk_rope_head_dim), 2.0 * (qk + w.v_head_dim))
    flops_core = pairs * where(s.is_mla, mla_pair, 4.0 * hd)
    kv_tok = kv_bytes_per_token(d, s)
    q_out = reqs * q_len * heads * where(s.is_mla, qk + w.v_head_dim, 2.0 * hd) * w.act_bytes
    return compute.attention_ctx(ctx, flops_core, reqs * kv_eff * kv_tok, q_out)


def assemble(lin: Linear, core: Cost) -> LayerCosts:
    """``LayerCosts`` of one variant from its KV-independent part and its attention core."""
    attention = _add(lin.attn_pre, core, lin.attn_post)
    return LayerCosts(attention, core, lin.dense_ffn, lin.moe, lin.norms, lin.lm_head, lin.tokens, lin.reqs,
                      lin.o_proj, lin.ffn_down, lin.experts, lin.waves_o, lin.waves_down, lin.waves_experts,
                      lin.waves_core, lin.vflops_attn, lin.vflops_ffn, lin.vflops_moe)


def design_context(d: Design, temperature=None, hot=None) -> compute.Ctx:
    """``compute.context`` of a design: its chip and DRAM for its GEMM operand width and its
    attention operand width (``model.attn_bytes``), at a DRAM temperature or hot weight."""
    return compute.context(d.chip, d.dram, gemm_operand_bytes(d.model), temperature, hot, d.model.attn_bytes,
                           expert_operand_bytes(d.model))


def layer_costs(d: Design, s: Shard, q_len, kv_len, *, decode: bool, temperature=None) -> LayerCosts:
    """Per-chip cost of each block of one layer; ``decode`` selects the MLA absorbed form;
    ``temperature`` (degC, None = not hot) sets the DRAM refresh rate (``memory``)."""
    ctx = design_context(d, temperature)
    lin = linear_costs(d, s, ctx, q_len, decode)
    return assemble(lin, core_cost(d, s, ctx, lin.reqs, q_len, kv_len, decode))
