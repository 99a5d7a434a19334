"""L2: stage 1 of the dual-stage network model — one collective step as traffic on links.

A collective over a rank group (``stride``, ``size``) is a sequence of steps; in a step
every rank sends a chunk of ``c`` bytes along a pattern. This module turns a step into the
load on the busiest directed link of each fabric level and the hops of the worst path, in
closed form per topology kind, and sums them over a dim's steps (``Steps``, per byte of the
collective's size n); ``network.py`` (stage 2) prices them. Scalar code unrolled over 3
levels and 6 dims, so ``vmap`` turns it into a few fused elementwise kernels.

Placement (``group_levels``). Ranks are numbered innermost level first. Level l has ``n_l``
nodes; a node holds ``N_l = n_1 ... n_{l-1}`` ranks (``N_1 = 1``), ``G_l = g_1 ... g_{l-1}``
of them in one group; the ``N_l / G_l`` groups sharing a node communicate at once (every
group of a parallel axis runs the same collective), so a step in which every rank sends c
across level l puts ``N_l c`` on the node's links there. The group's ``g_l`` members of
level l sit ``σ = max(stride / N_l, 1)`` nodes apart. Mesh and torus levels are 2D
(``X = dim_x``, ``Y = dim_y``, row-major): ``gx = clip(X/σ, 1, g)`` members along x spaced
``sx = σ``, ``gy = g/gx`` along y spaced ``sy = max(σ/X, 1)``; other kinds are one dim of
length ``n_l`` (gy = 1). A group is 6 dims (x1 y1 x2 y2 x3 y3) of k members, spacing s hops,
length D, ``K`` = product of the inner dims' k, ``S = ceil(log2 k)`` XOR steps.

Links. ``B_l = eff · link_bandwidth · links_per_node`` per directed link (per neighbour on
ring/mesh/torus/all-to-all, to the switch on a switch), for a switch at most its crossbar
share ``switch_bandwidth / n_l``. Packetised links (payload P, header H, ACK A per packet on
the reverse link) are priced in ``network.py``.

Patterns: λ = load of the busiest link in units of the node volume, η = hops, r = reverse
direction loaded too (its ACKs then share the link):
  shift (ring neighbour; full = k s >= D, span = (k - 1) s):
    switch 1, 2, r | all-to-all 1, 1, r iff k <= 2 | ring, torus s, (s if full else
    min(span, D - span)), r iff not full or D <= 2 | chain, mesh (zig-zag ring) s,
    s min(2, k - 1), r; bidirectional: λ/2 on a full ring/torus dim (D > 2) and on an
    all-to-all dim (k > 2), r.
  XOR partner 2^t members away (step t of recursive doubling/halving), δ = 2^t s hops:
    switch 1, 2 | all-to-all 1, 1 | ring, torus δ (δ/2 on the last step when 2δ >= D), δ |
    chain, mesh δ, δ; always r. Summed in closed form over t for chunks c_t = n
    (const), n / (K 2^(t+1)) (halving) or n K 2^t / p (doubling).
  all-to-all among k members of a dim (per-pair volume units), λ_a, η_a: switch k - 1, 2 |
    all-to-all 1, 1 | ring, torus s⌊k²/4⌋/2, s⌊k/2⌋ | chain, mesh s⌊k/2⌋⌈k/2⌉, s(k - 1).
    A flat all-to-all over a 2D level routes x then y: max(gy λ_a(x), gx λ_a(y)), η_x + η_y.
  p2p to the member σ nodes away: switch/all-to-all 1, (2 | 1); others λ = η = hop distance.
Between levels. A path crossing level l transits each inner level j < l through the node's
ports, t_j = 2 hops on a switch and 1 otherwise (``lat_in = Σ_{j<l} t_j h_j``), and loads
that level's node link with ``N_j c`` (``tr_in = max_{j<l} N_j (1 + (H + A)/P)_j / B_j``).
Not modelled: routing to uplink ports inside non-switch inner levels, adaptive routing,
non-power-of-two XOR partners (steps rounded up).
"""

from typing import NamedTuple

import jax.numpy as jnp

