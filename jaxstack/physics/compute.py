"""L2: single-chip cost of one op: GEMM, MoE expert GEMM, attention core, element-wise.

This is the seam between the op table (``ops``) and the chip model: ``ops`` says how much
work an op does, these functions say how long it takes on one chip and how many FLOPs and
DRAM bytes it costs. U = ``area.compute_units`` (fixed, or what fits the die area).

GEMM (M x K) @ (K x N), ``groups`` independent problems of that shape (grouped MoE GEMM):
every tile (tb_m, tb_n, 64) of the static candidate set TILES = 128x256, 64x128 and 16x128
(skinny decode kernels: swap-AB / m16n8k16 MMAs pad M to 16, not 64) is costed
with array math; the fastest that fits SRAM wins (a later, smaller tile must be faster by
more than 1e-5: near-ties keep the larger tile):
    Mt, Nt, Kt = ceil(M/tb_m), ceil(N/tb_n), ceil(K/64)
    split      = clip(floor(U / (groups Mt Nt)), 1, Kt)     split-K / stream-K fills the units
    tiles      = groups Mt Nt split,   waves W = ceil(tiles / U)   (the last wave may be partial
                 but takes a whole tile time: wave quantisation)
    t_compute  = W * 2 tb_m tb_n 64 ceil(Kt/split) / (clock * F_cycle(dtype) * compute_efficiency * e_tile)
                 e_tile = TILE_EFFICIENCY [U]: 1, 0.85, 0.5 in TILES order (small tiles amortise
                 issue, barriers and epilogue less; the skinny tile uses the slower MMA path)
    F_cycle    = tensor_flops_per_cycle * (fp8_speedup | fp4_speedup) for 2/1/0.5-byte operands,
                 vector_flops_per_cycle for 4-byte (FP32) ones (vector units); the operand
                 width is the wider of the weights and the activation operand
                 (``workload.gemm_operand_bytes``: W8A16 runs at the 16-bit rate)
    SRAM fit   STAGES * (tb_m 64 a + 64 tb_n w) <= sram_capacity (the last tile always runs)
    DRAM bytes A = M K a and B = K N w (per group) are re-read by every tile column / row:
                 no L2:   R_A = Nt, R_B = Mt
                 with L2: R_X = 1 if the operand fits in L2_SHARE of the L2; else the U tiles of
                 one wave, a block of p = min(Mt, s) rows (s = ceil(sqrt U)) by U/p columns,
                 share their panels: R_A = max(ceil(Nt p / U), 1), R_B = max(ceil(Mt / s), 1)
               bytes = groups (R_A A + R_B B + M N a) + split-K partials 2 (split - 1) groups M N 4 B
                       unless split x that fits in L2_SHARE of the L2; with DRAM wave quantisation
                       on (``memory.wave_bytes`` > 0) every tile panel moves whole waves:
                       A -> Mt q(min(M, tb_m) K a), B -> Nt q(K min(N, tb_n) w),
                       C -> Mt Nt q(min(M, tb_m) min(N, tb_n) a), q(x) = ceil(x / wave) wave
    t_memory   = max(bytes / memory.dram_bandwidth, bytes / (u unit_cap), fetch / (u f_fetch)),
                 u = min(tiles, U) active units, unit_cap = ``memory.unit_cap`` (Little's law and
                 SRAM-bandwidth caps per unit), fetch = groups (A Nt + B Mt) the operand panels every
                 tile fills its SRAM with (unfiltered, from L2 or DRAM) at f_fetch = FETCH_SHARE *
                 clock * sram_bandwidth per unit (DeepStack: L2<->SMEM = 0.5 x SMEM BW); the fetch
                 term is what makes small tiles lose on large GEMMs (SRAM-limited reuse)
    t          = max(t_compute, t_memory) of the chosen tile
    cost       = t * on + kernels * op_overhead
So a decode GEMM (M of a few tokens) splits K to use every unit and streams the weights
once (memory bound), and a large prefill GEMM runs at compute_efficiency less its wave
quantisation. Expert FFN = two grouped GEMMs (gate/up: K -> 2N/3, down: N/3 -> K) over the
touched experts, with assignments / touched rows each. Attention core: split-KV
(flash-decoding) keeps all U units busy: t = max(FLOPs / (tensor peak(U) compute_efficiency),
bytes / (effective_bandwidth(U) attention_bandwidth_efficiency)), the last factor being the
achieved fraction of bandwidth of paged / MLA KV reads (fitted per GPU preset). Element-wise:
u = clip(ceil(bytes / ELEM_TILE_BYTES), 1, U) units,
t = max(FLOPs / (u clock vector_flops_per_cycle), q(bytes) / effective_bandwidth(u)).
Each kernel pays ``op_overhead``. Every ceil/floor of a ratio carries a 1e-6 relative
tolerance (float32 safety: XLA may divide through a reciprocal, 784/7 -> 112.00001).
Every op reads the chip through ``Ctx`` (``context``: units after the area budget, rates,
DRAM bandwidth at a temperature, caps), resolved once per design point; array arguments
cost a whole set of ops in one traced computation (``ops.linear_costs``).
Not modelled: register-level fusion, per-tile prologue/epilogue time, the L2 bandwidth as
such (only the SRAM fill rate), bank conflicts inside a tile.
"""

