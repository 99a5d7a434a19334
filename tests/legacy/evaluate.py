"""L3: ``evaluate(design) -> Metrics`` for ONE design point (the recipe).

Reads like a pipeline: shard the model, check feasibility, cost a prefill stage and a
decode stage at KV_POINTS cache lengths from input_len to input_len + output_len, then
derive serving metrics, energy, power and temperature. No jit, no vmap over designs, no
exceptions: infeasible points carry ``feasible = False`` and a ``Reason`` code, and every
float field stays finite. ``jit(vmap(evaluate))`` is applied by the engines (L4).

Serving regime (matches vLLM with CUDA graphs at fixed concurrency): ``request.batch``
requests decode together, split per replica into mb pipeline micro-batches (mb =
mapping.micro_batches, or pp); a micro-batch's next token needs all pp stages and waits
for the other micro-batches, so TPOT = max(pp, mb) * mean_i t_stage(kv_i); the stages
idle a fraction max(0, 1 - mb / pp) of the time (``bubble_fraction``); system decode
tokens/s = batch / TPOT; per-user tokens/s = 1 / TPOT. Prefill of the whole batch fills
and drains the pipeline: TTFT = (mb + pp - 1) * t_stage(prefill of one micro-batch),
prefill tokens/s = batch * input_len / TTFT.
"""

import jax
import jax.numpy as jnp

from jaxstack.physics import memory, power, relax, thermal
from jaxstack.types.design import Design
from jaxstack.types.metrics import Metrics, Reason

from .ops import PREFILL_CHUNK_TOKENS, kv_bytes_per_token, layer_costs, shard, weight_elems
from .schedule import stage_time

__all__ = ["evaluate", "step_energy", "breakdown", "BREAKDOWN_ORDER", "KV_POINTS", "devices", "memory_use"]

KV_POINTS = 4  # decode KV lengths sampled evenly from input to input+output (DeepStack §2.5)
HOT_OFFSET_K = 50.0  # the cool / hot decode steps are costed 50 K below / above the refresh threshold
REF_POINT = KV_POINTS // 2  # KV sample (2/3 of the generation) at which the hot step is also costed
# SRAM traffic per tensor FLOP of the large CTA tile (128 x 256 x 64, 16-bit operands): each k-step
# writes (128 + 256) x 64 x 2 B into SRAM and reads them back for 2 x 128 x 256 x 64 FLOP
SRAM_BYTES_PER_TENSOR_FLOP = 2.0 * (128 + 256) * 64 * 2 / (2.0 * 128 * 256 * 64)


def devices(d: Design):
    f = d.fabric
    return f.l1.size * f.l2.size * f.l3.size


def memory_use(d: Design, s):
    """(weights, KV, activations) bytes on the heaviest chip."""
    w, m = d.model, d.mapping
    L = w.num_hidden_layers
    L_s = relax.cdiv(L, s.pp)
    attn, dense, moe, embed = weight_elems(d, s)
    n_moe = jnp.where(s.is_moe, jnp.minimum(L_s, L - jnp.minimum(w.first_k_dense_replace, L)), 0.0)
    elems = L_s * attn + n_moe * moe + (L_s - n_moe) * dense + embed
    fsdp = (m.fsdp > 0.5) & (s.dp > 1)
    layer_max = attn + jnp.where(s.is_moe, moe, dense)
    elems = jnp.where(fsdp, elems / s.dp + layer_max, elems)
    weights = elems * w.weight_bytes
    reqs = relax.cdiv(d.request.batch, s.dp_attn)
    kv = reqs * (d.request.input_len + d.request.output_len) * L_s * kv_bytes_per_token(d, s) / s.cp
    chunk = jnp.minimum(relax.cdiv(relax.cdiv(reqs, s.mb) * d.request.input_len, s.sp * s.cp),
                        PREFILL_CHUNK_TOKENS)
    widest = jnp.maximum(w.intermediate_size / s.tp, w.num_experts_per_tok * w.moe_intermediate_size / s.tp_moe)
    act = chunk * (4.0 * w.hidden_size + 2.0 * widest) * w.act_bytes
    return weights, kv, act


