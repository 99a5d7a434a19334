"""The single-point model: scalar-reference oracle, hand-worked cases, invariants."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from designs import as_dict, base_design, random_designs
from reference import reference

from jaxstack.physics import network
from jaxstack.recipe import ops, schedule
from jaxstack.recipe.evaluate import evaluate
from jaxstack.types.metrics import Metrics, Reason

N_ORACLE = 40_000
BATCHED = jax.jit(jax.vmap(evaluate))
SINGLE = jax.jit(evaluate)


@pytest.fixture(scope="module")
def oracle_batch():
    d = random_designs(N_ORACLE, seed=1)
    # plain two-matrix MLPs on a third of the designs, sliding windows (64 .. 8192 tokens on a share of
    # the layers) on another third
    rng = np.random.default_rng(7)
    pick = rng.integers(0, 3, N_ORACLE)
    win = np.where(pick == 2, 2.0 ** rng.integers(6, 14, N_ORACLE), 0.0).astype(np.float32)
    share = rng.choice(np.array([0.5, 5 / 6, 1.0], np.float32), N_ORACLE)
    d = dataclasses.replace(d, model=dataclasses.replace(
        d.model, mlp_gated=np.where(pick == 1, 0.0, 1.0).astype(np.float32), sliding_window=win,
        sliding_window_layers=share))
    return d, BATCHED(d), reference(as_dict(d))


def test_matches_float64_reference_on_random_designs(oracle_batch):
    _, m, ref = oracle_batch
    np.testing.assert_array_equal(np.asarray(m.reason), ref["reason"])
    np.testing.assert_array_equal(np.asarray(m.feasible), ref["feasible"])
    for f in dataclasses.fields(Metrics):
        if f.name in ("feasible", "reason", "goodput_requests_per_s"):   # goodput: tests/test_serving.py
            continue
        got = np.asarray(getattr(m, f.name), dtype=np.float64)
        # exposed communication is a difference of step-sized times (overlap - compute): it can
        # cancel to ~0, so its absolute error is judged against the step time
        atol = 1e-5 * ref["tpot_s"] if f.name == "t_comm_exposed_s" else 0.0
        # the time-shared refresh fraction is a ratio of temperature differences (float32 cancellation)
        atol = 1e-3 if f.name == "refresh_hot_fraction" else atol
        # float32 model vs float64 reference: 1e-4 leaves 100x margin over the observed ~3e-7
        bad = np.abs(got - ref[f.name]) > atol + 1e-4 * np.abs(ref[f.name])
        assert not bad.any(), (f.name, np.flatnonzero(bad)[:5], got[bad][:5], ref[f.name][bad][:5])


def test_every_field_finite_and_reasons_consistent(oracle_batch):
    d, m, _ = oracle_batch
    for f in dataclasses.fields(Metrics):
        assert np.isfinite(np.asarray(getattr(m, f.name), dtype=np.float64)).all(), f.name
    feas, reason = np.asarray(m.feasible), np.asarray(m.reason)
    assert ((reason == 0) == feas).all()
    assert feas.mean() > 0.1 and (~feas).mean() > 0.1  # both kinds exercised
    assert set(np.unique(reason)) >= {Reason.ok, Reason.device_count, Reason.divisibility, Reason.memory}
    mem = reason == Reason.memory
    cap = d.dram.total_layers * d.dram.capacity_per_layer * d.dram.usable_fraction
    assert (np.asarray(m.memory_bytes)[mem] > cap[mem]).all()
    assert (np.asarray(m.memory_bytes)[feas] <= cap[feas] * (1 + 1e-6)).all()


def test_vmap_matches_single_point(oracle_batch):
    d, m, _ = oracle_batch
    for i in (0, 17, 4242, N_ORACLE - 1):
        one = SINGLE(jax.tree_util.tree_map(lambda x, i=i: x[i], d))
        for f in dataclasses.fields(Metrics):
            # goodput is the root of p99(lambda) = SLO found by bisection: float32 noise in the p99
            # (~1e-7, fusion order) moves it by that over the p99's slope in lambda
            tol = 1e-5 if f.name == "goodput_requests_per_s" else 1e-6
            np.testing.assert_allclose(np.asarray(getattr(one, f.name), dtype=np.float64),
                                       np.asarray(getattr(m, f.name)[i], dtype=np.float64), rtol=tol, err_msg=f.name)


# ---------------------------------------------------------------- hand-worked cases
def test_llama3_70b_weight_bytes_by_hand():
    # embeddings + LM head (untied) + 80 x (q,o: 8192^2 each; k,v: 8192*1024 each; FFN 3*8192*28672)
    per_layer = 2 * 8192 * 8192 + 2 * 8192 * 1024 + 3 * 8192 * 28672
    params = 2 * 128256 * 8192 + 80 * per_layer
    norms = (2 * 80 + 1) * 8192  # RMSNorm weights: in the published count, not modelled
    assert params + norms == 70_553_706_496  # the HF checkpoint's parameter count
    m = SINGLE(base_design(tp=8, batch=1))
    np.testing.assert_allclose(float(m.weight_bytes), params * 2 / 8, rtol=1e-6)


def test_kv_bytes_per_token_gqa_and_mla():
    llama = base_design(tp=1)
    s = ops.shard(llama)
    # GQA: K and V, 8 KV heads x 128 dims x 2 B, per layer
    assert float(ops.kv_bytes_per_token(llama, s)) * 80 == 327_680
    ds = base_design(model="deepseek-v3", tp=8)
    # MLA: latent 512 + rope 64, 2 B each, replicated over TP
    assert float(ops.kv_bytes_per_token(ds, ops.shard(ds))) * 61 == 70_272
    # tp=8 splits the 8 GQA heads one per GPU: KV per GPU for 1 request of 2048 tokens
    m = SINGLE(base_design(tp=8, batch=1, inp=1024, out=1024))
    assert float(m.kv_bytes) == 2048 * 80 * 2 * 128 * 2


def _ideal(d):
    """Free compute, no fixed overheads, 100 % DRAM efficiency (attention's too): a pure bandwidth machine."""
    return dataclasses.replace(
        d, chip=dataclasses.replace(d.chip, op_overhead=0.0, clock=d.chip.clock * 1e4,
                                    attention_bandwidth_efficiency=1.0),
        dram=dataclasses.replace(d.dram, efficiency=1.0),
        fabric=dataclasses.replace(d.fabric, collective_overhead=0.0))


def test_memory_bound_decode_step_by_hand():
    # Llama-3-8B, one request per H100 (dp=8): a step streams all weights + the KV cache
    d = _ideal(base_design("h100-sxm", "nvlink-h100x8", "llama-3-8b", batch=8, inp=1024, out=1024, dp=8))
    # streamed per step: LM head + 32 layers (the embedding table is only looked up, not streamed)
    params = 128256 * 4096 + 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336)
    kv_mean = np.mean([1024 + 1024 * i / 3 for i in range(4)]) * 32 * 2 * 8 * 128 * 2
    bw = 3.35e12
    m = SINGLE(d)
    expected = (params * 2 + kv_mean) / bw
    np.testing.assert_allclose(float(m.tpot_s), expected, rtol=2e-3)  # activations: < 0.2 %
    assert float(m.t_comm_s) == 0.0