from ..types.hardware import Fabric, TopologyKind
from . import relax
from .lean import clip, where

__all__ = ["Level", "Dim", "Steps", "group_levels", "geometry", "shift", "ring_steps", "tree_steps", "xor_steps",
           "a2a_steps", "a2a_ring_steps", "a2a_level", "p2p_level"]

_K = TopologyKind


_floor = relax.floor


def group_levels(fabric: Fabric, stride, size):
    """Members of a (stride, size) rank group inside each fabric level: (g1, g2, g3)."""
    n1, n2 = fabric.l1.size, fabric.l2.size
    g1 = clip(n1 / stride, 1.0, size)
    rest = size / g1
    g2 = clip(n2 / jnp.maximum(stride / n1, 1.0), 1.0, rest)
    return g1, g2, rest / g2


class Level(NamedTuple):
    """One fabric level as seen by one group (scalars)."""

    sw: jnp.ndarray         # kind flags
    a2a: jnp.ndarray
    wrap: jnp.ndarray       # ring or torus
    g: jnp.ndarray          # group members at this level
    N: jnp.ndarray          # ranks per node of this level
    G: jnp.ndarray          # group members per node of this level
    bw: jnp.ndarray         # B_l, bytes/s per directed link
    hdr: jnp.ndarray        # H/P (0 if not packetised)
    ackr: jnp.ndarray       # A/P
    payload: jnp.ndarray    # P
    q: jnp.ndarray          # 1/B_l if packetised else 0 (store-and-forward per byte)
    hop: jnp.ndarray
    lat_in: jnp.ndarray     # Σ_{j<l} t_j h_j
    tr_in: jnp.ndarray      # max_{j<l} N_j (1 + (H + A)/P)_j / B_j
    pk_in: jnp.ndarray      # Σ_{j<l} t_j q_j
    hd_in: jnp.ndarray      # Σ_{j<l} t_j q_j H_j
    ak_in: jnp.ndarray      # Σ_{j<l} t_j q_j A_j
    header: jnp.ndarray
    ack: jnp.ndarray        # A_l q_l: one ACK's serialisation
    gx: jnp.ndarray
    gy: jnp.ndarray
    sx: jnp.ndarray
    sy: jnp.ndarray
    X: jnp.ndarray
    Y: jnp.ndarray


class Dim(NamedTuple):
    """One dim of the group (scalars); ``lv`` is its fabric level."""

    lv: Level
    k: jnp.ndarray
    sp: jnp.ndarray
    D: jnp.ndarray
    K: jnp.ndarray
    S: jnp.ndarray          # ceil(log2 k): XOR steps
    e2: jnp.ndarray         # 2^S


class Steps(NamedTuple):
    """A dim's steps of one pattern, per byte of the collective's size n (scalars)."""

    steps: jnp.ndarray      # number of steps
    hops: jnp.ndarray       # Σ_t η_t
    load: jnp.ndarray       # Σ_t λ_t c_t / n (node-volume units)
    chunk: jnp.ndarray      # Σ_t c_t / n (what each rank sends: transit through inner levels)
    eta: jnp.ndarray        # mean hops per step (store-and-forward)
    rev: jnp.ndarray        # the reverse direction carries data (ACKs share the link)
    msg: jnp.ndarray        # Σ_t (one message of step t) / n: sets the store-and-forward packet


