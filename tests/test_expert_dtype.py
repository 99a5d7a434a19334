"""Routed experts quantised apart from the rest (``model.expert_weight_bytes``; gpt-oss: MXFP4
experts beside BF16 attention, router, embedding and LM head): memory and expert GEMMs at the
experts' width, nothing else moves; the gpt-oss presets and config.json import."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from designs import base_design

from jaxstack.edges import hf, io
from jaxstack.recipe.evaluate import evaluate

EVAL = jax.jit(evaluate)
MXFP4 = 0.53125          # E2M1 + one E8M0 scale per 32 values (OCP MX v1.0)


def _with(d, **kw):
    return dataclasses.replace(d, model=dataclasses.replace(d.model, **{k: np.float32(v) for k, v in kw.items()}))


def _request(d, batch, input_len=1024, output_len=1024, tp=1):
    return dataclasses.replace(d, request=dataclasses.replace(d.request, batch=np.float32(batch),
                                                              input_len=np.float32(input_len),
                                                              output_len=np.float32(output_len)),
                               mapping=dataclasses.replace(d.mapping, tp=np.float32(tp)))


def _metrics(d):
    m = EVAL(d)
    return {f.name: float(getattr(m, f.name)) for f in dataclasses.fields(m)}


@pytest.mark.parametrize("model", ["mixtral-8x7b", "deepseek-v3"])
def test_experts_at_the_weights_width_equal_unset(model):
    d = _request(base_design("b200", "nvlink-b200x8", model), 64, tp=8)
    for wb in (2.0, 1.0):
        assert _metrics(_with(d, weight_bytes=wb)) == _metrics(_with(d, weight_bytes=wb, expert_weight_bytes=wb))


def test_dense_model_ignores_the_expert_width():
    d = _request(base_design("h100-sxm", "nvlink-h100x8", "llama-3-70b"), 16, tp=8)
    assert _metrics(d) == _metrics(_with(d, expert_weight_bytes=MXFP4))


def _gpt_oss_hand(layers, experts):
    """Weight bytes of gpt-oss by hand from its config.json: experts 3 x 2880 x 2880 each in MXFP4;
    attention (64 query heads + 2 x 8 KV heads of 64, output 64 x 64 -> 2880), router and the untied
    embedding + LM head in BF16."""
    h, v = 2880, 201088
    expert_elems = layers * experts * 3 * h * h
    attn = layers * (h * (64 + 16) * 64 + 64 * 64 * h)
    rest = attn + layers * h * experts + 2 * v * h
    return expert_elems * MXFP4 + rest * 2.0, expert_elems + rest


@pytest.mark.parametrize("name,layers,experts,params", [("gpt-oss-120b", 36, 128, 116.8e9),
                                                         ("gpt-oss-20b", 24, 32, 20.9e9)])
def test_gpt_oss_weights_by_hand(name, layers, experts, params):
    nbytes, elems = _gpt_oss_hand(layers, experts)
    assert elems == pytest.approx(params, rel=2e-3)           # OpenAI's model card: 116.8e9 / 20.9e9 parameters
    m = _metrics(_request(base_design("h100-sxm", "nvlink-h100x8", name), 1))
    assert m["feasible"]
    assert m["weight_bytes"] == pytest.approx(nbytes, rel=1e-5)   # one H100 holds it all (TP1)
    assert nbytes < 80e9 if name == "gpt-oss-120b" else nbytes < 16e9   # "fits one 80 GB GPU" / "16 GB"


def test_mxfp4_experts_cut_the_moe_block_and_nothing_else():
    """gpt-oss-120b at batch 1 on four H100s (TP4: BF16 experts need 233 GB): the MoE block streams 4
    experts' weights, 3.76x fewer bytes in MXFP4 than in BF16 (2 / 0.53125), so its time falls by well
    over 2x (launch costs stay); the attention, KV and LM-head work is the same."""
    d = _request(base_design("h100-sxm", "nvlink-h100x8", "gpt-oss-120b"), 1, tp=4)
    bf16, mx = _metrics(_with(d, expert_weight_bytes=2.0)), _metrics(d)
    assert bf16["feasible"] and mx["feasible"]
    free = dataclasses.replace(d, chip=dataclasses.replace(d.chip, op_overhead=np.float32(0)))
    bf16_f, mx_f = _metrics(_with(free, expert_weight_bytes=2.0)), _metrics(free)
    # t_moe_s: the routed experts' GEMMs are the block's bytes; without launch costs the ratio nears 2 / MXFP4
    assert 2.5 < bf16_f["t_moe_s"] / mx_f["t_moe_s"] < 2.0 / MXFP4 * 1.01
    assert bf16["t_moe_s"] > mx["t_moe_s"]
    for k in ("t_attention_s", "t_other_s", "kv_bytes", "activation_bytes", "t_comm_s"):
        assert bf16[k] == mx[k], k
    assert bf16["weight_bytes"] - mx["weight_bytes"] == pytest.approx(36 * 128 * 3 * 2880 * 2880 * (2 - MXFP4) / 4,
                                                                      rel=1e-5)


def test_expert_rate_is_the_wider_of_expert_weights_and_activations():
    """MXFP4 experts with 16-bit activations (W4A16, gpt-oss on Hopper) run at the BF16 rate: in a
    compute-bound prefill the experts take as long as BF16 experts' compute; with FP8 activations
    (W4A8 on Blackwell) they run at the FP8 rate."""
    d = _request(base_design("b200", "nvlink-b200x8", "gpt-oss-120b"), 64, input_len=8192, output_len=16)
    free = dataclasses.replace(d, chip=dataclasses.replace(d.chip, op_overhead=np.float32(0)))
    w4a16, w4a8 = _metrics(free), _metrics(_with(free, gemm_act_bytes=1.0))
    assert w4a8["ttft_s"] < w4a16["ttft_s"]


def _hf(tmp_path, cfg):
    f = tmp_path / "config.json"
    f.write_text(json.dumps(cfg))
    hf.WARNED.clear()
    return hf.load_hf_config(f), list(hf.WARNED)


GPT_OSS_CONFIG = {   # openai/gpt-oss-120b config.json (the fields jaxstack reads)
    "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "hidden_size": 2880, "num_hidden_layers": 36,
    "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64, "intermediate_size": 2880,
    "num_local_experts": 128, "num_experts_per_tok": 4, "experts_per_token": 4, "vocab_size": 201088,
    "tie_word_embeddings": False, "sliding_window": 128, "torch_dtype": "bfloat16",
    "layer_types": ["sliding_attention", "full_attention"] * 18,
    "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}}


def test_gpt_oss_config_json_equals_the_preset(tmp_path):
    m, warned = _hf(tmp_path, GPT_OSS_CONFIG)
    assert not warned
    preset = io.load_preset("model", "gpt-oss-120b")["model"]
    for f in dataclasses.fields(preset):
        assert float(getattr(m, f.name)) == pytest.approx(float(getattr(preset, f.name))), f.name


def test_unquantised_attention_on_a_dense_model_warns(tmp_path):
    cfg = {k: v for k, v in GPT_OSS_CONFIG.items() if k not in ("num_local_experts", "num_experts_per_tok",
                                                               "experts_per_token")}
    m, warned = _hf(tmp_path, cfg)
    assert m.weight_bytes == MXFP4 and m.expert_weight_bytes == 0
    assert len(warned) == 1 and "quantization_config" in warned[0] and "attention" in warned[0]


def test_expert_dtype_by_name_and_checked():
    base = {"hardware": "h100-sxm", "fabric": "nvlink-h100x8", "model": "mixtral-8x7b",
            "request": {"batch": 1, "input_len": 128, "output_len": 128}}
    d = io.design_from_dict({**base, "overrides": {"model.expert_weight_bytes": "mxfp4"}}, "t")
    assert float(d.model.expert_weight_bytes) == MXFP4
    with pytest.raises(io.ConfigError, match="expert_weight_bytes"):
        io.design_from_dict({**base, "overrides": {"model.expert_weight_bytes": -1}}, "t")


def test_cli_expert_dtype_flag(capsys):
    from jaxstack.cli.main import main

    args = ["eval", "--hardware", "h100-sxm", "--fabric", "nvlink-h100x8", "--model", "gpt-oss-120b", "--tp", "1",
            "--batch", "1", "--input-len", "128", "--output-len", "128", "--json"]
    assert main(args) == 0
    mx = json.loads(capsys.readouterr().out)
    assert main(args + ["--expert-dtype", "bf16"]) == 0        # BF16 experts: 233 GB on one 80 GB H100
    bf = json.loads(capsys.readouterr().out)
    assert mx["feasible"] and not bf["feasible"]
    assert main(args + ["--expert-dtype", "fp9"]) == 2
    assert "expert_weight_bytes" in capsys.readouterr().err
