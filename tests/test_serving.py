"""Serving regimes (issue 16): ``offline`` max-throughput against the static batch it
generalises, its running batch against the memory it reports, monotonicity, and the
published TensorRT-LLM offline set."""

import dataclasses
import json
import re

import jax
import numpy as np
import pytest
from designs import base_design

from jaxstack.physics.memory import usable_capacity
from jaxstack.recipe.evaluate import evaluate


def _offline(d, **kw):
    return dataclasses.replace(d, serving=dataclasses.replace(d.serving, regime=np.float32(1.0), **kw))


def _stack(ds):
    return jax.tree_util.tree_map(lambda *x: np.asarray(x, np.float32), *ds)


@pytest.fixture(scope="module")
def ev():
    return jax.jit(jax.vmap(evaluate))


def test_offline_equals_the_static_end_to_end_rate(ev):
    """N = batch requests, max_num_seqs = the static batch per replica, pp = 1, no token cap:
    one wave, prefilled before it decodes (nothing for the prompts to ride), so offline serves
    exactly what a static batch serves end to end, batch O / (TTFT + O TPOT). The steady state
    (an endless queue: new prompts ride the running requests' decode steps, sharing their weight
    reads and launches) serves at least that."""
    ds = [base_design("h100-sxm", "nvlink-h100x8", m, batch=b, inp=i, out=o, tp=tp, dp=8 // tp)
          for m, b, i, o, tp in [("llama-3-70b", 64, 1024, 1024, 8), ("llama-3-8b", 32, 2048, 256, 2),
                                 ("mixtral-8x7b", 16, 512, 2048, 4), ("llama-3-8b", 128, 128, 128, 1)]]
    steady = [_offline(d, max_num_seqs=d.request.batch / d.mapping.dp, max_num_batched_tokens=np.float32(2**24))
              for d in ds]
    wave = [_offline(d, num_requests=d.request.batch) for d in steady]
    st, of, sd = ev(_stack(ds)), ev(_stack(wave)), ev(_stack(steady))
    assert np.asarray(st.feasible).all() and np.asarray(of.feasible).all() and np.asarray(sd.feasible).all()
    np.testing.assert_array_equal(np.asarray(of.running_batch), np.asarray(st.running_batch))
    o = np.array([d.request.output_len for d in ds], np.float64)
    e2e = np.asarray(st.running_batch) * o / (np.asarray(st.ttft_s) + o * np.asarray(st.tpot_s))
    np.testing.assert_allclose(np.asarray(of.decode_tokens_per_s), e2e, rtol=2e-5)
    np.testing.assert_allclose(np.asarray(of.requests_per_s) * o, np.asarray(of.decode_tokens_per_s), rtol=1e-6)
    assert (np.asarray(sd.decode_tokens_per_s) >= e2e * (1 - 1e-6)).all()


def test_running_batch_fills_the_kv_budget(ev):
    """KV-bound offline points: the running batch fits, and one more request would not."""
    big = {"max_num_seqs": np.float32(2**20), "max_num_batched_tokens": np.float32(2**24)}   # only KV binds
    ds = [_offline(base_design(hw, fab, m, batch=1, inp=i, out=o, tp=8), **big)   # (405B BF16 > 8x H100)
          for hw, fab, m, i, o in [("h100-sxm", "nvlink-h100x8", "llama-3-70b", 1024, 1024),
                                   ("h100-sxm", "nvlink-h100x8", "qwen3-235b-a22b", 20000, 2000),
                                   ("b200", "nvlink-b200x8", "llama-3-70b", 1024, 1024),
                                   ("b200", "nvlink-b200x8", "llama-3.1-405b", 4096, 1024),
                                   ("b200", "nvlink-b200x8", "qwen3-235b-a22b", 20000, 2000)]]
    m = ev(_stack(ds))
    cap = np.array([float(usable_capacity(d.dram)) for d in ds])
    b = np.asarray(m.running_batch, np.float64)
    per_req = np.asarray(m.kv_bytes, np.float64) / b
    assert np.asarray(m.feasible).all()
    assert (np.asarray(m.memory_bytes) <= cap * (1 + 1e-6)).all()
    assert (np.asarray(m.memory_bytes) + per_req > cap).all()                 # KV-bound: the budget is full
    assert (b < 2**20).all()


def _kv_variants(ev, out, section, **leaves):
    """(KV bytes, running batch) of Llama-3-70B TP8 on 8xH100, 1,000 -> ``out`` tokens: static,
    static with ``leaves`` set in ``section``, offline where only the KV budget binds, the same
    with ``leaves``."""
    d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=8, inp=1000, out=out, tp=8)

    def setting(x):
        part = dataclasses.replace(getattr(x, section), **{k: np.float32(v) for k, v in leaves.items()})
        return dataclasses.replace(x, **{section: part})

    off = _offline(d, max_num_seqs=np.float32(2**20), max_num_batched_tokens=np.float32(2**24))
    m = ev(_stack([d, setting(d), off, setting(off)]))
    return np.asarray(m.kv_bytes, np.float64), np.asarray(m.running_batch, np.float64)


def test_paged_kv_holds_whole_blocks(ev):
    """Hand-worked: 1,000 + 30 tokens in blocks of 16 hold 65 blocks = 1,040 tokens at their longest
    (static); over an offline request's life the last block is half full, 1,015 + 7.5 tokens; block
    size 1 is token-granular. The offline running batch shrinks by the same ratio where KV binds."""
    kv, b = _kv_variants(ev, 30, "serving", kv_block_size=16)
    assert kv[1] / kv[0] == pytest.approx(1040 / 1030, rel=1e-6)
    assert kv[3] / b[3] / (kv[2] / b[2]) == pytest.approx(1022.5 / 1015, rel=1e-6)
    assert b[3] < b[2] and b[3] == pytest.approx(b[2] * 1015 / 1022.5, rel=0.01)


def test_output_spread_biases_the_running_requests_kv(ev):
    """Hand-worked: outputs of mean 200 and spread 0.5; a running request holds its prompt and, on
    time average over the length-biased running set, (1 + 0.25) x 200 / 2 = 125 output tokens:
    1,125 tokens per layer instead of 1,100 (offline). The static regime has no spread."""
    kv, b = _kv_variants(ev, 200, "request", output_cv=0.5)
    assert kv[3] / b[3] / (kv[2] / b[2]) == pytest.approx(1125 / 1100, rel=1e-6)
    assert b[3] < b[2] and kv[1] == kv[0]


def test_more_memory_or_seqs_never_serves_less(ev):
    d = _offline(base_design("h200", "nvlink-h200x8", "llama-3-70b", batch=1, inp=2048, out=512, tp=8))
    caps = [dataclasses.replace(d, dram=dataclasses.replace(d.dram, capacity_per_layer=np.float32(c * 1e9)))
            for c in (100, 141, 200, 300)]
    seqs = [dataclasses.replace(d, serving=dataclasses.replace(d.serving, max_num_seqs=np.float32(n)))
            for n in (16, 64, 256, 1024)]
    for group in (caps, seqs):
        m = ev(_stack(group))
        assert (np.diff(np.asarray(m.running_batch)) >= 0).all()
        assert (np.diff(np.asarray(m.decode_tokens_per_s)) >= 0).all()
        assert (np.diff(np.asarray(m.tpot_s)) >= 0).all()                     # bigger batches, slower steps


def test_offline_step_carries_its_prefill_share(ev):
    d = base_design("b200", "nvlink-b200x8", "llama-3-70b", batch=64, inp=4096, out=256, tp=8)
    off = _offline(d, max_num_seqs=np.float32(64), max_num_batched_tokens=np.float32(2**24))
    st, of = ev(_stack([d])), ev(_stack([off]))
    assert float(of.tpot_s[0]) > float(st.tpot_s[0])                          # long prompts: prefill chunks
    assert float(of.ttft_s[0]) >= float(of.tpot_s[0])