def _reason(d: Design, s, mem_total, temp):
    w, m, r = d.model, d.mapping, d.request
    world = m.tp * m.ep * m.sp * m.cp * m.dp * m.pp
    bad_devices = jnp.abs(world - devices(d)) > 0.5
    nh = w.num_attention_heads
    E = w.n_routed_experts
    heads_ok = jnp.mod(nh, m.tp * m.sp) == 0
    experts_ok = jnp.where(E > 0, (jnp.mod(E, s.ep_moe) == 0) & (m.ep <= E), m.ep == 1)
    layers_ok = m.pp <= w.num_hidden_layers
    bad_div = ~(heads_ok & experts_ok & layers_ok)
    bad_batch = r.batch < m.dp * m.pp
    bad_mem = mem_total > memory.usable_capacity(d.dram)
    bad_temp = temp > d.thermal.dram_limit
    reason = jnp.int32(Reason.ok)
    for bad, code in reversed([(bad_devices, Reason.device_count), (bad_div, Reason.divisibility),
                               (bad_batch, Reason.batch), (bad_mem, Reason.memory),
                               (bad_temp, Reason.thermal)]):
        reason = jnp.where(bad, jnp.int32(code), reason)
    return reason


def step_energy(d: Design, st) -> power.Energy:
    """Dynamic energy (J) of one stage step ``st`` (a ``StageTime``) on one chip: GEMM FLOPs at
    the weight width, attention FLOPs at 16 bit, vector FLOPs, SRAM (two passes of every DRAM
    byte plus the GEMM operand panels), DRAM, links per fabric level."""
    tensor = st.flops - st.vector_flops - st.attn_flops
    work = power.Work(tensor_flops=tensor, vector_flops=st.vector_flops,
                      sram_bytes=2.0 * st.dram_bytes + SRAM_BYTES_PER_TENSOR_FLOP * (tensor + st.attn_flops),
                      dram_bytes=st.dram_bytes, link_bytes_l1=st.link_l1, link_bytes_l2=st.link_l2,
                      link_bytes_l3=st.link_l3, time=st.total)
    main = power.step_energy(d.chip, d.dram, d.fabric, work, d.model.weight_bytes)
    attn = power.step_energy(d.chip, d.dram, d.fabric, power.Work(tensor_flops=st.attn_flops), 2.0)
    return jax.tree_util.tree_map(jnp.add, main, attn)


