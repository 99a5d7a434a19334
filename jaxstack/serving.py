"""L3: serving regimes: how an engine turns the step-time model into served tokens.

``static`` (``serving.regime = 0``, the default): ``request.batch`` requests decode together
from ``input_len`` to ``input_len + output_len`` (vLLM with CUDA graphs at fixed concurrency,
how the vLLM validation runs were made). ``evaluate``'s module docstring has its metrics.

``offline`` (``serving.regime = 1``): max-throughput serving of a long queue of requests
of ``input_len`` / ``output_len`` tokens (TensorRT-LLM ``trtllm-bench throughput``, vLLM
``benchmark_throughput``, MLPerf Offline). The engine keeps as many requests running per
replica (``dp * ep`` attention replicas) as its KV budget and limits allow; requests join
as others finish, so in steady state the running requests are spread evenly over their
generation and hold ``input_len + output_len / 2`` tokens of KV cache on average (paged KV,
blocks allocated as tokens arrive):

    B_rep = min(floor((usable DRAM - weights - activations) / (KV per token x (I + O/2))),
                max_num_seqs, floor(max_num_batched_tokens x O / (I + O)))   per replica
    batch = B_rep x dp x ep

The last cap keeps a step's decode tokens plus its share of prefill tokens within the
per-step token budget. Every step decodes one token of each running request and, with
chunked prefill, also prefills ``B_rep x I / O`` prompt tokens per replica (requests finish
at ``B_rep / O`` per step and each new one brings ``I`` tokens), so with the static model's
decode step ``tpot(batch)`` (mean over the generation) and its prefill of the same batch
``t_pre = mb x t_stage(prefill)`` (the pipeline's prefill throughput):

    TPOT = tpot(batch) + t_pre / O,   output tokens/s = batch / TPOT,   requests/s = that / O,
    TTFT = max(1, O / B_rep) x TPOT   (from admission into the running batch; time queued
                                       before admission depends on the queue, not the design)

The mixed step is costed as the sum of a decode step and its prefill share (no credit for
the prefill tokens sharing the decode step's weight reads: slightly pessimistic for small
batches, exact when prefill is compute-bound). With ``max_num_seqs`` equal to a static
batch per replica and ``pp = 1``, offline throughput equals the static run's end-to-end
rate ``batch x O / (TTFT + O x TPOT)`` (``tests/test_serving.py``).
"""

import jax.numpy as jnp

from . import memory
from .design import Design

__all__ = ["is_offline", "kv_tokens_per_request", "running_batch", "offline_times"]


def is_offline(d: Design):
    return d.serving.regime > 0.5


def kv_tokens_per_request(d: Design):
    """KV tokens a request holds: at its longest (static) or on average over its life (offline)."""
    r = d.request
    return r.input_len + jnp.where(is_offline(d), 0.5, 1.0) * r.output_len


def running_batch(d: Design, s, weights, act, kv_per_token):
    """Offline: the steady-state running batch of the whole system (module docstring); static:
    ``request.batch``. ``weights`` / ``act`` are bytes per chip, ``kv_per_token`` the KV bytes
    per token of one request on one chip (all its layers on that chip)."""
    r, sv = d.request, d.serving
    budget = memory.usable_capacity(d.dram) - weights - act
    per_req = kv_per_token * (r.input_len + 0.5 * r.output_len)
    fit = jnp.floor(jnp.maximum(budget, 0.0) / per_req)
    tokens = jnp.floor(sv.max_num_batched_tokens * r.output_len / (r.input_len + r.output_len))
    b_rep = jnp.maximum(jnp.minimum(jnp.minimum(fit, sv.max_num_seqs), tokens), 1.0)
    return jnp.where(is_offline(d), b_rep * s.dp_attn, r.batch)


def offline_times(d: Design, s, batch, tpot, t_pre):
    """(TPOT, TTFT) of the offline steady state from the static decode step ``tpot`` at
    ``batch`` and the pipeline prefill time ``t_pre`` of that batch's prompts."""
    o = d.request.output_len
    step = tpot + t_pre / o
    b_rep = batch / s.dp_attn
    return step, jnp.maximum(1.0, o / b_rep) * step
