"""Independent float64 reference of jaxstack's single-point model (plain Python + numpy).

Written from the equations in the module docstrings of jaxstack.ops / schedule / network /
memory / compute / power / evaluate, not from their code: no jax, no shared helpers.
Every function works on python floats or on float64 numpy arrays of design points
(element-wise), so the same code checks one point or 10^5 points at once.
Input: a nested dict of SI floats (``jaxstack.io.to_dict(design)`` or a stacked version).
"""

import numpy as np
from ref_chip import attention, attention_waves, elementwise, expert_gemm_w, gemm_w
from ref_network import allgather_parts, allreduce_parts, alltoall_parts, p2p_time
from ref_power import at, link_level, solve, step_energy

PREFILL_CHUNK = 8192.0
KV_POINTS = 4
ALPHA_POWER = 3.0
Q_BLOCK = 128.0


def overlapped(C, H, B, W):
    """Wave pipelining (DeepStack §2.6), never slower than sequential."""
    W = np.maximum(np.ceil(W), 1.0)
    pipe = C / W + np.maximum(C * (W - 1) / W, H + B * (W - 1) / W) + H + B / W
    return np.minimum(np.where(W > 1, pipe, C + H + B), C + H + B)


def micro_batches(mp):
    return np.where(mp["micro_batches"] > 0.5, mp["micro_batches"], mp["pp"])


def cdiv(a, b):
    return np.ceil(np.asarray(a, dtype=np.float64) / b)


