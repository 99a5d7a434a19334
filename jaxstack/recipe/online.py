"""L3: the ``online`` serving regime (``serving.regime = 2``; ``serving.py`` has the others):
Poisson arrivals at ``arrival_rate`` lambda requests/s (MLPerf Server, vLLM ``--request-rate``),
served by the same engine. A closed-form queueing approximation, chosen over a simulated
scheduler (``lax.scan`` over thousands of engine steps) because it is exact in its limits,
differentiable and costs a few scalar operations per design inside ``jit(vmap(...))``:

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
* the running count drifts (session 21): each request's lifetime O tau(n) / (1 - rho) grows with
  the count and feeds back on it (gain g = lambda_r O k / (1 - rho) over a lifetime), and the
  prompts that arrive in one step lengthen the next, so n swings far wider than Poisson's
  sqrt(n): variance z n, z = (1 + rho^2 cv^2) / ((1 - rho)^2 (1 - g)) (``count_peakedness``: a
  moving sum over a lifetime fed back through the step, Ornstein-Uhlenbeck at the low
  frequencies that carry it; 2.2-46 at the MLPerf Server rows, 8-15 % below a simulated engine).
  It drifts over minutes while the prefill queue settles in seconds, so the queue's wait is its
  mean over the count's strata (8 equal-probability strata of a normal, each at its median,
  ``strata``) of the M/G/c wait at each count, and its p99 that of their mixture
  (``mixture_p99``). Near saturation the queue's load at the highest strata reaches 1, where
  it cannot settle before the count moves: strata stop (and the mass above piles up) where the
  load reaches 1 - eps, eps = WINDOW sqrt(s (1 + cv^2) / (mb T)) the work's relative spread
  over the count's relaxation time T = O TPOT / (1 - g), WINDOW = 2.0 fitted against the
  simulated engine (4 engines x 7 loads, 0.90-0.99 of capacity; not against measurements),
  and at most the count's ceiling (``admission``: KV fit, max_num_seqs). Against that engine
  (``tests/test_serving_sim.py``) on those 28 points, mean / p99 TTFT 13.7 / 31.8 -> 10.1 /
  19.1 % mean absolute error (3.4 / 11.8 % on the three MLPerf-like engines; the fourth, at
  prefill load 0.75, is off in TPOT too), p99 TPOT 11.6 -> 3.6 %;
* p99: n_99 = n + 2.326 sqrt(z n) (at most the cap); a request's decode work O tau is preempted by the prefills
  arriving while it decodes (Poisson, each x = t_p x stall of decode time): completion time
  under preemptive-resume interruptions, sd(TPOT) = sqrt(lambda_r TPOT E[x^2] / O) / (1 - rho)
  (session 14, checked against a Monte-Carlo in ``tests/test_serving.py``); TPOT_99 = TPOT
  plus, in quadrature, tau(n_99) / (1 - rho) - TPOT and 2.326 sd(TPOT) (output lengths taken
  equal: their spread would widen it); TTFT_99 = TTFT plus, in quadrature, the excesses of
  three independent parts over their means: the wait (M/G/1's Cramer-Lundberg tail with
  gamma-distributed service; for mb slots a delayed prompt waits as with one mb-times-faster
  slot, Nozaki-Ross; ``mgc_wait_p99``, session 14; mixed over the count's strata), the prompt's own
  prefill at a p99-long prompt (1 + 2.326 cv times the mean) and the p99 running batch, and
  the residual of the step in flight (0.99 of a step).
"""

import jax
import jax.numpy as jnp

from ..physics.lean import clip, where
from ..types.design import Design
from .queueing import (
    SATURATED,
    TINY,
    WINDOW,
    Z99,
    count_peakedness,
    gated_prefill,
    mgc_delay,
    mgc_wait,
    mgc_wait_p99,
    mixture_p99,
    strata,
)

__all__ = ["admission", "prompt_rounds", "own_prefill", "preemption_sd", "online", "goodput", "GOODPUT_HALVINGS"]

# bisection steps of ``goodput``: its bracket shrinks to 2^-20 of the prefill-saturation rate, 0.1 % of a
# goodput a thousandth of that rate (32 steps before session 21, whose strata made each step 2x dearer)
GOODPUT_HALVINGS = 20


