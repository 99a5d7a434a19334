"""L3: closed-form queueing formulas of the ``online`` serving regime (``serving.py``).

Poisson arrivals; M/G/1 (Pollaczek-Khinchine mean, Cramer-Lundberg tail) and M/G/c
(Sakasegawa's probability of waiting with Allen-Cunneen's variability factor; a delayed
customer's wait as in M/G/1 with one c-times-faster server); short prompts batched into the
next engine step (``gated_prefill``, session 15); the running count's spread and the queue's
wait mixed over its strata (``count_peakedness``, ``strata``, ``mixture_p99``, session 21). Each is
a few scalar operations (the tails short Newton loops) inside ``jit(vmap(...))``.
"""

from statistics import NormalDist

import jax
import jax.numpy as jnp
import numpy as np

from ..physics.lean import clip, where

__all__ = ["mgc_wait", "mgc_delay", "mg1_wait", "mgc_wait_p99", "mg1_wait_p99", "md1_wait", "gated_prefill",
           "gamma_quantiles", "count_peakedness", "strata", "mixture_p99", "TINY", "SATURATED", "Z50", "Z90", "Z99",
           "STRATA", "WINDOW", "MIXTURE_NEWTON"]

TINY = 1e-30
SATURATED = 1e-3           # floor of 1 - rho in the formulas (beyond it the point is unstable anyway)
Z50, Z90, Z99 = 0.0, 1.2816, 2.326   # standard normal 50th, 90th and 99th percentiles
# the slowly varying running count as STRATA equal-probability strata of a normal, each at its median
# (``strata``): of 4 / 6 / 8 / 12, each with its best WINDOW, 8 came closest to the simulated engine's
# p99 TTFT on its 28 near-capacity points (19.1 % against 20.2 - 22.0 %; mean TTFT 10.1 - 10.5 % alike)
STRATA = 8
_STRATA_Z = np.array([NormalDist().inv_cdf((j + 0.5) / STRATA) for j in range(STRATA)], np.float32)
# the critical window of ``strata``, in standard deviations of the work a queue receives while the count
# stays put: the one constant of the running count's spread, fitted against the simulated engine
# (``tests/scheduler_sim.py``, 4 engines x 7 loads, 0.90 - 0.99 of capacity; session 21), not measurements
WINDOW = 2.0
MIXTURE_NEWTON = 2      # Newton steps of ``mixture_p99``: within 0.07 % of the root on 3,000 random mixtures


def mgc_delay(lam, t, c=1.0, cv2=0.0, floor=TINY):
    """(probability of waiting, mean wait of a customer who waits, load rho) of M/G/c: Poisson
    arrivals lam, c servers, service of mean t and squared coefficient of variation cv2, load
    rho = lam t / c (1 - rho at least ``floor``). P(wait) = rho^(sqrt(2 (c + 1)) - 1) (Sakasegawa
    1977, Ann. Inst. Stat. Math. 29: above Erlang C's by 1.8 / 10 % at rho 0.8 / 0.5 for c = 2), a
    delayed customer's wait t / (c (1 - rho)) x (1 + cv2) / 2 (Allen-Cunneen)."""
    rho = lam * t / c
    p_wait = jnp.power(jnp.maximum(rho, TINY), jnp.sqrt(2.0 * c + 2.0) - 1.0)
    return p_wait, t * (1.0 + cv2) / (2.0 * c * jnp.maximum(1.0 - rho, floor)), rho


def mgc_wait(lam, t, c=1.0, cv2=0.0, floor=TINY):
    """(mean wait in queue, probability of waiting, load rho) of M/G/c (``mgc_delay``): P(wait) times
    a delayed customer's wait; exactly Pollaczek-Khinchine's rho t (1 + cv2) / (2 (1 - rho)) at c = 1."""
    p_wait, delayed, rho = mgc_delay(lam, t, c, cv2, floor)
    return p_wait * delayed, p_wait, rho


def mg1_wait(lam, t, cv2=0.0, floor=TINY):
    """Mean wait in queue of M/G/1 (Pollaczek-Khinchine): ``mgc_wait`` at c = 1."""
    return mgc_wait(lam, t, 1.0, cv2, floor)[0]