def test_ring_all_reduce_by_hand():
    d = base_design(fabric="torus-16x16", hw="stacked-3d", model="llama-3-8b")
    lv = dataclasses.replace(d.fabric.l1, kind=2.0, size=8.0, dim_x=8.0, dim_y=1.0)  # an 8-node ring
    one = dataclasses.replace(lv, size=1.0)
    fab = dataclasses.replace(d.fabric, l1=lv, l2=one, l3=one)
    n = 1e9
    lat, bw = network.all_reduce(fab, 1.0, 8.0, n)
    a, B = lv.hop_latency, lv.link_bandwidth * lv.links_per_node * fab.bandwidth_efficiency
    # bidirectional ring: 2(p-1) steps of one hop; 2(p-1)/p * n over two directions
    np.testing.assert_allclose(float(lat), 2 * 7 * a + fab.collective_overhead, rtol=1e-6)
    np.testing.assert_allclose(float(bw), 2 * 7 / 8 * n / (2 * B), rtol=1e-6)


def test_tensor_parallel_one_has_no_communication():
    m = SINGLE(base_design("h100-sxm", "nvlink-h100x8", "llama-3-8b", batch=8, dp=8))
    assert float(m.t_comm_s) == 0.0


# ---------------------------------------------------------------- invariants
def _scaled(d, **paths):
    out = d
    for path, k in paths.items():
        sec, *rest = path.split(".")
        obj = getattr(out, sec)
        if len(rest) == 2:
            lv = getattr(obj, rest[0])
            obj = dataclasses.replace(obj, **{rest[0]: dataclasses.replace(lv, **{rest[1]: getattr(lv, rest[1]) * k})})
        else:
            obj = dataclasses.replace(obj, **{rest[0]: getattr(obj, rest[0]) * k})
        out = dataclasses.replace(out, **{sec: obj})
    return out


