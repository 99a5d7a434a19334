"""Rack-scale and multi-node presets (GB200 NVL72; 2 x 8 GPUs over InfiniBand): sourced numbers
(test_presets.py checks the datasheet peaks), hand-worked bounds and invariants that must hold."""

import jax
import numpy as np
import pytest

from jaxstack.edges import io
from jaxstack.physics import network
from jaxstack.recipe.evaluate import evaluate


def design(hw, fabric, model="llama-3-70b", batch=64, **mapping):
    return io.design_from_dict({"hardware": hw, "fabric": fabric, "model": model, "mapping": mapping,
                                "request": {"batch": batch, "input_len": 1024, "output_len": 1024}})


EV = jax.jit(evaluate)


def test_tp8_inside_nvl72_equals_one_hgx_box():
    """A TP8 group inside the 72-GPU NVLink domain sees what it sees in an 8-GPU box: the same
    per-GPU links, a non-blocking switch, one level (the other 64 GPUs idle)."""
    a, b = (EV(design("b200", f, tp=8)) for f in ("nvlink-gb200x72", "nvlink-b200x8"))
    for k in ("tpot_s", "ttft_s", "t_comm_s", "power_W", "memory_bytes"):
        np.testing.assert_allclose(float(getattr(a, k)), float(getattr(b, k)), rtol=1e-6, err_msg=k)


def test_gb200_is_a_faster_b200():
    """Same die at a higher clock (2.5 vs 2.25 PFLOP/s dense BF16) and 186 vs 180 GB: prefill is
    compute-bound, so faster by at most the clock ratio; the memory-bound decode no slower."""
    a, b = (EV(design(hw, "nvlink-gb200x72", tp=8)) for hw in ("gb200", "b200"))
    assert float(b.ttft_s) / 1.12 < float(a.ttft_s) < float(b.ttft_s)
    assert float(a.tpot_s) <= float(b.tpot_s) * (1 + 1e-6)
    assert float(io.load_preset("hardware", "gb200")["dram"].capacity_per_layer) == 186 * 2**30


@pytest.mark.parametrize("name,nvlink", [("nvlink-ib-h100x16", 450e9), ("nvlink-ib-b200x16", 900e9)])
def test_cross_node_all_reduce_is_bounded_by_infiniband(name, nvlink):
    """TP16 over two 8-GPU nodes: every byte of the sum must cross between the nodes, n bytes each
    way at least, through the node's 8 NDR ports (8 x 50 GB/s x efficiency): the model's bandwidth
    term lies at or above that bound and within 3x of it at 1 GiB (its best candidate, a tree,
    reaches 2x; no hierarchical NVLS + InfiniBand algorithm is modelled), above the in-node TP8
    all-reduce of the same buffer, which is at most a ring's 2 (p - 1) / p n / B on NVLink."""
    f = io.load_preset("fabric", name)["fabric"]
    n = float(2**30)
    eff = float(f.bandwidth_efficiency)
    bound = n / (8 * 50e9 * eff)
    lat16, bw16 = network.all_reduce(f, 1.0, 16.0, n)
    assert bound * (1 - 1e-6) <= float(bw16) <= 3.0 * bound
    lat8, bw8 = network.all_reduce(f, 1.0, 8.0, n)
    assert float(bw8) <= 1.75 * n / (nvlink * eff) * (1 + 1e-6) and float(bw16) > float(bw8)
    assert float(lat16) > float(lat8)      # InfiniBand's 2.7 us hops (NCCL's network hwLat)


def test_deepseek_over_two_nodes():
    """DeepSeek-V3 with attention DP and experts over 16 H100s in two nodes: feasible (it does not
    fit one 8 x 80 GB node at this batch), and its MoE exchange crosses InfiniBand, so the exposed
    communication is larger than the same experts' exchange on a 16-GPU NVLink switch."""
    one = io.design_from_dict({"hardware": "h100-sxm", "fabric": "nvlink-h100x8", "model": "deepseek-v3",
                               "mapping": {"ep": 8}, "request": {"batch": 512, "input_len": 1024, "output_len": 1024}})
    assert not bool(EV(one).feasible)
    d = design("h100-sxm", "nvlink-ib-h100x16", "deepseek-v3", batch=512, ep=16)
    m = EV(d)
    assert bool(m.feasible)
    flat = io.design_from_dict({"hardware": "h100-sxm", "fabric": "nvlink-h100x8", "model": "deepseek-v3",
                                "mapping": {"ep": 16}, "request": {"batch": 512, "input_len": 1024, "output_len": 1024},
                                "overrides": {"fabric.l1.size": 16, "fabric.l1.dim_x": 16}})
    assert float(m.t_comm_exposed_s) > 1.5 * float(EV(flat).t_comm_exposed_s)


def test_disaggregated_pools_on_two_nodes_move_kv_over_infiniband():
    """A prefill pool and a decode pool on the two nodes: the KV cache crosses the node's 8 NDR
    ports (8 x 50 GB/s x efficiency) by default, not NVLink."""
    from jaxstack.recipe.disagg import disaggregated, kv_bytes_per_request

    def pool(**kw):
        return io.design_from_dict({"hardware": "h100-sxm", "fabric": "nvlink-ib-h100x16", "model": "llama-3-70b",
                                    "request": {"batch": 8, "input_len": 4096, "output_len": 512},
                                    "mapping": {"tp": 8}, **kw})

    pre, dec = pool(), pool(engine="vllm-offline")
    out = disaggregated(pre, dec)
    f = pre.fabric
    bw = 8 * 50e9 * float(f.bandwidth_efficiency)
    assert out["kv_bandwidth_Bps"] == pytest.approx(bw, rel=1e-6)
    assert out["kv_transfer_s"] == pytest.approx(float(kv_bytes_per_request(dec)) / bw, rel=1e-5)