def mgc_wait_p99(lam, t, cv2, c=1.0, p_wait=None):
    """99th percentile of the M/G/c wait (Poisson arrivals lam, c servers, gamma-distributed
    service of mean t and squared coefficient of variation cv2; ``p_wait`` its probability of
    waiting, ``mgc_wait``'s, which at c = 1 is rho). A delayed customer waits as in M/G/1 with
    one c-times-faster server (Nozaki and Ross 1978; exact for M/M/c), whose wait has the
    Cramer-Lundberg tail P(W > w) ~ C exp(-theta w): theta the positive root of
    lam (E[e^(theta S / c)] - 1) = theta, C = (1 - rho) / (lam E[(S / c) e^(theta S / c)] - 1),
    P(W > 0) = rho. So P(W > w) ~ p_wait (C / rho) exp(-theta w) and the p99 is
    max(0, ln(100 p_wait C / rho) / theta) (M/M/1: theta = 1/t - lam, C = rho; session 14: the
    exponential tail with the mean's rate, ln(100 p_wait) W_q / p_wait, overstated it by 2-17 %
    on one server and 11 % on two, against simulations in ``tests/test_serving.py``). In
    u = theta t / (c k), k = 1 / cv2, the root of -k ln(1 - u) = ln(1 + k u / rho) by Newton
    from the right (convex: monotone), started at twice Kingman's heavy-traffic root where that
    lies right of it: 6 steps reach float32 precision for rho in 1e-3 .. 1 - 1e-4, cv 0 .. 3."""
    t = t / c
    rho = clip(lam * t, 1e-6, 1.0 - SATURATED)
    k = 1.0 / jnp.maximum(cv2, 1e-4)
    kr = k / rho

    def h(u):
        return -k * jnp.log1p(-u) - jnp.log1p(kr * u)

    u_right = jnp.minimum(-jnp.expm1(-jnp.log1p(kr) / k), 1.0 - 1e-6)
    u_k = 4.0 * (1.0 - rho) / (k * (1.0 + cv2))                  # twice Kingman's root
    u0 = where((u_k < u_right) & (h(u_k) >= 0.0), u_k, u_right)

    def newton(_, u):
        return clip(u - h(u) / (k / (1.0 - u) - kr / (1.0 + kr * u)), 1e-12, 1.0 - 1e-6)

    u = jax.lax.fori_loop(0, 6, newton, u0)
    tail = (1.0 - rho) / jnp.maximum(rho * jnp.exp(-(k + 1.0) * jnp.log1p(-u)) - 1.0, TINY)
    if p_wait is not None:
        tail = tail * p_wait / rho
    return jnp.maximum(jnp.log(jnp.maximum(100.0 * tail, TINY)), 0.0) * t / (k * u)


def mg1_wait_p99(lam, t, cv2):
    """99th percentile of the M/G/1 wait: ``mgc_wait_p99`` at c = 1."""
    return mgc_wait_p99(lam, t, cv2)


def md1_wait(lam, t):
    """Mean wait in queue of M/D/1 (deterministic service t): ``mg1_wait`` with cv = 0."""
    return mg1_wait(lam, t)


