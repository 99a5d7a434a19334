"""L3: the ``concurrency`` serving regime: a closed loop of C clients (``serving.regime = 3``).

``vllm bench serve --max-concurrency C``, ``trtllm-bench --concurrency C``, genai-perf's
concurrency mode: C clients each send a request, wait for its last token and send the next at
once (no think time), so exactly C requests are in the system. Per replica (``dp * ep``
attention replicas) C_r = C / replicas; the engine runs n = min(C_r, B) of them (B its full-
load batch, ``online``'s admission cap: KV budget, max_num_seqs, token budget) and the rest
wait for a slot. With ``online``'s affine decode step, chunked prompts and prefill load
(``serving.py``), and X_r the completion rate per replica:

* a request sees the n - 1 others and itself: tau = tau_w + k n (the arrival theorem of closed
  networks, where ``online``'s Poisson arrivals see the time average, PASTA);
* its prompt spans m = max(1, mb I / (mb budget - n)) rounds, reaching its first token after
  a = T_p + m tau, then O decode steps stretched by the OTHERS' prefills, rho = X_r t_p', t_p' =
  t_p (n - 1) / n: TPOT = tau / (1 - rho), TTFT = a + h tau / (2 (1 - rho)) (half the step in
  flight, h = min(n - 1, 1): a lone client finds the engine idle);
* Little's law on the n running, n = X_r (TTFT + O TPOT), is a quadratic in X_r,
  a t_p' X^2 - (a + b + n t_p') X + n = 0 with b = tau (O + h / 2), whose smaller root (rho < 1)
  is the steady state; it always exists (the discriminant is at least (a - n t_p')^2); at
  C = 1 it is X = 1 / (a + O tau);
* the C_r - n waiting hold no slot: they add (C_r - n) / X_r to TTFT (Little's law on the
  wait), so X_r (TTFT + O TPOT) = C_r;
* p99: TPOT's spread from the prefills preempting a request (``online``'s, session 14); TTFT's
  from a p99-long prompt and the residual step in flight, in quadrature (the number running is
  fixed, so neither varies with it).
Outputs tokens/s = X_r O replicas; every request is admitted, so the loop is always stable.
Not modelled: the pipeline stall of unevenly spread chunks (``online``'s pp > 1 term).
"""

import jax.numpy as jnp

from ..types.design import Design
from .serving import Z99, own_prefill, preemption_sd, prompt_rounds

__all__ = ["closed", "is_closed"]


def is_closed(d: Design):
    """The ``concurrency`` regime (``serving.regime = 3``)."""
    return d.serving.regime > 2.5


def closed(d: Design, s, cap, k, tau_w, t_p):
    """Closed-loop steady state at ``serving.concurrency`` (module docstring): (requests running
    per replica, completion rate per replica, TTFT, TPOT, TTFT_99, TPOT_99). ``cap``, ``k``:
    ``serving.admission``'s full-load batch and decode-step slope."""
    o, i_len = d.request.output_len, d.request.input_len
    c_r = d.serving.concurrency / s.dp_attn
    n = jnp.minimum(c_r, cap)
    tau = tau_w + k * n
    budget = s.mb * d.serving.max_num_batched_tokens

    def rounds(prompt):
        return jnp.maximum(prompt_rounds(s, budget, n, prompt), 1.0)

    t_own = own_prefill(s, t_p)
    others = jnp.maximum(n - 1.0, 0.0)
    t_o = t_p * others / n                          # the others' prefill per completion
    h = jnp.minimum(others, 1.0)                    # a step in flight when a request arrives
    a = t_own + tau * rounds(i_len)
    b = tau * (o + 0.5 * h)
    q = a + b + n * t_o
    x = 2.0 * n / (q + jnp.sqrt(jnp.maximum(q * q - 4.0 * a * t_o * n, 0.0)))   # smaller root, no cancellation
    free = 1.0 - x * t_o
    res = 0.5 * h / free
    tpot = tau / free
    wait = (c_r - n) / x
    ttft = a + tau * res + wait
    q99 = 1.0 + Z99 * d.request.input_cv
    own99 = t_own * q99 + tau * rounds(i_len * q99)
    ttft99 = ttft + jnp.sqrt(jnp.square(own99 - a) + jnp.square(0.98 * res * tau))
    cv2 = jnp.square(d.request.input_cv)
    tpot99 = tpot + Z99 * preemption_sd(x * others / n, tpot, cv2, o, t_p / free, d.request.output_cv)
    return n, x, ttft, tpot, ttft99, tpot99
