"""L2: collectives on a fabric hierarchy of up to three levels (dual-stage model, stage 2).

Stage 1 (``topology.py``) places the group on the fabric (3 levels, 6 dims) and turns every
step of an algorithm into the load on the busiest directed link and the hops of the worst
path, per topology kind. Stage 2 (here) prices a dim's steps (S steps of chunks c_t, loads
λ_t, hops η_t; r = the reverse direction carries data too) on its level l, sums the dims,
and returns an algorithm's time as α + SF + β n for a collective of n bytes:
  β n = max( N_l w Σ λ_t c_t / B_l,  tr_l Σ c_t )    (busiest link; B_l has the crossbar cap)
        w = 1 + H/P + r A/P wire bytes per payload byte (P payload, H header, A ACK bytes)
  α   = Σ_t (lat_in + η_t h_l)(1 + rt) + rt (ak_in + η_t A/B_l)
        rt = ack_round_trip: a transfer completes when its last ACK is back (ASTRA-sim's NS-3
        glue), so the path latency is paid twice and the ACK's serialisation once per hop
  SF  = store-and-forward of one packet per hop after the first (the dim's mean η per
        step): its header H/B, and min(m n, P)/B of payload, m n = the algorithm's mean
        message (Σ messages / Σ steps; a step's message: ring n/(K k), XOR c_t, tree n,
        all-to-all n/p or n/k by dims, p2p n), P = the largest payload of the fabric
Unpacketised links (P = 0) have w = 1, no SF and no ACKs. Everything but min(m n, P) is
independent of n, so the calls on one group share it (one XLA computation per group) and a
call costs a few multiply-adds per algorithm.

Algorithms (p = group size, n bytes; a dim has k members, K in its inner dims, S = ⌈log2 k⌉):
  ring            multi-dimensional ring: reduce-scatter dim by dim (k - 1 shifts of
                  n/(K k)), all-gather back (AR = 2 passes; HARDWARE.md §5.2, MPICH)
  bidirectional_ring  half the data each way (wrap and all-to-all dims)
  recursive_doubling  XOR partners 1, 2, 4.. apart, inner dims first; AR: c = n every
                  step (lg p α + n lg p β); AG: c_t = n K 2^t / p (chunks double outwards)
  halving_doubling    AR = Rabenseifner: recursive-halving reduce-scatter (partners 1, 2..
                  apart, c_t = n / (K 2^(t+1))) + the mirror all-gather (2 lg p α +
                  2 n (p-1)/p β); AG/RS = one half (the AG pairs p/2 .. 1 apart)
  tree            double binary tree, pipelined: 2 S latency steps per dim (shift hops),
                  bandwidth 2 n max_d max(N_l w λ_shift / B_l, tr_l) / K_d
  direct          one all-to-all step of n/p per pair (AR: reduce-scatter + all-gather)
  all-to-all      n = one rank's whole send buffer, c = n/p per member (the caller folds
                  MoE imbalance into n). direct: one step; the node link of level l carries
                  N_l c (G_l λ_a + p - G_l g_l) (pattern among its g_l members + transit to
                  outer levels); time = max over levels, latency = path to the outermost
                  level the group spans.
                  hierarchical (ASTRA-sim multi-dim): one step per dim, n/k to each of the
                  k - 1 members of the dim
  p2p             n bytes to the rank ``stride`` away, every rank of the node at once, on
                  the outermost level the two ranks differ in
``algorithm=None`` returns the cheapest of ``_BEST``; a name evaluates that one.
Every function returns ``(latency_s, bandwidth_s)`` and adds ``collective_overhead`` to the
latency of a call with more than one rank.
Validated against ASTRA-sim/NS-3 (``jaxstack.validation.collectives``, 261 points, nothing
fitted): weighted error 0.0-0.2 % per panel, point MAPE 0.2-1.5 % (DeepStack: 1.6-3.8 %,
25-112 %).
Not modelled: reduction compute (γ), in-network reduction (SHARP/NVLS), congestion-control
and PFC dynamics, ranks that drift apart and overlap one step's latency with another's
transfer (NS-3's two-level all-reduce runs up to 15 % faster than this at 64 KiB-1 MiB).
"""

