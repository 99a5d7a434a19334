"""L2: compact steady-state thermal model of one chip with leakage and DRAM-refresh feedback.

Stack (HARDWARE.md §4.3, HotSpot-style 1-D, memory on logic): the logic die at the bottom,
m DRAM layers above it (m = dram.total_layers, real-valued in relaxed mode, >= 1), a bond
layer between neighbours, TIM + heat sink on top. Heat leaves through the sink only (the
secondary path through C4 / board is ignored). Logic power P_L enters at the bottom, DRAM
power P_D is spread evenly over the layers (P_D / m each), so the crossing between layer j
and j + 1 carries P_L + j P_D / m (cumulative flux) and, with R_layer = r_per_layer per
crossing (bond + silicon) and R_base = r_base from the top of the stack to ambient:
    T_top   = T_amb + R_base (P_L + P_D)
    T_logic = T_top + R_layer sum_{j=0}^{m-1} (P_L + j P_D / m)
            = T_amb + R_base (P_L + P_D) + R_layer (m P_L + (m - 1) P_D / 2)
    T_dram  = T_logic - R_layer P_L                  (layer 1, next to the logic, is hottest)
With P_D = 0 this is DeepStack's T = T_amb + (R_base + m R_layer) P (DEEPSTACK.md §2.1; the
3D preset's 0.56 + 0.01 m K/W).
2.5D (``dram_beside`` = 1, HBM GPUs): the DRAM stacks sit beside the die under a shared heat
sink; s = sink_fraction of R_base is the shared sink path, the rest the die's own path:
    T_sink  = T_amb + s R_base (P_L + P_D)
    T_logic = T_sink + ((1 - s) R_base + m R_layer) P_L     (DeepStack's formula at P_D = 0)
    T_dram  = T_sink + r_dram P_D
``dram_beside`` in (0, 1) blends the two linearly (relaxed designs).
In both, T_logic = A(P_D) + R_j P_L with R_j = R_base + m R_layer.

Power, per chip (W), for step time t and dynamic step energy E (power.Energy):
    P_L(T) = E.logic / t + P_s(T),  P_s(T) = static_power min(exp(beta (T - T_ref)), LEAKAGE_CAP)
    P_D    = E.dram / t + n background_power + m refresh_power (x 2 when hot)
Leakage fixed point: T = phi(T) = a + R_j P_s(T), a = A + R_j E.logic / t. phi is increasing
and bounded by a + R_j static_power CAP, so the least fixed point (the state the chip warms
up into) exists: g = T - phi(T) increases on [a, b], b = min(x_m, a + R_j P_s,0 CAP), x_m
where g' = 0, so if g(b) > 0 the root is found by Newton's method from a (g is concave, so
the iterates rise monotonically to the least root and never pass it; ``iterations`` steps,
fixed count: vmappable); otherwise the chip runs away to the capped root
a + R_j static_power CAP. The result gets one implicit Newton step for gradients
(dT/dtheta = -g_theta / g_T), its value unchanged; ``residual`` = |phi(T) - T|.

Refresh regime (JEDEC: refresh doubles above 85 C, HARDWARE.md §4.1): the leakage fixed
point is solved in a cool branch (normal refresh, step time t_cool) and a hot branch
(doubled refresh power, t_hot >= t_cool from the bandwidth loss):
    T_D,cool <= T_thr           -> cool, hot = 0
    T_D,hot  >= T_thr           -> hot,  hot = 1
    otherwise                   -> the controller time-shares; the DRAM sits at T_thr with
                                   a fraction hot = (T_D,cool - T_thr) / (T_D,cool - T_D,hot)
                                   of the time hot
Temperatures, powers and the step rate are averaged over time with weight ``hot``
(step_time = 1 / ((1 - hot) / t_cool + hot / t_hot)); relaxed mode replaces the case
tests by relax.step (smooth; near a regime switch the blended state is not an exact fixed
point, so ``residual`` is only small in exact mode). A DRAM above ``thermal.dram_limit`` (95 C) is infeasible: the
temperatures are returned, the caller sets the reason.

Not modelled: lateral spreading and hot spots (1-D), transient heating, the secondary heat
path, DRAM leakage growth with temperature, the host-side HBM PHY heating the logic die (all
DRAM energy heats the DRAM), the power wall's clock throttling lowering the temperature
(power.frequency_scale is applied after this solve: conservative).
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..types.hardware import Chip, Dram, Thermal
from . import relax
from .lean import clip, unstack, where
from .power import LEAKAGE_CAP, Energy, dram_background_power, dram_refresh_power, leakage_power

__all__ = ["ThermalState", "temperatures", "junction_line", "leakage_root", "solve", "ITERATIONS"]

ITERATIONS = 12      # Newton steps from the left end: float32 resolution in <= 6 on every preset and on
#                      jittered hardware (tests/test_thermal_model.py); 40 bisection halvings cost 4x more
_MIN_SLOPE = 1e-3    # floor of g'(T) in the implicit gradient step (dT/dP capped near runaway)
_TINY = 1e-30


class ThermalState(NamedTuple):
    """Steady state of one chip (time-averaged over the refresh regimes)."""

    t_junction: Any      # degC, logic die
    t_dram: Any          # degC, hottest DRAM die
    power: Any           # W per chip, everything (dynamic, static + leakage, DRAM background, refresh)
    logic_power: Any     # W dissipated in the logic die
    dram_power: Any      # W dissipated in the DRAM
    static_power: Any    # W, chip static incl. leakage growth + DRAM background
    refresh_power: Any   # W, DRAM refresh
    step_time: Any       # s per step
    energy: Any          # J per step = power x step_time
    hot: Any             # fraction of time with doubled refresh, 0..1
    residual: Any        # K, |phi(T) - T| of the leakage fixed point (worst branch)


def _layers(dram: Dram):
    return jnp.maximum(dram.total_layers, 1.0)


def junction_line(thermal: Thermal, dram: Dram, p_dram):
    """(A, R_j) with T_logic = A + R_j P_L for DRAM power ``p_dram`` (see module docstring)."""
    m, b, s = _layers(dram), thermal.dram_beside, thermal.sink_fraction
    rb, rl = thermal.r_base, thermal.r_per_layer
    a3 = rb * p_dram + rl * 0.5 * (m - 1.0) * p_dram
    a25 = s * rb * p_dram
    return thermal.ambient + (1.0 - b) * a3 + b * a25, rb + m * rl


def temperatures(thermal: Thermal, dram: Dram, p_logic, p_dram):
    """(T_logic, T_dram) in degC for logic / DRAM power in W (linear network, no feedback)."""
    m, b, s = _layers(dram), thermal.dram_beside, thermal.sink_fraction
    rb, rl = thermal.r_base, thermal.r_per_layer
    a, r_j = junction_line(thermal, dram, p_dram)
    t_logic = a + r_j * p_logic
    t_d3 = thermal.ambient + rb * (p_logic + p_dram) + rl * (m - 1.0) * (p_logic + 0.5 * p_dram)
    t_d25 = thermal.ambient + s * rb * (p_logic + p_dram) + thermal.r_dram * p_dram
    return t_logic, (1.0 - b) * t_d3 + b * t_d25


def leakage_root(chip: Chip, a, r_j, iterations: int = ITERATIONS):
    """Least T with T = a + r_j P_s(T) (degC); see the module docstring."""
    p0, beta = chip.static_power, chip.leakage_temp_coeff
    k = r_j * p0
    ln_cap = float(np.log(LEAKAGE_CAP))

    def g(t, a=a, k=k, beta=beta):
        return t - a - k * jnp.exp(jnp.minimum(beta * (t - chip.leakage_ref_temp), ln_cap))

    capped = a + k * LEAKAGE_CAP
    q = k * beta
    x_m = chip.leakage_ref_temp - jnp.log(jnp.maximum(q, _TINY)) / jnp.maximum(beta, _TINY)
    hi = clip(jnp.minimum(x_m, capped), a, capped)
    lo, hi = jax.lax.stop_gradient(a), jax.lax.stop_gradient(hi)
    stable = relax.step(g(hi))

    def newton(_, t):
        # g is concave: from the left of the least root (g <= 0, g' > 0) every Newton step
        # stays left of it and increases monotonically (quadratic convergence; linear only
        # next to a double root); capped at hi, the maximum of g
        x = beta * (t - chip.leakage_ref_temp)
        e = jnp.exp(jnp.minimum(x, ln_cap))
        gv = t - a - k * e
        slope = 1.0 - where(x < ln_cap, q * e, 0.0)
        step = where(slope > _TINY, -gv / jnp.maximum(slope, _TINY), hi - t)
        return clip(t + jnp.maximum(step, 0.0), lo, hi)

    t0 = jax.lax.stop_gradient(jax.lax.fori_loop(0, iterations, newton, lo, unroll=True))
    # implicit Newton step: value t0, derivative -g_theta / g_T
    x = beta * (t0 - chip.leakage_ref_temp)
    slope = 1.0 - where(x < ln_cap, q * jnp.exp(jnp.minimum(x, ln_cap)), 0.0)
    gt = g(t0)
    root = t0 - (gt - jax.lax.stop_gradient(gt)) / jax.lax.stop_gradient(jnp.maximum(slope, _MIN_SLOPE))
    return stable * root + (1.0 - stable) * capped


class _Branch(NamedTuple):
    t_j: Any
    t_d: Any
    p_l: Any
    p_d: Any
    p_s: Any
    p_ref: Any
    residual: Any


def _branch(chip, dram, thermal, e_logic, e_dram, t, hot, iterations):
    t = jnp.maximum(t, _TINY)
    p_ref = dram_refresh_power(dram, hot)
    p_d = e_dram / t + dram_background_power(dram) + p_ref
    p_l0 = e_logic / t
    a, r_j = junction_line(thermal, dram, p_d)
    t_root = leakage_root(chip, a + r_j * p_l0, r_j, iterations)
    p_s = leakage_power(chip, t_root)
    t_j, t_d = temperatures(thermal, dram, p_l0 + p_s, p_d)
    return _Branch(t_j, t_d, p_l0 + p_s, p_d, p_s, p_ref, jnp.abs(t_j - t_root))


def solve(chip: Chip, dram: Dram, thermal: Thermal, energy: Energy, t_cool, t_hot,
          iterations: int = ITERATIONS) -> ThermalState:
    """Steady state of one chip running steps of dynamic energy ``energy`` (J).

    Args:
      energy: ``power.step_energy`` of one step; its ``static`` field is ignored (static power,
        leakage, DRAM background and refresh are added here as power x time).
      t_cool: step time (s) with normal DRAM refresh.
      t_hot: step time (s) with doubled refresh (DRAM bandwidth loss; = t_cool if not modelled).
      iterations: Newton steps of the leakage fixed point (static: fixed loop count).
    """
    e_logic, e_dram = energy.logic, energy.dram
    # the cool and the hot branch as one vectorised computation (traced once)
    both = jax.vmap(lambda t, f: _branch(chip, dram, thermal, e_logic, e_dram, t, f, iterations))(
        jnp.stack([jnp.asarray(t_cool, jnp.result_type(float)), jnp.asarray(t_hot, jnp.result_type(float))]),
        jnp.array([0.0, 1.0]))
    c, h = unstack(both, 2)
    thr = dram.refresh_double_temp
    den = c.t_d - h.t_d
    ok = den > 1e-6
    ratio = clip((c.t_d - thr) / where(ok, den, 1.0), 0.0, 1.0)
    ratio = where(ok, ratio, 1.0)
    s_h = relax.step(h.t_d - thr)
    hot = relax.step(c.t_d - thr) * (s_h + (1.0 - s_h) * ratio)

    def mix(x_c, x_h):
        return (1.0 - hot) * x_c + hot * x_h

    t_c, t_h = jnp.maximum(t_cool, _TINY), jnp.maximum(t_hot, _TINY)
    step_time = 1.0 / ((1.0 - hot) / t_c + hot / t_h)
    p_l, p_d = mix(c.p_l, h.p_l), mix(c.p_d, h.p_d)
    power = p_l + p_d
    return ThermalState(
        t_junction=mix(c.t_j, h.t_j), t_dram=mix(c.t_d, h.t_d), power=power, logic_power=p_l, dram_power=p_d,
        static_power=mix(c.p_s, h.p_s) + dram_background_power(dram), refresh_power=mix(c.p_ref, h.p_ref),
        step_time=step_time, energy=power * step_time, hot=hot, residual=jnp.maximum(c.residual, h.residual))