def _no_refresh(d):
    """Refresh not modelled (t_rfc = 0) and no tile-level overlap. With refresh, more speed
    means more power, a hotter DRAM and doubled refresh; with overlap, the GEMM tile is chosen
    for the GEMM's own time, so a faster clock may pick a tile with fewer waves that hides
    less communication. Both are real effects; the invariants below are of the rest."""
    n = np.shape(d.mapping.overlap)
    return dataclasses.replace(d, dram=dataclasses.replace(d.dram, t_rfc=d.dram.t_rfc * 0.0),
                               mapping=dataclasses.replace(d.mapping, overlap=np.zeros(n, np.float32)))


@pytest.fixture(scope="module")
def cool_batch(oracle_batch):
    d = _no_refresh(oracle_batch[0])
    return d, BATCHED(d)


@pytest.mark.parametrize("path", ["dram.transfer_rate", "chip.clock", "fabric.l1.link_bandwidth",
                                  "fabric.l2.link_bandwidth", "dram.efficiency", "chip.compute_efficiency"])
def test_more_resource_is_never_slower(cool_batch, path):
    d, m = cool_batch
    faster = BATCHED(_scaled(d, **{path: 1.5}))
    assert (np.asarray(faster.tpot_s) <= np.asarray(m.tpot_s) * (1 + 1e-5)).all()
    assert (np.asarray(faster.ttft_s) <= np.asarray(m.ttft_s) * (1 + 1e-5)).all()


def test_doubling_every_rate_halves_every_time(cool_batch):
    d, _ = cool_batch
    d = jax.tree_util.tree_map(lambda x: x[:5000], d)
    zero = lambda lv: dataclasses.replace(lv, hop_latency=lv.hop_latency * 0.0)  # noqa: E731
    d = dataclasses.replace(d, chip=dataclasses.replace(d.chip, op_overhead=d.chip.op_overhead * 0.0),
                            fabric=dataclasses.replace(d.fabric, l1=zero(d.fabric.l1), l2=zero(d.fabric.l2),
                                                       l3=zero(d.fabric.l3),
                                                       collective_overhead=d.fabric.collective_overhead * 0.0),
                            serving=dataclasses.replace(d.serving, step_overhead=d.serving.step_overhead * 0.0))
    base = BATCHED(d)
    fast = BATCHED(_scaled(d, **{"dram.transfer_rate": 2.0, "chip.clock": 2.0, "fabric.l1.link_bandwidth": 2.0,
                                 "fabric.l2.link_bandwidth": 2.0, "fabric.l3.link_bandwidth": 2.0}))
    np.testing.assert_allclose(np.asarray(fast.tpot_s), np.asarray(base.tpot_s) / 2, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(fast.ttft_s), np.asarray(base.ttft_s) / 2, rtol=1e-5)