def gated_prefill(lam, tau, c, cv2, z, busy=1.0):
    """(mean, z-quantile) of the time from a short prompt's arrival to the end of the engine
    step that prefills it, when every prompt that arrives during a step is prefilled in the
    next one (prompts that fit one step's token budget; session 15). Steps S = tau + the prefill
    of the A prompts that arrived during the previous step, A ~ Poisson(lam S), each c of
    squared coefficient of variation cv2 (gamma): rho = lam c, E[S] = tau / (1 - rho) and, from
    the compound-Poisson moments, E[S^2] (1 - rho^2) = tau^2 + (2 tau rho + lam E[c^2]) E[S],
    E[S^3] (1 - rho^3) = tau^3 + 3 tau^2 rho E[S] + 3 tau (lam E[c^2] E[S] + rho^2 E[S^2])
    + lam E[c^3] E[S] + 3 lam rho E[c^2] E[S^2]. A prompt arrives in a length-biased step x (mean
    E[S^2] / E[S]) at a uniform point and is prefilled in the next step with the others that
    arrived during x: T = U x + tau + c_own + c Poisson(lam x), so E[T] = tau + c + (1/2 + rho)
    E[S^2] / E[S] (half a MEAN step and one prompt at a time before: 19 % low at rho 0.55 against
    ``tests/scheduler_sim.py``, now within 2 %), Var[T] = E_x[x^2 / 12 + lam E[c^2] x] + c^2 cv2 +
    (1/2 + rho)^2 Var_x(x); the quantile from a shifted gamma of that mean, variance and skewness
    (Wilson-Hilferty; session 16), the third moment from E[S^4] of the same recursion and the raw
    moments of the wait W = U x + the prompts x gathers, E[W^3 | x] = (1/4 + rho + 3/2 rho^2 +
    rho^3) x^3 + (3/2 + 3 rho) lam E[c^2] x^2 + lam E[c^3] x (a gamma of the mean and variance alone
    was up to 20 % low at the p99: the wait mixes decode-only steps with steps that carry prompts).
    ``busy``: the probability that a step is in flight when the prompt arrives (an idle engine
    starts its step at once: T = tau + c_own)."""
    rho = lam * c
    a2 = lam * c * c * (1.0 + cv2)                    # lam E[c^j], gamma prompt costs
    a3 = a2 * c * (1.0 + 2.0 * cv2)
    a4 = a3 * c * (1.0 + 3.0 * cv2)
    free = jnp.maximum(1.0 - rho, SATURATED)
    t2 = tau * tau
    r2 = rho * rho
    m1 = tau / free
    m2 = (t2 + (2.0 * tau * rho + a2) * m1) / (free * (1.0 + rho))
    m3 = (t2 * tau + 3.0 * t2 * rho * m1 + 3.0 * tau * (a2 * m1 + r2 * m2) + a3 * m1
          + 3.0 * rho * a2 * m2) / (free * (1.0 + rho + r2))
    m4 = (t2 * t2 + 4.0 * t2 * tau * rho * m1 + 6.0 * t2 * (a2 * m1 + r2 * m2)
          + 4.0 * tau * (a3 * m1 + 3.0 * a2 * rho * m2 + r2 * rho * m3) + a4 * m1
          + (4.0 * a3 * rho + 3.0 * a2 * a2) * m2 + 6.0 * a2 * r2 * m3) / (free * (1.0 + rho) * (1.0 + r2))
    lb1, lb2, lb3 = m2 / m1, m3 / m1, m4 / m1           # the length-biased step in flight
    h = 0.5 + rho
    # raw moments of the wait W = U x + the prompts x gathers, over x; then T = tau + c_own + busy W
    w1 = h * lb1
    w2 = (1.0 / 12.0 + h * h) * lb2 + a2 * lb1
    w3 = (0.25 + rho + 1.5 * r2 + r2 * rho) * lb3 + (1.5 + 3.0 * rho) * a2 * lb2 + a3 * lb1
    mean = tau + c + busy * w1
    var = busy * w2 - jnp.square(busy * w1) + c * c * cv2
    k3 = busy * w3 - 3.0 * busy * busy * w1 * w2 + 2.0 * jnp.power(busy * w1, 3.0) + 2.0 * c ** 3 * cv2 * cv2
    # the quantile of a shifted gamma of that mean, variance and skewness g (Wilson-Hilferty:
    # mean + (2 sd / g) ((1 - g^2 / 36 + z g / 6)^3 - 1), the normal's mean + z sd as g -> 0)
    sd = jnp.sqrt(jnp.maximum(var, TINY))
    g = jnp.clip(k3 / (sd * sd * sd), 1e-4, 6.0)
    cube = jnp.expm1(3.0 * jnp.log1p(jnp.maximum(-g * g / 36.0 + z * g / 6.0, -1.0 + 1e-7)))
    return mean, mean + 2.0 * sd / g * cube


