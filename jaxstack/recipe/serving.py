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
decode step ``tpot(batch)`` (mean over the generation) and what the batch's prompts add to
the steps they ride, ``t_pre`` (at most their prefill alone, ``mb x t_stage(prefill)``; below):

    TPOT = tpot(batch) + t_pre / O,   output tokens/s = batch / TPOT,   requests/s = that / O,
    TTFT = max(1, O / B_rep) x TPOT   (from admission into the running batch; time queued
                                       before admission depends on the queue, not the design)

A finite run (``serving.num_requests`` N > 0, as ``trtllm-bench --num_requests``) never runs
more than N requests at once, and N equal requests run in waves of the running batch, the
last one partial, each prefilled in steps of its own (``offline_fill``): output tokens/s =
fill x batch / TPOT.

A mixed step launches its kernels and reads its weights once for its decode rows and its
prompt chunk together, so ``t_pre`` is what the prompts' tokens ADD to the decode steps they
ride (``chunk_prefill``: the secant of the step's KV-independent time from the decode step
to the prefill of a micro-batch's prompts, plus the prompts' own attention), at most their
prefill in steps of their own (session 20; before, a decode step plus a separate prefill,
which counted the weight reads and launches twice). A finite run (below) of N = batch requests is
one wave, prefilled before it decodes (nothing to ride): with ``max_num_seqs`` the static
batch per replica and ``pp = 1`` its throughput equals the static run's end-to-end rate
``batch x O / (TTFT + O x TPOT)``, and the steady state serves at least that
(``tests/test_serving.py``).

``online`` (``serving.regime = 2``, Poisson arrivals, MLPerf Server): ``online.py`` (re-exported
here).

Speculative decoding (every regime; ``serving.spec_tokens`` k > 0): each decode step
verifies 1 + k tokens per request (the model's decode step with q_len = 1 + k: GEMMs on
(1 + k) x more rows, attention over the same KV cache), preceded by k draft steps of
``draft_cost`` x the step time each; with i.i.d. acceptance a a request gains
E = (1 - a^(k+1)) / (1 - a) tokens per step, so TPOT = step x (1 + k draft_cost) / E.
The draft model's weights and KV cache are not counted (MTP heads: ~one layer).

Engine limits (``engine_limits``, ``resolve_limits``): ``limits.py`` (re-exported here).

``goodput_requests_per_s`` (every regime): the largest lambda whose p99 TTFT and TPOT meet
``serving.ttft_slo`` / ``tpot_slo`` (bisection over lambda of ``online``).
Not modelled: bursts beyond Poisson, the spread of output lengths (and of prompt lengths
outside the online prefill queue and p99 TTFT), preemption, prefix caching.
"""


import jax.numpy as jnp

from ..physics import memory, relax
from ..physics.lean import clip, where
from ..types.design import Design
from .limits import TRT_KV_FRACTION, engine_limits, resolve_limits, trt_round_batch, trt_round_tokens
from .online import GOODPUT_HALVINGS, admission, goodput, online, own_prefill, preemption_sd, prompt_rounds
from .ops import kv_held
from .queueing import Z99, md1_wait, mg1_wait

__all__ = ["engine_limits", "resolve_limits", "admission", "trt_round_batch", "trt_round_tokens", "TRT_KV_FRACTION",
           "spec_tokens_per_step", "spec_time_factor", "is_offline", "is_online", "kv_tokens_per_request", "kv_fit",
           "running_batch", "offline_times", "offline_fill", "chunk_prefill", "step_intercept", "mg1_wait", "md1_wait",
           "online", "goodput", "prompt_rounds", "own_prefill", "preemption_sd", "Z99", "GOODPUT_HALVINGS"]


def spec_tokens_per_step(d: Design):
    """Expected tokens a request gains per verify step: (1 - a^(k+1)) / (1 - a) (k + 1 at a = 1)."""
    k, a = d.serving.spec_tokens, d.serving.spec_acceptance
    geo = (1.0 - a ** (k + 1.0)) / where(a < 1.0, 1.0 - a, 1.0)
    return where(a < 1.0, geo, k + 1.0)


def spec_time_factor(d: Design):
    """TPOT / verify-step time: (1 + k draft_cost) / tokens per step (1 when k = 0)."""
    sv = d.serving
    return (1.0 + sv.spec_tokens * sv.draft_cost) / spec_tokens_per_step(d)


def is_offline(d: Design):
    """Offline or online: the engine's running batch comes from its KV budget and limits."""
    return d.serving.regime > 0.5


def is_online(d: Design):
    return (d.serving.regime > 1.5) & (d.serving.regime < 2.5)


def kv_tokens_per_request(d: Design):
    """KV tokens a request holds per layer: at its longest (static) or on average over its life
    and over the running requests (offline: length-biased by the output spread
    ``request.output_cv``); sliding-window layers keep at most their window (``ops.kv_held``). A paged cache
    (``serving.kv_block_size`` b > 1) holds whole blocks: the longest request ceil(t / b) b, and
    over a request's life the last block is half full on average, t + (b - 1) / 2."""
    r, b = d.request, d.serving.kv_block_size
    off = is_offline(d)
    # offline, the running requests are length-biased: one of O tokens runs O steps, so the time
    # average of its half-generated output is E[O^2] / (2 E[O]) = (1 + cv^2) O / 2 (prompt and output
    # lengths independent)
    held = kv_held(d.model, r.input_len + where(off, 0.5 * (1.0 + jnp.square(r.output_cv)), 1.0) * r.output_len)
    paged = where(off, held + 0.5 * (b - 1.0), relax.ceil(held / b) * b)
    return where(b > 1.0, paged, held)