def test_more_batch_more_throughput_less_user_speed():
    ms = [SINGLE(base_design(tp=8, batch=b)) for b in (1, 8, 64, 256)]
    tps = [float(m.decode_tokens_per_s) for m in ms]
    ups = [float(m.user_tokens_per_s) for m in ms]
    assert tps == sorted(tps) and ups == sorted(ups, reverse=True)


def test_gradients_are_finite():
    d = jax.tree_util.tree_map(jnp.asarray, base_design(model="deepseek-v3", tp=8, moe_tp_to_ep=1))
    g = jax.grad(lambda x: jnp.log(evaluate(x).decode_tokens_per_s))(d)
    leaves = jax.tree_util.tree_leaves(g)
    assert all(np.isfinite(np.asarray(x)).all() for x in leaves)
    assert float(g.dram.transfer_rate) > 0 and float(g.chip.op_overhead) < 0


def test_no_recompile_for_new_values(oracle_batch):
    """New values of the same shape reuse the compiled program (no retrace, no compile)."""
    before = BATCHED._cache_size()
    assert before >= 1
    jax.block_until_ready(BATCHED(random_designs(N_ORACLE, seed=6)))
    assert BATCHED._cache_size() == before


# ---------------------------------------------------------------- schedule: overlap, pipeline
def _with_mapping(d, **values):
    n = np.shape(d.mapping.tp)
    return dataclasses.replace(d, mapping=dataclasses.replace(
        d.mapping, **{k: np.full(n, v, np.float32) for k, v in values.items()}))


def test_overlap_never_slower_and_hides_at_most_all_communication(cool_batch):
    d, _ = cool_batch
    off, on = BATCHED(_with_mapping(d, overlap=0.0)), BATCHED(_with_mapping(d, overlap=1.0))
    t_off, t_on = np.asarray(off.tpot_s, np.float64), np.asarray(on.tpot_s, np.float64)
    comm, x_on = np.asarray(on.t_comm_s, np.float64), np.asarray(on.t_comm_exposed_s, np.float64)
    x_off = np.asarray(off.t_comm_exposed_s, np.float64)
    assert np.all(t_on <= t_off * (1 + 1e-5))
    no_fsdp = (np.asarray(d.mapping.fsdp) < 0.5) | (np.asarray(d.mapping.dp) < 1.5)
    np.testing.assert_allclose(x_off[no_fsdp], comm[no_fsdp], rtol=1e-5)  # off: all of it exposed
    assert np.all(x_on <= comm * (1 + 1e-5) + 1e-6 * t_on) and np.all(x_on >= -1e-5 * t_on)
    # compute is the same either way: the step shrinks by exactly the communication hidden
    mp = d.mapping
    factor = np.maximum(mp.pp, np.where(mp.micro_batches > 0.5, mp.micro_batches, mp.pp))
    assert np.all(np.abs((t_off - t_on) - factor * (x_off - x_on)) <= 1e-5 * t_off)  # float32 differences
    assert (t_on < t_off * (1 - 1e-3)).mean() > 0.05  # and it does hide some on a fair share of points


