"""L2: collectives on a fabric hierarchy of up to three levels (α–β form).

Placement. Ranks are grouped TP, EP, SP, CP, DP, PP from the innermost level outwards, so a
group of ``g`` ranks with stride ``s`` (product of the inner degrees) has
    g1 = clip(n1 / s, 1, g)            members inside one L1 domain,
    g2 = clip(n2 / max(s / n1, 1), 1, g / g1)   L1 domains inside one L2 domain,
    g3 = g / (g1 g2).
Bandwidth. Level 1 gives each rank ``link_bandwidth * links_per_node`` (× topology
multiplier). At an outer level a "node" is a whole inner domain, whose uplinks are shared
by all ranks inside it (every group of the same axis runs its collective at once), so a
rank gets ``link_bandwidth * links_per_node / (n1 ... n_{l-1})``. All bandwidths are
scaled by ``fabric.bandwidth_efficiency``.
Latency. One step at level l costs the path latency sum_{e<=l} hops_e * hop_latency_e
(a switch is two hops: node -> switch -> node); every collective call adds the fixed
``fabric.collective_overhead``.
Algorithms (MPICH cost formulas, HARDWARE.md §5.2), per level, hierarchical (sum of levels):
    all-reduce: min over ring [2(g-1) steps, 2(g-1)/g · n], recursive doubling
                [log2 g, log2 g · n], Rabenseifner [2 log2 g, 2(g-1)/g · n], direct
                [2, 2(g-1)/g · n over (g-1) links on all-to-all fabrics]
    all-gather / reduce-scatter: half of ring/Rabenseifner/direct all-reduce
    all-to-all: direct, bandwidth bound by the topology's bisection:
                switch n(g-1)/g/B, all-to-all n/(gB), ring n g/(8B), chain n g/(4B),
                2D torus k n/(8B), 2D mesh k n/(4B) with k = sqrt(g)
Each function returns ``(latency_s, bandwidth_s)``; the overlap model treats them apart.
Not modelled yet (issue 5): per-link traffic matrices (dual-stage), switch crossbar limits,
double binary tree, MoE traffic from routing traces.
"""

import jax.numpy as jnp

from . import relax
from .hardware import Fabric, FabricLevel, TopologyKind

__all__ = ["group_levels", "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p"]

_K = TopologyKind


def _levels(fabric: Fabric) -> tuple[FabricLevel, FabricLevel, FabricLevel]:
    return fabric.l1, fabric.l2, fabric.l3


def group_levels(fabric: Fabric, stride, size):
    """Members of a (stride, size) rank group inside each fabric level: (g1, g2, g3)."""
    n1, n2 = fabric.l1.size, fabric.l2.size
    g1 = jnp.clip(n1 / stride, 1.0, size)
    rest = size / g1
    g2 = jnp.clip(n2 / jnp.maximum(stride / n1, 1.0), 1.0, rest)
    return g1, g2, rest / g2


def _hops(kind):
    return jnp.where(kind == _K.switch, 2.0, 1.0)


def _path_latencies(fabric: Fabric):
    """Latency of one step whose farthest level is l, for l = 1, 2, 3."""
    out, acc = [], 0.0
    for lv in _levels(fabric):
        acc = acc + _hops(lv.kind) * lv.hop_latency
        out.append(acc)
    return out


def _rank_bandwidths(fabric: Fabric):
    """Per-rank injection bandwidth at each level (inner domains share outer uplinks)."""
    out, inner = [], 1.0
    for lv in _levels(fabric):
        out.append(lv.link_bandwidth * lv.links_per_node * fabric.bandwidth_efficiency / inner)
        inner = inner * lv.size
    return out


def _ring_links(kind):
    """Links a ring algorithm drives per rank: bidirectional rings on ring/torus/mesh."""
    return jnp.where(kind == _K.torus2d, 4.0, jnp.where((kind == _K.ring) | (kind == _K.mesh2d), 2.0, 1.0))


_NEVER = 1e30  # cost of an algorithm the topology cannot run (finite: keeps gradients clean)