def evaluate(d: Design) -> Metrics:
    """All metrics of one design point (see module docstring)."""
    s = shard(d)
    r = d.request
    n_dev = devices(d)

    # prefill: one micro-batch of prompts; causal attention sees (S + 1) / 2 keys on average
    pre = stage_time(d, s, r.input_len, 0.5 * (r.input_len + 1.0), decode=False)
    ttft = (s.mb + s.pp - 1.0) * pre.total
    prefill_tps = r.batch * r.input_len / ttft

    # decode: one token per request, KV length sampled over the generation (cool DRAM), plus
    # one step with doubled refresh (the thermal feedback): its relative slowdown at the KV
    # point REF_POINT is applied to the mean step (exactly 1 when refresh costs nothing)
    frac = jnp.concatenate([jnp.linspace(0.0, 1.0, KV_POINTS), jnp.linspace(0.0, 1.0, KV_POINTS)[REF_POINT:][:1]])
    hot = jnp.arange(KV_POINTS + 1) == KV_POINTS
    thr = d.dram.refresh_double_temp
    dec = jax.vmap(lambda f, h: stage_time(d, s, 1.0, r.input_len + r.output_len * f, decode=True,
                                           temperature=jnp.where(h, thr + HOT_OFFSET_K, thr - HOT_OFFSET_K)))(frac, hot)
    mean = jax.tree_util.tree_map(lambda x: jnp.mean(x[:KV_POINTS]), dec)
    t_cool = mean.total
    t_hot = t_cool * jnp.maximum(dec.total[KV_POINTS] / dec.total[REF_POINT], 1.0)
    factor = jnp.maximum(s.pp, s.mb)

    # energy, leakage/refresh/temperature fixed point, power wall (power.py, thermal.py)
    st = thermal.solve(d.chip, d.dram, d.thermal, step_energy(d, mean), t_cool, t_hot)
    tpot = factor * st.step_time
    decode_tps = r.batch / tpot
    f_clk = power.frequency_scale(d.chip, st.power)
    tpot_scaled = power.scaled_time(tpot, f_clk)
    p_chip = power.throttled_power(st.power, f_clk)
    e_token = n_dev * p_chip * tpot_scaled / r.batch
    pre_st = thermal.solve(d.chip, d.dram, d.thermal, step_energy(d, pre), pre.total, pre.total)

    weights, kv, act = memory_use(d, s)
    mem_total = weights + kv + act
    reason = _reason(d, s, mem_total, st.t_dram)
    return Metrics(
        feasible=reason == Reason.ok, reason=reason, ttft_s=ttft, tpot_s=tpot,
        prefill_tokens_per_s=prefill_tps, decode_tokens_per_s=decode_tps, user_tokens_per_s=1.0 / tpot,
        scaled_decode_tokens_per_s=r.batch / tpot_scaled,
        energy_per_token_J=e_token, tokens_per_J=1.0 / e_token, power_W=p_chip, temperature_C=st.t_junction,
        dram_temperature_C=st.t_dram, refresh_hot_fraction=st.hot, prefill_power_W=pre_st.power,
        frequency_scale=f_clk, weight_bytes=weights, kv_bytes=kv,
        activation_bytes=act, memory_bytes=mem_total, t_attention_s=mean.attention, t_ffn_s=mean.ffn,
        t_moe_s=mean.moe, t_other_s=mean.other, t_comm_s=mean.comm, t_comm_exposed_s=mean.exposed,
        bubble_fraction=jnp.maximum(0.0, 1.0 - s.mb / s.pp),
        running_batch=r.batch, requests_per_s=decode_tps / r.output_len,   # fields added after this core (static)
        ttft_p99_s=ttft, tpot_p99_s=tpot, goodput_requests_per_s=jnp.zeros_like(tpot),
        load_factor=jnp.zeros_like(tpot),
        ttft_p50_s=ttft, ttft_p90_s=ttft, tpot_p50_s=tpot, tpot_p90_s=tpot,
    )


BREAKDOWN_ORDER = ("attention projections", "attention core (KV reads)", "dense FFN", "MoE", "norms + LM head",
                   "attention (TP all-reduce, SP a2a, CP)", "dense FFN (TP all-reduce)",
                   "MoE (dispatch + combine + all-reduce)", "pipeline send", "FSDP weight gathers")


def breakdown(d: Design, decode: bool = True) -> dict:
    """Per-op times of ONE pipeline stage (s) for the report of ``jaxstack eval``: decode at
    the mid-generation KV length (or the prefill micro-batch), compute per op and, per
    collective block, all communication and the part left exposed after overlap."""
    s = shard(d)
    r = d.request
    if decode:
        q, kv = 1.0, r.input_len + 0.5 * r.output_len
    else:
        q, kv = r.input_len, 0.5 * (r.input_len + 1.0)
    st = stage_time(d, s, q, kv, decode=decode)
    lc = layer_costs(d, s, q, kv, decode=decode)
    L_s = st.attention / jnp.maximum(lc.attention.time, 1e-30)
    return {
        "compute": {"attention projections": st.attention - L_s * lc.attn_core.time,
                    "attention core (KV reads)": st.attn_core, "dense FFN": st.ffn, "MoE": st.moe,
                    "norms + LM head": st.other},
        "communication": {"attention (TP all-reduce, SP a2a, CP)": (st.comm_attn, st.exposed_attn),
                          "dense FFN (TP all-reduce)": (st.comm_ffn, st.exposed_ffn),
                          "MoE (dispatch + combine + all-reduce)": (st.comm_moe, st.exposed_moe),
                          "pipeline send": (st.comm_pp, st.comm_pp),
                          "FSDP weight gathers": (st.comm_fsdp, st.exposed_fsdp)},
        "stage_total": st.total,
    }
