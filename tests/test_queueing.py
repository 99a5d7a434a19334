"""The running count's spread and the mixture over its strata (``recipe.queueing``, session 21)
against independent float64 references: the exact spectrum of the linearised count, and a
brute-force quantile of the mixture."""

import numpy as np
import pytest

from jaxstack.recipe import queueing


def _exact_peakedness(lam, out, k, t_p, cv):
    """Variance / mean of the running count of the linearised engine, from its spectrum (float64):
    per step, arrivals a_j = lam k n_j + rho a_(j-1) + noise (variance a step's arrivals times
    1 + rho^2 cv^2), n_j the sum of a over the last ``out`` steps."""
    rho = lam * t_p
    w = np.linspace(1e-7, np.pi, 400_001)
    e = np.exp(-1j * w)
    window = e * (1 - e**out) / (1 - e)                      # the sum over the last O steps
    gain = np.abs(window) ** 2 / np.abs(1 - rho * e - lam * k * window) ** 2
    return (1 + rho**2 * cv**2) * np.trapezoid(gain, w) / np.pi / out


@pytest.mark.parametrize("lam, out, k, t_p, cv", [(40.0, 273, 42.65e-6, 7.2e-3, 0.77),    # Llama-2-70B B200 row
                                                  (45.1, 273, 42.65e-6, 7.2e-3, 0.77),
                                                  (50.0, 144, 39.4e-6, 11.7e-3, 0.77),    # Mixtral H200 row
                                                  (5.0, 200, 5e-5, 0.05, 0.0)])           # light feedback
def test_count_peakedness_against_the_exact_spectrum(lam, out, k, t_p, cv):
    """The closed form (1 + rho^2 cv^2) / ((1 - rho)^2 (1 - g)) within 4 % of the linearised
    engine's exact spectral integral, over gains g = 0.2 - 0.83 (Poisson's 1 at no feedback)."""
    rho = lam * t_p
    g = lam * out * k / (1 - rho)
    z = float(queueing.count_peakedness(rho, g, cv**2))
    assert z == pytest.approx(_exact_peakedness(lam, out, k, t_p, cv), rel=0.04)
    assert float(queueing.count_peakedness(0.0, 0.0, 0.5)) == pytest.approx(1.0)


def test_strata_keep_the_mean_and_pile_up_at_the_bound():
    z = queueing._STRATA_Z
    assert z.shape == (queueing.STRATA,) and np.allclose(z, -z[::-1], atol=1e-6)     # symmetric medians
    x = np.asarray(queueing.strata(np.float32(100.0), np.float32(10.0), np.float32(1e9)))
    assert x.mean() == pytest.approx(100.0, rel=1e-6) and x.std() == pytest.approx(10.0, rel=0.15)
    y = np.asarray(queueing.strata(np.float32(100.0), np.float32(10.0), np.float32(105.0)))
    assert y.max() == 105.0 and (y[y < 105.0] == x[x < 105.0]).all()
    assert np.asarray(queueing.strata(np.float32(1.0), np.float32(10.0), np.float32(50.0))).min() == 0.0


def test_mixture_p99_against_a_brute_force_quantile():
    """One component: its own p99, b ln(100 p). Several: the 1 % point of the mixture of waits that
    are 0 with probability 1 - p and else exponential of mean b, against a float64 root found by
    bisection (within 0.1 %: two Newton steps); 0 where the mixture waits less than 1 % of the time."""
    p = np.array([0.3, 0.5, 0.7, 0.9, 0.95, 0.97, 0.99, 0.995], np.float32)
    b = np.array([0.03, 0.04, 0.07, 0.11, 0.21, 0.31, 0.6, 0.9], np.float32)
    one = float(queueing.mixture_p99(p[4:5], b[4:5]))
    assert one == pytest.approx(0.21 * np.log(95.0), rel=1e-5)

    def tail(w):
        return np.mean(p * np.exp(-w / b.astype(np.float64)))

    lo, hi = 0.0, 100.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tail(mid) > 0.01 else (lo, mid)
    assert float(queueing.mixture_p99(p, b)) == pytest.approx(lo, rel=1e-3)
    assert float(queueing.mixture_p99(p, b, 6)) == pytest.approx(lo, rel=1e-5)
    assert float(queueing.mixture_p99(p * 0.01, b)) == 0.0