def test_offline_fill_hand_worked():
    """N = 250 equal requests, B = 100 per replica: waves of 100, 100 and 50. T(B) = t_pre + O
    tpot = 1 + 10 x 0.2 = 3 s; k = (0.2 - 0.1) / 100; T(50) = 0.5 + 10 (0.1 + 0.05) = 2 s; the
    run takes 2 x 3 + 2 = 8 s where the steady state would serve 250 in 7.5 s: fill 0.9375."""
    from jaxstack.recipe import serving

    class S:
        dp_attn = np.float32(2.0)

    d = _offline(base_design("b200", "nvlink-b200x8", "llama-3-70b", batch=1, inp=128, out=10, tp=8))
    fill = lambda n: float(serving.offline_fill(dataclasses.replace(  # noqa: E731
        d, serving=dataclasses.replace(d.serving, num_requests=np.float32(n))), S, 200.0, 0.2, 0.1, 1.0, 0.3))
    assert fill(500) == pytest.approx(0.9375, rel=1e-6)            # 250 per replica
    assert fill(400) == fill(200) == fill(0) == 1.0                   # whole waves, or the steady state
    assert fill(202) < fill(300) < fill(400)                         # a tiny last wave costs a whole wave's weights


def test_chunk_prefill_hand_worked():
    """Prompt tokens riding decode steps add what their rows add to the steps' KV-independent
    work: the secant from the decode step (10 ms at 1 row per micro-batch) to a full budget step
    (110 ms at 1,001 rows, 5 ms of attention) is 0.1 ms per token, so 2,000 prompt tokens add
    200 ms, plus their attention (5 ms per 1,001 tokens): 209.99 ms."""
    from jaxstack.recipe import serving

    assert float(serving.chunk_prefill(0.01, 1.0, 0.11, 0.005, 1001.0, 2000.0)) == pytest.approx(
        2000 * (0.1 / 1000 + 0.005 / 1001), rel=1e-6)
    # a step no slower than the decode step it extends (rows_hi below the decode rows): no negative cost
    assert float(serving.chunk_prefill(0.2, 1.0, 0.11, 0.005, 1001.0, 2000.0)) == pytest.approx(
        2000 * 0.005 / 1001, rel=1e-6)


def test_finite_run_caps_the_batch_and_pays_its_last_wave(ev):
    """N requests never run more than N at once; N = a whole number of waves serves one wave's
    rate, at most the steady state's (there, new prompts ride the running requests' decode
    steps); a partial last wave serves less (the weights stream for fewer requests)."""
    big = {"max_num_seqs": np.float32(256), "max_num_batched_tokens": np.float32(2**24)}
    d = _offline(base_design("h200", "nvlink-h200x8", "llama-3-70b", batch=1, inp=1024, out=1024, tp=8), **big)
    runs = [dataclasses.replace(d, serving=dataclasses.replace(d.serving, num_requests=np.float32(n)))
            for n in (0, 100, 256, 512, 640)]
    m = ev(_stack(runs))
    b, tps = np.asarray(m.running_batch), np.asarray(m.decode_tokens_per_s, np.float64)
    assert b.tolist() == [256, 100, 256, 256, 256]
    assert tps[2] == tps[3] <= tps[0]                                 # whole waves: one wave's rate
    assert tps[4] < tps[2] and tps[1] < tps[2]                        # a partial wave, a small run
    np.testing.assert_array_equal(np.asarray(m.tpot_s)[[0, 2, 3, 4]], np.asarray(m.tpot_s)[0])


