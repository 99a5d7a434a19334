"""Dtypes as design fields: the GEMM activation operand (``model.gemm_act_bytes``) changes GEMM
time where it should and nothing else; dtype names in YAML, flags and spaces."""

import dataclasses

import jax
import numpy as np
import pytest
from designs import base_design

from jaxstack.edges import io
from jaxstack.physics import compute
from jaxstack.recipe.evaluate import evaluate
from jaxstack.types.workload import gemm_operand_bytes

EVAL = jax.jit(evaluate)
MEMORY = ("weight_bytes", "kv_bytes", "activation_bytes", "memory_bytes")


def _model(d, **kw):
    return dataclasses.replace(d, model=dataclasses.replace(d.model, **kw))


def _design(batch=16, input_len=4096, output_len=256):
    d = base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b")
    return dataclasses.replace(d, request=dataclasses.replace(d.request, batch=np.float32(batch),
                                                              input_len=np.float32(input_len),
                                                              output_len=np.float32(output_len)),
                               mapping=dataclasses.replace(d.mapping, tp=np.float32(8)))


def _metrics(d):
    return {f.name: float(getattr(EVAL(d), f.name)) for f in dataclasses.fields(EVAL(d))}


def test_16_bit_activation_operand_on_16_bit_weights_changes_nothing():
    d = _design()
    a, b = _metrics(_model(d, weight_bytes=np.float32(2))), _metrics(_model(d, gemm_act_bytes=np.float32(2)))
    assert a == b


def test_w8a16_is_slower_than_w8a8_in_compute_bound_prefill_and_nothing_else_moves():
    d = _model(_design(), weight_bytes=np.float32(1))
    w8a8, w8a16 = (_metrics(_model(d, gemm_act_bytes=np.float32(x))) for x in (1.0, 2.0))
    assert w8a8["feasible"] and w8a16["feasible"]
    # prefill at 4096 tokens x 16 requests: its GEMMs are compute bound and the 16-bit rate is
    # half the FP8 rate on H100; attention, communication and vector work (a third of TTFT
    # here) do not change, so TTFT grows by 1.15-2x (measured 1.31x)
    assert 1.15 < w8a16["ttft_s"] / w8a8["ttft_s"] < 2.0
    for k in MEMORY + ("t_comm_s",):        # (t_attention_s holds the QKV / O GEMMs)
        assert w8a16[k] == w8a8[k], k
    # decode GEMMs stream the weights (memory bound): the rate barely matters there. W8A8 adds an
    # activation-quantisation kernel per GEMM, whose launches at the fitted per-kernel time are most
    # of the decode difference (11 % at vLLM's 4 µs): without launch costs it is within 10 %
    assert w8a8["tpot_s"] > w8a16["tpot_s"]
    free = dataclasses.replace(d, chip=dataclasses.replace(d.chip, op_overhead=np.float32(0)))
    w8a8, w8a16 = (_metrics(_model(free, gemm_act_bytes=np.float32(x))) for x in (1.0, 2.0))
    assert abs(w8a16["tpot_s"] / w8a8["tpot_s"] - 1) < 0.1


def test_gemm_operand_width_is_the_wider_operand():
    d = _design()
    for wb, ga, want in ((2, 0, 2), (1, 0, 1), (1, 2, 2), (0.5, 1, 1), (0.5625, 0, 0.5625), (1, 0.5, 1)):
        m = _model(d, weight_bytes=np.float32(wb), gemm_act_bytes=np.float32(ga)).model
        assert float(gemm_operand_bytes(m)) == pytest.approx(want)


