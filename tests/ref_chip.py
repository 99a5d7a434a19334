"""Float64 reference of jaxstack.area / memory / compute (single-chip op costs), written from
their module docstrings (not their code): numpy only, works on scalars or arrays of points.

Dict inputs: ``chip`` and ``dram`` are the SI dicts of a design (``io.to_dict`` or stacked).
"""

import numpy as np

TILES = [(128, 256, 64), (64, 128, 64), (16, 128, 64)]
TILE_EFF = [1.0, 0.85, 0.5]
STAGES, L2_SHARE, PARTIAL, ELEM_TILE, FETCH_SHARE = 2.0, 0.5, 4.0, 16384.0, 0.5
MM2 = 1e-6
A_SRAM = 0.95 * 0.35 * MM2 / 2**20
A_L1 = 1e-3 * MM2
A_FABRIC = 5.0 * MM2 / 1e12
UNCORE = 0.15
OFF = 1e30


def ceil(x):  # the model's ceil/floor carry a 1e-6 relative tolerance (its docstrings)
    return np.ceil(x * (1 - 1e-6))


def floor(x):
    return np.floor(x * (1 + 1e-6))


# ------------------------------------------------------------------ area
def units(chip, dram):
    per_unit = chip["unit_area"] + chip["sram_capacity"] * A_SRAM + chip["sram_bandwidth"] * A_L1
    fixed = (chip["die_area"] * UNCORE + chip["l2_capacity"] * A_SRAM + chip["fabric_port_bandwidth"] * A_FABRIC
             + dram["connected_layers"] * (dram["port_area"] + dram["channels_per_layer"] * dram["channel_area"]))
    fit = floor((chip["die_area"] - fixed) / np.maximum(per_unit, 1e-12))
    return np.where(chip["die_area"] > 0, np.clip(fit, 1, chip["compute_units"]), chip["compute_units"])


# ------------------------------------------------------------------ memory
def port_efficiency(dram, access=None):
    m, n = dram["total_layers"], dram["connected_layers"]
    kbar = m / n
    khi = np.maximum(ceil(kbar), 1.0)
    e = np.clip(dram["row_cycle_efficiency"], 1e-6, 1.0)
    row = dram["row_bytes"]
    rows_on = row > 0
    row1 = np.where(rows_on, row, 1.0)
    S = row1 if access is None else np.minimum(access, row1)
    txn = dram["transaction_bytes"]
    Sq = np.where(txn > 0, ceil(S / np.where(txn > 0, txn, 1.0)) * txn, S)
    Sq = np.minimum(Sq, row1)
    D_row = row1 / dram["bytes_per_transfer"]
    D = Sq / dram["bytes_per_transfer"]
    R = D_row * (1 / e - 1)
    K = khi * dram["banks_per_port"]
    I = np.maximum.reduce([D, (D + R) / K, dram["t_rrd"] + 0 * D, dram["t_faw"] / 4 + 0 * D])
    eta_rows = (kbar / khi) * (S / dram["bytes_per_transfer"]) / I
    eta_plain = (kbar / khi) * np.minimum(1.0, K * e)  # rows not modelled: streaming full rows
    return np.where(rows_on, eta_rows, eta_plain)


def dram_bandwidth(dram, temperature=None, access=None):
    peak = dram["connected_layers"] * dram["channels_per_layer"] * dram["bytes_per_transfer"] * dram["transfer_rate"]
    on = (dram["bond_pitch"] > 0) & (dram["port_area"] > 0)
    bonds = dram["port_area"] / np.where(on, dram["bond_pitch"], 1.0) ** 2
    vert = np.where(on, dram["connected_layers"] * bonds * dram["bond_signal_fraction"]
                    * dram["bond_bits_per_transfer"] * dram["transfer_rate"] / 8, OFF)
    factor = 1.0 if temperature is None else np.where(temperature > dram["refresh_double_temp"], 2.0, 1.0)
    eta_ref = np.clip(1 - factor * dram["t_rfc"] / dram["t_refi"], 0, 1)
    return np.minimum(peak, vert) * port_efficiency(dram, access) * eta_ref * dram["efficiency"]