def test_serving_section_and_flags(capsys):
    from jaxstack.cli import main

    argv = ["eval", "--hardware", "h200", "--fabric", "nvlink-h200x8", "--model", "llama-3-8b", "--tp", "8",
            "--batch", "1", "--input-len", "1000", "--output-len", "1000", "--regime", "offline",
            "--max-num-seqs", "512", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["feasible"] and out["running_batch"] == 512 * 1          # tp8: one replica, max_num_seqs binds
    assert main(argv[:-3] + ["--regime", "queue"]) == 2
    assert "regime" in capsys.readouterr().err
    # the closed loop: 64 clients, all running (under max_num_seqs), the table names the regime
    assert main(argv[:-5] + ["--regime", "concurrency", "--concurrency", "64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["feasible"] and out["running_batch"] == 64
    assert main(argv[:-5] + ["--regime", "concurrency", "--concurrency", "64"]) == 0
    assert "concurrency (64 clients" in capsys.readouterr().out
    assert main(argv[:-5] + ["--regime", "concurrency", "--concurrency", "0"]) == 2
    assert "concurrency" in capsys.readouterr().err
    # goodput under the limits given by flag, printed with them; a tighter TPOT limit admits less load
    online = argv[:-5] + ["--regime", "online", "--arrival-rate", "2"]
    assert main(online + ["--json"]) == 0
    loose = json.loads(capsys.readouterr().out)["goodput_requests_per_s"]
    assert main(online + ["--tpot-slo-ms", "12", "--ttft-slo-ms", "500", "--json"]) == 0
    tight = json.loads(capsys.readouterr().out)["goodput_requests_per_s"]
    assert 0 < tight < loose
    assert main(online + ["--tpot-slo-ms", "12", "--ttft-slo-ms", "500"]) == 0
    assert "(p99 TTFT <= 500 ms, p99 TPOT <= 12 ms)" in capsys.readouterr().out
    assert main(online + ["--tpot-slo-ms", "0"]) == 2
    assert "tpot_slo" in capsys.readouterr().err


def test_serving_public_set_is_expressed_and_scored():
    from jaxstack.engines import calibration
    from jaxstack.validation import serving_public as sp

    cov = sp.coverage()
    assert cov["records"] == 75 and cov["expressed"] == 75 and not cov["not_expressed"]
    rows = sp.cases()
    assert cov["rows"] == len(rows) == 63 + 7 + 5 * 5        # TRT10, MLPerf Offline, Server x (4 latencies + rate)
    assert {r["split"] for r in rows} == {"calibration", "holdout"}
    trt = [r for r in rows if r["case"].startswith("TRT10")]
    assert all(r["design"]["engine"] == "trtllm-throughput" for r in trt)
    server = [r for r in rows if r["panel"].startswith("MLPerf Server")]
    assert {r["metric"] for r in server} == {"ttft_s", "ttft_p99_s", "tpot_s", "tpot_p99_s", "goodput_requests_per_s"}
    assert all(r["split"] == "holdout" and r["design"]["overrides"]["serving.regime"] == 2 for r in server)
    # the published Server rate against the goodput under MLPerf's p99 limits (loadgen/mlperf.conf), the
    # row's own rate far below it (the design must be stable there; goodput does not depend on it)
    qps = {r["case"]: r for r in server if r["metric"] == "goodput_requests_per_s"}
    assert len(qps) == 5 and all(r["panel"] == "MLPerf Server QPS" for r in qps.values())
    q = qps["MLP50-009 llama3.1-405b H200x8 qps"]
    ov = q["design"]["overrides"]
    assert q["measured"] == 0.45 and ov["serving.arrival_rate"] == pytest.approx(0.0045)
    assert (ov["serving.ttft_slo_s"], ov["serving.tpot_slo_s"]) == (6.0, 0.175)
    ov = qps["MLP50-002 llama2-70b B200x8 qps"]["design"]["overrides"]
    assert (ov["serving.ttft_slo_s"], ov["serving.tpot_slo_s"]) == (2.0, 0.2)
    # NVIDIA's harness settings reach the design: Llama-3.1-405B on 8 x B200 runs 2 instances of TP2 x PP2
    # NVIDIA's harness (TensorRT engines) is a software stack apart from the TRT10 rows' PyTorch backend;
    # AMD's MI325X record runs vLLM
    mlperf = [r for r in rows if r["case"].startswith("MLP50")]
    assert {r["design"]["engine"] for r in mlperf} == {"trtllm-mlperf", "vllm-offline"}
    assert calibration.software_of("trtllm-mlperf") == "trtllm-mlperf"
    # Mixtral's AutoQuantize checkpoints: effective_bits / 8 bytes per weight, FP8 GEMM activations on B200
    mix = {r["case"].split()[2]: r["design"]["overrides"] for r in mlperf if "mixtral" in r["case"]}
    assert mix["B200x8"]["model.weight_bytes"] == 7.25 / 8 and mix["B200x8"]["model.gemm_act_bytes"] == 1.0
    assert mix["H200x8"]["model.weight_bytes"] == 8.75 / 8
    # FP8 context attention where the engines were built with use_fp8_context_fmha
    fp8 = {r["case"].rsplit(" ", 1)[0] for r in mlperf if r["design"]["overrides"].get("model.attn_bytes") == 1.0}
    assert fp8 == {"MLP50-003 llama3.1-405b B200x8", "MLP50-004 llama3.1-405b B200x8",
                   "MLP50-006 mixtral-8x7b B200x8", "MLP50-008 llama3.1-405b H200x8",
                   "MLP50-009 llama3.1-405b H200x8"}
    r = next(r for r in rows if r["case"].startswith("MLP50-003"))
    assert r["design"]["mapping"] == {"tp": 2, "pp": 2, "dp": 2, "overlap": 0}
    assert r["design"]["overrides"]["serving.max_num_seqs"] == 128
    assert r["design"]["request"]["input_len"] == 9429                 # the data set's mean prompt
    assert r["design"]["request"]["input_cv"] == pytest.approx(0.4313)  # ... and its spread
    # the H200 engines fuse the TP all-reduce into its GEMM (gemm_allreduce_plugin): tile-level overlap
    h200 = [r for r in rows if "405b H200" in r["case"] and r["case"].startswith("MLP")]
    assert len(h200) == 6 and all(r["design"]["mapping"]["overlap"] == 1 for r in h200)


def test_search_takes_static_and_offline_refuses_online():
    from jaxstack.edges import io
    from jaxstack.engines.search import search
    from jaxstack.engines.space import space_from_dict

    base = {"hardware": "b200", "fabric": "nvlink-b200x8", "model": "llama-3-8b",
            "request": {"batch": 1, "input_len": 128, "output_len": 128}, "mapping": {"tp": 8}}
    sp = space_from_dict({"version": 1, "base": base, "axes": {"serving.regime": {"choices": ["static", "offline"]}}})
    assert sp.size == 2 and [r[0] for r in sp.axes[0].display] == ["static", "offline"]
    top = search(sp, top_k=2, progress=False).top           # offline (its engine-sized batch) beats batch 1
    assert [r["serving.regime"] for r in top] == ["offline", "static"]
    sp = space_from_dict({"version": 1, "base": base, "axes": {"serving.regime": {"choices": ["static", "online"]}}})
    with pytest.raises(io.ConfigError, match="serving.regime"):
        search(sp, top_k=1)


def _online(d, lam, **kw):
    return dataclasses.replace(d, serving=dataclasses.replace(d.serving, regime=np.float32(2.0),
                                                              arrival_rate=np.float32(lam), **kw))


def test_md1_wait_hand_worked():
    from jaxstack.recipe.serving import md1_wait

    # Poisson arrivals 0.5/s, 1 s deterministic service: rho = 0.5, W_q = rho t / (2 (1 - rho)) = 0.5 s
    assert float(md1_wait(0.5, 1.0)) == pytest.approx(0.5)
    assert float(md1_wait(0.9, 1.0)) == pytest.approx(4.5)          # 0.9 / 0.2
    assert float(md1_wait(2.0, 0.25)) == pytest.approx(0.125)       # rho 0.5: 0.5 x 0.25 / 1


@pytest.fixture(scope="module")
def sweep_rate(ev):
    d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=64, inp=1024, out=256, tp=8)
    rates = np.array([0.25, 1, 2, 4, 6, 8, 10, 12, 14, 60], np.float32)
    return d, rates, ev(_stack([_online(d, r) for r in rates]))


def test_online_obeys_littles_law(sweep_rate):
    d, rates, m = sweep_rate
    ok = np.asarray(m.feasible)
    assert ok[:-1].all() and int(np.asarray(m.reason)[-1]) == 8          # 60 req/s: unstable
    n, lam = np.asarray(m.running_batch, np.float64), np.asarray(m.requests_per_s, np.float64)
    t = np.asarray(m.ttft_s, np.float64) + float(d.request.output_len) * np.asarray(m.tpot_s, np.float64)
    np.testing.assert_allclose(n[ok], (lam * t)[ok], rtol=1e-4)            # N = lambda x time in system
    np.testing.assert_allclose(lam[ok], rates[ok], rtol=1e-6)


def test_online_throughput_and_energy_are_per_served_token(sweep_rate):
    """Online, the system serves lambda x O tokens/s whatever the number in the system: the
    clock-scaled rate and the energy per token follow the served rate (before session 12 they
    used n / TPOT, which counts the queued requests' time to first token as decoding)."""
    d, rates, m = sweep_rate
    ok = np.asarray(m.feasible) & (np.asarray(m.frequency_scale) == 1.0)
    served = rates.astype(np.float64) * float(d.request.output_len)
    assert ok.sum() >= 8
    np.testing.assert_allclose(np.asarray(m.scaled_decode_tokens_per_s, np.float64)[ok], served[ok], rtol=1e-6)
    chips = 8.0
    np.testing.assert_allclose(np.asarray(m.energy_per_token_J, np.float64)[ok],
                               (chips * np.asarray(m.power_W, np.float64) / served)[ok], rtol=1e-5)


def test_higher_load_never_lowers_latency(sweep_rate):
    _, _, m = sweep_rate
    ok = np.asarray(m.feasible)
    for name in ("ttft_s", "tpot_s", "ttft_p99_s", "tpot_p99_s", "running_batch"):
        x = np.asarray(getattr(m, name))[ok]
        assert (np.diff(x) >= -1e-9 * np.abs(x[1:])).all(), name
    assert (np.asarray(m.ttft_p99_s) >= np.asarray(m.ttft_s))[ok].all()
    assert (np.asarray(m.tpot_p99_s) >= np.asarray(m.tpot_s))[ok].all()


def test_quantiles_are_ordered_and_collapse_to_the_mean_without_spread(ev, sweep_rate):
    """Online: p50 <= p90 <= p99 for TTFT and TPOT at every load (the p50 below the mean: right
    skew); static and offline, where the p99 is the mean, every quantile is the mean."""
    _, _, m = sweep_rate
    ok = np.asarray(m.feasible)
    for x in ("ttft", "tpot"):
        q = [np.asarray(getattr(m, f"{x}_p{p}_s"))[ok] for p in (50, 90, 99)]
        assert (q[0] <= q[1]).all() and (q[1] <= q[2]).all(), x
        assert (q[0] <= np.asarray(getattr(m, f"{x}_s"))[ok] * (1 + 1e-6)).all(), x
    d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=64, inp=1024, out=256, tp=8)
    st = ev(_stack([d, _offline(d)]))
    assert np.asarray(st.feasible).all()
    for x in ("ttft", "tpot"):
        mean = np.asarray(getattr(st, f"{x}_s"))
        for p in (50, 90, 99):
            np.testing.assert_array_equal(np.asarray(getattr(st, f"{x}_p{p}_s")), mean)


def test_gamma_quantiles_hand_worked():
    """The exponential (a gamma of shape 1) of mean 1: p99 ln 100, p50 ln 2, p90 ln 10; from the
    mean and p99 alone the quantiles come back within Wilson-Hilferty's 1.5 %. A gamma of shape 4
    from numpy's sampler: within 1 %. A point mass (p99 = mean): the mean."""
    from jaxstack.recipe.queueing import Z50, Z90, gamma_quantiles

    z = np.array([Z50, Z90], np.float32)
    got = np.asarray(gamma_quantiles(np.float32(1.0), np.float32(np.log(100.0)), z))
    np.testing.assert_allclose(got, [np.log(2.0), np.log(10.0)], rtol=0.015)
    x = np.random.default_rng(3).gamma(4.0, 0.5, 2_000_000)
    got = np.asarray(gamma_quantiles(np.float32(x.mean()), np.float32(np.percentile(x, 99)), z))
    np.testing.assert_allclose(got, np.percentile(x, [50, 90]), rtol=0.01)
    point = np.asarray(gamma_quantiles(np.float32(0.2), np.float32(0.2), z))
    np.testing.assert_array_equal(point, np.float32([0.2, 0.2]))


def test_online_ttft_waits_out_the_step_in_flight(ev):
    """A 16-token prompt (its prefill under a tenth of a step). At vanishing load the engine is
    idle when it arrives (P(busy) = 1 - e^-n, n ~ 0.04 running): TTFT is the one step that
    carries its first token plus the prefill, 1.0-1.1 TPOT, its p99 under 2 TPOT. Busy (n ~ 30
    running), it first waits out the step in flight, half a step on average plus the prompts
    that step gathers (session 11 applied the half step at every load; session 15 found the idle
    engine and the length-biased step against ``tests/scheduler_sim.py``): 1.5-1.7 TPOT."""
    d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=64, inp=16, out=256, tp=8)
    m = ev(_stack([_online(d, 0.01), _online(d, 10.0)]))
    tpot, ttft, ttft99, n = (np.asarray(getattr(m, k), np.float64) for k in ("tpot_s", "ttft_s", "ttft_p99_s",
                                                                              "running_batch"))
    assert np.asarray(m.feasible).all() and n[0] < 0.1 and n[1] > 20
    assert 1.0 <= ttft[0] / tpot[0] < 1.1 and ttft[0] < ttft99[0] < 2.0 * tpot[0]   # busy 4 % of the time
    assert 1.5 <= ttft[1] / tpot[1] < 1.7 and ttft99[1] > ttft[1]


