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

``online`` (``serving.regime = 2``): Poisson arrivals at ``arrival_rate`` lambda requests/s
(MLPerf Server, vLLM ``--request-rate``), served by the same engine. A closed-form
queueing approximation, chosen over a simulated scheduler (``lax.scan`` over thousands of
engine steps) because it is exact in its limits, differentiable and costs a few scalar
operations per design inside ``jit(vmap(...))``:

* the decode step a request sees is affine in the running requests n per replica, itself
  included (arrivals see the time average, PASTA): tau(n) = tau_w + k min(n + 1, B), through
  the model's step at the engine's full batch B (``offline``'s running batch) and its step
  with one request per micro-batch and replica at the mean KV length (``evaluate``'s light-
  load stage variant: the same kernel launches, weight reads and per-request KV reads);
  ``step_intercept``;
* prefill of one prompt costs t_p (pipeline throughput): what its chunks add to the light-load
  decode steps they ride (``chunk_prefill``, the secant to a step of the whole token budget,
  ``evaluate``'s first stage variant in this regime); its load rho = lambda_r t_p
  (lambda_r = lambda / (dp ep) per replica) slows the decode steps, which run in the
  remaining 1 - rho of the time: TPOT = tau(n) / (1 - rho) (work-conserving: the same with
  chunked prefill, where the steps carry the prompts' chunks);
* chunked prefill through the token budget: each of the replica's mb micro-batch steps
  carries at most ``max_num_batched_tokens`` tokens, n / mb of them decode tokens, and a
  prompt advances ONE chunk per round, in one micro-batch (TensorRT-LLM's scheduler skips a
  request still in flight, ``trtGptModelInflightBatching.cpp`` ``forwardAsync``; vLLM's
  virtual engines keep a request on one), so a prompt of I tokens spans
  m(n) = max(1, mb I / (mb budget - n)) rounds and, its chunks passing the pp stages in turn,
  reaches its first token after T_p + m tau(n), T_p = pp t_p (t_p when mb > pp: the stages
  overlap; session 14);
* the prefill queue: the mb micro-batches are mb slots, each holding a prompt for
  s = T_p + m tau(n) (its compute plus the decode time of the rounds it spans); M/G/c with
  c = mb, rho_q = lambda_r s / mb and prompt lengths of coefficient of variation
  ``request.input_cv`` (``mgc_wait``: Sakasegawa's P(wait), Allen-Cunneen's (1 + cv^2) / 2;
  Pollaczek-Khinchine's W_q = rho_q s (1 + cv^2) / (2 (1 - rho_q)) at mb = 1);
  rho_q -> 1 exactly where the running batch reaches the offline token-budget cap;
* TTFT = T_p + m tau(n) + W_q + busy tau(n) / (2 (1 - rho)): before its prefill a request
  waits out the step in flight (steps of TPOT = tau / (1 - rho), arrivals uniform within one:
  half a step on average, 0.99 of one at the p99; session 11) unless the engine is idle,
  busy = 1 - e^(-n) (session 15); prompts that fit one step on one micro-batch are instead all
  prefilled in the step after they arrive (``queueing.gated_prefill``: the step in flight is
  length-biased and carries the prompts it gathers; within 2 % of a simulated engine,
  ``tests/test_serving_sim.py``), W_q then only the wait for the step's token room;
* running requests (prefilling or decoding; the queue holds no slot) from Little's law on
  the time from admission to the last token, n = lambda_r (T_p + tau(n) (m(n) + 1/(2 (1 -
  rho)) + O / (1 - rho))): linear in n for one-round prompts, a quadratic for chunked ones
  (its smaller root: the least fixed point), both in closed form; the reported
  ``running_batch`` is the number in the system, lambda (TTFT + O TPOT);
* pipeline parallelism (pp stages, mb micro-batches in flight): a prompt's chunk rides in one
  micro-batch and the pipeline cycles in max(the micro-batches' summed stage steps, pp x the
  slowest), so with a share f = rho_q of micro-batch steps carrying a chunk the decode steps
  stretch by 1 / (1 - rho max(1, pp (1 - (1 - f)^mb) / (mb f))) instead of 1 / (1 - rho)
  (2 - f times the prefill's share at pp = mb = 2; back to balanced as f -> 1; session 13),
  the running batch keeping the balanced solution;
* stable iff rho < 1 (with the pipeline stall), rho_q < 1 and n <= the admission cap, the
  engine's full-load batch per replica B (``offline``'s: KV budget, max_num_seqs, token
  budget), so the online engine saturates where the offline one does; else ``Reason.unstable``;
* p99: the number running is Poisson (requests are served in parallel, M/G/inf up to the
  cap), n_99 = n + 2.326 sqrt(n); a request's decode work O tau is preempted by the prefills
  arriving while it decodes (Poisson, each x = t_p x stall of decode time): completion time
  under preemptive-resume interruptions, sd(TPOT) = sqrt(lambda_r TPOT E[x^2] / O) / (1 - rho)
  (session 14, checked against a Monte-Carlo in ``tests/test_serving.py``); TPOT_99 = TPOT
  plus, in quadrature, tau(n_99) / (1 - rho) - TPOT and 2.326 sd(TPOT) (output lengths taken
  equal: their spread would widen it); TTFT_99 = TTFT plus, in quadrature, the excesses of
  three independent parts over their means: the wait (M/G/1's Cramer-Lundberg tail with
  gamma-distributed service; for mb slots a delayed prompt waits as with one mb-times-faster
  slot, Nozaki-Ross; ``mgc_wait_p99``, session 14), the prompt's own
  prefill at a p99-long prompt (1 + 2.326 cv times the mean) and the p99 running batch, and
  the residual of the step in flight (0.99 of a step).

Speculative decoding (every regime; ``serving.spec_tokens`` k > 0): each decode step
verifies 1 + k tokens per request (the model's decode step with q_len = 1 + k: GEMMs on
(1 + k) x more rows, attention over the same KV cache), preceded by k draft steps of
``draft_cost`` x the step time each; with i.i.d. acceptance a a request gains
E = (1 - a^(k+1)) / (1 - a) tokens per step, so TPOT = step x (1 + k draft_cost) / E.
The draft model's weights and KV cache are not counted (MTP heads: ~one layer).

Engine limits (``engine_limits``, ``resolve_limits``): ``limits.py`` (re-exported here).

``goodput_requests_per_s`` (every regime): the largest lambda whose p99 TTFT and TPOT meet
``serving.ttft_slo`` / ``tpot_slo`` (bisection over lambda of the formulas above).
Not modelled: bursts beyond Poisson, the spread of output lengths (and of prompt lengths
outside the online prefill queue and p99 TTFT), preemption, prefix caching.
"""


import jax
import jax.numpy as jnp

from ..physics import memory, relax
from ..physics.lean import clip, where
from ..types.design import Design
from .limits import TRT_KV_FRACTION, engine_limits, resolve_limits, trt_round_batch, trt_round_tokens
from .ops import kv_held
from .queueing import SATURATED, TINY, Z99, gated_prefill, md1_wait, mg1_wait, mgc_wait, mgc_wait_p99

__all__ = ["engine_limits", "resolve_limits", "admission", "trt_round_batch", "trt_round_tokens", "TRT_KV_FRACTION",
           "spec_tokens_per_step", "spec_time_factor", "is_offline", "is_online", "kv_tokens_per_request",
           "running_batch", "offline_times", "offline_fill", "chunk_prefill", "step_intercept", "mg1_wait", "md1_wait",
           "online", "goodput", "prompt_rounds", "own_prefill", "preemption_sd", "Z99"]

GOODPUT_HALVINGS = 32      # float32 keeps 24 bits: full precision down to 2^-8 of the prefill-saturation rate


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


def running_batch(d: Design, s, weights, act, kv_per_token, tokens=None):
    """Offline: the steady-state running batch of the whole system (module docstring); static:
    ``request.batch``. ``weights`` / ``act`` are bytes per chip, ``kv_per_token`` the KV bytes
    per token of one request on one chip (all its layers on that chip); ``tokens``:
    ``kv_tokens_per_request`` when already computed."""
    r, sv = d.request, d.serving
    budget = memory.usable_capacity(d.dram) - weights - act
    per_req = kv_per_token * (kv_tokens_per_request(d) if tokens is None else tokens)   # its offline value where used
    fit = jnp.floor(jnp.maximum(budget, 0.0) / per_req)
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


def admission(d: Design, b_rep, tau_b, tau_w):
    """(admission cap, decode-step slope k) of ``online``: load-independent, so the goodput
    bisection computes them once, outside its loop. The cap is the engine's full-load batch
    (KV budget, max_num_seqs, token budget): the online engine saturates where the offline one
    does and never holds more than its KV fits."""
    return jnp.minimum(d.serving.max_num_seqs, b_rep), jnp.maximum(tau_b - tau_w, 0.0) / b_rep


def prompt_rounds(s, budget, n, prompt):
    """The rounds a prompt's chunks span: one chunk per round, in ONE micro-batch, of what the
    replica's round ``budget`` leaves beside the n decode tokens (session 14)."""
    return s.mb * prompt / jnp.maximum(budget - n, 1.0)


def own_prefill(s, t_p):
    """T_p, a prompt's own prefill time: its chunks pass every pipeline stage in turn (t_p when
    mb > pp: the stages overlap)."""
    return t_p * where(s.mb > s.pp, 1.0, s.pp)


def preemption_sd(lam, tpot, cv2, o, x, out_cv=0.0):
    """sd of a request's TPOT when prefills arriving at ``lam`` (prompt spread cv2) each take a
    share ``x`` of decode time from its O steps (preemptive-resume, session 14). Its variance goes
    as 1 / O: over output lengths of spread ``out_cv`` (gamma) it is E[1 / O] = 1 / (O (1 - cv^2))
    (session 16)."""
    return jnp.sqrt(lam * tpot * (1.0 + cv2) / (o * (1.0 - jnp.square(out_cv)))) * x


def online(d: Design, s, lam, b_rep, tau_b, tau_w, t_p, adm=None):
    """Online steady state at arrival rate ``lam`` (module docstring): (requests in the system
    per replica, TTFT, TPOT, TTFT_99, TPOT_99, stable); ``adm``: ``admission``'s values when
    already computed."""
    cap, k = admission(d, b_rep, tau_b, tau_w) if adm is None else adm
    o, i_len = d.request.output_len, d.request.input_len
    lam_r = lam / s.dp_attn
    rho = lam_r * t_p
    free = jnp.maximum(1.0 - rho, SATURATED)        # values stay finite past saturation; ``stable`` says so
    res = 0.5 / free                                 # residual of the step in flight, in steps tau
    budget = s.mb * d.serving.max_num_batched_tokens  # tokens a replica's round may carry

    def share(n, prompt=i_len):
        return prompt_rounds(s, budget, n, prompt)

    def tau(n):
        """The step a request sees: the others of n in the system and itself (arrivals see the
        time average, PASTA), at most the engine's full batch."""
        return tau_w + k * jnp.minimum(n + 1.0, cap)

    # running requests (prefilling or decoding; the queue holds no slot), Little's law on the
    # time from admission to the last token, n = lam_r (T_p + (a + k n) (m(n) + c')), a = tau_w + k,
    # c' = res + O / free: linear in n for one-round prompts (m = 1); for chunked ones
    # (m = mb I / (budget - n)) a quadratic, whose smaller root is the least fixed point
    t_own = own_prefill(s, t_p)
    i_mb = s.mb * i_len
    a, c1 = tau_w + k, res + o / free
    den = 1.0 - lam_r * (1.0 + c1) * k
    n0 = lam_r * (t_own + (1.0 + c1) * a) / where(den > 0.0, den, 1.0)   # safe: no inf in the unused branch
    qa = 1.0 - lam_r * c1 * k
    qb = lam_r * (i_mb * k + c1 * k * budget - t_own - c1 * a) - budget
    qc = lam_r * (t_own * budget + i_mb * a + c1 * a * budget)
    disc = qb * qb - 4.0 * qa * qc
    q = -qb + jnp.sqrt(jnp.maximum(disc, 0.0))
    n1 = 2.0 * qc / where(q > 0.0, q, 1.0)                 # = (-qb - sqrt(disc)) / (2 qa), cancellation-free
    chunked = budget - n0 < i_mb                            # the one-round solution would not fit one round
    # (a root below budget - I would lie where prompts fit one round: then f(n) > n on the whole
    # chunked range, no fixed point, unstable)
    ok = where(chunked, (disc >= 0.0) & (qa > 0.0) & (q > 0.0) & (n1 >= budget - i_mb), den > 0.0)
    n_free = where(ok, where(chunked, n1, n0), 2.0 * cap)
    n = jnp.minimum(n_free, cap)                     # an unstable engine runs at its cap
    tau_n, m_n = tau(n), share(n)
    own = t_own + tau_n * jnp.maximum(m_n, 1.0)      # a prompt's own prefill, to its first token
    # the prefill queue: mb slots (a prompt's chunks ride one micro-batch), each held for the
    # prompt's own prefill; prompt lengths of spread cv: M/G/c (``mgc_wait``)
    cv2 = jnp.square(d.request.input_cv)
    # short prompts on one micro-batch (a prompt fits one step): every prompt that arrives during
    # a step is prefilled in the next (``gated_prefill``, session 15); the queue is then only for
    # the step's token room, each prompt holding m of a mean step (load lam m E[S] < 1 exactly
    # where lam (t_p + m tau) < 1); longer prompts (chunked) and pipelines: one prompt per slot
    gated = (s.mb < 1.5) & (m_n <= 1.0)
    svc = where(gated, m_n * tau_n / free, t_own + tau_n * m_n)
    wq, p_wait, rho_q = mgc_wait(lam_r, svc, s.mb, cv2, SATURATED)
    # pipeline parallelism: a prompt's chunk rides in ONE micro-batch, and a pipeline of pp
    # stages cycles its mb micro-batches in max(their sum, pp x the slowest) stage steps, so
    # unevenly spread chunks stall the others: with a share f = rho_q of micro-batch steps
    # carrying a chunk, the prefill's part of a cycle grows from mb f to at most
    # pp (1 - (1 - f)^mb) chunk times (none at pp = 1; -> balanced as f -> 1, where every
    # micro-batch carries one, as offline). The running batch keeps the balanced solution
    # above; the decode steps stretch by the stalled share (session 13)
    f_chunk = clip(rho_q, 1e-6, 1.0)
    # 1 - (1 - f)^mb as -expm1(mb log1p(-f)): exact in float32 however small f is
    stall = jnp.maximum(s.pp * -jnp.expm1(s.mb * jnp.log1p(-jnp.minimum(f_chunk, 1.0 - 1e-7))) / (s.mb * f_chunk),
                        1.0)
    free_s = jnp.maximum(1.0 - rho * stall, SATURATED)      # the decode steps' share, stalled
    # a step is in flight when a request arrives unless the engine is idle: P(busy) = 1 - e^(-n), the
    # number running Poisson (as for the p99 below); an idle engine starts the prompt's step at once
    busy = -jnp.expm1(-n)
    res_s = 0.5 * busy / free_s
    stable = (rho * stall < 1.0) & (rho_q < 1.0) & ok & (n_free <= cap) & (budget > n)
    n99 = jnp.minimum(n + Z99 * jnp.sqrt(jnp.maximum(n, 1e-12)), cap)
    tau99 = tau(n99)
    g_mean, g_99 = gated_prefill(lam_r, tau_n, t_p, cv2, Z99, busy)
    ttft, tpot = where(gated, g_mean, own + tau_n * res_s) + wq, tau_n / free_s
    # p99: the wait's tail (``mgc_wait_p99``: M/G/1's Cramer-Lundberg tail, for mb slots with one
    # mb-times-faster server), a p99-long prompt (1 + 2.326 cv times the mean) at the p99 running batch, the
    # residual's 99th percentile (0.99 of a step); the three independent excesses over their
    # means combine in quadrature
    w99 = mgc_wait_p99(lam_r, svc, cv2, s.mb, p_wait)
    q99 = 1.0 + Z99 * d.request.input_cv
    own99 = t_own * q99 + tau99 * jnp.maximum(share(n99, i_len * q99), 1.0)
    spread = where(gated, jnp.square(g_99 - g_mean) + jnp.square(tau99 - tau_n),
                   jnp.square(own99 - own) + jnp.square(1.98 * res_s * tau99 - res_s * tau_n))
    ttft99 = ttft + jnp.sqrt(spread + jnp.square(jnp.maximum(w99 - wq, 0.0)))
    n_sys = lam_r * (ttft + o * tpot)                # Little's law: queued and running
    # a request's TPOT is its decode work O tau preempted by the prefills that arrive while it
    # decodes (Poisson, lam_r, each x = t_p x stall of decode time, second moment x^2 (1 + cv^2)):
    # completion time under preemptive-resume interruptions, var = O tau lam_r E[x^2] / (1 - rho)^3,
    # so sd(TPOT) = sqrt(lam_r TPOT E[x^2] / O) / (1 - rho); in quadrature with the running batch's
    tpot_sd = preemption_sd(lam_r, tpot, cv2, o, t_p * stall / free_s, d.request.output_cv)
    tpot99 = tpot + jnp.sqrt(jnp.square(tau99 / free_s - tpot) + jnp.square(Z99 * tpot_sd))
    return n_sys, ttft, tpot, jnp.maximum(ttft99, ttft), tpot99, stable


def goodput(d: Design, s, b_rep, tau_b, tau_w, t_p, adm=None):
    """(largest arrival rate (requests/s) whose p99 TTFT / TPOT meet the design's SLOs, 0 if
    none; ``online``'s values at ``serving.arrival_rate``). The bisection and the evaluation at
    the design's own rate share one trace of ``online``: step 0 of the loop evaluates the
    design's rate and keeps its values, steps 1.. bisect."""
    sv = d.serving
    adm = admission(d, b_rep, tau_b, tau_w) if adm is None else adm
    hi = s.dp_attn / jnp.maximum(t_p, TINY)            # prefill saturates here (rho = 1)

    def halve(i, carry):
        # the bracket [lo, lo + w_i] halves every step whatever the test says, so its width is
        # hi 2^-i and the carry is lo (and the values at the design's rate, from step 0)
        lo, kept = carry
        mid = lo + hi * jnp.exp2(-i.astype(hi.dtype))
        first = i == 0
        out = online(d, s, where(first, sv.arrival_rate, mid), b_rep, tau_b, tau_w, t_p, adm)
        ok = out[5] & (out[3] <= sv.ttft_slo) & (out[4] <= sv.tpot_slo) & ~first
        return where(ok, mid, lo), tuple(where(first, x, y) for x, y in zip(out, kept, strict=True))

    zero = jnp.zeros_like(hi)
    init = (zero, (zero, zero, zero, zero, zero, jnp.zeros(hi.shape, bool)))
    lo, at_rate = jax.lax.fori_loop(0, GOODPUT_HALVINGS + 1, halve, init)
    return lo, at_rate                                  # lo only ever moves to a rate that met both limits
