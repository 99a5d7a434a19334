"""Float64 scalar reference of jaxstack.power / jaxstack.thermal, written from the equations.

Independent of the package's code paths: the stack temperature is a layer-by-layer walk
from the heat sink down (HARDWARE.md §4.3) for integer m instead of the closed form, the
leakage fixed point uses the Lambert W function (scipy) instead of bisection, fabric levels
come from explicit rank coordinates, and the SRAM table is re-typed here. Inputs are dicts
of numpy scalars (``designs.as_dict``); everything is plain Python on one design point.
"""

import math

import numpy as np
from scipy.special import lambertw

LEAKAGE_CAP = 8.0
ALPHA = 3.0
SRAM_KIB = [32.0, 256.0, 1024.0, 8192.0]            # CACTI 7 22 nm (HARDWARE.md §3.4)
SRAM_PJ_PER_BIT = [0.018, 0.079, 0.188, 0.59]


def sram_j_per_bit(capacity_bytes):
    x = math.log(max(capacity_bytes, 1.0) / 1024.0)
    xs = [math.log(s) for s in SRAM_KIB]
    ys = [math.log(e) for e in SRAM_PJ_PER_BIT]
    if x <= xs[0]:
        y = ys[0]
    elif x >= xs[-1]:
        y = ys[-1]
    else:
        i = max(j for j in range(len(xs) - 1) if xs[j] <= x)
        y = ys[i] + (ys[i + 1] - ys[i]) * (x - xs[i]) / (xs[i + 1] - xs[i])
    return math.exp(y) * 1e-12


def tensor_j_per_flop(chip, op_bytes):
    if op_bytes >= 4.0:
        return chip["vector_energy_per_flop"]
    speedup = chip["fp4_speedup"] if op_bytes < 0.75 else chip["fp8_speedup"] if op_bytes < 1.5 else 1.0
    return chip["energy_per_flop"] / speedup


def step_energy(chip, dram, fabric, work, op_bytes, access_bytes=None):
    """Dict of energy components (J) of one step."""
    bits = 8.0 * work["dram_bytes"]
    per_act = 1.0
    if access_bytes is not None and dram["row_bytes"] > 0:
        per_act = dram["row_bytes"] / min(max(access_bytes, 1e-9), dram["row_bytes"])
    return {
        "compute": work["tensor_flops"] * tensor_j_per_flop(chip, op_bytes)
        + work["vector_flops"] * chip["vector_energy_per_flop"],
        "sram": 8.0 * work["sram_bytes"] * sram_j_per_bit(chip["sram_capacity"]) * chip["sram_energy_scale"],
        "dram_activation": bits * dram["activation_energy_per_bit"] * per_act,
        "dram_transfer": bits * dram["energy_per_bit"],
        "dram_io": bits * dram["io_energy_per_bit"],
        "link": 8.0 * sum(work[f"link_bytes_l{i}"] * fabric[f"l{i}"]["energy_per_bit"] for i in (1, 2, 3)),
        "static": (chip["static_power"] + dram["connected_layers"] * dram["background_power"]) * work["time"],
    }


def link_level(n1, n2, stride, size):
    """Outermost level in which rank 0 and the group's last rank stride (size - 1) differ."""
    if size <= 1:
        return 0
    last = int(round(stride * (size - 1)))
    if last // int(n1 * n2) != 0:
        return 2
    if last // int(n1) != 0:
        return 1
    return 0


# ---------------------------------------------------------------- thermal
def stack_temperatures(th, m, p_logic, p_dram):
    """(T_logic, T_dram) by walking the stack; m integer >= 1."""
    m = int(round(m))
    # 3D: sink on top of layer m, logic at the bottom
    t = th["ambient"] + th["r_base"] * (p_logic + p_dram)          # layer m
    layer_t = {m: t}
    for j in range(m - 1, 0, -1):                                   # crossing j <-> j + 1
        t = t + th["r_per_layer"] * (p_logic + j * p_dram / m)
        layer_t[j] = t
    t_logic3 = t + th["r_per_layer"] * p_logic                      # crossing logic <-> 1
    t_dram3 = max(layer_t.values())
    # 2.5D: shared sink
    sink = th["ambient"] + th["sink_fraction"] * th["r_base"] * (p_logic + p_dram)
    t_logic25 = sink + ((1.0 - th["sink_fraction"]) * th["r_base"] + m * th["r_per_layer"]) * p_logic
    t_dram25 = sink + th["r_dram"] * p_dram
    b = th["dram_beside"]
    return (1 - b) * t_logic3 + b * t_logic25, (1 - b) * t_dram3 + b * t_dram25