def test_online_light_load_decodes_at_the_one_request_step(ev):
    """The online decode step is affine in the running requests through the full-load step and
    the light-load one (one request per replica, all its kernel launches and KV reads): at
    vanishing load TPOT is the static TPOT of one request per replica. Before session 12 the
    intercept was the weight-streaming floor alone, 0.3-0.6 of that step on these designs."""
    for hw, fab, model, tp in (("h100-sxm", "nvlink-h100x8", "llama-3-70b", 8), ("b200", "nvlink-b200x8",
                                                                               "llama-3-8b", 1)):
        d = base_design(hw, fab, model, batch=1, inp=512, out=256, tp=tp)
        dp = 8 // tp
        d = dataclasses.replace(d, mapping=dataclasses.replace(d.mapping, dp=np.float32(dp)))
        static = dataclasses.replace(d, request=dataclasses.replace(d.request, batch=np.float32(dp)))
        m = ev(_stack([_online(d, 1e-4), static]))
        assert bool(m.feasible[0]) and bool(m.feasible[1])
        assert float(m.tpot_s[0]) == pytest.approx(float(m.tpot_s[1]), rel=2e-3)


def test_online_long_prompt_spans_budget_rounds(ev):
    """A prompt longer than the per-step token budget is prefilled in chunks, one per engine
    step (the rest of the step's budget carries the running requests' decode tokens): at
    vanishing load and the same prefill work t_p, a 4096-token prompt under a 1024-token budget
    reaches its first token 3 steps later than under a budget it fits in (4 steps instead of 1).
    Through ``evaluate`` the chunked prompt costs less than its one-step prefill: each of its 4
    compute-bound chunks hides the weight read of the decode step it rides, the big one hides one."""
    from jaxstack.physics.lean import strong
    from jaxstack.recipe import serving
    from jaxstack.recipe.ops import shard

    d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=1, inp=4096, out=256, tp=8)
    lim = {"max_num_seqs": np.float32(64)}
    budgets = (1024.0, 2.0**20)
    tau, t_p = 0.02, 0.1
    ttft = []
    for b in budgets:
        db = strong(_online(d, 1e-4, max_num_batched_tokens=np.float32(b), **lim))
        n, t, tpot, _, _, stable = serving.online(db, shard(db), 1e-4, 64.0, tau, tau, t_p)
        assert bool(stable) and float(tpot) == pytest.approx(tau, rel=1e-3)
        ttft.append(float(t))
    assert ttft[0] - ttft[1] == pytest.approx(3.0 * tau, rel=1e-3)
    m = ev(_stack([_online(d, 1e-4, max_num_batched_tokens=np.float32(b), **lim) for b in budgets]))
    assert np.asarray(m.feasible).all()
    tpot = float(m.tpot_s[1])
    assert float(m.tpot_s[0]) == pytest.approx(tpot, rel=1e-3)
    assert 0.0 < float(m.ttft_s[0]) - float(m.ttft_s[1]) < 3.0 * tpot


def test_online_short_prompts_are_prefilled_in_the_next_step():
    """Prompts that fit one step are all prefilled in the step after they arrive (session 15,
    ``queueing.gated_prefill``). Hand-worked with a constant decode step tau = 10 ms, t_p = 0.2 s
    per prompt, 2 prompts/s (rho = 0.4), a budget no prompt fills and 2,000 output tokens (~70
    running: the engine is never idle): E[S] = tau / (1 - rho) = 16.667 ms (= TPOT); E[S^2] =
    (tau^2 + (2 tau rho + lam E[c^2]) E[S]) / (1 - rho^2) = 1.8651e-3 s^2 for equal prompts
    (E[c^2] = t_p^2), 3.4524e-3 for exponentially spread ones (2 t_p^2); TTFT = tau + t_p +
    (1/2 + rho) E[S^2] / E[S] = 0.31071 s and 0.39643 s. (Before, prompts queued one at a time
    behind half a mean step: M/D/1 and M/M/1 waits, 0.2850 and 0.3517 s.)"""
    from jaxstack.physics.lean import strong
    from jaxstack.recipe import serving
    from jaxstack.recipe.ops import shard

    d = strong(base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=1, inp=64, out=2000, tp=8))
    d = dataclasses.replace(d, serving=dataclasses.replace(d.serving, max_num_batched_tokens=np.float32(2.0**30)))
    s = shard(d)
    t_p, tau, lam = 0.2, 0.01, 2.0
    for cv, want in ((0.0, 0.31071), (1.0, 0.39643)):
        dc = dataclasses.replace(d, request=dataclasses.replace(d.request, input_cv=np.float32(cv)))
        n, ttft, tpot, _, _, stable = serving.online(dc, s, lam, 100.0, tau, tau, t_p)
        assert bool(stable) and float(tpot) == pytest.approx(tau / 0.6, rel=1e-5)
        assert float(n) > 60 and float(ttft) == pytest.approx(want, rel=1e-4)


def test_online_pipeline_stalls_on_unevenly_spread_chunks():
    """With pipeline parallelism a prompt's prefill rides in one micro-batch, and mb micro-batches
    cycle at mb x the slowest one's stage step (session 13): with a share f of micro-batch steps
    carrying prefill, the prefill part of a cycle grows by (1 - (1 - f)^mb) / f. Hand-worked, as
    in the M/M/1 case above (constant step tau, a budget no prompt fills, so f = rho): TP4 x PP2
    (mb = 2) decodes at TPOT = tau / (1 - rho (2 - rho)) = tau / (1 - rho)^2, TP8 at tau / (1 - rho)
    with one micro-batch or two."""
    from jaxstack.physics.lean import strong
    from jaxstack.recipe import serving
    from jaxstack.recipe.ops import shard

    t_p, tau, lam = 0.2, 0.01, 2.0                       # rho = 0.4 on one replica
    # (micro-batches without a pipeline run one after the other: no stall)
    for mapping, expected in (({"tp": 8}, tau / 0.6), ({"tp": 4, "pp": 2}, tau / 0.36),
                              ({"tp": 8, "micro_batches": 2}, tau / 0.6)):
        d = strong(base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=1, inp=64, out=100, **mapping))
        d = dataclasses.replace(d, serving=dataclasses.replace(d.serving, max_num_batched_tokens=np.float32(2.0**30)))
        _, _, tpot, _, _, stable = serving.online(d, shard(d), lam, 100.0, tau, tau, t_p)
        assert bool(stable) and float(tpot) == pytest.approx(expected, rel=1e-4)