from typing import NamedTuple

import jax.numpy as jnp

from jaxstack.physics.topology import (
    Level,
    Steps,
    a2a_level,
    a2a_steps,
    geometry,
    group_levels,
    p2p_level,
    ring_steps,
    shift,
    tree_steps,
    xor_steps,
)
from jaxstack.types.hardware import Fabric

__all__ = ["group_levels", "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p",
           "ALL_REDUCE_ALGORITHMS", "ALL_GATHER_ALGORITHMS", "ALL_TO_ALL_ALGORITHMS"]

ALL_REDUCE_ALGORITHMS = ("ring", "bidirectional_ring", "recursive_doubling", "halving_doubling", "tree", "direct")
ALL_GATHER_ALGORITHMS = ("ring", "bidirectional_ring", "recursive_doubling", "halving_doubling", "direct")
ALL_TO_ALL_ALGORITHMS = ("direct", "hierarchical")
# ``algorithm=None`` takes the cheapest of these; the others are (practically) dominated and
# evaluated by name only: a one-way ring never beats the bidirectional one; a recursive-
# doubling all-gather beats halving-doubling (small chunks over the outer levels) only when
# outer links are faster than inner ones; the dimension-by-dimension all-to-all moves the
# direct one's bytes in more steps
_BEST = {"all_reduce": ALL_REDUCE_ALGORITHMS[1:], "all_gather": ("bidirectional_ring", "halving_doubling", "direct"),
         "all_to_all": ("direct",)}


class _Link(NamedTuple):
    """Per-level constants of stage 2 (computed once per group)."""

    step: jnp.ndarray       # latency per step: transit (1 + rt), returning ACKs, headers stored
    hop: jnp.ndarray        #   and forwarded at transit hops; per crossing hop: (1 + rt) + ACK
    hdr: jnp.ndarray        # a header stored and forwarded at a crossing hop
    sfp: jnp.ndarray        # a full payload stored and forwarded: per step (transit), per hop
    sfq: jnp.ndarray
    kw: jnp.ndarray         # N wire / B: s per byte of node load, one-way and with ACKs
    kwa: jnp.ndarray
    tr: jnp.ndarray


def _link(lv: Level, l1: Level, rt, ack_rt) -> _Link:
    """The first hop's packet is already in the bandwidth term: one packet less per step."""
    k = lv.N / lv.bw
    return _Link(step=lv.lat_in * rt + ack_rt * lv.ak_in + lv.hd_in - l1.q * l1.header,
                 hop=lv.hop * rt + ack_rt * lv.ack, hdr=lv.q * lv.header, sfp=(lv.pk_in - l1.q) * lv.payload,
                 sfq=lv.q * lv.payload, kw=k * (1.0 + lv.hdr), kwa=k * (1.0 + lv.hdr + lv.ackr), tr=lv.tr_in)


def _sel(rev, a, b):
    return a if rev is True else jnp.where(rev, a, b)


class _Alg(NamedTuple):
    """An algorithm on one group, independent of n: time = α + sf min(m n, P)/P + β n."""

    alpha: jnp.ndarray      # latency without stored-and-forwarded payload (s)
    sf: jnp.ndarray         # store-and-forward of full-payload packets (s)
    beta: jnp.ndarray       # bandwidth term (s per byte)
    steps: jnp.ndarray      # with msg: the mean message m = msg/steps per byte
    msg: jnp.ndarray


def _cost(lk: _Link, st: Steps) -> _Alg:
    """Price a dim's steps on its level (stage 2)."""
    alpha = st.steps * (lk.step + st.eta * lk.hdr) + st.hops * lk.hop
    sf = st.steps * (lk.sfp + st.eta * lk.sfq)
    return _Alg(alpha, sf, jnp.maximum(_sel(st.rev, lk.kwa, lk.kw) * st.load, lk.tr * st.chunk), st.steps, st.msg)


