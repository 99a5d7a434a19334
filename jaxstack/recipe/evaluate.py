"""L3: ``evaluate(design) -> Metrics`` for ONE design point (the recipe).

Reads like a pipeline: shard the model, check feasibility, cost a prefill stage and a
decode stage at KV_POINTS cache lengths from input_len to input_len + output_len, then
derive serving metrics, energy, power and temperature. No jit, no vmap over designs, no
exceptions: infeasible points carry ``feasible = False`` and a ``Reason`` code, and every
float field stays finite. ``jit(vmap(evaluate))`` is applied by the engines (L4).

Serving regime ``static`` (the default; ``serving.py`` has ``offline`` and ``online``, which
run this recipe at the engine's steady-state running batch, ``closed.py`` the closed loop of
``concurrency``; matches vLLM with CUDA graphs at fixed concurrency): ``request.batch``
requests decode together, split per replica into mb pipeline micro-batches (mb =
mapping.micro_batches, or pp); a micro-batch's next token needs all pp stages and waits
for the other micro-batches, so TPOT = max(pp, mb) * mean_i t_stage(kv_i); the stages
idle a fraction max(0, 1 - mb / pp) of the time (``bubble_fraction``); system decode
tokens/s = batch / TPOT; per-user tokens/s = 1 / TPOT. Prefill of the whole batch fills
and drains the pipeline: TTFT = (mb + pp - 1) * t_stage(prefill of one micro-batch),
prefill tokens/s = batch * input_len / TTFT.
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..physics import memory, power, relax, thermal
from ..physics.lean import strong, unstack, where
from ..types.design import Design
from ..types.metrics import Metrics, Reason
from ..types.workload import gemm_operand_bytes
from . import closed, serving
from .ops import PREFILL_CHUNK_TOKENS, design_context, kv_bytes_per_token, layer_costs, param_count, shard, weight_elems
from .queueing import Z50, Z90, gamma_quantiles
from .schedule import plans, stage_time, stage_times

__all__ = ["evaluate", "step_energy", "breakdown", "BREAKDOWN_ORDER", "KV_POINTS", "devices", "world_size",
           "memory_use", "memory_parts"]

KV_POINTS = 4  # decode KV lengths sampled evenly from input to input+output (DeepStack §2.5)
HOT_OFFSET_K = 50.0  # the cool / hot decode steps are costed 50 K below / above the refresh threshold
REF_POINT = KV_POINTS // 2  # KV sample (2/3 of the generation) at which the hot step is also costed
# SRAM traffic per tensor FLOP of the large CTA tile (128 x 256 x 64, 16-bit operands): each k-step
# writes (128 + 256) x 64 x 2 B into SRAM and reads them back for 2 x 128 x 256 x 64 FLOP
SRAM_BYTES_PER_TENSOR_FLOP = 2.0 * (128 + 256) * 64 * 2 / (2.0 * 128 * 256 * 64)
_THERMAL_READ = ("step_time", "power", "t_junction", "t_dram", "hot")      # ThermalState fields evaluate reads
_Z_MID = np.array([[Z50, Z90]], np.float32)      # the reported quantiles besides the p99 (normal scores)


# the StageTime fields evaluate reads: step energy (first), then the decode breakdown
_ENERGY = ("total", "flops", "vector_flops", "attn_flops", "dram_bytes", "link_l1", "link_l2", "link_l3")
_Step = NamedTuple("_Step", [(k, jnp.ndarray) for k in _ENERGY + ("attention", "ffn", "moe", "other", "comm",
                                                                  "exposed")])


def devices(d: Design):
    """Chips in the fabric."""
    f = d.fabric
    return f.l1.size * f.l2.size * f.l3.size


def world_size(d: Design):
    """Chips the mapping uses: tp ep sp cp dp pp, at most ``devices``; the rest of the fabric
    idles (a TP4 group inside an 8-GPU box), placed from the innermost level outwards."""
    m = d.mapping
    return m.tp * m.ep * m.sp * m.cp * m.dp * m.pp


def memory_parts(d: Design, s):
    """(weights, KV bytes of one token of one request, activations) on the heaviest chip.
    Offline: the activation working set of the largest prefill chunk a step may carry."""
    w, m = d.model, d.mapping
    L = w.num_hidden_layers
    L_s = relax.cdiv(L, s.pp)
    attn, dense, moe, embed = weight_elems(d, s)
    moe_span = jnp.minimum(L_s, L - jnp.minimum(w.first_k_dense_replace, L))      # layers past the dense lead
    n_moe = where(s.is_moe, relax.cdiv(moe_span, w.moe_layer_step), 0.0)         # every step-th one is MoE
    elems = L_s * attn + n_moe * moe + (L_s - n_moe) * dense + embed
    fsdp = (m.fsdp > 0.5) & (s.dp > 1)
    layer_max = attn + where(s.is_moe, moe, dense)
    elems = where(fsdp, elems / s.dp + layer_max, elems)
    weights = elems * w.weight_bytes
    kv_token = L_s * kv_bytes_per_token(d, s) / s.cp
    reqs = relax.cdiv(d.request.batch, s.dp_attn)
    static_chunk = relax.cdiv(relax.cdiv(reqs, s.mb) * d.request.input_len, s.sp * s.cp)
    offline_chunk = jnp.minimum(d.serving.max_num_batched_tokens, PREFILL_CHUNK_TOKENS) / (s.sp * s.cp)
    chunk = jnp.minimum(where(serving.is_offline(d), offline_chunk, static_chunk), PREFILL_CHUNK_TOKENS)
    widest = jnp.maximum(w.intermediate_size / s.tp, w.num_experts_per_tok * w.moe_intermediate_size / s.tp_moe)
    act = chunk * (4.0 * w.hidden_size + 2.0 * widest) * w.act_bytes
    return weights, kv_token, act


def memory_use(d: Design, s):
    """(weights, KV, activations) bytes on the heaviest chip (KV of ``request.batch`` requests
    at their longest, or at their mean length offline: ``serving.kv_tokens_per_request``)."""
    weights, kv_token, act = memory_parts(d, s)
    reqs = relax.cdiv(d.request.batch, s.dp_attn)
    return weights, reqs * serving.kv_tokens_per_request(d) * kv_token, act


def _reason(d: Design, s, mem_total, temp):
    w, m, r = d.model, d.mapping, d.request
    bad_devices = world_size(d) > devices(d) + 0.5       # a sub-group of the fabric is fine (part of a box)
    nh = w.num_attention_heads
    E = w.n_routed_experts
    heads_ok = jax.lax.rem(nh, m.tp * m.sp) == 0          # positive: rem = mod, one equation
    experts_ok = where(E > 0, (jax.lax.rem(E, s.ep_moe) == 0) & (m.ep <= E), m.ep == 1)
    layers_ok = m.pp <= w.num_hidden_layers
    bad_div = ~(heads_ok & experts_ok & layers_ok)
    bad_batch = r.batch < m.dp * m.pp
    bad_mem = mem_total > memory.usable_capacity(d.dram)
    bad_temp = temp > d.thermal.dram_limit
    reason = jnp.int32(Reason.ok)
    for bad, code in reversed([(bad_devices, Reason.device_count), (bad_div, Reason.divisibility),
                               (bad_batch, Reason.batch), (bad_mem, Reason.memory),
                               (bad_temp, Reason.thermal)]):
        reason = where(bad, jnp.int32(code), reason)
    return reason


def step_energy(d: Design, st) -> power.Energy:
    """Dynamic energy (J) of one stage step ``st`` (a ``StageTime``) on one chip: GEMM FLOPs at
    the weight width, attention FLOPs at ``model.attn_bytes`` (16 bit by default), vector FLOPs,
    SRAM (two passes of every DRAM byte plus the GEMM operand panels), DRAM, links per fabric level."""
    tensor = st.flops - st.vector_flops - st.attn_flops
    work = power.Work(tensor_flops=tensor, vector_flops=st.vector_flops,
                      sram_bytes=2.0 * st.dram_bytes + SRAM_BYTES_PER_TENSOR_FLOP * (tensor + st.attn_flops),
                      dram_bytes=st.dram_bytes, link_bytes_l1=st.link_l1, link_bytes_l2=st.link_l2,
                      link_bytes_l3=st.link_l3, time=st.total)
    main = power.step_energy(d.chip, d.dram, d.fabric, work, gemm_operand_bytes(d.model))
    attn = power.step_energy(d.chip, d.dram, d.fabric, power.Work(tensor_flops=st.attn_flops), d.model.attn_bytes)
    return jax.tree_util.tree_map(jnp.add, main, attn)


def evaluate(d: Design) -> Metrics:
    """All metrics of one design point (see module docstring)."""
    d = strong(d)                   # Python-float leaves: one conversion each, not one per use
    s = shard(d)
    d = serving.resolve_limits(d, s, param_count(d.model))   # the limits the engine runs with
    weights, kv_token, act = memory_parts(d, s)
    offline = serving.is_offline(d)
    kv_tokens = serving.kv_tokens_per_request(d)
    fit = serving.kv_fit(d, weights, act, kv_token, kv_tokens)                   # requests a replica's KV holds
    batch = serving.running_batch(d, s, weights, act, kv_token, kv_tokens, fit)  # = request.batch unless offline
    d = dataclasses.replace(d, request=dataclasses.replace(d.request, batch=batch))
    r = d.request
    n_dev = world_size(d)                     # chips in use (energy per token counts only these)

    # six stage variants share three linear variants (prefill; decode with cool and with hot
    # DRAM): prefill of one micro-batch of prompts (causal attention sees (S + 1) / 2 keys on
    # average); decode of one token per request at KV_POINTS cache lengths over the generation
    # (cool DRAM), plus one step with doubled refresh (the thermal feedback) at the KV point
    # REF_POINT, whose relative slowdown is applied to the mean step (exactly 1 when refresh
    # costs nothing). Every GEMM, vector op and collective is costed once per linear variant.
    thr = d.dram.refresh_double_temp
    zero = jnp.zeros_like(thr)
    hot = jnp.stack([zero, relax.step((thr - HOT_OFFSET_K) - thr), relax.step((thr + HOT_OFFSET_K) - thr), zero])
    ctx = design_context(d, hot=hot)
    one = jnp.ones_like(r.input_len) + d.serving.spec_tokens     # speculative decoding verifies 1 + k tokens
    # the last variant: a decode step of ONE request per micro-batch and replica at the mean KV
    # length (the light-load anchor of the serving regimes' affine decode step). The first: the
    # prefill of one micro-batch of prompts, or (online, closed loop: prompts arrive one by one and
    # ride the decode steps in chunks) one micro-batch step of the whole token budget, whose
    # queries see a prompt's mean key count (``serving.chunk_prefill``)
    n_light = s.dp_attn * s.mb
    arriving = d.serving.regime > 1.5
    q_len = jnp.stack([where(arriving, d.serving.max_num_batched_tokens, r.input_len), one, one, one])
    decode = jnp.array([False, True, True, True])
    frac = np.linspace(0.0, 1.0, KV_POINTS, dtype=np.float32)      # a constant: no traced linspace
    kv = jnp.concatenate([jnp.stack([0.5 * (r.input_len + 1.0)]), r.input_len + r.output_len * frac,
                          jnp.stack([r.input_len + r.output_len * frac[REF_POINT], r.input_len + 0.5 * r.output_len])])
    lin_of = np.array([0] + [1] * KV_POINTS + [2, 3])
    batch_l = jnp.stack([where(arriving, n_light, r.batch), r.batch, r.batch, n_light])
    st = stage_times(d, s, plans(d, s), ctx, q_len, decode, kv, lin_of, batch_l)
    # the fields read below as one [F, V] array: the prefill column and the decode KV points' mean
    table = jnp.stack([getattr(st, k) for k in _Step._fields])
    pre_v, mean_v = table[:, 0], jnp.mean(table[:, 1:KV_POINTS + 1], axis=1)
    pre_total = pre_v[0]
    t_cool, *_, t_attn, t_ffn, t_moe, t_other, t_comm, t_exposed = unstack(mean_v, len(_Step._fields))
    o = d.serving.step_overhead                                  # engine host time per iteration
    ttft = (s.mb + s.pp - 1.0) * (pre_total + o)
    prefill_tps = r.batch * r.input_len / ttft
    t_hot = t_cool * jnp.maximum(st.total[KV_POINTS + 1] / st.total[1 + REF_POINT], 1.0)
    st_light = st.total[KV_POINTS + 2]
    lin, attn0 = st.total - st.attn_core, st.attn_core[0]        # each variant's KV-independent part
    factor = jnp.maximum(s.pp, s.mb)

    # energy, leakage/refresh/temperature fixed point, power wall (power.py, thermal.py)
    # decode (mean step) and prefill: energy and thermal fixed point as one vectorised pair
    two = jnp.stack([mean_v[:len(_ENERGY)], pre_v[:len(_ENERGY)]])          # [2, energy fields]
    both = jax.vmap(lambda x, tc, th: thermal.solve(d.chip, d.dram, d.thermal,
                                                    step_energy(d, _Step(*unstack(x, len(_ENERGY)), *[0.0] * 6)),
                                                    tc, th))(
        two, jnp.stack([t_cool, pre_total]), jnp.stack([t_hot, pre_total]))
    # the decode row of every field read below, and the prefill row of the power (one split each)
    st, pre_st = unstack(both._replace(**{k: None for k in both._fields if k not in _THERMAL_READ}), 2)
    tpot = factor * (st.step_time + o) * serving.spec_time_factor(d)  # per generated token (1 without speculation)
    f_clk = power.frequency_scale(d.chip, st.power)
    p_chip = power.throttled_power(st.power, f_clk)
    # offline and online (serving.py): steps carry prefill chunks; online adds Poisson queueing
    b_rep = r.batch / s.dp_attn
    # the decode step, affine in the running requests per replica (serving.py), through the
    # full-load step and the light-load one (one request per micro-batch, same overheads, clock)
    tau_1 = factor * (st.step_time * st_light / t_cool + o) * serving.spec_time_factor(d)
    tau_w = serving.step_intercept(b_rep, tpot, s.mb, tau_1)
    # one prompt's prefill (pipeline throughput), its chunks riding the decode steps, which share
    # their weight reads and kernel launches with it (``serving.chunk_prefill``): offline what a
    # micro-batch's prompts add to the full decode step (at most their prefill alone); online and
    # in the closed loop (and for every regime's goodput) what one prompt adds to the light-load
    # step, through the first variant (a full budget step where prompts arrive one by one)
    per_mb = relax.cdiv(b_rep, s.mb)                                   # requests per micro-batch
    rows_pre = per_mb * r.input_len
    t_pre = s.mb * jnp.minimum(serving.chunk_prefill(lin[1], per_mb * one, lin[0], attn0, rows_pre,
                                                     rows_pre), pre_total)     # offline, a replica's prompts
    rows_0 = where(arriving, d.serving.max_num_batched_tokens, rows_pre)            # the first variant's rows
    t_p_on = serving.chunk_prefill(lin[KV_POINTS + 2], one, lin[0], attn0, rows_0, r.input_len)   # online, a prompt
    tpot_off, ttft_off = serving.offline_times(d, s, r.batch, tpot, t_pre)
    ceiling = jnp.minimum(fit, d.serving.max_num_seqs)                             # the running count's, a replica's
    adm = serving.admission(d, b_rep, tpot, tau_w, ceiling)                        # load-independent, once
    good, (n_on, ttft_on, tpot_on, ttft99_on, tpot99_on, stable) = serving.goodput(d, s, b_rep, tpot, tau_w, t_p_on,
                                                                                    adm)
    online, loop = serving.is_online(d), closed.is_closed(d)
    n_cl, x_cl, ttft_cl, tpot_cl, ttft99_cl, tpot99_cl = closed.closed(d, s, *adm[:2], tau_w, t_p_on)
    tpot_before = tpot
    new_tpot = where(online, tpot_on, where(loop, tpot_cl, where(offline, tpot_off, tpot)))
    tpot_scaled = power.scaled_time(new_tpot, f_clk)       # linear in the step: exact at f = 1
    ttft = where(online, ttft_on, where(loop, ttft_cl, where(offline, ttft_off, ttft)))
    running = where(online, n_on * s.dp_attn, where(loop, n_cl * s.dp_attn, r.batch))
    tpot = new_tpot
    # the engine's capacity: its full batch, each step carrying its share of the prompts (offline:
    # TPOT = tpot_off; online and closed loop with their own per-prompt cost; the online queue
    # saturates there: Little's law at n = the full batch)
    cap_tpot = where(arriving, tpot_before + b_rep * t_p_on / r.output_len, tpot_off)
    fill = serving.offline_fill(d, s, r.batch, tpot_before, tau_w, s.mb * pre_total, tpot_off)   # 1 unless N finite
    decode_tps = where(online, d.serving.arrival_rate * r.output_len,
                       where(loop, x_cl * s.dp_attn * r.output_len, fill * running / tpot))
    prefill_tps = where(offline, decode_tps * r.input_len / r.output_len, prefill_tps)
    e_token = n_dev * p_chip * tpot_scaled / (decode_tps * tpot)     # = ... / running in the static regime

    kv = relax.cdiv(r.batch, s.dp_attn) * kv_tokens * kv_token
    mem_total = weights + kv + act
    reason = _reason(d, s, mem_total, st.t_dram)
    reason = where(online & ~stable & (reason == Reason.ok), jnp.int32(Reason.unstable), reason)
    ttft99 = where(online, ttft99_on, where(loop, ttft99_cl, ttft))
    tpot99 = where(online, tpot99_on, where(loop, tpot99_cl, tpot))
    # p50 / p90: gammas of the mean and p99 of TTFT and of TPOT, as one [2, 2] array
    q = gamma_quantiles(jnp.stack([ttft, tpot])[:, None], jnp.stack([ttft99, tpot99])[:, None], _Z_MID)
    ttft50, ttft90, tpot50, tpot90 = unstack(jnp.reshape(q, (4,)), 4)
    return _finite(
        reason, ttft_s=ttft, tpot_s=tpot,
        prefill_tokens_per_s=prefill_tps, decode_tokens_per_s=decode_tps, user_tokens_per_s=1.0 / tpot,
        scaled_decode_tokens_per_s=decode_tps * (tpot / tpot_scaled),   # = decode_tps at f = 1 (online: not n / TPOT)
        energy_per_token_J=e_token, tokens_per_J=1.0 / e_token, power_W=p_chip, temperature_C=st.t_junction,
        dram_temperature_C=st.t_dram, refresh_hot_fraction=st.hot, prefill_power_W=pre_st.power,
        frequency_scale=f_clk, weight_bytes=weights, kv_bytes=kv,
        activation_bytes=act, memory_bytes=mem_total, t_attention_s=t_attn, t_ffn_s=t_ffn,
        t_moe_s=t_moe, t_other_s=t_other, t_comm_s=t_comm, t_comm_exposed_s=jnp.maximum(t_exposed, 0.0),
        bubble_fraction=jnp.maximum(0.0, 1.0 - s.mb / s.pp), running_batch=running,
        requests_per_s=decode_tps / r.output_len, ttft_p99_s=ttft99, tpot_p99_s=tpot99, goodput_requests_per_s=good,
        load_factor=where(offline, decode_tps * cap_tpot / r.batch, 0.0),
        ttft_p50_s=ttft50, ttft_p90_s=ttft90, tpot_p50_s=tpot50, tpot_p90_s=tpot90,
    )


# names this model for the on-disk executable cache (edges/cache.py): a sweep step built on it is
# stored and reloaded keyed on this, its static plan and the package source (a caller's own
# evaluate function has no key and is compiled in every process)
evaluate.cache_key = "jaxstack.evaluate"


def _finite(reason, **values) -> Metrics:
    """Metrics with every value finite. Every metric is a sum, product or ratio of the roots
    below (times, energy, powers, temperatures, bytes); a non-finite or non-positive root is
    the only way a NaN/inf appears, and such a point gets 0 everywhere and, if it passed every
    other check, ``Reason.numerical``: it can never leave as a feasible answer."""
    roots = ("ttft_s", "tpot_s", "energy_per_token_J", "power_W", "prefill_power_W", "temperature_C",
             "dram_temperature_C", "memory_bytes", "frequency_scale")
    ok = jnp.all(jnp.isfinite(jnp.stack([values[k] for k in roots]))) & (
        jnp.minimum(jnp.minimum(values["tpot_s"], values["ttft_s"]), values["energy_per_token_J"]) > 0)
    reason = where(ok | (reason != Reason.ok), reason, jnp.int32(Reason.numerical))
    values = {k: jax.lax.select(ok, v, jnp.zeros_like(v)) for k, v in values.items()}
    return Metrics(feasible=reason == Reason.ok, reason=reason, **values)


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