def test_pipeline_micro_batches_and_bubbles_by_hand():
    base = dict(hw="h100-sxm", fabric="nvlink-h100x8", model="llama-3-8b", batch=64, inp=512, out=128)
    dec = jax.jit(lambda d, kv: schedule.stage_time(d, ops.shard(d), 1.0, kv, decode=True).total)
    pre = jax.jit(lambda d: schedule.stage_time(d, ops.shard(d), 512.0, 0.5 * 513, decode=False).total)
    reqs = jax.jit(lambda d: ops.layer_costs(d, ops.shard(d), 1.0, 600.0, decode=True).reqs)
    for mb, bubble in ((0, 0.0), (4, 0.0), (2, 0.5), (1, 0.75), (8, 0.0)):
        d = jax.tree_util.tree_map(jnp.float32, base_design(**base, tp=2, pp=4, micro_batches=mb))
        m = SINGLE(d)
        n_mb = mb or 4
        stage = np.mean([float(dec(d, jnp.float32(kv))) for kv in 512 + 128 * np.linspace(0, 1, 4)])
        np.testing.assert_allclose(float(m.bubble_fraction), bubble, atol=1e-7)
        np.testing.assert_allclose(float(m.tpot_s), max(4, n_mb) * stage, rtol=1e-5)  # a token = every stage
        np.testing.assert_allclose(float(m.ttft_s), (n_mb + 4 - 1) * float(pre(d)), rtol=1e-5)  # fill + drain
        assert float(reqs(d)) == np.ceil(64 / n_mb)


def test_moe_gemm_efficiency_slows_only_the_routed_experts():
    """chip.moe_gemm_efficiency (a calibration constant, session 10) divides the routed experts'
    grouped-GEMM time: a dense model is untouched, an MoE model's MoE time grows by less than
    1 / efficiency (router, shared experts and collectives are not grouped GEMMs) and its
    attention and dense-FFN times do not move."""
    f = jax.jit(evaluate)

    def with_eff(d, e):
        return dataclasses.replace(d, chip=dataclasses.replace(d.chip, moe_gemm_efficiency=e))

    dense = base_design(model="llama-3-70b", tp=8, calibrated=False)
    a, b = f(dense), f(with_eff(dense, 0.5))
    for name in ("tpot_s", "ttft_s", "decode_tokens_per_s", "energy_per_token_J"):
        assert float(getattr(a, name)) == float(getattr(b, name)), name
    moe = base_design(model="mixtral-8x7b", tp=8, calibrated=False)
    a, b = f(moe), f(with_eff(moe, 0.5))
    assert a.feasible and b.feasible
    assert float(a.t_moe_s) < float(b.t_moe_s) < 2.0 * float(a.t_moe_s)
    assert float(b.tpot_s) > float(a.tpot_s)
    for name in ("t_attention_s", "t_ffn_s"):
        assert float(getattr(a, name)) == float(getattr(b, name)), name


def test_co_routed_tokens_touch_fewer_experts():
    """model.moe_routing_independence r (session 13): a batch's T tokens per rank touch the
    experts of T r independent uniform top-k choices, E_loc (1 - (1 - k / E)^(T ep r)). DeepSeek-V3
    (256 experts, top-8) on 8 x B200, TP8 with its MoE as EP8, decoding 4 requests: the expert
    GEMMs' DRAM bytes (their weights, at this batch) scale with that count, hand-worked below;
    at a batch that touches every expert either way, r changes nothing."""
    from jaxstack.recipe.ops import layer_costs, shard

    def experts(batch, r):
        d = base_design(model="deepseek-v3", tp=8, moe_tp_to_ep=1, batch=batch, calibrated=False)
        d = dataclasses.replace(d, model=dataclasses.replace(d.model, moe_routing_independence=r))
        d = jax.tree_util.tree_map(jnp.float32, d)
        lc = layer_costs(d, shard(d), jnp.float32(1.0), jnp.float32(1536.0), decode=True)
        return float(lc.experts.nbytes), float(lc.experts.time)

    def touched(T, r):                       # per rank: 32 local experts, T = 4 tokens x ep 1
        return 32.0 * (1.0 - (1.0 - 8.0 / 256.0) ** (T * r))

    (b1, t1), (b4, t4) = experts(4, 1.0), experts(4, 0.25)
    assert b4 / b1 == pytest.approx(touched(4, 0.25) / touched(4, 1.0), rel=0.02)     # 7.4 vs 3.9 experts
    assert t4 < t1
    big1, big4 = experts(4096, 1.0), experts(4096, 0.25)
    assert big4[0] == pytest.approx(big1[0], rel=1e-3)