def gamma_quantiles(mean, p99, z):
    """z-quantiles (normal scores ``z``, broadcast against ``mean``) of the gamma distribution with
    this mean and 99th percentile: the online regime's p50 / p90 from its mean and p99 (session 16).
    Wilson-Hilferty: a gamma's cube root is nearly normal, Q(z) = mean (1 - v + z sqrt(v))^3 with
    v = 1 / (9 shape), so sqrt(v) is the smaller root of v - Z99 sqrt(v) + (p99 / mean)^(1/3) - 1 = 0
    (cancellation-free form; p99 = mean gives every quantile = mean, the static regimes; a p99
    beyond 13x the mean, outside the approximation's reach, takes the largest spread it has).
    Against the simulated engine (``tests/test_serving_sim.py``) at prefill loads up to 0.9 of
    capacity, with the closed form's own mean and p99: p50 within -5 .. +10 %, p90 within -9 .. +12 %
    (fixed short prompts at light load, a two-mode TTFT: p90 +25 %)."""
    r = jnp.cbrt(jnp.maximum(p99 / jnp.maximum(mean, TINY), 1.0))
    sv = 2.0 * (r - 1.0) / (Z99 + jnp.sqrt(jnp.maximum(Z99 * Z99 - 4.0 * (r - 1.0), 0.0)))
    return mean * jnp.power(jnp.maximum(1.0 - sv * sv + z * sv, 0.0), 3.0)


def count_peakedness(rho, g, cv2):
    """Variance / mean of the number of requests running on a continuous-batching engine: Poisson (1)
    without feedback; the prompts arriving in a step lengthen the next one (prefill load ``rho``,
    prompt spread ``cv2``), and the step grows with the number running, whose lifetimes grow with it
    (``g``: the running count's gain on itself over a lifetime, lam O k / (1 - rho)). A moving sum over
    a lifetime fed back through the step: at the low frequencies that carry the count's variance the
    arrivals per step are (k n + noise) / (1 - rho), noise variance (1 + rho^2 cv2) a step's arrivals,
    and the lifetime window's Ornstein-Uhlenbeck spectrum integrates to 1 / (1 - g):
    z = (1 + rho^2 cv2) / ((1 - rho)^2 (1 - g)) (session 21: within 4 % of the linearised engine's
    exact spectrum, ``tests/test_queueing.py``, and 8 - 15 % below the simulated engine's variance,
    ``tests/test_serving_sim.py``)."""
    return (1.0 + rho * rho * cv2) / (jnp.square(jnp.maximum(1.0 - rho, SATURATED)) * jnp.maximum(1.0 - g, SATURATED))


def strata(mean, sd, hi):
    """The running count's STRATA strata: normal of ``mean`` and ``sd`` (``count_peakedness``), each
    stratum at its median, at least 0, at most ``hi`` (the mass above it piles there: a reflecting
    bound); a trailing axis of STRATA."""
    x = jnp.expand_dims(mean, -1) + jnp.expand_dims(sd, -1) * _STRATA_Z
    return clip(x, 0.0, jnp.expand_dims(hi, -1))


def mixture_p99(p, b, steps=MIXTURE_NEWTON):
    """99th percentile of an equal mixture (over the last axis) of waits, each 0 with probability 1 - p
    and else exponential of mean ``b``: the root of mean(p e^(-w / b)) = 0.01. Newton on the log of
    the tail (convex in w) from the largest component's own p99, b ln(100 p), which lies right of
    the root, so the steps approach it from the left after the first; 0 where the mixture waits
    less than 1 % of the time."""
    r = 1.0 / jnp.maximum(b, TINY)

    def newton(_, w):
        e = p * jnp.exp(-jnp.expand_dims(w, -1) * r)
        f, df = jnp.mean(e, -1), jnp.mean(e * r, -1)
        return jnp.maximum(w + (jnp.log(jnp.maximum(f, TINY)) - jnp.log(0.01)) * f / jnp.maximum(df, TINY), 0.0)

    w0 = jnp.max(b * jnp.log(jnp.maximum(100.0 * p, 1.0)), -1)
    w = jax.lax.fori_loop(0, steps, newton, w0)
    return where(jnp.mean(p, -1) > 0.01, w, 0.0)