import contextlib
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ..types.hardware import Chip, Dram
from . import area, memory, relax
from .lean import clip, where

__all__ = ["Cost", "Tiling", "Ctx", "context", "tiling", "attention_ctx", "attention_waves_ctx",
           "elementwise_ctx", "keep", "keep_all", "hoisted_layout", "TILES", "TILE_EFFICIENCY", "STAGES",
           "L2_SHARE", "ELEM_TILE_BYTES", "FETCH_SHARE",
           "flops_per_cycle", "tensor_peak", "vector_peak", "gemm_tiling", "gemm", "gemm_waves", "expert_gemm",
           "expert_gemm_waves", "attention", "attention_waves", "elementwise"]

# (tb_m, tb_n, tb_k): CUTLASS/Hopper-style CTA tiles, larger first (near-ties keep the earlier one)
# (16, 128, 64): skinny decode kernels (swap-AB / m16n8k16 MMAs) that pad M to 16, not 64; it
# has the smallest SRAM footprint and always runs. Every candidate costs model throughput
# (~20 % each), so the set is one large, one medium, one skinny tile; 256x128 only transposes
# 128x256, and 128x128 sits between 128x256 and 64x128 (MI300X's 64 KiB LDS takes 64x128).
TILES = np.array([[128, 256, 64], [64, 128, 64], [16, 128, 64]], dtype=np.float32)
TILE_K = 64.0  # every candidate has tb_k = 64: Kt is one scalar
# [U] fraction of compute_efficiency each tile reaches: smaller CTA tiles amortise less of the
# instruction issue, barriers, prologue and epilogue (the large tiles are what MAMF measures);
# the skinny tile runs on the older, slower MMA path
TILE_EFFICIENCY = np.array([1.0, 0.85, 0.5], dtype=np.float32)
STAGES = 2                 # operand stages resident in SRAM (double buffering)
L2_SHARE = 0.5             # [U] fraction of the L2 one operand may occupy and still be re-read from L2
PARTIAL_BYTES = 4.0        # FP32 split-K partial sums
ELEM_TILE_BYTES = 16384.0  # [U] bytes one unit streams per element-wise tile (one CTA)
FETCH_SHARE = 0.5          # L2/DRAM -> SRAM fill bandwidth = 0.5 x SRAM bandwidth (DeepStack L2<->SMEM)
_NEVER = 1e30
_HOISTED = [False]  # trace-time layout of ``tiling`` (``hoisted_layout``)


@contextlib.contextmanager
def hoisted_layout():
    """Trace ``tiling`` for a hoisted sweep (``engines/hoist.py``): the same values, laid out so
    that XLA keeps the bandwidth-independent geometry at the outer rows' shape (slower flat)."""
    _HOISTED.append(True)
    try:
        yield
    finally:
        _HOISTED.pop()


def keep(x):
    """``x``, materialised: XLA otherwise fuses a producer into each of its consumers (every
    slice of a vector of op costs, every stage variant) and recomputes it there; a reduction
    stays the root of its fusion (``optimization_barrier`` is dropped on CPU)."""
    return jnp.sum(jnp.stack([x, jnp.zeros_like(x)]), axis=0)