def test_fp8_attention_speeds_up_only_the_attention_core():
    """model.attn_bytes (session 13): FP8 attention (TensorRT-LLM use_fp8_context_fmha) runs the
    attention core at the FP8 tensor rate. A 16k-token Llama-3-70B prefill on H100 with FP8
    weights is compute-bound in its core: its time less the launch overhead halves (fp8_speedup
    2), and no GEMM, vector op or byte count moves."""
    from jaxstack.recipe.ops import layer_costs, shard

    def costs(ab):
        d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=1, inp=16384, out=16, tp=8,
                        calibrated=False)
        d = dataclasses.replace(d, model=dataclasses.replace(d.model, weight_bytes=1.0, attn_bytes=ab))
        d = jax.tree_util.tree_map(jnp.float32, d)
        return layer_costs(d, shard(d), jnp.float32(16384.0), jnp.float32(8192.5), decode=False)

    bf16, fp8 = costs(2.0), costs(1.0)
    o = float(base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", calibrated=False).chip.op_overhead)
    assert float(fp8.attn_core.time) - o == pytest.approx((float(bf16.attn_core.time) - o) / 2.0, rel=1e-5)
    assert float(fp8.attn_core.nbytes) == float(bf16.attn_core.nbytes)
    for name in ("dense_ffn", "norms", "lm_head", "o_proj"):
        assert float(getattr(fp8, name).time) == float(getattr(bf16, name).time), name


def test_routed_experts_swiglu_is_costed_like_the_dense_ffns():
    """Between the routed experts' two grouped GEMMs runs their SwiGLU, like the dense FFN's
    (session 12; before, its launch was counted but not its work), and the shared experts'
    (before, neither): 4 vector FLOP and 3 activations moved per element of the assignments x
    the rank's expert width. Mixtral-8x7B,
    TP1, 64 requests decoding one token: 128 assignments of width 14,336 on top of the router's
    10 x 64 x 8 FLOP of top-k / sort / combine."""
    from jaxstack.physics import compute
    from jaxstack.physics.lean import strong
    from jaxstack.recipe.ops import linear_costs, shard
    from jaxstack.types.workload import gemm_operand_bytes

    d = strong(base_design("h100-sxm", "nvlink-h100x8", "mixtral-8x7b", batch=64, tp=1, calibrated=False))
    lin = linear_costs(d, shard(d), compute.context(d.chip, d.dram, gemm_operand_bytes(d.model)), 1.0, True)
    assert float(lin.vflops_moe) == pytest.approx(10 * 64 * 8 + 4 * (64 * 2) * 14336, rel=1e-6)
    # with a shared expert (Llama-4 Scout: 16 routed of width 8,192, top-1, one shared of 8,192),
    # the shared expert's SwiGLU too: 4 x 64 tokens x 8,192
    d = strong(base_design("h100-sxm", "nvlink-h100x8", "llama-4-scout", batch=64, tp=1, calibrated=False))
    lin = linear_costs(d, shard(d), compute.context(d.chip, d.dram, gemm_operand_bytes(d.model)), 1.0, True)
    assert float(lin.vflops_moe) == pytest.approx(10 * 64 * 16 + 4 * 64 * 8192 + 4 * 64 * 8192, rel=1e-6)
    dense = strong(base_design("h100-sxm", "nvlink-h100x8", "llama-3-8b", batch=64, tp=1, calibrated=False))
    lin = linear_costs(dense, shard(dense), compute.context(dense.chip, dense.dram, gemm_operand_bytes(dense.model)),
                       1.0, True)
    assert float(lin.vflops_moe) == 0.0 and float(lin.moe.time) == 0.0
