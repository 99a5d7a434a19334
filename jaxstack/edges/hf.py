"""L5: Hugging Face ``config.json`` -> ``workload.Model``, strictly.

Read: the transformer shape (hidden, layers, heads, KV heads, head_dim, FFN width, vocab,
tied embeddings), MoE (routed experts, experts per token, expert width, shared experts --
DeepSeek's ``n_shared_experts`` or Qwen2-MoE's ``shared_expert_intermediate_size`` as a
multiple of the expert width, leading dense layers), MLA (DeepSeek ranks and head dims), a
nested ``text_config`` (multimodal checkpoints), and the weight dtype: ``torch_dtype`` and
``quantization_config`` (FP8 / MXFP4 / NVFP4 / 8-bit / 4-bit) set ``weight_bytes`` (an MoE whose
quantisation leaves the attention out, as gpt-oss's MXFP4 experts beside BF16 attention: the
quantised width as ``expert_weight_bytes``, the checkpoint's dtype as ``weight_bytes``); its
activation scheme (compressed-tensors ``input_activations``, ModelOpt ``quant_algo``, weight-
only methods such as GPTQ/AWQ) sets ``gemm_act_bytes``; an FP8 ``kv_cache_scheme`` sets
``kv_bytes``. Every value is checked against the Model domains.

Also read (session 15): plain two-matrix MLPs (``mlp_gated: 0`` for the ``NON_GATED_TYPES``:
GPT-2, GPT-J, GPT-NeoX, Falcon, OPT, BLOOM, ...; without a ``model_type`` from the activation's
name), sliding-window attention (``sliding_window`` and the share of layers that use it, from
``layer_types``, Gemma's patterns or Qwen2's ``max_window_layers``), multi-query attention
(``multi_query``, ``num_kv_heads``). Fields that change compute or memory but that the model
does not represent print one ``jaxstack: warning:`` line each (stderr), never silently:
parallel attention + FFN blocks (costed sequentially), Llama-4's chunked local attention, and the hybrid and
sparse layouts of ``hf_hybrid.UNMODELLED``. MoE in every n-th layer (``interleave_moe_layer_step``,
``decoder_sparse_step``, Jamba's ``expert_layer_period``) is read as ``moe_layer_step``. Hybrid models' linear-
attention and Mamba layers (Qwen3-Next / Qwen3.5, Jamba, Granite-4.0-H) are read as windowed layers holding their
recurrent state's bytes, with a warning that says what stays approximate (``hf_hybrid.py``, session 17).
"""

import json
import sys
from pathlib import Path

from ..types.workload import Model
from .hf_hybrid import UNMODELLED, recurrent_layers
from .io import DTYPE_BYTES, MODEL_DEFAULTS, ConfigError, _number, check_domain, read_text

__all__ = ["load_hf_config", "WARNED"]

WARNED: list[str] = []      # warnings given (tests read them)

_HF_KEYS = {  # jaxstack field -> candidate HF keys, first found wins
    "hidden_size": ["hidden_size", "n_embd", "d_model"], "num_hidden_layers": ["num_hidden_layers", "n_layer"],
    "num_attention_heads": ["num_attention_heads", "n_head"],
    "num_key_value_heads": ["num_key_value_heads", "num_kv_heads", "num_attention_heads", "n_head"],
    "intermediate_size": ["intermediate_size", "ffn_hidden_size", "n_inner"], "vocab_size": ["vocab_size"],
    "n_routed_experts": ["n_routed_experts", "num_local_experts", "num_experts"],
    "num_experts_per_tok": ["num_experts_per_tok", "num_experts_per_token"], "n_shared_experts": ["n_shared_experts"],
    "moe_intermediate_size": ["moe_intermediate_size", "intermediate_size"],
    "first_k_dense_replace": ["first_k_dense_replace"], "q_lora_rank": ["q_lora_rank"],
    "moe_layer_step": ["interleave_moe_layer_step", "decoder_sparse_step", "expert_layer_period"],
    "kv_lora_rank": ["kv_lora_rank"], "qk_rope_head_dim": ["qk_rope_head_dim"],
    "qk_nope_head_dim": ["qk_nope_head_dim"], "v_head_dim": ["v_head_dim"],
    "tie_word_embeddings": ["tie_word_embeddings"],
}
_GATED = ("silu", "swiglu", "geglu", "swish")
# architectures whose dense MLP has two matrices and a plain activation (transformers' modeling_<type>.py:
# GPT-2 / GPT-J / GPT-Neo(X) / BigCode / StarCoder2 c_fc + act + c_proj, Falcon dense_h_to_4h, OPT / BLOOM /
# MPT / Phi-1/2 / CodeGen fc1 + fc2, Nemotron squared-ReLU up + down); every other type here is gated
NON_GATED_TYPES = ("gpt2", "gptj", "gpt_neo", "gpt_neox", "gpt_bigcode", "starcoder2", "falcon", "opt", "bloom",
                   "mpt", "phi", "codegen", "nemotron")