def keep_all(*xs):
    """``keep`` of several values computed from shared intermediates, materialised together
    (one fusion computes them once; a ``keep`` each would recompute the shared producer in
    each of their fusions: 3-4x the GEMM tiling math)."""
    shape = jnp.broadcast_shapes(*(jnp.shape(x) for x in xs))
    k = keep(jnp.stack([jnp.broadcast_to(x, shape) for x in xs]))
    return tuple(k[i] for i in range(len(xs)))


class Cost(NamedTuple):
    time: jnp.ndarray    # s
    flops: jnp.ndarray   # FLOP
    nbytes: jnp.ndarray  # DRAM bytes


class Tiling(NamedTuple):
    time: jnp.ndarray    # s, without the per-kernel overhead
    nbytes: jnp.ndarray  # DRAM bytes
    waves: jnp.ndarray   # ceil(tiles / units)
    tiles: jnp.ndarray
    units: jnp.ndarray   # compute units of the chip
    tile: jnp.ndarray    # index into TILES of the chosen shape


def flops_per_cycle(chip: Chip, elem_bytes):
    """Dense FLOP per cycle per unit at operand width ``elem_bytes``: tensor units for
    16/8/4-bit operands (FP8 x fp8_speedup, FP4 x fp4_speedup; widths with block scales,
    e.g. NVFP4 0.5625 B, count as their format), vector units for FP32."""
    speedup = where(elem_bytes < 0.75, chip.fp4_speedup, where(elem_bytes < 1.5, chip.fp8_speedup, 1.0))
    return where(elem_bytes >= 4.0, chip.vector_flops_per_cycle, chip.tensor_flops_per_cycle * speedup)


def tensor_peak(chip: Chip, elem_bytes, units=None):
    """Dense FLOP/s at the GEMM operand width ``elem_bytes`` (2 BF16, 1 FP8, 0.5 FP4, 4 FP32)."""
    u = chip.compute_units if units is None else units
    return u * chip.clock * flops_per_cycle(chip, elem_bytes)


def vector_peak(chip: Chip, units=None):
    u = chip.compute_units if units is None else units
    return u * chip.clock * chip.vector_flops_per_cycle


# ceil/floor of ratios that are often exact integers carry a 1e-6 relative tolerance: XLA may
# divide through a reciprocal, so 784 / 7 can come out as 112.00001 (-> 113 waves)
_TOL = 1e-6


def _ceil(x):
    return relax.ceil(x * (1.0 - _TOL))


def _floor(x):
    return relax.floor(x * (1.0 + _TOL))


def _candidate(j, M, K, N, Kt, w_bytes, a_bytes, groups, env):
    """(time, DRAM bytes, waves, tiles) of tile j (Python floats: one scalar expression per
    candidate vectorises over the design batch far better than a small candidate axis)."""
    tm, tn, tk = (float(v) for v in TILES[j])
    U = env["U"]
    Mt = relax.ceil(M * ((1.0 - _TOL) / tm))
    Nt = relax.ceil(N * ((1.0 - _TOL) / tn))
    mn = groups * Mt * Nt
    split = clip(_floor(U / jnp.maximum(mn, 1.0)), 1.0, jnp.maximum(Kt, 1.0))
    tiles = mn * split
    waves = relax.ceil(tiles * env["inv_u_tol"])
    work = 2.0 * tm * tn * tk / float(TILE_EFFICIENCY[j])
    t_c = waves * _ceil(Kt / split) * (work * env["inv_rate"])
    # DRAM traffic with SRAM-limited reuse, shared through the L2 by the p x (U/p) block of a wave
    A, B, q = env["A"], env["B"], env["q"]
    p = jnp.maximum(jnp.minimum(Mt, env["side"]), 1.0)
    r_a = where(env["l2_a"], 1.0, where(env["has_l2"], jnp.maximum(_ceil(Nt * p * env["inv_u"]), 1.0), Nt))
    r_b = where(env["l2_b"], 1.0, where(env["has_l2"], jnp.maximum(_ceil(Mt * env["inv_side"]), 1.0), Mt))
    rows, cols = jnp.minimum(M, tm), jnp.minimum(N, tn)
    panels = where(env["qon"], r_a * Mt * q(rows * K * a_bytes) + r_b * Nt * q(K * cols * w_bytes)
                       + Mt * Nt * q(rows * cols * env["c_bytes"]), r_a * A + r_b * B + env["C"])
    part_tr = where(env["has_l2"] & (env["part"] * split <= env["share"]), 0.0, 2.0 * (split - 1.0) * env["part"])
    nbytes = groups * panels + part_tr
    # memory time (``_time``): the stack's bandwidth, or what the active units buffer / pass per
    # unit, and the SRAM fill of every tile's operand panels (unfiltered) at FETCH_SHARE of SRAM bandwidth
    inv_active = 1.0 / clip(tiles, 1.0, U)
    t_fetch = groups * (A * Nt + B * Mt) * env["inv_fetch"] * inv_active
    fit = 1.0
    if j < len(TILES) - 1:  # the last tile always runs
        fit = where(STAGES * (tm * tk * a_bytes + tk * tn * w_bytes) <= env["sram"], 1.0, 0.0)
    return t_c, nbytes, waves, tiles, t_fetch, nbytes * inv_active, fit