def _level_all_reduce(kind, g, n, alpha, bw):
    """Best of ring / recursive doubling / Rabenseifner / direct at one level."""
    lg = relax.ceil(jnp.log2(jnp.maximum(g, 1.0)))
    frac = (g - 1.0) / g
    direct_ok = (kind == _K.switch) | (kind == _K.all_to_all)
    direct_links = jnp.where(kind == _K.all_to_all, jnp.maximum(g - 1.0, 1.0), 1.0)
    lat = jnp.stack([2 * (g - 1) * alpha, lg * alpha, 2 * lg * alpha, 2 * alpha])
    bwt = jnp.stack([2 * frac * n / (bw * _ring_links(kind)), lg * n / bw, 2 * frac * n / bw,
                     jnp.where(direct_ok, 2 * frac * n / (bw * direct_links), _NEVER)])
    best = jnp.argmin(lat + bwt)
    active = g > 1.0
    return jnp.where(active, lat[best], 0.0), jnp.where(active, bwt[best], 0.0)


def all_reduce(fabric: Fabric, stride, size, nbytes):
    """Hierarchical all-reduce of an ``nbytes`` buffer over a (stride, size) group."""
    gs = group_levels(fabric, stride, size)
    lats, bws = _path_latencies(fabric), _rank_bandwidths(fabric)
    lat, bwt, n = 0.0, 0.0, nbytes
    for lv, g, a, b in zip(_levels(fabric), gs, lats, bws, strict=True):
        l_, b_ = _level_all_reduce(lv.kind, g, n, a, b)
        lat, bwt, n = lat + l_, bwt + b_, n / g
    active = size > 1.0
    return jnp.where(active, lat + fabric.collective_overhead, 0.0), jnp.where(active, bwt, 0.0)


def all_gather(fabric: Fabric, stride, size, nbytes):
    """All-gather whose per-rank *output* is ``nbytes`` (= reduce-scatter input)."""
    lat, bwt = all_reduce(fabric, stride, size, nbytes)
    ovh = jnp.where(size > 1.0, fabric.collective_overhead, 0.0)
    return 0.5 * (lat - ovh) + ovh, 0.5 * bwt


reduce_scatter = all_gather


def _a2a_time(kind, g, n, bw):
    k = jnp.sqrt(g)
    t = jnp.where(kind == _K.switch, n * (g - 1) / g / bw,
        jnp.where(kind == _K.all_to_all, n / (g * bw),
        jnp.where(kind == _K.ring, n * g / (8 * bw),
        jnp.where(kind == _K.chain, n * g / (4 * bw),
        jnp.where(kind == _K.torus2d, k * n / (8 * bw), k * n / (4 * bw))))))
    return t


def _a2a_hops(kind, g):
    k = jnp.sqrt(g)
    return jnp.where(kind == _K.switch, 2.0, jnp.where(kind == _K.all_to_all, 1.0,
           jnp.where(kind == _K.ring, jnp.floor(g / 2), jnp.where(kind == _K.chain, g - 1,
           jnp.where(kind == _K.torus2d, 2 * jnp.floor(k / 2), 2 * (k - 1))))))


def all_to_all(fabric: Fabric, stride, size, nbytes):
    """Direct all-to-all; ``nbytes`` = what one rank sends in total (all destinations).

    Level l carries the bytes whose destination lies outside the rank's level-(l-1)
    sub-group, a fraction (g - G_{l-1}) / g of them (G = cumulative members); the levels
    work concurrently, so the slowest level sets the bandwidth term.
    """
    gs = group_levels(fabric, stride, size)
    bws = _rank_bandwidths(fabric)
    lat, bwt, inner, acc = 0.0, 0.0, 1.0, 0.0
    for lv, g, b in zip(_levels(fabric), gs, bws, strict=True):
        active = g > 1.0
        acc = acc + _a2a_hops(lv.kind, g) * lv.hop_latency
        lat = jnp.where(active, acc, lat)
        share = (size - inner) / jnp.maximum(size, 1.0)
        n_l = nbytes * share * g / jnp.maximum(g - 1.0, 1e-9)
        bwt = relax.maximum(bwt, jnp.where(active, _a2a_time(lv.kind, g, n_l, b), 0.0))
        inner = inner * g
    on = size > 1.0
    return jnp.where(on, lat + fabric.collective_overhead, 0.0), jnp.where(on, bwt, 0.0)


def p2p(fabric: Fabric, stride, nbytes):
    """Point-to-point send of ``nbytes`` to the rank ``stride`` away (PP stage boundary)."""
    gs = group_levels(fabric, stride, 2.0)
    lats, bws = _path_latencies(fabric), _rank_bandwidths(fabric)
    lat, bwt = 0.0, 0.0
    for g, a, b in zip(gs, lats, bws, strict=True):
        crosses = g > 1.0
        lat = jnp.where(crosses, a, lat)
        bwt = jnp.where(crosses, nbytes / b, bwt)
    return lat + fabric.collective_overhead, bwt