def model_point(d, q_len, kv_len, decode, hot=False):
    """Per-chip stage time, FLOPs, DRAM bytes, link bytes and the breakdown for one phase;
    ``hot``: DRAM refresh doubled (= tREFI halved)."""
    chip, w, mp, fab = d["chip"], d["model"], d["mapping"], d["fabric"]
    tp, ep, sp, cp, dp, pp = (mp[k] for k in ("tp", "ep", "sp", "cp", "dp", "pp"))
    h, nh, nkv, hd = w["hidden_size"], w["num_attention_heads"], w["num_key_value_heads"], w["head_dim"]
    wb, ab, kb = w["weight_bytes"], w["act_bytes"], w["kv_bytes"]
    # the GEMM's activation operand: gemm_act_bytes, or when 0 like the weights (at most
    # act_bytes); the wider operand sets the tensor rate; a quant kernel writes any operand
    # narrower than the activations
    ga = w.get("gemm_act_bytes", 0.0)
    a_op = np.where(ga > 0, ga, np.minimum(wb, ab))
    op_b = np.where(ga > 0, np.maximum(wb, ga), wb)
    quant_on = a_op < ab
    quant_out = a_op
    E, k, mi = w["n_routed_experts"], w["num_experts_per_tok"], w["moe_intermediate_size"]
    moe = E > 0
    mla = w["kv_lora_rank"] > 0
    ep_moe = np.where(mp["moe_tp_to_ep"] > 0.5, np.minimum(tp * ep, np.maximum(E, 1.0)), ep)
    tp_moe = tp * ep / ep_moe
    dram = d["dram"] if not hot else {**d["dram"], "t_refi": d["dram"]["t_refi"] / 2}

    def gw(M, K, N, on=1.0):
        # plus the activation-quantisation kernel of an FP8/FP4 GEMM
        qon = on * quant_on
        q = elementwise(chip, dram, 2 * M * K * qon, M * K * (ab + quant_out) * qon, qon)
        c, waves = gemm_w(chip, dram, M, K, N, wb, a_op, on, rate_b=op_b, cb=ab)
        return tuple(a + b for a, b in zip(c, q, strict=True)), waves

    def g(M, K, N, on=1.0):
        return gw(M, K, N, on)[0]

    def vec(f, b, kernels):
        return elementwise(chip, dram, f, b, kernels)

    def tot(*parts):
        return tuple(sum(p[i] for p in parts) for i in range(3))

    reqs = cdiv(cdiv(d["request"]["batch"], dp * ep), micro_batches(mp))
    T = cdiv(reqs * q_len, sp * cp)
    g_on, m_on = np.where(mla, 0.0, 1.0), np.where(mla, 1.0, 0.0)
    qk = w["qk_nope_head_dim"] + w["qk_rope_head_dim"]
    q_in = np.where(w["q_lora_rank"] > 0, w["q_lora_rank"], h)
    o_g, wo_g = gw(T, nh * hd / tp, h, g_on)
    o_m, wo_m = gw(T, nh * w["v_head_dim"] / tp, h, m_on)
    proj = tot(g(T, h, (nh + 2 * nkv) * hd / tp, g_on), o_g,
               g(T, h, w["q_lora_rank"], m_on * (w["q_lora_rank"] > 0)), g(T, q_in, nh * qk / tp, m_on),
               g(T, h, w["kv_lora_rank"] + w["qk_rope_head_dim"], m_on),
               g(T, w["kv_lora_rank"], nh * (w["qk_nope_head_dim"] + w["v_head_dim"]) / tp, m_on), o_m)
    o_time, o_waves = o_g[0] + o_m[0], np.where(mla, wo_m, wo_g)
    kv_tok = np.where(mla, (w["kv_lora_rank"] + w["qk_rope_head_dim"]) * kb,
                      2 * hd * np.maximum(nkv / (tp * sp), 1.0) * kb)
    heads = nh / (tp * sp)
    pair_flops = np.where(mla, 2 * (2 * w["kv_lora_rank"] + w["qk_rope_head_dim"]) if decode
                          else 2 * (qk + w["v_head_dim"]), 4 * hd)
    # sliding window W on a share f of the layers: decode attends to min(kv, W) keys there; a prefill
    # of I > W tokens to the mean over positions p of min(p, W), (W (W + 1) / 2 + (I - W) W) / I
    W, f_w = w.get("sliding_window", 0.0), w.get("sliding_window_layers", 1.0)
    if decode:
        win = np.minimum(kv_len, W)
    else:
        win = np.where(q_len > W, (W * (W + 1) / 2 + (q_len - W) * W) / np.maximum(q_len, 1.0), kv_len)
    kv_len = np.where(W > 0, (1 - f_w) * kv_len + f_w * win, kv_len)
    f_core = reqs * q_len * heads * (kv_len / cp) * pair_flops
    core = attention(chip, dram, f_core, reqs * (kv_len / cp) * kv_tok,
                     reqs * q_len * heads * np.where(mla, qk + w["v_head_dim"], 2 * hd) * ab, op_b,
                     w.get("attn_bytes", 2.0))
    core_waves = attention_waves(chip, dram, reqs * heads * np.ceil(q_len / Q_BLOCK))
    width = np.where(mla, nh * qk / tp + w["kv_lora_rank"] + w["qk_rope_head_dim"], (nh + 2 * nkv) * hd / tp)
    rope = vec(6 * T * width, 2 * T * width * ab + T * kv_tok, 2.0)
    latent = w["q_lora_rank"] + w["kv_lora_rank"]
    attn = tot(proj, rope, core, vec(10 * T * latent * m_on, 3 * T * latent * ab * m_on, 3 * m_on))
    inter = w["intermediate_size"] / tp
    down, down_waves = gw(T, inter, h)
    gated = w.get("mlp_gated", 1.0)                  # 0: a plain two-matrix MLP (GPT-NeoX, Falcon)
    dense = tot(g(T, h, (1 + gated) * inter), vec(4 * T * inter, (2 + gated) * T * inter * ab, 1.0), down)
    on = np.where(moe, 1.0, 0.0)
    assign = T * ep * k / ep_moe * w["moe_imbalance"]
    miss = np.clip(1 - k / np.maximum(E, 1.0), 0, 1) ** (T * ep * w.get("moe_routing_independence", 1.0))
    # a share of untouched experts below 1e-5 is none, as in the model (``ops.MISS_TOL``)
    touched = E / ep_moe * (1 - np.where(miss < 1e-5, 0.0, miss))
    # routed experts quantised apart (expert_weight_bytes > 0): their own weight width, the same
    # activation operand, the rate of the wider of the two
    xb = np.where(w.get("expert_weight_bytes", 0.0) > 0, w.get("expert_weight_bytes", 0.0), wb)
    experts, exp_waves = expert_gemm_w(chip, dram, assign, touched, h, 3 * mi / tp_moe, xb, a_op, on,
                                           rate_b=np.maximum(xb, a_op), cb=ab)
    si = w["n_shared_experts"] * mi / tp
    sh_on = on * (w["n_shared_experts"] > 0)
    routing = vec(10 * T * E * on, (4 * T * E + assign * h * ab) * on, 3 * on)
    mi_rank = mi / tp_moe
    expert_act = vec(4 * assign * mi_rank * on, 3 * assign * mi_rank * ab * on, 0.0)   # SwiGLU between the GEMMs
    shared_act = vec(4 * T * si * sh_on, 3 * T * si * ab * sh_on, sh_on)              # the shared experts' SwiGLU
    moe_c = tot(g(T, h, E, on), routing, expert_act, experts, g(T, h, 2 * si, sh_on), shared_act,
                g(T, si, h, sh_on))
    norms = vec(10 * T * h, 6 * T * h * ab, 2.0)
    lm = g(T if decode else cdiv(reqs, sp * cp), h, w["vocab_size"] / tp)

    # communication as (latency, bandwidth) pairs
    def add(*ps):
        return sum(p[0] for p in ps), sum(p[1] for p in ps)

    x = T * h * ab
    ar = allreduce_parts(fab, 1.0, tp, x)
    a2a_sp = alltoall_parts(fab, tp * ep, sp, x / tp)
    if decode:
        cb = reqs * h / (tp * sp) * ab
        ag = allgather_parts(fab, tp * ep * sp, cp, cb)
        c_cp = add(ag, ag)
        cp_link = 2 * cb
    else:
        cb = reqs * q_len * kv_tok
        c_cp = allgather_parts(fab, tp * ep * sp, cp, cb)
        cp_link = cb
    around_core = add(a2a_sp, a2a_sp, c_cp)
    c_attn = sum(ar) + sum(around_core)
    a2a_b = T * ep / ep_moe * k * h * ab * w["moe_imbalance"]
    stride = np.where(mp["moe_tp_to_ep"] > 0.5, 1.0, tp)
    a2a = alltoall_parts(fab, stride, ep_moe, a2a_b)
    moe_pair = tuple(np.where(moe, v, 0.0) for v in add(a2a, a2a, ar))
    c_moe = sum(moe_pair)
    c_pp = np.where(pp > 1, p2p_time(fab, tp * ep * sp * cp * dp, x), 0.0)
    ov = mp["overlap"] > 0.5

    def exposed(C, pair, W):
        return np.where(ov, overlapped(C, pair[0], pair[1], W) - C, sum(pair))

    x_attn = exposed(o_time, ar, o_waves) + exposed(core[0], around_core, core_waves)
    x_ffn = exposed(down[0], ar, down_waves)
    x_moe = exposed(experts[0], moe_pair, exp_waves)

    L = w["num_hidden_layers"]
    Ls = cdiv(L, pp)
    step = w.get("moe_layer_step", 1.0)
    fd = np.where(moe, (L - np.floor((L - np.minimum(w["first_k_dense_replace"], L)) / step)) / L, 1.0)
    Ld, Lm = Ls * fd, Ls * (1 - fd)
    wa, wd, wm, _ = weights_per_layer(d)
    fsdp = (mp["fsdp"] > 0.5) & (dp > 1)

    def gather(elems):
        return np.where(fsdp, sum(allgather_parts(fab, tp * ep * sp * cp, dp, elems * wb)), 0.0)

    la, ld, lmo = attn[0] + norms[0] + x_attn, dense[0] + x_ffn, moe_c[0] + x_moe
    ga, gd, gm = np.maximum(la, gather(wa)), np.maximum(ld, gather(wd)), np.maximum(lmo, gather(wm))
    total = Ls * ga + Ld * gd + Lm * gm + lm[0] + c_pp
    flops = Ls * (attn[1] + norms[1]) + Ld * dense[1] + Lm * moe_c[1] + lm[1]
    dram = Ls * (attn[2] + norms[2]) + Ld * dense[2] + Lm * moe_c[2] + lm[2]
    link = (Ls * (2 * x * (tp > 1) + 2 * x / tp * (sp > 1) + cp_link * (cp > 1)) + Ld * 2 * x * (tp > 1)
            + Lm * np.where(moe, 2 * a2a_b * (ep_moe > 1) + 2 * x * (tp > 1), 0.0) + x * (pp > 1))
    comm = (Ls * c_attn + Ld * sum(ar) + Lm * c_moe + c_pp
            + Ls * gather(wa) + Ld * gather(wd) + Lm * gather(wm))
    exposed_all = (Ls * (ga - attn[0] - norms[0]) + Ld * (gd - dense[0]) + Lm * (gm - moe_c[0]) + c_pp)
    # vector-unit FLOPs (norms, rope, MLA latent norms, SwiGLU, routing) and the link bytes of each
    # collective on the outermost fabric level its group spans
    vflops = (Ls * (norms[1] + 6 * T * width + 10 * T * latent * m_on) + Ld * 4 * T * inter
              + Lm * ((10 * T * E + 4 * assign * mi_rank) * on + 4 * T * si * sh_on))
    groups = [(1.0, tp, (Ls + Ld + Lm * moe) * 2 * x), (tp * ep, sp, Ls * 2 * x / tp),
              (tp * ep * sp, cp, Ls * cp_link), (stride, ep_moe, Lm * moe * 2 * a2a_b),
              (tp * ep * sp * cp * dp, np.where(pp > 1, 2.0, 1.0), x),
              (tp * ep * sp * cp, np.where(fsdp, dp, 1.0), (Ls * wa + Ld * wd + Lm * wm) * wb * (1 - 1 / dp))]
    n1, n2 = fab["l1"]["size"], fab["l2"]["size"]
    lv = [np.zeros(np.shape(total)) for _ in range(3)]
    for st, sz, nb in groups:
        st, sz, nb = (np.broadcast_to(np.asarray(v, np.float64), np.shape(total)) for v in (st, sz, nb))
        level = np.array([link_level(*args) for args in zip(np.broadcast_to(n1, np.shape(total)).ravel(),
                         np.broadcast_to(n2, np.shape(total)).ravel(), st.ravel(), sz.ravel(), strict=True)])
        level = level.reshape(np.shape(total))
        for i in range(3):
            lv[i] = lv[i] + np.where((level == i) & (sz > 1), nb, 0.0)
    return dict(total=total, flops=flops, dram=dram, link=link, comm=comm, exposed=exposed_all,
                vflops=vflops, attn_flops=Ls * core[1], l1=lv[0], l2=lv[1], l3=lv[2], attention=Ls * attn[0],
                ffn=Ld * dense[0], moe=Lm * moe_c[0], other=Ls * norms[0] + lm[0])