_GEO = 7  # fields of ``_candidate``: t_c, nbytes, waves, tiles, t_fetch, nbytes / active units, fits SRAM


def _time(geo, env):
    """Time of a candidate from its geometry (everything but the DRAM bandwidth)."""
    t_c, nbytes, _, _, t_fetch, per_unit, fit = geo
    t = relax.maximum(t_c, jnp.maximum(jnp.maximum(nbytes * env["inv_bw"], per_unit * env["inv_cap"]), t_fetch))
    return where(fit > 0.5, t, _NEVER)


class Ctx(NamedTuple):
    """One chip resolved once per design point (and DRAM temperature): what every op cost
    reads, derived from the leaves a single time (``context``) instead of inside each op."""

    U: jnp.ndarray           # compute units after the area budget
    clock: jnp.ndarray
    vector_fpc: jnp.ndarray  # vector FLOP per cycle per unit
    overhead: jnp.ndarray    # op_overhead per kernel
    inv_rate: jnp.ndarray    # s per tensor FLOP of one unit at the GEMM weight width
    inv_rate_x: jnp.ndarray  # the same at the routed experts' operand width (= inv_rate unless quantised apart)
    attn_peak: jnp.ndarray   # tensor_peak(max(w_bytes, attn_bytes), U) x compute_efficiency
    attn_eff: jnp.ndarray    # attention_bandwidth_efficiency
    bw: jnp.ndarray          # memory.dram_bandwidth at this temperature
    ucap: jnp.ndarray        # memory.unit_cap
    inv_fetch: jnp.ndarray
    sram: jnp.ndarray
    l2: jnp.ndarray
    wave: jnp.ndarray        # memory.wave_bytes


def context(chip: Chip, dram: Dram, w_bytes, temperature=None, hot=None, attn_bytes=2.0, x_bytes=None) -> Ctx:
    """Resolve ``chip`` + ``dram`` for GEMMs of ``w_bytes``-byte operands (routed experts:
    ``x_bytes``, None = the same) and an attention core of ``attn_bytes``-byte operands (at the
    rate of the wider of the two); the DRAM temperature is given as degC (``temperature``) or
    directly as the doubled-refresh weight ``hot``."""
    U = area.compute_units(chip, dram)
    inv_rate = 1.0 / (chip.clock * flops_per_cycle(chip, w_bytes) * chip.compute_efficiency)
    return Ctx(U=U, clock=chip.clock, vector_fpc=chip.vector_flops_per_cycle, overhead=chip.op_overhead,
               inv_rate=inv_rate, inv_rate_x=inv_rate if x_bytes is None else
               1.0 / (chip.clock * flops_per_cycle(chip, x_bytes) * chip.compute_efficiency),
               attn_peak=tensor_peak(chip, jnp.maximum(w_bytes, attn_bytes), U) * chip.compute_efficiency,
               attn_eff=chip.attention_bandwidth_efficiency,
               bw=memory.dram_bandwidth(dram, temperature, hot=hot), ucap=memory.unit_cap(chip, dram),
               inv_fetch=1.0 / (FETCH_SHARE * chip.clock * chip.sram_bandwidth), sram=chip.sram_capacity,
               l2=chip.l2_capacity, wave=memory.wave_bytes(dram))