def test_online_pipelined_prompt_takes_one_chunk_per_round():
    """TensorRT-LLM's scheduler never schedules a request that is still in flight in another
    micro-batch (``trtGptModelInflightBatching.cpp``, ``forwardAsync``), so a prompt advances one
    chunk per pipeline round, in one micro-batch, and each chunk passes every stage in turn
    (session 14; before, a prompt spanned I / (mb x budget) rounds and paid one stage's compute).
    Hand-set step model at vanishing load (constant decode step tau, prefill t_p per stage):
    a 4096-token prompt under a 1024-token budget spans 4 rounds on TP8 and on TP4 x PP2 alike;
    TTFT = own prefill, own = t_p + 4 tau (TP8), 2 t_p + 4 tau (PP2): the engine is idle at this
    load, so no step is in flight (session 15; before, half a step was added at every load)."""
    from jaxstack.physics.lean import strong
    from jaxstack.recipe import serving
    from jaxstack.recipe.ops import shard

    t_p, tau, lam = 0.2, 0.01, 1e-6
    for mapping, own in (({"tp": 8}, t_p + 4 * tau), ({"tp": 4, "pp": 2}, 2 * t_p + 4 * tau)):
        d = strong(base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=1, inp=4096, out=100, **mapping))
        d = dataclasses.replace(d, serving=dataclasses.replace(d.serving, max_num_batched_tokens=np.float32(1024.0)))
        _, ttft, _, _, _, stable = serving.online(d, shard(d), lam, 100.0, tau, tau, t_p)
        assert bool(stable) and float(ttft) == pytest.approx(own, rel=1e-3)


def test_online_tpot_p99_from_prefills_preempting_a_request():
    """A request's TPOT is its decode work O tau preempted by the prefills that arrive while it
    decodes (session 14): its completion time under Poisson preemptive-resume interruptions has
    sd sqrt(lam O tau E[x^2] / (1 - rho)^3). Checked against an independent Monte-Carlo of
    that process (numpy, 20,000 requests: the completion time T is the least fixed point of
    T = O tau + the prefill work arriving in [0, T)), with a constant step (no running-batch
    spread): TPOT mean tau / (1 - rho) and p99 - mean = 2.326 sd(T) / O."""
    from jaxstack.physics.lean import strong
    from jaxstack.recipe import serving
    from jaxstack.recipe.ops import shard

    t_p, tau, lam, out = 0.2, 0.01, 2.0, 100          # rho = 0.4, equal prompts (x = t_p)
    d = strong(base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=1, inp=64, out=out, tp=8))
    d = dataclasses.replace(d, serving=dataclasses.replace(d.serving, max_num_batched_tokens=np.float32(2.0**30)),
                            request=dataclasses.replace(d.request, input_cv=np.float32(0.0)))
    _, _, tpot, _, tpot99, stable = serving.online(d, shard(d), lam, 100.0, tau, tau, t_p)

    rng = np.random.default_rng(0)
    w, n, slots = out * tau, 20_000, 64                # 64 arrivals cover T (mean 1.67 s, 3.3 expected)
    arrivals = np.cumsum(rng.exponential(1.0 / lam, (n, slots)), axis=1)
    T = np.full(n, w)
    for _ in range(200):
        T_next = w + t_p * (arrivals < T[:, None]).sum(axis=1)
        if np.array_equal(T_next, T):
            break
        T = T_next
    assert bool(stable) and float(tpot) == pytest.approx(np.mean(T) / out, rel=0.02)
    assert float(tpot99) - float(tpot) == pytest.approx(2.326 * np.std(T) / out, rel=0.03)


def test_mg1_wait_p99_against_lindley_simulation():
    """The prefill queue's p99 wait on one slot: M/G/1's Cramer-Lundberg tail (session 14)
    equals M/M/1's closed form ln(100 rho) / (1/t - lam), and matches an independent simulation
    (Lindley's recursion W_{i+1} = max(0, W_i + S_i - A_i) as a running minimum of the random
    walk, 10^6 arrivals) within 3 % for deterministic and gamma-distributed service; the
    exponential tail with the mean's rate (the rule before) overshoots them by 2-17 %."""
    from jaxstack.recipe.queueing import mg1_wait, mg1_wait_p99

    assert float(mg1_wait_p99(0.9, 1.0, 1.0)) == pytest.approx(np.log(90.0) / 0.1, rel=1e-4)
    rng = np.random.default_rng(0)
    n = 1_000_000
    for lam, t, cv in ((0.5, 1.0, 0.0), (0.45, 1.168, 0.43), (0.7, 1.0, 0.77)):
        k = 1.0 / cv**2 if cv else None
        svc = rng.gamma(k, t / k, n) if k else np.full(n, t)
        walk = np.concatenate([[0.0], np.cumsum(svc - rng.exponential(1.0 / lam, n))])
        w = walk - np.minimum.accumulate(walk)                 # Lindley: W_i = R_i - min_{j<=i} R_j
        p99 = float(np.quantile(w, 0.99))
        assert float(mg1_wait_p99(lam, t, cv**2)) == pytest.approx(p99, rel=0.03)
        rho, wq = lam * t, float(mg1_wait(lam, t, cv**2))
        assert np.log(100 * rho) * wq / rho > 1.01 * p99


def test_mgc_wait_p99_with_a_faster_server():
    """On mb slots a delayed prompt waits as in M/G/1 with one mb-times-faster server
    (Nozaki-Ross; session 14): exact for M/M/2 with Erlang C's P(wait) (the conditional wait is
    exponential at rate 2/t - lam), and with the model's own P(wait) (Sakasegawa) within 3 %
    of an FCFS simulation of two servers with gamma service (Llama-3.1-405B's prompt spread at
    the B200 Server row's load), where the exponential tail with the mean's rate overshot 11 %."""
    from jaxstack.recipe.queueing import mgc_wait, mgc_wait_p99

    lam, t = 1.2, 1.0                                  # M/M/2, rho = 0.6
    rho = lam * t / 2
    p_erlang = 2 * rho**2 / (1 + rho)
    assert float(mgc_wait_p99(lam, t, 1.0, 2.0, p_erlang)) == pytest.approx(
        np.log(100 * p_erlang) / (2 / t - lam), rel=1e-4)
    lam, t, cv = 0.645, 1.4593, 0.4313
    k = 1 / cv**2
    rng = np.random.default_rng(0)
    arrivals = np.cumsum(rng.exponential(1 / lam, 300_000)).tolist()
    service = rng.gamma(k, t / k, 300_000).tolist()
    free, waits = [0.0, 0.0], []
    for a, sv in zip(arrivals, service, strict=True):
        j = 0 if free[0] <= free[1] else 1
        start = max(a, free[j])
        waits.append(start - a)
        free[j] = start + sv
    wq, p_wait, _ = mgc_wait(lam, t, 2.0, cv**2)
    p99 = float(np.quantile(waits, 0.99))
    assert float(mgc_wait_p99(lam, t, cv**2, 2.0, p_wait)) == pytest.approx(p99, rel=0.03)
    assert np.log(100 * float(p_wait)) * float(wq) / float(p_wait) > 1.08 * p99