def geometry(fabric: Fabric, stride, size) -> tuple[list[Level], list[Dim]]:
    """The group's three levels and six dims."""
    gs = group_levels(fabric, stride, size)
    out, N, G = [], 1.0, 1.0
    lat_in = tr_in = pk_in = hd_in = ak_in = 0.0
    for f, g in zip((fabric.l1, fabric.l2, fabric.l3), gs, strict=True):
        kind = f.kind
        sw = kind == _K.switch
        raw = f.link_bandwidth * f.links_per_node
        cap = where(sw & (f.switch_bandwidth > 0), jnp.minimum(raw, f.switch_bandwidth / f.size), raw)
        bw = fabric.bandwidth_efficiency * cap
        pkt = f.packet_payload > 0
        P = where(pkt, f.packet_payload, 1.0)
        hdr, ackr = where(pkt, f.packet_header / P, 0.0), where(pkt, f.ack_bytes / P, 0.0)
        q = where(pkt, 1.0 / bw, 0.0)
        is2d = (kind == _K.mesh2d) | (kind == _K.torus2d)
        X = where(is2d, f.dim_x, f.size)
        sigma = jnp.maximum(stride / N, 1.0)
        gx = clip(X / sigma, 1.0, g)
        lv = Level(sw=sw, a2a=kind == _K.all_to_all, wrap=(kind == _K.ring) | (kind == _K.torus2d),
                   g=g, N=N, G=G, bw=bw, hdr=hdr, ackr=ackr,
                   payload=f.packet_payload * pkt, q=q, hop=f.hop_latency, lat_in=lat_in, tr_in=tr_in, pk_in=pk_in,
                   hd_in=hd_in, ak_in=ak_in, header=f.packet_header * pkt, ack=f.ack_bytes * q, gx=gx, gy=g / gx,
                   sx=sigma, sy=jnp.maximum(sigma / X, 1.0), X=X, Y=where(is2d, f.dim_y, 1.0))
        out.append(lv)
        t = where(sw, 2.0, 1.0)
        lat_in = lat_in + t * f.hop_latency
        tr_in = jnp.maximum(tr_in, N * (1.0 + hdr + ackr) / bw)
        pk_in, hd_in, ak_in = pk_in + t * q, hd_in + t * q * lv.header, ak_in + t * lv.ack
        N, G = N * f.size, G * g
    dims, K = [], 1.0
    for lv in out:
        for k, sp, D in ((lv.gx, lv.sx, lv.X), (lv.gy, lv.sy, lv.Y)):
            S = relax.ceil(jnp.log2(jnp.maximum(k, 1.0)))
            dims.append(Dim(lv=lv, k=k, sp=sp, D=D, K=K, S=S, e2=jnp.exp2(S)))
            K = K * k
    return out, dims


def shift(d: Dim):
    """A ring-neighbour step along the dim: (λ, η, reverse-loaded, bidirectional halves λ)."""
    lv = d.lv
    full = d.k * d.sp >= d.D
    span = (d.k - 1.0) * d.sp
    lam = where(lv.sw | lv.a2a, 1.0, d.sp)
    eta = where(lv.sw, 2.0, where(lv.a2a, 1.0, where(
        lv.wrap, where(full, d.sp, jnp.minimum(span, d.D - span)), d.sp * jnp.minimum(2.0, d.k - 1.0))))
    rev = where(lv.a2a, d.k <= 2.0, where(lv.wrap, ~full | (d.D <= 2.0), True))
    gain = where(lv.a2a, d.k > 2.0, lv.wrap & full & (d.D > 2.0))
    return lam, eta, rev, gain


def ring_steps(d: Dim, sh, bidirectional: bool = False) -> Steps:
    """One reduce-scatter pass of a ring along the dim: k - 1 shifts of n / (K k)."""
    lam, eta, rev, gain = sh
    if bidirectional:
        lam, rev = where(gain, 0.5 * lam, lam), rev | gain
    steps = d.k - 1.0
    per = steps / (d.K * d.k)
    return Steps(steps, steps * eta, per * lam, per, eta, rev, per)


def tree_steps(d: Dim, sh) -> tuple[Steps, jnp.ndarray]:
    """Double binary tree along the dim: 2 ceil(log2 k) steps of latency, and the per-byte
    link load of its pipelined stream (units of node volume; network.py divides by K)."""
    lam, eta, rev, _ = sh
    S = 2.0 * d.S
    zero = jnp.zeros_like(S)
    return Steps(S, S * eta, zero, zero, eta, rev, S), lam