def weights_per_layer(d):
    w, mp = d["model"], d["mapping"]
    tp, ep = mp["tp"], mp["ep"]
    h, nh = w["hidden_size"], w["num_attention_heads"]
    E, mi = w["n_routed_experts"], w["moe_intermediate_size"]
    ep_moe = np.where(mp["moe_tp_to_ep"] > 0.5, np.minimum(tp * ep, np.maximum(E, 1.0)), ep)
    tp_moe = tp * ep / ep_moe
    qk = w["qk_nope_head_dim"] + w["qk_rope_head_dim"]
    q_in = np.where(w["q_lora_rank"] > 0, w["q_lora_rank"], h)
    gqa = (h * (nh + 2 * w["num_key_value_heads"]) * w["head_dim"] + nh * w["head_dim"] * h) / tp
    mla = (h * w["q_lora_rank"] + h * (w["kv_lora_rank"] + w["qk_rope_head_dim"])
           + (q_in * nh * qk + w["kv_lora_rank"] * nh * (w["qk_nope_head_dim"] + w["v_head_dim"])
              + nh * w["v_head_dim"] * h) / tp)
    attn = np.where(w["kv_lora_rank"] > 0, mla, gqa)
    dense = (2 + w.get("mlp_gated", 1.0)) * h * w["intermediate_size"] / tp
    xw = w.get("expert_weight_bytes", 0.0)
    x_ratio = np.where(xw > 0, xw / w["weight_bytes"], 1.0)
    moe = E / ep_moe * 3 * h * mi / tp_moe * x_ratio + 3 * h * mi * w["n_shared_experts"] / tp + h * E
    embed = w["vocab_size"] * h / tp * np.where(mp["pp"] > 1, 1.0, 2.0 - w["tie_word_embeddings"])
    return attn, dense, moe, embed