def _warn(where: str, key: str, what: str) -> None:
    msg = f"jaxstack: warning: {where}: key '{key}': {what}"
    WARNED.append(msg)
    print(msg, file=sys.stderr)


_WEIGHT_ONLY = ("gptq", "awq", "bitsandbytes", "hqq", "marlin", "exl2", "eetq", "w4a16", "w8a16")


def _act_bits(q: dict) -> float | None:
    """Bits of the GEMM activation operand a quantization_config states: compressed-tensors
    ``input_activations`` (null = weight-only), ModelOpt ``quant_algo`` WxAy, weight-only
    methods (GPTQ, AWQ, bitsandbytes, ...) 16; None when unstated (= like the weights)."""
    groups = q.get("config_groups")
    if isinstance(groups, dict) and groups:
        ia = [g.get("input_activations", None) for g in groups.values() if isinstance(g, dict)]
        if ia and all(a is None for a in ia):
            return 16.0
        bits = [a.get("num_bits") for a in ia if isinstance(a, dict) and a.get("num_bits")]
        if bits:
            return float(max(bits))
    algo = str(q.get("quant_algo", "")).lower()
    if "a16" in algo:
        return 16.0
    if "a8" in algo and algo.startswith("w4"):
        return 8.0
    method = str(q.get("quant_method", "")).lower()
    if any(m in method for m in _WEIGHT_ONLY):
        return 16.0
    return None


def _bytes_of(cfg: dict) -> tuple[float, float | None, float, float]:
    """(weight bytes, KV bytes or None, GEMM activation operand bytes or 0 = like the weights,
    unquantised weight bytes where the quantisation leaves the attention out, else 0) from
    torch_dtype / quantization_config; block-scaled FP4 formats count their scales."""
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16").lower()
    wb = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0}.get(dtype, 1.0 if "float8" in dtype else 2.0)
    q = cfg.get("quantization_config")
    kv, ga, kept = None, 0.0, 0.0
    if isinstance(q, dict):
        # modules the quantisation leaves at the checkpoint's dtype (HF modules_to_not_convert,
        # compressed-tensors ignore, ModelOpt exclude_modules): gpt-oss keeps attention in BF16
        skip = [str(m).lower() for k in ("modules_to_not_convert", "ignore", "exclude_modules")
                for m in (q.get(k) or []) if isinstance(q.get(k), list)]
        if any("attn" in m or "attention" in m for m in skip):
            kept = wb
        text = json.dumps(q).lower()
        method = str(q.get("quant_method", "")).lower()
        bits = q.get("bits") or q.get("w_bit") or q.get("weight_bits")
        groups = q.get("config_groups")
        if not bits and isinstance(groups, dict):            # compressed-tensors: weights.num_bits
            wbits = [g["weights"].get("num_bits") for g in groups.values()
                     if isinstance(g, dict) and isinstance(g.get("weights"), dict)]
            bits = max((b for b in wbits if b), default=None)
        if "mxfp4" in text:
            wb = DTYPE_BYTES["mxfp4"]
        elif "nvfp4" in text:
            wb = DTYPE_BYTES["nvfp4"]
        elif "fp4" in method or bits == 4 or "int4" in text or "w4a" in text:
            wb = 0.5
        elif "fp8" in text or "float8" in text or bits == 8 or "int8" in text:
            wb = 1.0
        kv_scheme = q.get("kv_cache_scheme") or q.get("kv_cache_quant_algo")
        if kv_scheme and ("fp8" in json.dumps(kv_scheme).lower() or "8" in str(kv_scheme)):
            kv = 1.0
        a_bits = _act_bits(q)
        if a_bits is not None:
            ga = a_bits / 8.0
    return wb, kv, ga, kept