def xor_steps(d: Dim, series: str, p) -> Steps:
    """Recursive doubling/halving along a dim: step t pairs members 2^t apart.

    ``series``: 'const' c_t = n; 'halving' c_t = n / (K 2^(t+1)); 'doubling' c_t = n K 2^t / p.
    λ_t = 1 (switch, all-to-all) or δ_t = 2^t s (halved on the last step of a full wrap dim).
    """
    lv, S, e2 = d.lv, d.S, d.e2
    if series == "const":
        chunk, moment, last = S, e2 - 1.0, 1.0
    elif series == "halving":
        c0 = 1.0 / (2.0 * d.K)
        chunk, moment, last = 2.0 * c0 * (1.0 - 1.0 / e2), S * c0, 2.0 * c0 / e2
    else:  # doubling
        c0 = d.K / p
        chunk, moment, last = c0 * (e2 - 1.0), c0 * (e2 * e2 - 1.0) / 3.0, 0.5 * c0 * e2
    flat = lv.sw | lv.a2a
    halve_last = lv.wrap & (e2 * d.sp >= d.D) & (S > 0)
    load = where(flat, chunk, d.sp * moment - where(halve_last, 0.25 * e2 * d.sp * last, 0.0))
    hops = where(lv.sw, 2.0 * S, where(lv.a2a, S, d.sp * (e2 - 1.0)))
    return Steps(S, hops, load, chunk, hops / jnp.maximum(S, 1.0), True, chunk)


def _a2a_1d(sw, a2a, wrap, k, sp):
    ring = _floor(k * k / 4.0) / 2.0
    chain = _floor(k / 2.0) * relax.ceil(k / 2.0)
    lam = where(sw, k - 1.0, where(a2a, 1.0, sp * where(wrap, ring, chain)))
    eta = where(sw, 2.0, where(a2a, 1.0, sp * where(wrap, _floor(k / 2.0), k - 1.0)))
    return where(k > 1.0, lam, 0.0), where(k > 1.0, eta, 0.0)


def a2a_steps(d: Dim) -> Steps:
    """One all-to-all step among the k members of a dim, messages of c p / k = n / k bytes
    (the hierarchical all-to-all: dim by dim, n = p c)."""
    lam, eta = _a2a_1d(d.lv.sw, d.lv.a2a, d.lv.wrap, d.k, d.sp)
    on = where(d.k > 1.0, 1.0, 0.0)
    return Steps(on, on * eta, lam / d.k, (d.k - 1.0) / d.k, eta, True, on / d.k)


def a2a_ring_steps(d: Dim, sh) -> Steps:
    """ASTRA-sim's native ring all-to-all along the dim (``Ring.cc``, ``ComType::All_to_All``):
    k(k - 1)/2 neighbour steps, each one message of n/k (``msg_size = data_size /
    nodes_in_ring``; every dim gets the whole buffer, ``final_data_size = data_size``). The
    collective's chunks alternate ring directions (``get_next_queue_at_level``), so a full wrap
    dim carries half of it each way (the bidirectional ring's λ/2)."""
    lam, eta, rev, gain = sh
    lam, rev = where(gain, 0.5 * lam, lam), rev | gain
    steps = 0.5 * d.k * (d.k - 1.0)
    per = 0.5 * (d.k - 1.0)
    return Steps(steps, steps * eta, per * lam, per, eta, rev, steps / d.k)


def a2a_level(lv: Level):
    """Flat all-to-all among a level's g members (per-pair volume units): (λ_a, η_a)."""
    lx, ex = _a2a_1d(lv.sw, lv.a2a, lv.wrap, where(lv.sw | lv.a2a, lv.g, lv.gx), lv.sx)
    ly, ey = _a2a_1d(False, False, lv.wrap, lv.gy, lv.sy)
    return jnp.maximum(lx * where(lv.sw | lv.a2a, 1.0, lv.gy), ly * lv.gx), ex + ey


def p2p_level(lv: Level):
    """Send to the member σ nodes away at this level: (λ, η)."""
    along_x = lv.gx > 1.0
    delta = where(along_x, lv.sx, lv.sy)
    D = where(along_x, lv.X, lv.Y)
    hops = where(lv.wrap, jnp.minimum(delta, jnp.maximum(D - delta, 1.0)), delta)
    flat = lv.sw | lv.a2a
    return where(flat, 1.0, hops), where(lv.sw, 2.0, where(lv.a2a, 1.0, hops))