def bandwidth(chip, dram, u, temperature=None):
    """Usable B/s with u active units (Little's law and SRAM caps)."""
    rt = dram["round_trip_cycles"]
    little = np.where(rt > 0, u * chip["sram_capacity"] * chip["clock"]
                      / (np.where(rt > 0, rt, 1.0) * chip["buffering_factor"]), OFF)
    k = chip["sram_traffic_factor"]
    smem = np.where(k > 0, u * chip["clock"] * chip["sram_bandwidth"] / np.where(k > 0, k, 1.0), OFF)
    return np.minimum(np.minimum(dram_bandwidth(dram, temperature), little), smem)


def quantize(dram, b):
    wave = dram["transaction_bytes"] * dram["channels_per_layer"] * dram["connected_layers"]
    return np.where(wave > 0, np.ceil(b / np.where(wave > 0, wave, 1.0) * (1 - 1e-5)) * wave, b)


# ------------------------------------------------------------------ compute
def per_cycle(chip, eb):
    tensor = chip["tensor_flops_per_cycle"] * np.where(eb < 0.75, chip["fp4_speedup"],
                                                       np.where(eb < 1.5, chip["fp8_speedup"], 1.0))
    return np.where(eb >= 4, chip["vector_flops_per_cycle"], tensor)


def tiled(chip, dram, G, M, K, N, wb, ab, rate_b=None, cb=None):
    """(time, bytes) of the best tile for G GEMMs of M x K x N; ``rate_b``: the operand width
    that sets the tensor rate (default wb), ``cb``: output bytes (default ab)."""
    rate_b = wb if rate_b is None else rate_b
    cb = ab if cb is None else cb
    U = units(chip, dram)
    Kt = ceil(K / 64)
    l2 = chip["l2_capacity"]
    wave = dram["transaction_bytes"] * dram["channels_per_layer"] * dram["connected_layers"]

    def q(x):
        return np.ceil(x / np.where(wave > 0, wave, 1.0) * (1 - 1e-5)) * wave

    little_u = np.where(dram["round_trip_cycles"] > 0, chip["sram_capacity"] * chip["clock"]
                        / (np.where(dram["round_trip_cycles"] > 0, dram["round_trip_cycles"], 1.0)
                           * chip["buffering_factor"]), OFF)
    k = chip["sram_traffic_factor"]
    smem_u = np.where(k > 0, chip["clock"] * chip["sram_bandwidth"] / np.where(k > 0, k, 1.0), OFF)
    unit_cap = np.minimum(little_u, smem_u)
    ts, bs, ws = [], [], []
    for j, (tm, tn, tk) in enumerate(TILES):
        Mt, Nt = ceil(M / tm), ceil(N / tn)
        split = np.clip(floor(U / np.maximum(G * Mt * Nt, 1)), 1, np.maximum(Kt, 1))
        tiles = G * Mt * Nt * split
        waves = ceil(tiles / U)
        tc = waves * 2 * tm * tn * tk * ceil(Kt / split) / (chip["clock"] * per_cycle(chip, rate_b)
                                                            * chip["compute_efficiency"] * TILE_EFF[j])
        s = ceil(np.sqrt(U))
        p = np.maximum(np.minimum(Mt, s), 1)
        A, B = M * K * ab, K * N * wb
        ra = np.where(l2 > 0, np.where(A <= L2_SHARE * l2, 1, np.maximum(ceil(Nt * p / U), 1)), Nt)
        rb = np.where(l2 > 0, np.where(B <= L2_SHARE * l2, 1, np.maximum(ceil(Mt / s), 1)), Mt)
        rows, cols = np.minimum(M, tm), np.minimum(N, tn)
        part = G * M * N * PARTIAL
        part_tr = np.where((l2 > 0) & (part * split <= L2_SHARE * l2), 0, 2 * (split - 1) * part)
        act = np.clip(tiles, 1, U)
        fetch = G * (A * Nt + B * Mt)
        quantised = ra * Mt * q(rows * K * ab) + rb * Nt * q(K * cols * wb) + Mt * Nt * q(rows * cols * cb)
        panels = np.where(wave > 0, quantised, ra * A + rb * B + M * N * cb)
        b = G * panels + part_tr
        tmem = np.maximum.reduce([b / dram_bandwidth(dram), b / (act * unit_cap),
                                  fetch / (FETCH_SHARE * act * chip["clock"] * chip["sram_bandwidth"])])
        t = np.maximum(tc, tmem)
        if j < len(TILES) - 1:
            t = np.where(STAGES * (tm * tk * ab + tk * tn * wb) <= chip["sram_capacity"], t, OFF)
        ts.append(t)
        bs.append(b)
        ws.append(waves)
    best_t, best_b, best_w = ts[0], bs[0], ws[0]
    for t, b, w in zip(ts[1:], bs[1:], ws[1:], strict=True):  # a later tile must win by more than 1e-5
        better = t < best_t * (1 - 1e-5)
        best_t, best_b, best_w = np.where(better, t, best_t), np.where(better, b, best_b), np.where(better, w, best_w)
    return best_t, best_b, best_w