def test_mgc_wait_against_erlang_c():
    """The prefill queue's M/G/c wait: Pollaczek-Khinchine exactly at c = 1; at c = 2 with
    exponential service (cv = 1) close to M/M/2's closed form, P(wait) = 2 rho^2 / (1 + rho),
    W_q = P(wait) t / (2 (1 - rho)) (Erlang C): +1.8 % at rho = 0.8, +10 % at rho = 0.5."""
    from jaxstack.recipe.queueing import mg1_wait, mgc_wait

    assert float(mgc_wait(0.9, 1.0, 1.0)[0]) == pytest.approx(float(mg1_wait(0.9, 1.0)), rel=1e-6)
    assert float(mgc_wait(0.5, 1.0, 1.0, 1.0)[0]) == pytest.approx(1.0, rel=1e-6)      # M/M/1: rho t / (1 - rho)
    for rho, tol in ((0.8, 0.025), (0.5, 0.11)):
        p_exact = 2 * rho**2 / (1 + rho)
        w, p, r = mgc_wait(2 * rho, 1.0, 2.0, 1.0)
        assert float(r) == pytest.approx(rho)
        assert float(p) == pytest.approx(p_exact, rel=tol) and float(p) >= p_exact
        assert float(w) == pytest.approx(p_exact / (2 * (1 - rho)), rel=tol)


def test_online_saturates_where_offline_does(ev):
    """The online engine admits at most its full-load batch (KV budget, max_num_seqs, token
    budget: ``offline``'s B per replica), so Poisson load just below the offline capacity
    O-token requests/s is served and load just above it is unstable; before session 11 the cap
    was max_num_seqs alone and a KV-bound engine stayed "stable" beyond its offline capacity by
    holding more requests than its KV cache fits. Here the KV budget binds (B < max_num_seqs)."""
    d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=1, inp=4096, out=1024, tp=8)
    lim = {"max_num_seqs": np.float32(4096), "max_num_batched_tokens": np.float32(2**24)}
    off = ev(_stack([_offline(d, **lim)]))
    b, cap = float(off.running_batch[0]), float(off.decode_tokens_per_s[0]) / 1024.0
    assert bool(off.feasible[0]) and b < 4096                            # KV-bound
    m = ev(_stack([_online(d, cap * x, **lim) for x in (0.9, 0.97, 1.03, 1.2)]))
    assert np.asarray(m.feasible).tolist() == [True, True, False, False]
    assert (np.asarray(m.reason)[2:] == 8).all() and (np.asarray(m.running_batch)[:2] <= b).all()


def test_goodput_is_the_largest_rate_meeting_the_slos(ev):
    d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=64, inp=1024, out=256, tp=8)
    slo = {"ttft_slo": np.float32(0.5), "tpot_slo": np.float32(0.03)}
    g = float(ev(_stack([_online(d, 1.0, **slo)])).goodput_requests_per_s[0])
    assert g > 0
    m = ev(_stack([_online(d, g * 0.999, **slo), _online(d, g * 1.01, **slo)]))
    below_ok = bool(m.feasible[0]) and float(m.ttft_p99_s[0]) <= 0.5 and float(m.tpot_p99_s[0]) <= 0.03
    above_bad = (not bool(m.feasible[1])) or float(m.ttft_p99_s[1]) > 0.5 or float(m.tpot_p99_s[1]) > 0.03
    assert below_ok and above_bad


def _spec(d, k, a, c):
    return dataclasses.replace(d, serving=dataclasses.replace(
        d.serving, spec_tokens=np.float32(k), spec_acceptance=np.float32(a), draft_cost=np.float32(c)))


def test_speculative_decoding(ev):
    from jaxstack.recipe.serving import spec_tokens_per_step

    d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=4, inp=1024, out=256, tp=8)
    cases = [d, _spec(d, 0, 0.3, 0.5), _spec(d, 2, 0.0, 0.0), _spec(d, 3, 1.0, 0.0)] + \
            [_spec(d, 3, a, 0.05) for a in (0.2, 0.5, 0.8)]
    m = ev(_stack(cases))
    tpot = np.asarray(m.tpot_s, np.float64)
    assert np.asarray(m.feasible).all()
    assert tpot[1] == tpot[0]                                     # k = 0: off, whatever the other knobs
    assert tpot[2] >= tpot[0]                                     # nothing accepted: verifying costs, never helps
    assert tpot[0] / 4 < tpot[3] < tpot[0]                        # all accepted: up to (k + 1)x at small batch
    assert (np.diff(tpot[4:]) < 0).all()                          # more acceptance, faster
    # E = (1 - a^(k+1)) / (1 - a): hand-worked for k = 3, a = 0.5: (1 - 1/16) / (1/2) = 1.875
    assert float(spec_tokens_per_step(_spec(d, 3, 0.5, 0.0))) == pytest.approx(1.875)
    assert float(spec_tokens_per_step(_spec(d, 3, 1.0, 0.0))) == pytest.approx(4.0)