def reference(d):
    """All Metrics fields (as a dict of float64 arrays) for design dict ``d``."""
    w, mp, r, dram, chip, th = d["model"], d["mapping"], d["request"], d["dram"], d["chip"], d["thermal"]
    tp, ep, sp, cp, dp, pp = (mp[k] for k in ("tp", "ep", "sp", "cp", "dp", "pp"))
    S, O, B = r["input_len"], r["output_len"], r["batch"]
    n_fab = d["fabric"]["l1"]["size"] * d["fabric"]["l2"]["size"] * d["fabric"]["l3"]["size"]
    n_dev = tp * ep * sp * cp * dp * pp            # chips in use: a sub-group of the fabric is allowed
    pre = model_point(d, S, 0.5 * (S + 1), decode=False)
    mb = micro_batches(mp)
    o = d["serving"]["step_overhead"] if "step_overhead" in d.get("serving", {}) else 0.0  # engine host time per step
    ttft = (mb + pp - 1) * (pre["total"] + o)
    steps = [model_point(d, 1.0, S + O * i / (KV_POINTS - 1), decode=True) for i in range(KV_POINTS)]
    mean = {key: sum(s[key] for s in steps) / KV_POINTS for key in steps[0]}
    ref = KV_POINTS // 2  # the hot step's relative slowdown at this KV sample scales the mean step
    hot = model_point(d, 1.0, S + O * ref / (KV_POINTS - 1), decode=True, hot=True)
    t_cool = mean["total"]
    t_hot = t_cool * np.maximum(hot["total"] / steps[ref]["total"], 1.0)
    factor = np.maximum(pp, mb)
    dec = _thermal(d, mean, t_cool, t_hot)
    pre_th = _thermal(d, pre, pre["total"], pre["total"])
    tpot = factor * (dec["step_time"] + o)
    f = np.minimum(1.0, (chip["tdp"] / dec["power"]) ** (1 / ALPHA_POWER))
    power = dec["power"] * f ** ALPHA_POWER
    tpot_scaled = tpot / f
    temp = dec["t_junction"]
    e_tok = n_dev * power * tpot_scaled / B

    # memory on the heaviest chip
    E, L = w["n_routed_experts"], w["num_hidden_layers"]
    moe = E > 0
    ep_moe = np.where(mp["moe_tp_to_ep"] > 0.5, np.minimum(tp * ep, np.maximum(E, 1.0)), ep)
    tp_moe = tp * ep / ep_moe
    Ls = cdiv(L, pp)
    wa, wd, wm, we = weights_per_layer(d)
    step = w.get("moe_layer_step", 1.0)
    n_moe = np.where(moe, np.ceil(np.minimum(Ls, L - np.minimum(w["first_k_dense_replace"], L)) / step), 0.0)
    elems = Ls * wa + n_moe * wm + (Ls - n_moe) * wd + we
    fsdp = (mp["fsdp"] > 0.5) & (dp > 1)
    elems = np.where(fsdp, elems / dp + wa + np.where(moe, wm, wd), elems)
    weights = elems * w["weight_bytes"]
    mla = w["kv_lora_rank"] > 0
    kv_tok = np.where(mla, (w["kv_lora_rank"] + w["qk_rope_head_dim"]) * w["kv_bytes"],
                      2 * w["head_dim"] * np.maximum(w["num_key_value_heads"] / (tp * sp), 1.0) * w["kv_bytes"])
    W, f_w = w.get("sliding_window", 0.0), w.get("sliding_window_layers", 1.0)
    held = np.where(W > 0, (1 - f_w) * (S + O) + f_w * np.minimum(S + O, W), S + O)   # windowed layers keep W
    kv = cdiv(B, dp * ep) * held * Ls * kv_tok / cp
    chunk = np.minimum(cdiv(cdiv(cdiv(B, dp * ep), mb) * S, sp * cp), PREFILL_CHUNK)
    widest = np.maximum(w["intermediate_size"] / tp, w["num_experts_per_tok"] * w["moe_intermediate_size"] / tp_moe)
    act = chunk * (4 * w["hidden_size"] + 2 * widest) * w["act_bytes"]
    mem = weights + kv + act
    capacity = dram["total_layers"] * dram["capacity_per_layer"] * dram["usable_fraction"]

    # feasibility, first failing check wins
    world = tp * ep * sp * cp * dp * pp
    checks = [
        world > n_fab + 0.5,
        ~((np.mod(w["num_attention_heads"], tp * sp) == 0)
          & np.where(moe, (np.mod(E, ep_moe) == 0) & (ep <= E), ep == 1) & (pp <= L)),
        B < dp * pp,
        mem > capacity,
        dec["t_dram"] > th["dram_limit"],
    ]
    reason = np.zeros(np.shape(B), dtype=np.int64)
    for code in range(len(checks), 0, -1):
        reason = np.where(checks[code - 1], code, reason)
    return dict(
        feasible=reason == 0, reason=reason, ttft_s=ttft, tpot_s=tpot, prefill_tokens_per_s=B * S / ttft,
        decode_tokens_per_s=B / tpot, user_tokens_per_s=1 / tpot, scaled_decode_tokens_per_s=B / tpot_scaled,
        energy_per_token_J=e_tok, tokens_per_J=1 / e_tok, power_W=power, temperature_C=temp,
        dram_temperature_C=dec["t_dram"], refresh_hot_fraction=dec["hot"], prefill_power_W=pre_th["power"],
        frequency_scale=f,
        weight_bytes=weights, kv_bytes=kv, activation_bytes=act, memory_bytes=mem,
        t_attention_s=mean["attention"], t_ffn_s=mean["ffn"], t_moe_s=mean["moe"], t_other_s=mean["other"],
        t_comm_s=mean["comm"], t_comm_exposed_s=mean["exposed"], bubble_fraction=np.maximum(0.0, 1 - mb / pp),
        running_batch=B * np.ones_like(tpot), requests_per_s=B / tpot / O,     # static regime
        ttft_p99_s=ttft, tpot_p99_s=tpot,       # static: no spread (goodput is the serving layer's, not here)
        ttft_p50_s=ttft, ttft_p90_s=ttft, tpot_p50_s=tpot, tpot_p90_s=tpot,
        load_factor=np.zeros_like(tpot),        # static: no queue, no share of a capacity
    )