def gemm_w(chip, dram, M, K, N, wb, ab, on=1.0, **kw):
    """(time, flops, bytes) and the chosen tile's waves."""
    t, b, w = tiled(chip, dram, 1.0, M, K, N, wb, ab, **kw)
    return (t * on + on * chip["op_overhead"], 2 * M * K * N * on, b * on), w


def gemm(chip, dram, M, K, N, wb, ab, on=1.0):
    return gemm_w(chip, dram, M, K, N, wb, ab, on)[0]


def expert_gemm_w(chip, dram, assign, touched, K, N, wb, ab, on, **kw):
    g = np.maximum(touched, 1e-6)
    t1, b1, w1 = tiled(chip, dram, g, assign / g, K, 2 * N / 3, wb, ab, **kw)
    t2, b2, w2 = tiled(chip, dram, g, assign / g, N / 3, K, wb, ab, **kw)
    # grouped GEMMs at moe_gemm_efficiency of the dense rate (the whole kernel time scales)
    t = (t1 + t2) / chip.get("moe_gemm_efficiency", 1.0)
    return (t * on + 3 * on * chip["op_overhead"], 2 * assign * K * N * on, (b1 + b2) * on), w1 + w2


def expert_gemm(chip, dram, assign, touched, K, N, wb, ab, on):
    return expert_gemm_w(chip, dram, assign, touched, K, N, wb, ab, on)[0]


def attention_waves(chip, dram, items):
    return np.maximum(ceil(items / units(chip, dram)), 1.0)


def attention(chip, dram, flops, kv_bytes, io_bytes, wb, attn_b=2.0):
    U = units(chip, dram)
    b = kv_bytes + io_bytes
    peak = U * chip["clock"] * per_cycle(chip, np.maximum(wb, attn_b)) * chip["compute_efficiency"]
    t_mem = b / (bandwidth(chip, dram, U) * chip["attention_bandwidth_efficiency"])
    return np.maximum(flops / peak, t_mem) + chip["op_overhead"], flops, b


def elementwise(chip, dram, flops, nbytes, kernels):
    act = np.clip(ceil(nbytes / ELEM_TILE), 1, units(chip, dram))
    moved = quantize(dram, nbytes)
    t = np.maximum(flops / (act * chip["clock"] * chip["vector_flops_per_cycle"]), moved / bandwidth(chip, dram, act))
    return t + kernels * chip["op_overhead"], flops, moved