def test_disaggregated_with_free_transfer_equals_the_pools_separate_rates(ev, tmp_path, capsys):
    from jaxstack.cli import main
    from jaxstack.recipe.disagg import disaggregated, kv_bytes_per_request

    pre = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=8, inp=2048, out=256, tp=8)
    dec = base_design("h200", "nvlink-h200x8", "llama-3-70b", batch=1, inp=2048, out=256, tp=8)
    free = disaggregated(pre, dec, kv_bandwidth=float("inf"))
    m_pre = ev(_stack([pre]))
    assert free["prefill_requests_per_s"] == pytest.approx(float(m_pre.prefill_tokens_per_s[0]) / 2048, rel=1e-6)
    b = free["decode_running_batch"]
    m_dec = ev(_stack([dataclasses.replace(dec, request=dataclasses.replace(dec.request, batch=np.float32(b)))]))
    assert free["decode_requests_per_s"] == pytest.approx(b / (float(m_dec.tpot_s[0]) * 256), rel=1e-6)
    r_p, r_d = free["prefill_requests_per_s"], free["decode_requests_per_s"]
    assert free["requests_per_s_per_chip"] == pytest.approx(1 / (8 / r_p + 8 / r_d), rel=1e-9)
    slow = disaggregated(pre, dec, kv_bandwidth=1e9)
    t_kv = float(kv_bytes_per_request(dec)) / 1e9                       # 2048 tokens x 80 layers x 4 KiB = 671 MB
    assert slow["kv_transfer_s"] == pytest.approx(t_kv) and slow["prefill_requests_per_s"] < r_p
    assert slow["ttft_s"] == pytest.approx(free["ttft_s"] + t_kv)
    for name, d in (("p.yaml", "h100-sxm\nfabric: nvlink-h100x8"), ("d.yaml", "h200\nfabric: nvlink-h200x8")):
        (tmp_path / name).write_text(f"hardware: {d}\nmodel: llama-3-70b\nmapping: {{tp: 8}}\n"
                                     "request: {batch: 8, input_len: 2048, output_len: 256}\n")
    assert main(["disagg", str(tmp_path / "p.yaml"), str(tmp_path / "d.yaml"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["feasible"] is True


def test_engine_presets(capsys):
    from jaxstack.cli import main
    from jaxstack.edges import io

    base = {"hardware": "h200", "fabric": "nvlink-h200x8", "model": "llama-3-8b", "mapping": {"tp": 8},
            "request": {"batch": 1, "input_len": 100, "output_len": 100}}
    d = io.design_from_dict({**base, "engine": "vllm-offline"})
    assert (float(d.serving.regime), float(d.serving.max_num_seqs), float(d.serving.max_num_batched_tokens)) == \
        (1.0, 1024.0, 16384.0)
    d = io.design_from_dict({**base, "engine": "vllm-server", "serving": {"max_num_seqs": 64}})
    assert (float(d.serving.regime), float(d.serving.max_num_seqs)) == (2.0, 64.0)     # the design's own wins
    with pytest.raises(io.ConfigError, match="unknown engine preset"):
        io.design_from_dict({**base, "engine": "sglang-9"})
    # SGLang (session 10): 8192-token chunks, up to 4096 running requests (its KV pool binds first)
    for name, regime in (("sglang-offline", 1.0), ("sglang-server", 2.0)):
        d = io.design_from_dict({**base, "engine": name})
        assert (float(d.serving.regime), float(d.serving.max_num_seqs), float(d.serving.max_num_batched_tokens)) == \
            (regime, 4096.0, 8192.0)
    from jaxstack.engines import calibration

    assert calibration.software_of("sglang-offline") == "sglang"
    doc = calibration.load_joint()
    assert "sglang" not in doc["software"]           # no measurements: the raw presets' overheads
    assert calibration.constants("h200", "sglang-offline", doc) == doc["hardware"]["h200"]
    assert main(["presets", "--show", "vllm-offline"]) == 0
    out = capsys.readouterr().out
    assert "arg_utils.py" in out
    assert re.search(r"serving\.regime\s+offline\s", out)          # the regime's own name, not a topology kind


def test_engine_step_overhead_adds_to_every_step(ev):
    """serving.step_overhead: host time per engine iteration, once per decode step and prefill pass."""
    d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=16, inp=1024, out=256, tp=8)
    o = 1.5e-3
    with_o = dataclasses.replace(d, serving=dataclasses.replace(d.serving, step_overhead=np.float32(o)))
    m = ev(_stack([d, with_o]))
    assert float(m.tpot_s[1] - m.tpot_s[0]) == pytest.approx(o, rel=1e-3)       # tp8, pp1: one step per token
    assert float(m.ttft_s[1] - m.ttft_s[0]) == pytest.approx(o, rel=1e-3)       # one prefill pass
    assert float(m.weight_bytes[1]) == float(m.weight_bytes[0])


def _trt_reference(param_count, layers, kv_heads, head_dim, tp, pp, mem_gib, w_bytes, kv_bytes, isl, osl):
    """TensorRT-LLM trtllm-bench's calc_engine_setting + finetune_setting, transcribed in plain
    Python (tensorrt_llm/bench/build/tuning.py @ 04cba882084a25665e7f80f5bda71b35b9790b6f)."""
    import math

    gib = 1024 ** 3
    byte_per_token = 2 * layers * max(tp, kv_heads) * head_dim * kv_bytes / gib
    available = mem_gib * tp * pp - param_count * w_bytes / gib
    requests = available * 0.95 / (byte_per_token * (isl + osl))
    raw_bs = min(requests, 4096) / pp
    raw_token = min(raw_bs * (1 + isl / osl), 32768)
    if raw_bs < 256:
        bs = max(64, 32 * math.ceil(raw_bs / 32))
    elif raw_bs < 1024:
        bs = 128 * math.ceil(raw_bs / 128)
    else:
        bs = 256 * math.ceil(raw_bs / 256)
    if raw_token < 4096:
        tok = max(2048, 256 * math.ceil(raw_token / 256))
    elif raw_token < 8192:
        tok = 512 * math.ceil(raw_token / 512)
    else:
        tok = 1024 * math.ceil(raw_token / 1024)
    return bs, tok


def test_param_count_matches_the_published_sizes():
    """ops.param_count against the parameter counts of the Hugging Face checkpoints."""
    from jaxstack.edges import io
    from jaxstack.recipe.ops import param_count

    for model, hf in (("llama-3-8b", 8_030_261_248), ("llama-3-70b", 70_553_706_496),
                      ("llama-3.1-405b", 405_853_388_800), ("mixtral-8x7b", 46_702_792_704)):
        m = io.design_from_dict({"hardware": "h200", "fabric": "nvlink-h200x8", "model": model,
                                 "request": {"batch": 1, "input_len": 1, "output_len": 1}}).model
        assert float(param_count(m)) == pytest.approx(hf, rel=2e-3), model


@pytest.mark.parametrize("model,hw,fabric,tp,isl,osl,w_bytes,adp", [
    ("llama-3-8b", "h200", "nvlink-h200x8", 1, 128, 2048, 1.0, False),
    ("llama-3-8b", "h100-sxm", "nvlink-h100x8", 1, 2048, 128, 1.0, False),
    ("llama-3-70b", "h100-sxm", "nvlink-h100x8", 2, 5000, 500, 1.0, False),
    ("llama-3.1-405b", "b200", "nvlink-b200x8", 4, 1000, 1000, 0.5, False),
    ("llama-3.1-405b", "h200", "nvlink-h200x8", 8, 20000, 2000, 1.0, False),
    ("qwen3-235b-a22b", "h200", "nvlink-h200x8", 8, 5000, 500, 1.0, True),    # 4 KV heads < --tp 8
])
def test_auto_limits_are_trtllm_bench_sizing(model, hw, fabric, tp, isl, osl, w_bytes, adp):
    """serving.auto_limits = 1 reproduces trtllm-bench's own batch / token sizing (an
    independent transcription of its source, fed the preset's numbers); 0 keeps the leaves.
    With attention DP (``adp``: jaxstack ``tp = 1, ep = n``) trtllm-bench still runs ``--tp n``,
    so its KV-head adjustment max(tp, kv_heads) uses the whole group."""
    from jaxstack.edges import io
    from jaxstack.physics.memory import capacity
    from jaxstack.recipe import serving
    from jaxstack.recipe.ops import param_count, shard

    mapping = {"tp": 1, "ep": tp} if adp else {"tp": tp}
    d = io.design_from_dict({"hardware": hw, "fabric": fabric, "model": model, "mapping": mapping,
                             "engine": "trtllm-throughput",
                             "request": {"batch": 1, "input_len": isl, "output_len": osl},
                             "overrides": {"model.weight_bytes": w_bytes, "model.kv_bytes": 1}})
    m = d.model
    want = _trt_reference(float(param_count(m)), int(m.num_hidden_layers), int(m.num_key_value_heads),
                          int(m.head_dim), tp, 1, float(capacity(d.dram)) / 1024 ** 3, w_bytes, 1.0, isl, osl)
    seqs, tokens = serving.engine_limits(d, shard(d), param_count(m))
    assert (float(seqs), float(tokens)) == want
    off = dataclasses.replace(d, serving=dataclasses.replace(d.serving, auto_limits=0.0))
    assert [float(x) for x in serving.engine_limits(off, shard(off), param_count(m))] == [8192.0, 32768.0]
    capped = dataclasses.replace(d, serving=dataclasses.replace(d.serving, max_num_seqs=100.0))
    assert float(serving.engine_limits(capped, shard(capped), param_count(m))[0]) == min(100.0, want[0])


def test_trtllm_rounding_rules():
    from jaxstack.recipe import serving

    b = np.array([1.0, 20.0, 100.0, 255.0, 300.0, 1023.0, 1500.0, 4096.0], np.float32)
    assert serving.trt_round_batch(b).tolist() == [64, 64, 128, 256, 384, 1024, 1536, 4096]
    t = np.array([10.0, 2049.0, 4100.0, 8191.0, 9000.0, 32768.0], np.float32)
    assert serving.trt_round_tokens(t).tolist() == [2048, 2304, 4608, 8192, 9216, 32768]


def _closed(d, c, **kw):
    return dataclasses.replace(d, serving=dataclasses.replace(d.serving, regime=np.float32(3.0),
                                                              concurrency=np.float32(c), **kw))


@pytest.fixture(scope="module")
def sweep_clients(ev):
    d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=1, inp=1000, out=200, tp=8)
    d = dataclasses.replace(d, serving=dataclasses.replace(d.serving, max_num_seqs=np.float32(256)))
    clients = np.array([1, 2, 8, 32, 128, 256, 1024], np.float32)
    designs = [_closed(d, c) for c in clients] + [_offline(d), _online(d, 1e-4)]
    return d, clients, ev(_stack(designs))


def test_concurrency_closed_loop_obeys_littles_law(sweep_clients):
    """C clients, each with one request in flight: C = requests/s x (TTFT + O TPOT) at every C,
    the running batch is min(C, the engine's full batch), the loop is always stable, and more
    clients never lower the throughput or the latencies."""
    d, clients, m = sweep_clients
    k = len(clients)
    assert np.asarray(m.feasible)[:k].all()
    x = np.asarray(m.requests_per_s, np.float64)[:k]
    t = np.asarray(m.ttft_s, np.float64)[:k] + float(d.request.output_len) * np.asarray(m.tpot_s, np.float64)[:k]
    np.testing.assert_allclose(x * t, clients, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(m.running_batch)[:k], np.minimum(clients, 256.0), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(m.decode_tokens_per_s, np.float64)[:k], x * float(d.request.output_len),
                               rtol=1e-6)
    for name in ("decode_tokens_per_s", "ttft_s", "tpot_s", "ttft_p99_s", "tpot_p99_s"):
        v = np.asarray(getattr(m, name), np.float64)[:k]
        assert (np.diff(v) >= -1e-6 * v[1:]).all(), name
    assert (np.asarray(m.ttft_p99_s) >= np.asarray(m.ttft_s))[:k].all()
    assert (np.asarray(m.tpot_p99_s) >= np.asarray(m.tpot_s))[:k].all()


def test_concurrency_limits_one_client_and_saturation(sweep_clients):
    """One client: nothing else runs, so its TPOT is the one-request step and its TTFT the prompt's
    own step, both as online at vanishing load (an idle engine: no step in flight); its p99s equal
    its means (fixed prompts). Past the engine's full batch the loop runs at the
    offline regime's throughput (the same step at the same batch), the other clients waiting:
    (C - B) / X more to the first token."""
    d, clients, m = sweep_clients
    tpot, ttft = np.asarray(m.tpot_s, np.float64), np.asarray(m.ttft_s, np.float64)
    on = len(clients) + 1
    assert tpot[0] == pytest.approx(tpot[on], rel=1e-5)
    assert ttft[0] == pytest.approx(ttft[on], rel=1e-3)
    assert float(m.tpot_p99_s[0]) == pytest.approx(tpot[0], rel=1e-6)
    assert float(m.ttft_p99_s[0]) == pytest.approx(ttft[0], rel=1e-6)
    off = len(clients)
    full = list(clients).index(256)
    dtps = np.asarray(m.decode_tokens_per_s, np.float64)
    assert float(m.running_batch[off]) == 256.0
    last = len(clients) - 1                                           # 1,024 clients
    assert dtps[full] == pytest.approx(dtps[off], rel=0.01) and dtps[last] == pytest.approx(dtps[full], rel=1e-5)
    x = float(m.requests_per_s[last])
    assert ttft[last] == pytest.approx(ttft[full] + (1024 - 256) / x, rel=1e-4)


def test_concurrency_against_its_defining_equations():
    """``closed.closed`` with a hand-set step model against a float64 bisection of its defining
    equations: n = X (TTFT(X) + O TPOT(X)), TPOT = tau / (1 - X t_p (n - 1) / n), TTFT = t_p +
    m tau + tau / (2 (1 - X t_p (n - 1) / n)), m = max(1, I / (budget - n)); 2 replicas, 6 clients
    (3 per replica) under a full batch of 2 per replica: one waits, (C_r - n) / X more."""
    from types import SimpleNamespace

    from jaxstack.recipe.closed import closed

    d = SimpleNamespace(request=SimpleNamespace(output_len=50.0, input_len=3000.0, input_cv=0.0, output_cv=0.0),
                        serving=SimpleNamespace(concurrency=6.0, max_num_batched_tokens=1024.0))
    s = SimpleNamespace(dp_attn=2.0, mb=1.0, pp=1.0)
    tau_w, k, t_p, cap = 0.010, 0.002, 0.040, 2.0
    n, x, ttft, tpot, ttft99, tpot99 = (float(v) for v in closed(d, s, cap, k, tau_w, t_p))
    tau, m = tau_w + k * 2.0, 3000.0 / (1024.0 - 2.0)

    def excess(xx):
        free = 1.0 - xx * t_p * 0.5
        return xx * (t_p + m * tau + 0.5 * tau / free + 50.0 * tau / free) - 2.0

    lo, hi = 0.0, 1.0 / (0.5 * t_p)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) < 0.0 else (lo, mid)
    free = 1.0 - lo * t_p * 0.5
    assert n == 2.0 and x == pytest.approx(lo, rel=1e-5)
    assert tpot == pytest.approx(tau / free, rel=1e-5)
    assert ttft == pytest.approx(t_p + m * tau + 0.5 * tau / free + 1.0 / lo, rel=1e-5)
    assert x * (ttft + 50.0 * tpot) == pytest.approx(3.0, rel=1e-5)
    assert ttft99 > ttft and tpot99 > tpot


