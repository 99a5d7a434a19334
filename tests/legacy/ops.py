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
E_loc * (1 - (1 - k / E)^(T * ep)), which is what makes small-batch MoE decode cheap.
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
top-k, align, grouped GEMMs (3) and combine; every FP8/FP4 GEMM adds an activation-
quantisation kernel. Each kernel pays ``chip.op_overhead``.
"""

from typing import NamedTuple

import jax.numpy as jnp

from jaxstack.physics import relax
from jaxstack.types.design import Design

from . import compute
from .compute import Cost

__all__ = ["Shard", "shard", "LayerCosts", "layer_costs", "kv_bytes_per_token",
           "weight_elems", "PREFILL_CHUNK_TOKENS"]

# vLLM's default max_num_batched_tokens for chunked prefill: bounds the activation working set.
PREFILL_CHUNK_TOKENS = 8192.0
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


def shard(d: Design) -> Shard:
    m, w = d.mapping, d.model
    E = w.n_routed_experts
    is_moe = E > 0
    tpep = m.tp * m.ep
    ep_moe_t = jnp.minimum(tpep, jnp.maximum(E, 1.0))
    ep_moe = jnp.where(m.moe_tp_to_ep > 0.5, ep_moe_t, m.ep)
    tp_moe = tpep / ep_moe
    mb = jnp.where(m.micro_batches > 0.5, m.micro_batches, m.pp)
    return Shard(m.tp, m.ep, m.sp, m.cp, m.dp, m.pp, m.dp * m.ep, ep_moe, tp_moe, is_moe,
                 w.kv_lora_rank > 0, mb)


def kv_bytes_per_token(d: Design, s: Shard):
    """KV-cache bytes per token per layer held on one chip."""
    w = d.model
    gqa = 2.0 * w.head_dim * jnp.maximum(w.num_key_value_heads / (s.tp * s.sp), 1.0) * w.kv_bytes
    mla = (w.kv_lora_rank + w.qk_rope_head_dim) * w.kv_bytes
    return jnp.where(s.is_mla, mla, gqa)


def _add(*cs: Cost) -> Cost:
    return Cost(sum(c.time for c in cs), sum(c.flops for c in cs), sum(c.nbytes for c in cs))


def weight_elems(d: Design, s: Shard):
    """Per-chip weight elements: (attention per layer, dense FFN per dense layer,
    MoE per MoE layer, embedding + LM head on the heaviest stage)."""
    w = d.model
    h, nh = w.hidden_size, w.num_attention_heads
    gqa = h * (nh + 2 * w.num_key_value_heads) * w.head_dim / s.tp + nh * w.head_dim * h / s.tp
    qk = w.qk_nope_head_dim + w.qk_rope_head_dim
    q_in = jnp.where(w.q_lora_rank > 0, w.q_lora_rank, h)
    mla = (h * w.q_lora_rank + q_in * nh * qk / s.tp + h * (w.kv_lora_rank + w.qk_rope_head_dim)
           + w.kv_lora_rank * nh * (w.qk_nope_head_dim + w.v_head_dim) / s.tp + nh * w.v_head_dim * h / s.tp)
    attn = jnp.where(s.is_mla, mla, gqa)
    dense = 3.0 * h * w.intermediate_size / s.tp
    experts = w.n_routed_experts / s.ep_moe * 3.0 * h * w.moe_intermediate_size / s.tp_moe
    moe = experts + 3.0 * h * w.moe_intermediate_size * w.n_shared_experts / s.tp + h * w.n_routed_experts
    embed = w.vocab_size * h / s.tp * jnp.where(s.pp > 1, 1.0, 2.0 - w.tie_word_embeddings)
    return attn, dense, moe, embed


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
    vflops_moe: jnp.ndarray   # ... inside ``moe`` (routing, top-k, combine)


def layer_costs(d: Design, s: Shard, q_len, kv_len, *, decode: bool, temperature=None) -> LayerCosts:
    """Per-chip cost of each block of one layer; ``decode`` selects the MLA absorbed form;
    ``temperature`` (degC, None = not hot) sets the DRAM refresh rate (``memory``)."""
    w = d.model
    chip, dram, wb, ab = d.chip, d.dram, w.weight_bytes, w.act_bytes

    quantised = (wb < 2.0).astype(wb.dtype)

    def gemm_w(M, K, N, on=1.0):
        # FP8/FP4 GEMMs quantise their activations first (vLLM dynamic per-token quant kernel)
        # (session 6 physics fix, applied here too: no quantisation pass on 16-bit GEMMs)
        qon = on * quantised
        quant = compute.elementwise(chip, dram, 2.0 * M * K * qon, M * K * (ab + 1.0) * qon, qon, temperature)
        c, waves = compute.gemm_waves(chip, dram, M, K, N, wb, ab, on, temperature)
        return _add(c, quant), waves

    def gemm(M, K, N, on=1.0):
        return gemm_w(M, K, N, on)[0]

    def vector(flops, nbytes, kernels):
        return compute.elementwise(chip, dram, flops, nbytes, kernels, temperature)

    h, nh, hd = w.hidden_size, w.num_attention_heads, w.head_dim
    reqs = relax.cdiv(relax.cdiv(d.request.batch, s.dp_attn), s.mb)
    T = relax.cdiv(reqs * q_len, s.sp * s.cp)
    mla, gqa = s.is_mla.astype(h.dtype), 1.0 - s.is_mla.astype(h.dtype)

    # --- attention projections
    qkv_gqa = gemm(T, h, (nh + 2 * w.num_key_value_heads) * hd / s.tp, gqa)
    o_gqa, wo_gqa = gemm_w(T, nh * hd / s.tp, h, gqa)
    qk = w.qk_nope_head_dim + w.qk_rope_head_dim
    has_qa = (w.q_lora_rank > 0).astype(h.dtype) * mla
    q_in = jnp.where(w.q_lora_rank > 0, w.q_lora_rank, h)
    o_mla, wo_mla = gemm_w(T, nh * w.v_head_dim / s.tp, h, mla)
    mla_proj = _add(gemm(T, h, w.q_lora_rank, has_qa), gemm(T, q_in, nh * qk / s.tp, mla),
                    gemm(T, h, w.kv_lora_rank + w.qk_rope_head_dim, mla),
                    gemm(T, w.kv_lora_rank, nh * (w.qk_nope_head_dim + w.v_head_dim) / s.tp, mla), o_mla)
    # --- attention core: heads split over tp*sp, keys over cp
    heads = nh / (s.tp * s.sp)
    kv_eff = kv_len / s.cp
    pairs = reqs * q_len * heads * kv_eff  # query-key pairs (causal halving folded into kv_len)
    if decode:  # absorbed MLA: scores over the latent + rope part, values over the latent
        mla_pair = 2.0 * (2.0 * w.kv_lora_rank + w.qk_rope_head_dim)
    else:
        mla_pair = 2.0 * (qk + w.v_head_dim)
    flops_core = pairs * jnp.where(s.is_mla, mla_pair, 4.0 * hd)
    kv_tok = kv_bytes_per_token(d, s)
    q_out = reqs * q_len * heads * jnp.where(s.is_mla, qk + w.v_head_dim, 2.0 * hd) * w.act_bytes
    core = compute.attention(chip, dram, flops_core, reqs * kv_eff * kv_tok, q_out, wb, temperature)
    waves_core = compute.attention_waves(chip, dram, reqs * heads * relax.ceil(q_len / ATTN_Q_BLOCK))
    # rotary embedding + KV-cache write (2 element-wise kernels)
    qkv_width = jnp.where(s.is_mla, nh * qk / s.tp + w.kv_lora_rank + w.qk_rope_head_dim,
                          (nh + 2 * w.num_key_value_heads) * hd / s.tp)
    rope = vector(6.0 * T * qkv_width, 2.0 * T * qkv_width * w.act_bytes + T * kv_tok, 2.0)
    # MLA: RMSNorm of the q and kv latents, and the second absorbed BMM (W_UV) as its own kernel
    lat = w.q_lora_rank + w.kv_lora_rank
    mla_extra = vector(10.0 * T * lat * mla, 3.0 * T * lat * w.act_bytes * mla, 3.0 * mla)
    attention = _add(qkv_gqa, o_gqa, mla_proj, rope, core, mla_extra)

    # --- dense SwiGLU FFN
    inter = w.intermediate_size / s.tp
    act = vector(4.0 * T * inter, 3.0 * T * inter * w.act_bytes, 1.0)
    down, waves_down = gemm_w(T, inter, h)
    dense = _add(gemm(T, h, 2 * inter), act, down)

    # --- MoE: router, routed experts (grouped GEMM), shared experts
    E, k, mi = w.n_routed_experts, w.num_experts_per_tok, w.moe_intermediate_size
    on = s.is_moe.astype(h.dtype)
    e_safe = jnp.maximum(E, 1.0)
    assign = T * s.ep * k / s.ep_moe * w.moe_imbalance
    touched = E / s.ep_moe * (1.0 - jnp.power(jnp.clip(1.0 - k / e_safe, 0.0, 1.0), T * s.ep))
    experts, waves_experts = compute.expert_gemm_waves(chip, dram, assign, touched, h, 3.0 * mi / s.tp_moe, wb,
                                                       ab, on, temperature)
    si = w.n_shared_experts * mi / s.tp
    has_sh = on * (w.n_shared_experts > 0).astype(h.dtype)
    shared = _add(gemm(T, h, 2 * si, has_sh), gemm(T, si, h, has_sh))
    # routing kernels: top-k selection, token sort/align by expert, weighted combine
    route = vector(10.0 * T * E * on, (4.0 * T * E + assign * h * w.act_bytes) * on, 3.0 * on)
    moe = _add(gemm(T, h, E, on), route, experts, shared)

    # --- norms + residual adds (2 per layer, fused add+RMSNorm: read x, r; write x)
    norms = vector(2 * 5.0 * T * h, 2 * 3.0 * T * h * w.act_bytes, 2.0)
    # --- LM head on the last token of each request (decode: every token)
    lm_T = T if decode else relax.cdiv(reqs, s.sp * s.cp)
    lm_head = gemm(lm_T, h, w.vocab_size / s.tp)
    o_proj = _add(o_gqa, o_mla)
    waves_o = jnp.where(s.is_mla, wo_mla, wo_gqa)
    return LayerCosts(attention, core, dense, moe, norms, lm_head, T, reqs, o_proj, down, experts, waves_o,
                      waves_down, waves_experts, waves_core, rope.flops + mla_extra.flops, act.flops,
                      route.flops)