def admission(d: Design, b_rep, tau_b, tau_w, ceiling=None):
    """(admission cap, decode-step slope k, the running count's ceiling) of ``online``: load-
    independent, so the goodput bisection computes them once, outside its loop. The cap is the
    engine's full-load batch (KV budget, max_num_seqs, token budget): the online engine saturates
    where the offline one does and never holds more than its KV fits. ``ceiling`` (default: the cap)
    bounds the running count's swings (its KV fit and max_num_seqs: the token budget has its own
    bound there)."""
    cap = jnp.minimum(d.serving.max_num_seqs, b_rep)
    return cap, jnp.maximum(tau_b - tau_w, 0.0) / b_rep, cap if ceiling is None else jnp.maximum(ceiling, cap)


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
    cap, k, ceiling = admission(d, b_rep, tau_b, tau_w) if adm is None else adm
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
    wq0, p0, rho_q = mgc_wait(lam_r, svc, s.mb, cv2, SATURATED)     # the queue at the mean count
    # the running count drifts slowly (sd sqrt(z n), ``count_peakedness``) and the queue's load
    # with it: the wait is the mean over the count's strata of the wait at each (module docstring).
    # The queue's service at n running is t_a + p tau(n) / (budget - n); strata stop where its load
    # reaches 1 - eps (the critical window: WINDOW standard deviations of the work it receives over
    # the count's relaxation time, a lifetime over 1 - g) and at the count's ceiling, never below n
    t_a, p_svc = where(gated, 0.0, t_own), i_mb * where(gated, 1.0 / free, 1.0)
    g_fb = lam_r * o * k / free
    sd_n = jnp.sqrt(n * count_peakedness(rho, g_fb, cv2))
    eps = WINDOW * jnp.sqrt(svc * (1.0 + cv2) * jnp.maximum(1.0 - g_fb, SATURATED) / (s.mb * o * tau_n / free))
    room = s.mb * (1.0 - eps) / lam_r - t_a                  # load 1 - eps: room (budget - n) = p tau(n)
    n_c = (room * budget - p_svc * (tau_w + k)) / jnp.maximum(room + p_svc * k, TINY)
    nj = strata(n, sd_n, jnp.maximum(jnp.minimum(n_c, ceiling), n))

    def e(x):
        return jnp.expand_dims(x, -1)

    svc_j = e(t_a) + e(p_svc) * (e(tau_w) + e(k) * jnp.minimum(nj + 1.0, e(cap))) / jnp.maximum(e(budget) - nj, 1.0)
    p_j, delayed_j, _ = mgc_delay(e(lam_r), svc_j, e(s.mb), e(cv2), SATURATED)
    wq = jnp.mean(p_j * delayed_j, -1)
    # each stratum's wait, when it waits, exponential with the mean-field queue's tail: the
    # Cramer-Lundberg p99 (``mgc_wait_p99``, one Newton loop) over the exponential's of the same mean
    lift = where(p0 > 0.0101, mgc_wait_p99(lam_r, svc, cv2, s.mb, p0) * p0
                 / jnp.maximum(wq0 * jnp.log(jnp.maximum(100.0 * p0, 1.0101)), TINY), 1.0)
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
    # number running Poisson at the light loads where it matters; an idle engine starts the step at once
    busy = -jnp.expm1(-n)
    res_s = 0.5 * busy / free_s
    stable = (rho * stall < 1.0) & (rho_q < 1.0) & ok & (n_free <= cap) & (budget > n)
    n99 = jnp.minimum(n + Z99 * sd_n, cap)
    tau99 = tau(n99)
    g_mean, g_99 = gated_prefill(lam_r, tau_n, t_p, cv2, Z99, busy)
    ttft, tpot = where(gated, g_mean, own + tau_n * res_s) + wq, tau_n / free_s
    # p99: the wait's tail (``mgc_wait_p99``: M/G/1's Cramer-Lundberg tail, for mb slots with one
    # mb-times-faster server; mixed over the count's strata), a p99-long prompt (1 + 2.326 cv
    # times the mean) at the p99 running batch, the residual's 99th percentile (0.99 of a step);
    # the three independent excesses over their means combine in quadrature
    w99 = mixture_p99(p_j, e(lift) * delayed_j)
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
