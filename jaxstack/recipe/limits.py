"""L3: the engine's own limits (max running requests, tokens per step), resolved once per design.

Engine limits (``engine_limits``, resolved once at the top of ``evaluate``): with
``serving.auto_limits = 1`` the engine sizes them itself, as TensorRT-LLM's ``trtllm-bench``
does when none are given (``tensorrt_llm/bench/build/tuning.py``, ``calc_engine_setting`` and
``finetune_setting``, NVIDIA/TensorRT-LLM @ 04cba882084a25665e7f80f5bda71b35b9790b6f): on the
n = chips / dp GPUs of one engine,

    KV per token  = 2 x layers x max(tp ep, kv_heads) x head_dim x kv_bytes   (MLA: layers x
                    (kv_lora_rank + rope dim) x kv_bytes)
    requests      = 0.95 (n x DRAM capacity - param_count x weight_bytes) / (KV per token x (ISL + OSL))
    raw batch     = min(requests, 4096) / pp,   raw tokens = min(raw batch x (1 + ISL / OSL), 32768)
    max batch     = max(64, 32 ceil(b / 32)) below 256, 128 ceil(b / 128) below 1024, else 256 ceil(b / 256)
    max tokens    = max(2048, 256 ceil(t / 256)) below 4096, 512 ceil(t / 512) below 8192, else 1024 ceil(t / 1024)

(tp ep: trtllm-bench's --tp, the whole group when attention runs data-parallel; slightly
optimistic bounds: the runtime batch is still what the KV cache holds), each capped
by ``max_num_seqs`` / ``max_num_batched_tokens``. The max batch applies per attention
replica (TensorRT-LLM's attention-DP ranks each schedule their own requests).
"""

import dataclasses

import jax.numpy as jnp

from ..physics import memory
from ..physics.lean import where
from ..types.design import Design
from .ops import kv_held

__all__ = ["engine_limits", "resolve_limits", "trt_round_batch", "trt_round_tokens", "TRT_KV_FRACTION"]

TRT_KV_FRACTION = 0.95          # calc_engine_setting's kv_cache_gpu_mem_fraction default
TRT_MAX_REQUESTS = 4096.0       # finetune_setting: batch cap (decoder buffer size)
TRT_MAX_TOKENS = 32768.0        # finetune_setting: token cap (activation buffer size)


def _up(x, q):
    return jnp.ceil(x / q) * q


def trt_round_batch(b):
    """trtllm-bench's optimistic max batch size from a raw batch ``b``."""
    return where(b < 256.0, jnp.maximum(64.0, _up(b, 32.0)), where(b < 1024.0, _up(b, 128.0), _up(b, 256.0)))


def trt_round_tokens(t):
    """trtllm-bench's max tokens per step from a raw token count ``t``."""
    return where(t < 4096.0, jnp.maximum(2048.0, _up(t, 256.0)),
                     where(t < 8192.0, _up(t, 512.0), _up(t, 1024.0)))


def engine_limits(d: Design, s, params):
    """(max running requests per attention replica, tokens per step) the engine runs with:
    ``serving.max_num_seqs`` / ``max_num_batched_tokens``, or with ``auto_limits`` the engine's
    own sizing capped by them (module docstring). ``params``: ``ops.param_count``."""
    w, r, sv = d.model, d.request, d.serving
    n = s.tp * s.ep * s.sp * s.cp * s.pp
    gqa = 2.0 * jnp.maximum(s.tp * s.ep, w.num_key_value_heads) * w.head_dim   # --tp: the whole group
    per_token = w.num_hidden_layers * where(s.is_mla, w.kv_lora_rank + w.qk_rope_head_dim, gqa) * w.kv_bytes
    free = n * memory.capacity(d.dram) - params * w.weight_bytes
    requests = TRT_KV_FRACTION * jnp.maximum(free, 0.0) / (per_token * kv_held(w, r.input_len + r.output_len))
    b = jnp.minimum(requests, TRT_MAX_REQUESTS) / s.pp
    bs, tok = trt_round_batch(b), trt_round_tokens(jnp.minimum(b * (1.0 + r.input_len / r.output_len), TRT_MAX_TOKENS))
    auto = sv.auto_limits > 0.5
    return (where(auto, jnp.minimum(sv.max_num_seqs, bs), sv.max_num_seqs),
            where(auto, jnp.minimum(sv.max_num_batched_tokens, tok), sv.max_num_batched_tokens))


def resolve_limits(d: Design, s, params) -> Design:
    """``d`` with the serving limits the engine actually runs with (``engine_limits``)."""
    seqs, tokens = engine_limits(d, s, params)
    return dataclasses.replace(d, serving=dataclasses.replace(d.serving, max_num_seqs=seqs,
                                                              max_num_batched_tokens=tokens))
