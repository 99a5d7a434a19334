"""L5: hybrid models in a Hugging Face ``config.json``: layers with a recurrent state instead of a KV cache.

Linear-attention layers (Gated DeltaNet: Qwen3-Next, Qwen3.5; ``linear_num_value_heads`` ...) and
Mamba layers (Jamba's ``attn_layer_period`` / ``attn_layer_offset``, Granite-4.0-H's ``layer_types``
"mamba") keep a fixed-size state per request instead of a KV cache that grows with the context.
The model's layer has one attention shape, so these layers are imported as windowed attention
layers (``model.sliding_window`` / ``sliding_window_layers``, the machinery of Mistral's and
Gemma's windows) whose window W holds exactly the state's bytes:

    W = ceil(state elements x state bytes / (2 x kv_heads x head_dim x kv_bytes))

(state bytes per element: ``mamba_ssm_dtype`` where the config states it, e.g. Qwen3.5's float32,
else ``act_bytes``, as vLLM's ``mamba_ssm_cache_dtype`` "auto"), so their KV memory and the
per-step bytes decode reads from it equal the state's once the context passes W tokens (below W,
min(t, W) tokens: less than the state, which is allocated whole). What stays approximate is
said in one ``jaxstack: warning:`` line: their attention FLOPs (over W keys, for the
recurrence's update of the state; both small beside the projections) and their projections,
costed with the full-attention layers' shape (the line gives both parameter counts). State
elements per layer and request, as vLLM allocates them:

    Gated DeltaNet   Hv dk dv + (2 Hk dk + Hv dv)(conv - 1)      (recurrent + convolution state)
    Mamba-1 (Jamba)  d_inner d_state + d_inner (conv - 1)
    Mamba-2          Hm dh d_state + (d_inner + 2 groups d_state)(conv - 1)

Hybrid layouts that the layer (attention + FFN) cannot express, and sparse or linear attention
variants that are not read, get a warning each (``UNMODELLED``).
"""

import math

from .io import ConfigError, _short

__all__ = ["recurrent_layers", "UNMODELLED"]

_STATE_BYTES = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0}

# keys of hybrid or sparse attention layouts the import does not model -> what is not modelled
UNMODELLED = {
    "hybrid_override_pattern": "Nemotron-H's per-layer pattern of Mamba, attention and MLP layers (each layer one "
                               "of them) is not modelled: every layer is costed as attention + FFN",
    "attn_type_list": "MiniMax's lightning (linear) attention layers are not modelled: every layer is costed as "
                      "full attention",
    "linear_attn_config": "Kimi-Linear's KDA linear-attention layers are not modelled: every layer is costed as "
                          "full attention",
    "index_topk": "DeepSeek sparse attention (each query attends to index_topk keys) is not modelled: attention is "
                  "costed over the whole context (pessimistic beyond index_topk tokens)",
    "mamba_d_ssm": "Falcon-H1's parallel attention + Mamba layers are not modelled: the Mamba half is not costed",
}


def _count_linear(cfg: dict, layers: int, kind: str, interval: float | None) -> tuple[int, int]:
    """(recurrent layers, layers): from ``layer_types`` where listed, else every ``interval``-th
    layer full attention (Qwen3-Next's ``full_attention_interval``)."""
    types = cfg.get("layer_types")
    if isinstance(types, list) and types:
        return sum(kind in str(t) for t in types), len(types)
    if interval:
        return layers - layers // int(interval), layers          # every n-th layer is full attention
    return 0, layers


def _getter(cfg: dict, where: str):
    """cfg.get for the hybrid keys: a present value must be a positive number (one-line error)."""
    def g(key, zero_ok=False):
        v = cfg.get(key)
        if v is None or key == "layer_types" or (key == "mamba_dt_rank" and v == "auto"):
            return None if v == "auto" else v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (
                v == 0 and not zero_ok):
            raise ConfigError(f"{where}: key '{key}': expected a {'non-negative' if zero_ok else 'positive'} "
                              f"number, got {_short(v)}")
        return v
    return g