def tiling(ctx: Ctx, M, K, N, w_bytes, a_bytes, groups=1.0, c_bytes=None) -> Tiling:
    """Best tile of TILES for ``groups`` GEMMs of (M x K) @ (K x N) (see module docstring);
    ``c_bytes``: output element bytes (None: ``a_bytes``, e.g. BF16 out of an FP8 A operand).
    Array arguments cost a whole set of GEMMs in one traced computation."""
    c_bytes = a_bytes if c_bytes is None else c_bytes
    U = ctx.U
    share = L2_SHARE * ctx.l2
    has_l2 = ctx.l2 > 0
    A, B = M * K * a_bytes, K * N * w_bytes  # per group
    wave = ctx.wave
    qon = wave > 0
    inv_w = (1.0 - 1e-5) / where(qon, wave, 1.0)
    side = _ceil(jnp.sqrt(U))
    env = {
        "U": U, "inv_u": 1.0 / U, "inv_u_tol": (1.0 - _TOL) / U, "side": side, "inv_side": 1.0 / side,
        "A": A, "B": B, "C": M * N * c_bytes, "c_bytes": c_bytes, "has_l2": has_l2, "l2_a": has_l2 & (A <= share),
        "l2_b": has_l2 & (B <= share), "share": share, "part": groups * M * N * PARTIAL_BYTES,
        "sram": ctx.sram, "qon": qon,
        "q": lambda x: relax.ceil(x * inv_w) * wave,  # whole DRAM waves
        "inv_rate": ctx.inv_rate, "inv_cap": 1.0 / ctx.ucap, "inv_fetch": ctx.inv_fetch, "inv_bw": 1.0 / ctx.bw,
    }
    Kt = _ceil(K * (1.0 / TILE_K))
    # one pass in TILES order: a later tile replaces the current choice only when it is faster by
    # more than 1e-5 (float32-robust: near-ties keep the earlier, larger tile). The candidate
    # times are materialised together once; every output then selects with the same flags
    # (a ``keep`` of each output would recompute all candidate times in each of their fusions)
    cand = [_candidate(j, M, K, N, Kt, w_bytes, a_bytes, groups, env) for j in range(len(TILES))]
    if _HOISTED[-1]:
        # hoisted sweep (engines/hoist.py): the geometry of every candidate (all but the DRAM
        # bandwidth) is materialised once, in one array, so it stays at the shape of what it
        # depends on; only the times and the choice broadcast over the inner axes
        shape = jnp.broadcast_shapes(*(jnp.shape(x) for c in cand for x in c))
        geo = keep(jnp.stack([jnp.broadcast_to(x, shape) for c in cand for x in c]))
        cand = [[geo[j * _GEO + i] for i in range(_GEO)] for j in range(len(TILES))]
        times = [_time(c, env) for c in cand]
    else:
        # flat: the candidate times are materialised together (their chains computed once);
        # a keep of each output would recompute all of them in each of their fusions
        times = keep(jnp.stack([_time(c, env) for c in cand]))
        times = [times[j] for j in range(len(TILES))]
    t_best, better = times[0], []
    for j in range(1, len(TILES)):
        b = times[j] < t_best * (1.0 - 1e-5)
        t_best = where(b, times[j], t_best)
        better.append(b)

    def pick(i):
        out = cand[0][i]
        for j, b in enumerate(better, start=1):
            out = where(b, cand[j][i], out)
        return out

    index = jnp.float32(0.0)
    for j, b in enumerate(better, start=1):
        index = where(b, float(j), index)
    if _HOISTED[-1]:
        t_best, nbytes = keep_all(t_best, pick(1))
        return Tiling(t_best, nbytes, pick(2), pick(3), U, index)
    return Tiling(keep(t_best), keep(pick(1)), keep(pick(2)), keep(pick(3)), U, index)


def gemm_tiling(chip: Chip, dram: Dram, M, K, N, w_bytes, a_bytes, groups=1.0, temperature=None) -> Tiling:
    """``tiling`` of one chip given by its leaves (resolves the chip first)."""
    return tiling(context(chip, dram, w_bytes, temperature), M, K, N, w_bytes, a_bytes, groups)


def gemm(chip: Chip, dram: Dram, M, K, N, w_bytes, a_bytes, on=1.0, temperature=None) -> Cost:
    """(M x K) activations times a (K x N) weight; ``on`` = 0 switches the op off."""
    return gemm_waves(chip, dram, M, K, N, w_bytes, a_bytes, on, temperature)[0]