def leakage(chip, t):
    return chip["static_power"] * min(math.exp(chip["leakage_temp_coeff"] * (t - chip["leakage_ref_temp"])),
                                      LEAKAGE_CAP)


def junction(chip, th, m, p_logic_dyn, p_dram):
    """Least T_logic solving T = T_stack(P_dyn + P_s(T)) (Lambert W; capped root on runaway)."""
    t0, _ = stack_temperatures(th, m, p_logic_dyn, p_dram)          # no leakage
    t1, _ = stack_temperatures(th, m, p_logic_dyn + 1.0, p_dram)
    r_j = t1 - t0                                                   # K per W of logic power
    p0, beta, t_ref = chip["static_power"], chip["leakage_temp_coeff"], chip["leakage_ref_temp"]
    capped = t0 + r_j * p0 * LEAKAGE_CAP
    if beta == 0.0:
        return t0 + r_j * p0
    c = r_j * p0 * math.exp(beta * (t0 - t_ref))
    z = -beta * c
    if z < -1.0 / math.e:
        return capped                                               # no uncapped fixed point
    t = t0 - lambertw(z, 0).real / beta
    kink = t_ref + math.log(LEAKAGE_CAP) / beta
    return t if t <= kink else capped


def _branch(chip, dram, th, e_logic, e_dram, t, hot):
    m = max(dram["total_layers"], 1.0)
    p_ref = dram["total_layers"] * dram["refresh_power"] * (2.0 if hot else 1.0)
    p_d = e_dram / t + dram["connected_layers"] * dram["background_power"] + p_ref
    t_j = junction(chip, th, m, e_logic / t, p_d)
    p_s = leakage(chip, t_j)
    t_j2, t_d = stack_temperatures(th, m, e_logic / t + p_s, p_d)
    return {"t_j": t_j2, "t_d": t_d, "p_l": e_logic / t + p_s, "p_d": p_d, "p_s": p_s, "p_ref": p_ref}


def solve(chip, dram, th, e_logic, e_dram, t_cool, t_hot):
    """Dict of the steady state (see jaxstack.thermal)."""
    c = _branch(chip, dram, th, e_logic, e_dram, t_cool, False)
    h = _branch(chip, dram, th, e_logic, e_dram, t_hot, True)
    thr = dram["refresh_double_temp"]
    if c["t_d"] <= thr:
        hot = 0.0
    elif h["t_d"] >= thr:
        hot = 1.0
    else:
        hot = (c["t_d"] - thr) / (c["t_d"] - h["t_d"])
    out = {k: (1 - hot) * c[k] + hot * h[k] for k in c}
    step = 1.0 / ((1 - hot) / t_cool + hot / t_hot)
    power = out["p_l"] + out["p_d"]
    return {"t_junction": out["t_j"], "t_dram": out["t_d"], "power": power, "logic_power": out["p_l"],
            "dram_power": out["p_d"], "static_power": out["p_s"] + dram["connected_layers"] * dram["background_power"],
            "refresh_power": out["p_ref"], "step_time": step, "energy": power * step, "hot": hot,
            "t_dram_cool": c["t_d"], "t_dram_hot": h["t_d"]}


def frequency_scale(tdp, power):
    return min(1.0, (tdp / power) ** (1.0 / ALPHA))


def at(tree, i):
    """Scalar dict of design i from a dict of numpy arrays."""
    if isinstance(tree, dict):
        return {k: at(v, i) for k, v in tree.items()}
    return float(np.asarray(tree)[i])