def kv_fit(d: Design, weights, act, kv_per_token, tokens=None):
    """Requests whose KV cache fits a chip beside ``weights`` and ``act`` (bytes), each holding
    ``tokens`` (``kv_tokens_per_request`` when None) of ``kv_per_token`` bytes: a replica's (each
    request's KV is spread over the replica's chips), as ``running_batch``'s per-replica batch."""
    budget = memory.usable_capacity(d.dram) - weights - act
    per_req = kv_per_token * (kv_tokens_per_request(d) if tokens is None else tokens)   # its offline value where used
    return jnp.floor(jnp.maximum(budget, 0.0) / per_req)


def running_batch(d: Design, s, weights, act, kv_per_token, tokens=None, fit=None):
    """Offline: the steady-state running batch of the whole system (module docstring); static:
    ``request.batch``. ``weights`` / ``act`` are bytes per chip, ``kv_per_token`` the KV bytes
    per token of one request on one chip (all its layers on that chip); ``tokens``:
    ``kv_tokens_per_request`` when already computed; ``fit``: ``kv_fit`` when already computed."""
    r, sv = d.request, d.serving
    fit = kv_fit(d, weights, act, kv_per_token, tokens) if fit is None else fit
    tokens = jnp.floor(sv.max_num_batched_tokens * r.output_len / (r.input_len + r.output_len))
    b_rep = jnp.maximum(jnp.minimum(jnp.minimum(fit, sv.max_num_seqs), tokens), 1.0)
    n_rep = relax.ceil(sv.num_requests / s.dp_attn)          # a finite run: never more than its requests
    b_rep = where(sv.num_requests > 0, jnp.minimum(b_rep, jnp.maximum(n_rep, 1.0)), b_rep)
    return where(is_offline(d), b_rep * s.dp_attn, r.batch)


def chunk_prefill(lin_dec, rows_dec, lin_hi, attn_hi, rows_hi, tokens):
    """What ``tokens`` prompt tokens add to the decode steps they ride (chunked prefill, offline
    and online). A step that carries decode rows and prompt tokens together launches its
    kernels and reads its weights once, so the tokens add what their rows add to the step's
    KV-independent work (GEMMs, vector ops, collectives) plus their own attention. The first
    is the secant of that work from the decode step (``lin_dec`` at ``rows_dec`` rows per
    micro-batch) to a step of ``rows_hi`` prompt rows (``lin_hi``; its attention ``attn_hi``):
    each op's time is convex in its rows (the larger of a memory and a compute floor), so the
    secant is exact at ``rows_hi`` and an upper bound below it (session 20; before, a decode
    step plus a separate prefill, which counted the weight reads and launches twice).
    Re-reading the prefix KV for each chunk is not counted."""
    slope = jnp.maximum(lin_hi - lin_dec, 0.0) / jnp.maximum(rows_hi - rows_dec, 1.0)
    return tokens * (slope + attn_hi / rows_hi)


def offline_fill(d: Design, s, batch, tpot, tau_w, t_pre, step):
    """Offline with ``num_requests`` N > 0: the fraction of the steady rate ``batch / step``
    (``step``: the steady TPOT, decode steps carrying prefill chunks) that N equal requests get.
    Equal requests admitted together finish together, so they run in waves of B = batch /
    replicas, each prefilled before it decodes (nothing to ride); a wave of b requests takes
    T(b) = (b / B) t_pre + O (tau_w + k b) (prefill ``t_pre`` of a full wave, linear in the
    prompts; the decode step affine in the batch as in ``online``: k = (tpot - tau_w) / B),
    and the n = N / replicas requests of a replica take floor(n / B) T(B) + T(n mod B):
    fill = n O step / (B x that), at most 1. 1 for N = 0 (the steady state)."""
    finite = is_offline(d) & (d.serving.num_requests > 0)
    b = batch / s.dp_attn
    n = where(finite, d.serving.num_requests / s.dp_attn, b)   # N = 0: one whole wave (no 0/0 in gradients)
    o = d.request.output_len
    k = jnp.maximum(tpot - tau_w, 0.0) / b
    t_full = t_pre + o * tpot
    full = jnp.floor(n / b)
    rem = n - full * b
    t_rem = where(rem > 0, rem / b * t_pre + o * (tau_w + k * rem), 0.0)
    fill = n * o * step / (b * (full * t_full + t_rem))
    return where(finite, jnp.minimum(fill, 1.0), 1.0)


def offline_times(d: Design, s, batch, tpot, t_pre):
    """(TPOT, TTFT) of the offline steady state from the static decode step ``tpot`` at
    ``batch`` and the time ``t_pre`` that batch's prompts add to the steps (``chunk_prefill``)."""
    o = d.request.output_len
    step = tpot + t_pre / o
    b_rep = batch / s.dp_attn
    return step, jnp.maximum(1.0, o / b_rep) * step


def step_intercept(b_rep, tau_b, n_1, tau_1):
    """tau_w of the affine decode step tau(n) = tau_w + k n through (n_1, tau_1) (the light-load
    step) and (b_rep, tau_b) (the full-load one): tau_1 - k n_1, in [0, tau_b]."""
    k = jnp.maximum(tau_b - tau_1, 0.0) / jnp.maximum(b_rep - n_1, 1.0)
    return clip(tau_1 - k * n_1, 0.0, tau_b)