def gemm_waves(chip: Chip, dram: Dram, M, K, N, w_bytes, a_bytes, on=1.0, temperature=None):
    """``gemm`` and its wave count (the pipeline depth of a tile-level overlap)."""
    tl = gemm_tiling(chip, dram, M, K, N, w_bytes, a_bytes, 1.0, temperature)
    return Cost(tl.time * on + on * chip.op_overhead, 2.0 * M * K * N * on, tl.nbytes * on), tl.waves


def expert_gemm(chip: Chip, dram: Dram, assignments, touched, K, N, w_bytes, a_bytes, on=1.0,
                temperature=None) -> Cost:
    """Grouped expert FFN (gate/up + down, 3 kernels): ``assignments`` token-expert pairs
    over ``touched`` experts of K x N SwiGLU weights (N = 3 x intermediate, all three mats)."""
    return expert_gemm_waves(chip, dram, assignments, touched, K, N, w_bytes, a_bytes, on, temperature)[0]


def expert_gemm_waves(chip: Chip, dram: Dram, assignments, touched, K, N, w_bytes, a_bytes, on=1.0,
                      temperature=None):
    """``expert_gemm`` and its wave count (gate/up waves + down waves)."""
    g = jnp.maximum(touched, 1e-6)
    rows = assignments / g
    third = N / 3.0  # exact for N = 3 x intermediate (N * 2/3 is not, and ceil() would see it)
    up = gemm_tiling(chip, dram, rows, K, 2.0 * third, w_bytes, a_bytes, g, temperature)
    down = gemm_tiling(chip, dram, rows, third, K, w_bytes, a_bytes, g, temperature)
    t = (up.time + down.time) * on + 3.0 * on * chip.op_overhead
    return Cost(t, 2.0 * assignments * K * N * on, (up.nbytes + down.nbytes) * on), up.waves + down.waves


def attention(chip: Chip, dram: Dram, flops, kv_bytes, io_bytes, w_bytes, temperature=None) -> Cost:
    """Attention core: ``kv_bytes`` of KV cache read, ``io_bytes`` of Q/O traffic (16-bit math)."""
    return attention_ctx(context(chip, dram, w_bytes, temperature), flops, kv_bytes, io_bytes)


def attention_ctx(ctx: Ctx, flops, kv_bytes, io_bytes) -> Cost:
    nbytes = kv_bytes + io_bytes
    t_c = flops / ctx.attn_peak
    t_m = nbytes / (jnp.minimum(ctx.bw, ctx.U * ctx.ucap) * ctx.attn_eff)
    return Cost(relax.maximum(t_c, t_m) + ctx.overhead, flops, nbytes)


def attention_waves(chip: Chip, dram: Dram, work_items):
    """Waves of the attention kernel: ``work_items`` (request, head, query block) tiles over the
    units; flash-decoding splits the KV until every unit is busy, so at least one full wave."""
    return attention_waves_ctx(area.compute_units(chip, dram), work_items)


def attention_waves_ctx(units, work_items):
    return jnp.maximum(_ceil(work_items / units), 1.0)


def elementwise(chip: Chip, dram: Dram, flops, nbytes, kernels, temperature=None) -> Cost:
    """Streaming vector op over ``nbytes`` of DRAM traffic in ``kernels`` kernels."""
    return elementwise_ctx(context(chip, dram, 2.0, temperature), flops, nbytes, kernels)


def elementwise_ctx(ctx: Ctx, flops, nbytes, kernels) -> Cost:
    """``elementwise`` on a resolved chip; array arguments cost a set of kernels at once."""
    active = clip(_ceil(nbytes * (1.0 / ELEM_TILE_BYTES)), 1.0, ctx.U)
    t_c = flops / (active * ctx.clock * ctx.vector_fpc)
    wave = ctx.wave
    on = wave > 0
    w = where(on, wave, 1.0)
    moved = where(on, relax.ceil(nbytes / w * (1.0 - 1e-5)) * w, nbytes)  # memory.quantize
    t_m = moved / jnp.minimum(ctx.bw, active * ctx.ucap)
    return Cost(keep(relax.maximum(t_c, t_m) + kernels * ctx.overhead), flops, keep(moved))