@pytest.mark.parametrize("wb", [1.0, 0.5, 0.5625])
def test_unset_activation_operand_is_like_the_weights(wb):
    """``gemm_act_bytes`` unset (0) means W8A8 / W4A4: the GEMMs read the quantised activation
    operand the quantisation pass wrote, exactly as if it were set to the weights' width (session
    11: the operand was read at 16 bits at the narrow rate, which made FP4 prefill GEMMs bound by
    the SRAM fill); a 16-bit operand on the same weights (W8A16 / W4A16) is another design."""
    d = _model(_design(), weight_bytes=np.float32(wb))
    unset, like = _metrics(_model(d, gemm_act_bytes=np.float32(0))), _metrics(_model(d, gemm_act_bytes=np.float32(wb)))
    assert unset == like
    assert _metrics(_model(d, gemm_act_bytes=np.float32(2)))["ttft_s"] != unset["ttft_s"]


def test_narrow_operand_shrinks_the_fetch_of_an_fp4_prefill_gemm_by_hand():
    """A prefill GEMM (M = 16,384 tokens, K = N = 8,192) at the FP4 rate on B200: the operand
    panels every tile fills its SRAM with are A Nt + B Mt = M K a (N / 256) + K N w (M / 128)
    bytes (128 x 256 tiles); with a = w = 0.5 B that is a quarter of a = 2 B's A panel, so
    the fetch-bound time drops and the GEMM is faster with the narrow operand."""
    d = base_design("b200", "nvlink-b200x8", "llama-3-70b")
    ctx = compute.context(d.chip, d.dram, 0.5)
    M, K, N = 16384.0, 8192.0, 8192.0
    narrow = float(compute.tiling(ctx, M, K, N, 0.5, 0.5).time)
    wide = float(compute.tiling(ctx, M, K, N, 0.5, 2.0).time)

    def fetch(a):       # s to fill every tile's SRAM with its A and B panels, all units at once
        return (M * K * a * (N / 256) + K * N * 0.5 * (M / 128)) * float(ctx.inv_fetch) / float(ctx.U)

    assert wide == pytest.approx(max(fetch(2.0), wide), rel=1e-5)     # 16-bit A: fill bound
    assert narrow < wide and narrow >= fetch(0.5) * (1 - 1e-5)


def test_compute_bound_gemm_time_scales_with_the_operand_rate_by_hand():
    """A 8192^3 GEMM on H100 is compute bound at every width: t_FP8 / t_BF16 = 1 / fp8_speedup,
    t_FP4-class (NVFP4 with its scales, 0.5625 B) uses fp4_speedup."""
    d = _design()
    M = K = N = 8192.0
    t = {}
    for op in (2.0, 1.0, 0.5625):
        ctx = compute.context(d.chip, d.dram, op)
        t[op] = float(compute.tiling(ctx, M, K, N, op, op).time)
    assert t[1.0] / t[2.0] == pytest.approx(1.0 / float(d.chip.fp8_speedup), rel=1e-5)
    assert t[0.5625] / t[2.0] == pytest.approx(1.0 / float(d.chip.fp4_speedup), rel=0.05)


def _from(overrides):
    return io.design_from_dict({"hardware": "h100-sxm", "fabric": "nvlink-h100x8", "model": "llama-3-70b",
                                "request": {"batch": 1, "input_len": 8, "output_len": 8}, "overrides": overrides},
                               "t.yaml")


@pytest.mark.parametrize("name,want", [("bf16", 2.0), ("fp8", 1.0), ("FP8", 1.0), ("nvfp4", 0.5625),
                                       ("mxfp4", 0.53125), ("int4", 0.5)])
def test_dtype_names_in_design_files(name, want):
    d = _from({"model.weight_bytes": name, "model.gemm_act_bytes": name, "model.attn_bytes": name})
    assert float(d.model.weight_bytes) == want and float(d.model.gemm_act_bytes) == want
    assert float(d.model.attn_bytes) == want


def test_bad_dtype_name_is_one_line_error():
    with pytest.raises(io.ConfigError, match=r"t.yaml.*model.kv_bytes.*'fp9' is not a dtype.*nvfp4"):
        _from({"model.kv_bytes": "fp9"})
    with pytest.raises(io.ConfigError, match="gemm_act_bytes"):
        _from({"model.gemm_act_bytes": -1})
    with pytest.raises(io.ConfigError, match="attn_bytes.*outside the domain"):
        _from({"model.attn_bytes": 0})