def _add(a: _Alg, b: _Alg) -> _Alg:
    return _Alg(*(x + y for x, y in zip(a, b, strict=True)))


def _where(c, a: _Alg, b: _Alg) -> _Alg:
    return _Alg(*(jnp.where(c, x, y) for x, y in zip(a, b, strict=True)))


class _Net:
    """One (fabric, group): its levels and dims, and each algorithm's cost (``_Alg``)."""

    def __init__(self, fabric: Fabric, stride, size):
        self.levels, self.dims = geometry(fabric, stride, size)
        rt, ack_rt = 1.0 + fabric.ack_round_trip, fabric.ack_round_trip
        self.links = [_link(lv, self.levels[0], rt, ack_rt) for lv in self.levels]
        self.dim_links = [self.links[i // 2] for i in range(6)]
        self.p = size
        self.payload = jnp.maximum(jnp.maximum(self.levels[0].payload, self.levels[1].payload),
                                   self.levels[2].payload)
        self._shift = None

    def shifts(self):
        if self._shift is None:
            self._shift = [shift(d) for d in self.dims]
        return self._shift

    def _sum(self, steps: list[Steps]) -> _Alg:
        out = _cost(self.dim_links[0], steps[0])
        for lk, st in zip(self.dim_links[1:], steps[1:], strict=True):
            out = _add(out, _cost(lk, st))
        return out

    def coefficients(self, a: _Alg):
        """(α, SF at full packets / P, β, mean message per byte of n): n-independent."""
        P = self.payload
        sf = jnp.where(P > 0, a.sf / jnp.where(P > 0, P, 1.0), 0.0)
        return a.alpha, sf, a.beta, a.msg / jnp.maximum(a.steps, 1.0)

    def at(self, coef, n):
        """(latency, bandwidth) for n bytes."""
        alpha, sf, beta, m = coef
        return jnp.maximum(alpha + sf * jnp.minimum(m * n, self.payload), 0.0), beta * n

    def ring(self, bidirectional) -> _Alg:
        """One reduce-scatter (or all-gather) pass of the multi-dimensional ring."""
        return self._sum([ring_steps(d, sh, bidirectional) for d, sh in zip(self.dims, self.shifts(), strict=True)])

    def xor(self, series) -> _Alg:
        return self._sum([xor_steps(d, series, self.p) for d in self.dims])

    def a2a_hier(self) -> _Alg:
        return self._sum([a2a_steps(d) for d in self.dims])

    def tree(self) -> _Alg:
        per, out = 0.0, None
        for d, lk, sh in zip(self.dims, self.dim_links, self.shifts(), strict=True):
            st, cross = tree_steps(d, sh)
            c = _cost(lk, st)
            out = c if out is None else _add(out, c)
            link = jnp.maximum(_sel(st.rev, lk.kwa, lk.kw) * cross, lk.tr)
            per = jnp.maximum(per, jnp.where(d.k > 1.0, link / d.K, 0.0))
        return out._replace(beta=2.0 * per)

    def a2a_flat(self) -> _Alg:
        """One step: every member sends n/p to every other member of the group; the busiest
        level sets the bandwidth, the outermost level the group spans the path."""
        p, out, beta = self.p, None, 0.0
        for lv, lk in zip(self.levels, self.links, strict=True):
            lam, eta = a2a_level(lv)
            msgs = lv.G * lam + (p - lv.G * lv.g)       # messages per rank on the node's busiest link
            c = _cost(lk, Steps(1.0, eta, msgs / p, 0.0, eta, True, 1.0 / p))
            beta = jnp.maximum(beta, jnp.where(p - lv.G > 0.5, c.beta, 0.0))
            out = c if out is None else _where(lv.g > 1.0, c, out)
        return out._replace(beta=beta)

    def p2p(self) -> _Alg:
        """Send to the rank ``stride`` away: the outermost level the two ranks differ in."""
        out = None
        for lv, lk in zip(self.levels, self.links, strict=True):
            lam, eta = p2p_level(lv)
            c = _cost(lk, Steps(1.0, eta, lam, 1.0, eta, lv.sw, 1.0))
            out = c if out is None else _where(lv.g > 1.0, c, out)
        return out


def _twice(a: _Alg) -> _Alg:
    return _Alg(*(2.0 * x for x in a))


def _pick(net: _Net, costs: dict, algorithm: str | None, op: str, n):
    """(lat, bw) at size n of the named algorithm, or of the cheapest of ``_BEST[op]``."""
    if algorithm is not None:
        if algorithm not in costs:
            raise ValueError(f"unknown {op} algorithm {algorithm!r}; choose from {tuple(costs)}")
        return net.at(net.coefficients(costs[algorithm]()), n)
    lat = bw = None
    for a in _BEST[op]:
        la, ba = net.at(tuple(map(_keep, net.coefficients(costs[a]()))), n)
        if lat is None:
            lat, bw = la, ba
        else:
            better = la + ba < lat + bw
            lat, bw = jnp.where(better, la, lat), jnp.where(better, ba, bw)
    return lat, bw


def _keep(x):
    """``x``, materialised. XLA:CPU otherwise fuses the per-group chain into every consumer
    (each call on the group, each decode KV point that broadcasts it) and recomputes it there,
    several times the network's own cost; ``optimization_barrier`` is dropped on CPU, while a
    reduction stays the root of its fusion."""
    return jnp.sum(jnp.stack([x, jnp.zeros_like(x)]), axis=0)


def _finish(fabric: Fabric, size, lat_bw):
    on = size > 1.0
    return _keep(jnp.where(on, lat_bw[0] + fabric.collective_overhead, 0.0)), _keep(jnp.where(on, lat_bw[1], 0.0))


def all_reduce(fabric: Fabric, stride, size, nbytes, algorithm: str | None = None):
    """All-reduce of an ``nbytes`` buffer over a (stride, size) group: (latency_s, bandwidth_s)."""
    net = _Net(fabric, stride, size)
    costs = {
        "ring": lambda: _twice(net.ring(False)),
        "bidirectional_ring": lambda: _twice(net.ring(True)),
        "recursive_doubling": lambda: net.xor("const"),
        "halving_doubling": lambda: _twice(net.xor("halving")),
        "tree": net.tree,
        "direct": lambda: _twice(net.a2a_flat()),
    }
    return _finish(fabric, size, _pick(net, costs, algorithm, "all_reduce", nbytes))


def all_gather(fabric: Fabric, stride, size, nbytes, algorithm: str | None = None):
    """All-gather whose per-rank *output* is ``nbytes`` (each rank contributes nbytes/size)."""
    net = _Net(fabric, stride, size)
    costs = {
        "ring": lambda: net.ring(False),
        "bidirectional_ring": lambda: net.ring(True),
        "recursive_doubling": lambda: net.xor("doubling"),
        "halving_doubling": lambda: net.xor("halving"),
        "direct": net.a2a_flat,
    }
    return _finish(fabric, size, _pick(net, costs, algorithm, "all_gather", nbytes))


def reduce_scatter(fabric: Fabric, stride, size, nbytes, algorithm: str | None = None):
    """Reduce-scatter of an ``nbytes`` input per rank: the time-reversed all-gather."""
    return all_gather(fabric, stride, size, nbytes, algorithm)


def all_to_all(fabric: Fabric, stride, size, nbytes, algorithm: str | None = None):
    """All-to-all; ``nbytes`` = one rank's whole send buffer, nbytes/size per member."""
    net = _Net(fabric, stride, size)
    costs = {"direct": net.a2a_flat, "hierarchical": net.a2a_hier}
    return _finish(fabric, size, _pick(net, costs, algorithm, "all_to_all", nbytes))


def p2p(fabric: Fabric, stride, nbytes):
    """Point-to-point send of ``nbytes`` to the rank ``stride`` away (PP stage boundary)."""
    net = _Net(fabric, stride, 2.0)
    lat, bw = net.at(tuple(map(_keep, net.coefficients(net.p2p()))), nbytes)
    return _keep(lat + fabric.collective_overhead), _keep(bw)