def load_hf_config(path) -> Model:
    """Build a Model from a Hugging Face ``config.json`` (missing MoE/MLA fields = 0)."""
    path = Path(path)
    where = str(path)
    text = read_text(path, "Hugging Face config")
    try:
        cfg = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ConfigError(f"{path}: cannot read Hugging Face config: {str(e)[:120]}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: a Hugging Face config must be a JSON object, got {type(cfg).__name__}")
    if "hidden_size" not in cfg and isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg["text_config"], **{k: v for k, v in cfg.items()
                                        if k in ("quantization_config", "torch_dtype") and k not in cfg["text_config"]}}
    for req, alts in (("hidden_size", ("n_embd", "d_model")), ("num_hidden_layers", ("n_layer",)),
                      ("num_attention_heads", ("n_head",)), ("vocab_size", ())):
        if cfg.get(req) is None and not any(cfg.get(a) is not None for a in alts):
            raise ConfigError(f"{path}: key '{req}': required in a Hugging Face config")
    vals: dict[str, float] = {}
    for field, keys in _HF_KEYS.items():
        key = next((k for k in keys if cfg.get(k) is not None), None)
        v = (1 if field == "moe_layer_step" else 0) if key is None else cfg[key]
        if field == "tie_word_embeddings" and isinstance(v, bool):
            v = int(v)
        vals[field] = check_domain(Model, field, _number(v, where, key or field, "model", field), where,
                                   key or field, v)
    if vals["intermediate_size"] == 0 and vals["n_routed_experts"] == 0:
        vals["intermediate_size"] = 4.0 * vals["hidden_size"]          # GPT-2 style default (n_inner null)
    if cfg.get("head_dim"):
        vals["head_dim"] = check_domain(Model, "head_dim", _number(cfg["head_dim"], where, "head_dim", "model",
                                                                   "head_dim"), where, "head_dim", cfg["head_dim"])
    elif vals["kv_lora_rank"] > 0:  # MLA: HF's "head_dim" is the query-key width
        vals["head_dim"] = vals["qk_nope_head_dim"] + vals["qk_rope_head_dim"]
    else:
        vals["head_dim"] = float(vals["hidden_size"] // vals["num_attention_heads"])
    if cfg.get("intermediate_size_mlp"):            # Llama-4: dense layers wider than the experts
        vals["intermediate_size"] = float(cfg["intermediate_size_mlp"])
    if vals["moe_layer_step"] == 0:
        vals["moe_layer_step"] = 1.0
    if vals["n_routed_experts"] == 0:
        vals["num_experts_per_tok"] = vals["n_shared_experts"] = vals["moe_intermediate_size"] = 0.0
        vals["moe_layer_step"] = 1.0
    else:
        shared = cfg.get("shared_expert_intermediate_size")
        if shared and not cfg.get("n_shared_experts"):       # Qwen2-MoE: one wide shared expert
            width = vals["moe_intermediate_size"]
            vals["n_shared_experts"] = float(shared) / width
            if float(shared) % width:
                _warn(where, "shared_expert_intermediate_size", f"{shared} is not a multiple of the expert width "
                      f"{width:g}: modelled as {vals['n_shared_experts']:.3g} experts' worth")
        if not cfg.get("first_k_dense_replace"):
            vals["first_k_dense_replace"] = float(len(cfg.get("mlp_only_layers") or []))
    if cfg.get("multi_query") and not any(cfg.get(k) for k in ("num_key_value_heads", "num_kv_heads")):
        vals["num_key_value_heads"] = 1.0               # Falcon-7B, GPT-BigCode: multi-query attention
    wb, kvb, ga, kept = _bytes_of(cfg)
    vals.update({**MODEL_DEFAULTS, "weight_bytes": wb, "gemm_act_bytes": ga, **({"kv_bytes": kvb} if kvb else {})})
    if kept and kept != wb:
        if vals["n_routed_experts"] > 0:     # the routed experts quantised, the rest at the checkpoint's dtype
            vals["weight_bytes"], vals["expert_weight_bytes"] = kept, wb
            if vals["n_shared_experts"] > 0 or vals["first_k_dense_replace"] > 0 or vals["moe_layer_step"] > 1:
                _warn(where, "quantization_config", f"only the routed experts are costed at {wb:g} B per weight; "
                      f"dense and shared-expert FFNs at the unquantised {kept:g} B with the attention")
        else:
            _warn(where, "quantization_config", f"the attention it leaves unquantised ({kept:g} B per weight) is "
                  f"costed at the quantised {wb:g} B with the MLP")
    vals["mlp_gated"] = _gated(cfg, where)
    vals["sliding_window"], vals["sliding_window_layers"] = _window(cfg, vals["num_hidden_layers"], where)
    rec = recurrent_layers(cfg, vals["hidden_size"], vals["num_hidden_layers"], vals["num_key_value_heads"],
                           vals["head_dim"], vals["num_attention_heads"], vals["kv_bytes"], vals["act_bytes"], where)
    if rec is not None:             # hybrid: the window holds the recurrent layers' state (hf_hybrid.py)
        if vals["sliding_window"] > 0:
            _warn(where, "sliding_window", "the sliding-window layers are costed as full attention: the window "
                  "fields hold the hybrid layers' state")
        vals["sliding_window"], vals["sliding_window_layers"] = rec[0], rec[1]
        _warn(where, rec[2], rec[3])
    _unmodelled(cfg, where)
    return Model(**vals)


def _gated(cfg: dict, where: str) -> float:
    """1 for a gated dense MLP (SwiGLU / GeGLU), 0 for two matrices: by ``model_type``, or without
    one from the activation's name (with a warning: Gemma's gated GELU would read as plain)."""
    kind = str(cfg.get("model_type") or "").lower()
    if kind:
        return 0.0 if kind in NON_GATED_TYPES else 1.0
    act = str(cfg.get("hidden_act") or cfg.get("activation_function") or "silu").lower()
    gated = any(g in act for g in _GATED)
    if not gated:
        _warn(where, "hidden_act", f"no model_type: '{act}' read as a plain MLP of two matrices (mlp_gated: 0)")
    return float(gated)


def _window(cfg: dict, layers: float, where: str) -> tuple[float, float]:
    """(sliding_window, share of layers with it): ``layer_types`` where the config lists them
    (transformers >= 4.53: Gemma-2/3, Qwen2/3, GPT-OSS), else Gemma-2's alternation, Gemma-3's
    ``sliding_window_pattern`` p ((p - 1) / p), Qwen2's ``max_window_layers`` (the layers from it on),
    or every layer (Mistral)."""
    window = cfg.get("sliding_window")
    if not window or cfg.get("use_sliding_window", True) is False:
        return 0.0, 1.0
    w = check_domain(Model, "sliding_window", _number(window, where, "sliding_window", "model", "sliding_window"),
                     where, "sliding_window", window)
    types = cfg.get("layer_types")
    if isinstance(types, list) and types:
        share = sum("sliding" in str(t) for t in types) / len(types)
    elif str(cfg.get("model_type")) == "gemma2":
        share = 0.5
    elif isinstance(cfg.get("sliding_window_pattern"), int) and cfg["sliding_window_pattern"] > 0:
        share = (cfg["sliding_window_pattern"] - 1) / cfg["sliding_window_pattern"]
    elif isinstance(cfg.get("max_window_layers"), int) and "qwen" in str(cfg.get("model_type")):
        share = max(layers - cfg["max_window_layers"], 0.0) / layers
    else:
        share = 1.0
    return (w, float(share)) if share > 0 else (0.0, 1.0)


def _unmodelled(cfg: dict, where: str) -> None:
    """One warning per config field that changes compute or memory but is not modelled."""
    for key, what in UNMODELLED.items():
        if cfg.get(key) is not None:
            _warn(where, key, what)
    if cfg.get("parallel_attn") or cfg.get("use_parallel_residual") or cfg.get("parallel_attention"):
        _warn(where, "parallel_attn", "parallel attention + FFN blocks are costed as sequential ones: the same "
              "GEMMs and, as vLLM's GPT-J / GPT-NeoX run them, two TP all-reduces a layer (Falcon's single merged "
              "all-reduce and its one norm are not modelled)")
    if cfg.get("attention_chunk_size") and cfg.get("no_rope_layers") is not None:
        _warn(where, "attention_chunk_size", f"chunked local attention ({cfg['attention_chunk_size']} tokens in most "
              "layers) is not modelled (every layer attends to the full context: pessimistic for long contexts)")