def recurrent_layers(cfg: dict, hidden: float, layers: float, kv_heads: float, head_dim: float, heads: float,
                     kv_bytes: float, act_bytes: float, where: str = "<config>"):
    """(window W, share of layers, key, warning text) for a hybrid config, or None (not hybrid)."""
    L = int(layers)
    g = _getter(cfg, where)
    if g("linear_num_value_heads"):                                       # Gated DeltaNet (Qwen3-Next, Qwen3.5)
        hv, hk = float(g("linear_num_value_heads")), float(g("linear_num_key_heads") or g("linear_num_value_heads"))
        dk, dv = float(g("linear_key_head_dim") or head_dim), float(g("linear_value_head_dim") or head_dim)
        conv = float(g("linear_conv_kernel_dim") or 4)
        n, L = _count_linear(cfg, L, "linear", g("full_attention_interval"))
        state = hv * dk * dv + (2 * hk * dk + hv * dv) * (conv - 1)
        own = hidden * (2 * hk * dk + 2 * hv * dv) + hidden * 2 * hv + hv * dv * hidden
        key, what = ("layer_types" if isinstance(g("layer_types"), list) else "full_attention_interval",
                     "linear-attention (Gated DeltaNet)")
    elif g("mamba_d_state") and (g("attn_layer_period") or isinstance(g("layer_types"), list)):
        d_state, conv = float(g("mamba_d_state")), float(g("mamba_d_conv") or 4)
        if g("mamba_n_heads"):                                            # Mamba-2 (Granite-4.0-H)
            nh, dh = float(g("mamba_n_heads")), float(g("mamba_d_head") or 64)
            d_inner, groups = nh * dh, float(g("mamba_n_groups") or 1)
            state = nh * dh * d_state + (d_inner + 2 * groups * d_state) * (conv - 1)
            own = hidden * (2 * d_inner + 2 * groups * d_state + nh) + d_inner * hidden
            (n, L), key = _count_linear(cfg, L, "mamba", None), "layer_types"
        else:                                                             # Mamba-1 (Jamba)
            d_inner = float(g("mamba_expand") or 2) * hidden
            dt_rank = float(g("mamba_dt_rank") or math.ceil(hidden / 16))
            state = d_inner * d_state + d_inner * (conv - 1)
            own = hidden * 2 * d_inner + d_inner * (dt_rank + 2 * d_state) + dt_rank * d_inner + d_inner * hidden
            period, offset = int(g("attn_layer_period") or 1), int(g("attn_layer_offset", zero_ok=True) or 0)
            n, key = L - len(range(offset, L, period)), "attn_layer_period"
        what = "Mamba"
    else:
        return None
    if n <= 0:
        return None
    per_token = 2.0 * kv_heads * head_dim * kv_bytes                      # one full-attention layer's KV per token
    # the state's dtype: the config's ``mamba_ssm_dtype`` (Qwen3.5: float32), else the activations' (vLLM's
    # mamba_ssm_cache_dtype "auto" = the model dtype)
    state_bytes = _STATE_BYTES.get(str(cfg.get("mamba_ssm_dtype")).lower(), act_bytes)
    window = float(math.ceil(state * state_bytes / per_token))
    attn = hidden * (heads * head_dim + 2 * kv_heads * head_dim) + heads * head_dim * hidden
    text = (f"{n} of {L} layers are {what} layers with a fixed state ({state:,.0f} elements of {state_bytes:g} B a "
            f"request): costed as "
            f"attention layers over a {window:,.0f}-token window that holds the state's bytes (less below "
            f"{window:,.0f} tokens of context); their own projections ({own / 1e6:.1f} M parameters a layer) with "
            f"the full-attention layers' shape ({attn / 1e6:.1f} M)")
    return window, n / L, key, text