def test_load_factor_is_the_arrival_rates_share_of_the_engines_capacity(ev):
    """Online: the arrival rate over the requests/s the engine serves at its full batch, each step
    carrying its share of the prompts (linear in the rate; within 2 % of the offline regime's rate,
    whose prompts ride the full decode step rather than the light one); the queue is stable below
    that capacity and unstable past it. Offline: 1 in the steady state, less for a finite run's
    partial wave. Static: 0."""
    d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=1, inp=1000, out=200, tp=8)
    lim = {"max_num_seqs": np.float32(256), "max_num_batched_tokens": np.float32(8192)}
    off = ev(_stack([_offline(d, **lim), _offline(d, num_requests=np.float32(300), **lim)]))
    assert float(off.load_factor[0]) == pytest.approx(1.0, rel=1e-5) and 0.0 < float(off.load_factor[1]) < 1.0
    probe = ev(_stack([_online(d, 1.0, **lim)]))
    cap = 1.0 / float(probe.load_factor[0])                  # requests/s at load 1
    assert cap == pytest.approx(float(off.requests_per_s[0]), rel=0.02)
    shares = (0.1, 0.5, 0.97, 1.03)
    on = ev(_stack([_online(d, s * cap, **lim) for s in shares]))
    np.testing.assert_allclose(np.asarray(on.load_factor), shares, rtol=1e-4)
    assert np.asarray(on.feasible).tolist() == [True, True, True, False]
    assert float(ev(_stack([d])).load_factor[0]) == 0.0


def test_validate_cases_print_each_server_rows_load(tmp_path, capsys):
    """``validate --cases`` shows the model's load factor beside each MLPerf Server latency row
    (how near the model's capacity the published rate sits), and on no other row."""
    from jaxstack.cli import main

    assert main(["validate", "--set", "serving-public", "--out", str(tmp_path), "--cases"]) == 0
    lines = capsys.readouterr().out.splitlines()
    lat = [s for s in lines if s.startswith("MLP50") and ("ttft" in s or "tpot" in s)]
    assert len(lat) == 20 and all(re.search(r"load (\d\.\d{3})$", s) for s in lat)
    assert all(0.0 < float(re.search(r"load (\d\.\d{3})$", s).group(1)) < 1.5 for s in lat)
    assert not any("load" in s for s in lines if s.startswith(("TRT10", "MLP50")) and s not in lat)


def test_goodput_is_the_same_engines_in_every_regime(ev):
    """Goodput asks what the design's engine sustains online, whatever regime the design itself
    runs: offline, and static at the offline running batch, it matches the online design's within
    the prompt-cost secant's end points (the first stage variant prefills a micro-batch's prompts
    there, one budget step online)."""
    d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b", batch=1, inp=1000, out=200, tp=8)
    lim = {"max_num_seqs": np.float32(256), "max_num_batched_tokens": np.float32(8192)}
    off = ev(_stack([_offline(d, **lim)]))
    b = float(off.running_batch[0])
    static = dataclasses.replace(d, request=dataclasses.replace(d.request, batch=np.float32(b)),
                                 serving=dataclasses.replace(d.serving, **lim))
    m = ev(_stack([_online(d, 0.01, **lim), _offline(d, **lim), static]))
    g = np.asarray(m.goodput_requests_per_s, np.float64)
    assert g[0] > 0 and g[1] == pytest.approx(g[0], rel=0.05) and g[2] == pytest.approx(g[1], rel=1e-5)