SRAM_PER_FLOP = 2 * (128 + 256) * 64 * 2 / (2 * 128 * 256 * 64)  # large tile's SRAM fill, written + read


def op_width(w):
    """The GEMM operand width: the wider of weights and the activation operand (0 = weights)."""
    ga = w.get("gemm_act_bytes", 0.0)
    return np.where(ga > 0, np.maximum(w["weight_bytes"], ga), w["weight_bytes"])


def _thermal(d, st, t_cool, t_hot):
    """Energy of stage step ``st`` and the steady thermal state (ref_power, one point at a time)."""
    chip, dram, fab, th, w = d["chip"], d["dram"], d["fabric"], d["thermal"], d["model"]
    tensor = st["flops"] - st["vflops"] - st["attn_flops"]
    shape = np.shape(t_cool)
    arrays = {"t_cool": t_cool, "t_hot": t_hot, "tensor": tensor, "vflops": st["vflops"], "attn": st["attn_flops"],
              "dram_b": st["dram"], "l1": st["l1"], "l2": st["l2"], "l3": st["l3"],
              "wb": op_width(w), "attn_b": w.get("attn_bytes", 2.0)}
    arrays = {k: np.broadcast_to(np.asarray(v, np.float64), shape) for k, v in arrays.items()}
    sub = {"chip": chip, "dram": dram, "fabric": fab, "thermal": th}
    keys = ("t_junction", "t_dram", "power", "step_time", "hot")
    out = {k: np.zeros(shape) for k in keys}
    for i in np.ndindex(shape):
        p = at(sub, i)
        a = {k: float(v[i]) for k, v in arrays.items()}
        work = {"tensor_flops": a["tensor"], "vector_flops": a["vflops"],
                "sram_bytes": 2 * a["dram_b"] + SRAM_PER_FLOP * (a["tensor"] + a["attn"]), "dram_bytes": a["dram_b"],
                "link_bytes_l1": a["l1"], "link_bytes_l2": a["l2"], "link_bytes_l3": a["l3"], "time": a["t_cool"]}
        e1 = step_energy(p["chip"], p["dram"], p["fabric"], work, a["wb"])
        e2 = step_energy(p["chip"], p["dram"], p["fabric"], {**{k: 0.0 for k in work}, "tensor_flops": a["attn"]},
                         a["attn_b"])
        e = {k: e1[k] + e2[k] for k in e1}
        e_logic = e["compute"] + e["sram"] + e["link"]
        e_dram = e["dram_activation"] + e["dram_transfer"] + e["dram_io"]
        r = solve(p["chip"], p["dram"], p["thermal"], e_logic, e_dram, a["t_cool"], a["t_hot"])
        for k in keys:
            out[k][i] = r[k]
    return out
