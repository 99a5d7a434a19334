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
  in_switch       AR reduced in a level-1 switch that can (NVLS; ``l1.switch_reduce``): n up, the
                  sum down, one step of two hops; a candidate from ``switch_reduce_from`` bytes on
  all-to-all      n = one rank's whole send buffer, c = n/p per member (the caller folds
                  MoE imbalance into n). direct: one step; the node link of level l carries
                  N_l c (G_l λ_a + p - G_l g_l) (pattern among its g_l members + transit to
                  outer levels); time = max over levels, latency = path to the outermost
                  level the group spans.
                  hierarchical (ASTRA-sim multi-dim): one step per dim, n/k to each of the
                  k - 1 members of the dim
                  ring (ASTRA-sim's native ring all-to-all, Ring.cc): per dim k(k-1)/2
                  neighbour steps of n/k, chunks both ways round a wrap dim, pipelined through
                  the dims (latency: steps add; bandwidth: the busiest dim); by name only
  p2p             n bytes to the rank ``stride`` away, every rank of the node at once, on
                  the outermost level the two ranks differ in
``algorithm=None`` returns the cheapest of ``_BEST``; a name evaluates that one.
Resolved once per design point (``collective_plan.plans``, on this module's ``_Net``): the
levels [3, G] and dims [6, G] of a vector of G groups are array rows (no unrolled loop over
them), each algorithm is traced once for all groups, and ``collective_plan.cost`` picks the
cheapest candidate for a message size with an argmin.
Every function returns ``(latency_s, bandwidth_s)`` and adds ``collective_overhead`` to the
latency of a call with more than one rank.
Validated against ASTRA-sim/NS-3 (``jaxstack.validation.collectives``, 281 points, nothing
fitted): weighted error 0.0-0.2 % per panel, point MAPE 0.04-1.5 % (DeepStack: 1.3-3.8 %,
25-112 %).
Software policies (``collective_policy.py``): two-stage all-reduces, when a stack reduces in the switch.
Not modelled: reduction compute (γ), in-network reduction beyond level 1, congestion-control
and PFC dynamics, ranks that drift apart and overlap one step's latency with another's
transfer (NS-3's two-level all-reduce runs up to 15 % faster than this at 64 KiB-1 MiB).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..types.hardware import Fabric
from .collective_policy import switch_reduces, two_stage_overhead, two_stage_split, within_node
from .compute import keep
from .lean import where
from .topology import (
    Level,
    Steps,
    a2a_level,
    a2a_ring_steps,
    a2a_steps,
    geometry,
    group_levels,
    p2p_level,
    ring_steps,
    shift,
    tree_steps,
    xor_steps,
)

__all__ = ["group_levels", "all_reduce", "all_gather", "reduce_scatter",
           "all_to_all", "p2p", "two_stage_split", "two_stage_overhead", "switch_reduces",
           "ALL_REDUCE_ALGORITHMS", "ALL_GATHER_ALGORITHMS", "ALL_TO_ALL_ALGORITHMS"]

ALL_REDUCE_ALGORITHMS = ("ring", "bidirectional_ring", "recursive_doubling", "halving_doubling", "tree", "direct",
                         "in_switch")
ALL_GATHER_ALGORITHMS = ("ring", "bidirectional_ring", "recursive_doubling", "halving_doubling", "direct")
ALL_TO_ALL_ALGORITHMS = ("direct", "hierarchical", "ring")
# ``algorithm=None`` takes the cheapest of these; the others are (practically) dominated and
# evaluated by name only: a one-way ring never beats the bidirectional one; a recursive-
# doubling all-gather beats halving-doubling (small chunks over the outer levels) only when
# outer links are faster than inner ones; the dimension-by-dimension all-to-all moves the
# direct one's bytes in more steps
NEVER = 1e30     # the latency of a candidate that cannot run (in_switch off its switch or below its size)
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
    return a if rev is True else where(rev, a, b)


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


def _rows(trees, shape):
    """Stack a list of equal pytrees (levels or dims) into one with a leading row axis, every
    leaf broadcast to the group shape: the loops over levels and dims become array axes."""
    return jax.tree_util.tree_map(lambda *xs: stack_to(xs, shape), *trees)


def stack_to(xs, shape):
    """``jnp.stack`` of ``xs`` each broadcast to ``shape``: where they are all scalars, stacked
    first and broadcast once (one equation, not one per row)."""
    xs = [jnp.asarray(x) for x in xs]
    if all(x.ndim == 0 for x in xs) and shape:
        rows = jnp.stack(xs)
        return lax.broadcast_in_dim(rows, (len(xs),) + tuple(shape), (0,))
    return jnp.stack([jnp.broadcast_to(x, shape) for x in xs])


def _full(a: _Alg, shape) -> _Alg:
    return _Alg(*(jnp.broadcast_to(jnp.asarray(x), shape) for x in a))


def _per_dim(x):
    """Level rows [3, ...] -> dim rows [6, ...] (dims x1 y1 x2 y2 x3 y3: each level twice), as a
    broadcast XLA fuses into the consumers (an index gather was materialised with a transpose)."""
    x = jnp.asarray(x)
    return jnp.broadcast_to(x[:, None], (3, 2) + x.shape[1:]).reshape((6,) + x.shape[1:])


class _Sliced:
    """A geometry NamedTuple (``Level``, ``Dim``, ``_Link``) cut to some groups (its last
    axis), a field at a time when first read: an op's algorithms read a few of the fields, so
    only those are sliced (slicing every field for every op was ~290 traced equations)."""

    def __init__(self, nt, idx):
        self._nt, self._idx = nt, idx

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        v = getattr(self._nt, name)
        v = _Sliced(v, self._idx) if hasattr(v, "_fields") else (None if v is None else v[..., self._idx])
        setattr(self, name, v)
        return v


class _Net:
    """One fabric and a vector of groups: levels [3, G] and dims [6, G] as array rows, and each
    algorithm's cost (``_Alg``, [G])."""

    def __init__(self, fabric: Fabric, stride, size, _geometry=None, _links=None):
        self.fabric = fabric
        self.p = size
        self.shape = jnp.shape(size)
        if _geometry is None:
            levels, dims = geometry(fabric, stride, size)
            L = _rows(levels, self.shape)
            # a dim's level is a row of L (one gather per field, not six broadcasts and a stack)
            D = _rows([d._replace(lv=None) for d in dims], self.shape)
            # (the dims read three of their level's fields: the others are not repeated per dim)
            lv = L._replace(**{f: None for f in L._fields if f not in ("sw", "a2a", "wrap")})
            _geometry = (L, D._replace(lv=jax.tree_util.tree_map(_per_dim, lv)))
        self.L, self.D = _geometry
        if _links is None:
            rt, ack_rt = 1.0 + fabric.ack_round_trip, fabric.ack_round_trip
            links = _link(self.L, self.L._replace(q=self.L.q[:1], header=self.L.header[:1]), rt, ack_rt)
            pay = self.L.payload
            _links = (links, jax.tree_util.tree_map(_per_dim, links),
                      jnp.maximum(jnp.maximum(pay[0], pay[1]), pay[2]))
        self.links, self.dim_links, self.payload = _links
        self._shift = None
        self.p1 = jnp.asarray(size)[None]   # [1, G]: broadcasts against the row axis
        self._memo = {}

    def memo(self, key, fn):
        """``fn()`` once per net (algorithms shared by several collectives are traced once)."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def take(self, idx) -> "_Net":
        """The sub-net of the groups ``idx`` (a static index list): one geometry pass serves
        every collective of a design point."""
        idx = np.asarray(idx)
        if np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
            idx = slice(int(idx[0]), int(idx[0]) + len(idx))      # contiguous: a slice, not a gather
        geo = (_Sliced(self.L, idx), _Sliced(self.D, idx))
        links = (_Sliced(self.links, idx), _Sliced(self.dim_links, idx), self.payload[..., idx])
        return _Net(self.fabric, None, self.p[idx], _geometry=geo, _links=links)

    def shifts(self):
        if self._shift is None:
            self._shift = shift(self.D)
        return self._shift

    def _sum(self, steps: Steps) -> _Alg:
        c = _full(_cost(self.dim_links, steps), (6,) + self.shape)
        return _Alg(*(jnp.sum(x, axis=0) for x in c))

    def coefficients(self, a: _Alg):
        """(α, SF at full packets / P, β, mean message per byte of n): n-independent."""
        P = self.payload
        pos, safe, zero = self.memo("payload", lambda: (P > 0, where(P > 0, P, 1.0), jnp.zeros_like(P)))
        sf = lax.select(pos, jnp.broadcast_to(a.sf / safe, P.shape), zero)    # 0 without packets (P = 0)
        return a.alpha, sf, a.beta, a.msg / jnp.maximum(a.steps, 1.0)

    def at(self, coef, n):
        """(latency, bandwidth) for n bytes."""
        alpha, sf, beta, m = coef
        return jnp.maximum(alpha + sf * jnp.minimum(m * n, self.payload), 0.0), beta * n

    def ring(self, bidirectional) -> _Alg:
        """One reduce-scatter (or all-gather) pass of the multi-dimensional ring."""
        return self._sum(ring_steps(self.D, self.shifts(), bidirectional))

    def xor(self, series) -> _Alg:
        return self._sum(xor_steps(self.D, series, self.p1))

    def a2a_hier(self) -> _Alg:
        return self._sum(a2a_steps(self.D))

    def a2a_ring(self) -> _Alg:
        """ASTRA-sim's ring all-to-all dim by dim; the collective's chunks pipeline through the
        dims, so the busiest dim sets the bandwidth term and the steps add up in latency."""
        c = _full(_cost(self.dim_links, a2a_ring_steps(self.D, self.shifts())), (6,) + self.shape)
        out = _Alg(*(jnp.sum(x, axis=0) for x in c))
        return out._replace(beta=jnp.max(c.beta, axis=0))

    def tree(self) -> _Alg:
        st, cross = tree_steps(self.D, self.shifts())
        dl, d = self.dim_links, self.D
        out = self._sum(st)
        link = jnp.maximum(_sel(st.rev, dl.kwa, dl.kw) * cross, dl.tr)
        per = jnp.maximum(0.0, jnp.max(where(d.k > 1.0, link / d.K, 0.0), axis=0))
        return out._replace(beta=2.0 * per)

    def _outermost(self, c: _Alg) -> _Alg:
        """Row of the outermost level the group spans (level 1 when it spans none)."""
        c = _full(c, (3,) + self.shape)
        g1, g2 = self.L.g[1] > 1.0, self.L.g[2] > 1.0
        top = jnp.stack([~(g1 | g2), g1 & ~g2, g2])          # one-hot: the row each group takes
        zero = jnp.zeros_like(c.alpha)
        return _Alg(*(jnp.sum(lax.select(top, x, zero), axis=0) for x in c))

    def a2a_flat(self) -> _Alg:
        """One step: every member sends n/p to every other member of the group; the busiest
        level sets the bandwidth, the outermost level the group spans the path."""
        lv, p = self.L, self.p1
        lam, eta = a2a_level(lv)
        msgs = lv.G * lam + (p - lv.G * lv.g)           # messages per rank on the node's busiest link
        c = _cost(self.links, Steps(1.0, eta, msgs / p, 0.0, eta, True, 1.0 / p))
        beta = jnp.maximum(0.0, jnp.max(where(p - lv.G > 0.5, c.beta, 0.0), axis=0))
        return self._outermost(c)._replace(beta=beta)

    def in_switch(self) -> _Alg:
        """All-reduce in the level-1 switch (NVLS): each rank sends n up and receives the sum, one step
        of two hops both ways; never cheapest off a reducing switch or for a group beyond level 1."""
        lk, lv = self.links, self.L        # _cost of Steps(1, 2, 1, 1, 2, True, 1) on level 1's row
        alpha = lk.step[0] + 2.0 * (lk.hdr[0] + lk.hop[0])
        ok = within_node(lv.g) & lv.sw[0] & (self.fabric.l1.switch_reduce > 0.5)
        one = jnp.ones_like(alpha)
        return _Alg(where(ok, alpha, NEVER), lk.sfp[0] + 2.0 * lk.sfq[0], jnp.maximum(lk.kwa[0], lk.tr[0]), one, one)

    def p2p(self) -> _Alg:
        """Send to the rank ``stride`` away: the outermost level the two ranks differ in."""
        lam, eta = p2p_level(self.L)
        return self._outermost(_cost(self.links, Steps(1.0, eta, lam, 1.0, eta, self.L.sw, 1.0)))


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
        if a == "in_switch":
            la = where(switch_reduces(net.fabric.switch_reduce_from, n), la, NEVER)
        if lat is None:
            lat, bw = la, ba
        else:
            better = la + ba < lat + bw
            lat, bw = where(better, la, lat), where(better, ba, bw)
    return lat, bw


_keep = keep  # compute.keep: materialise (XLA otherwise recomputes the chain in every consumer)


def _finish(fabric: Fabric, size, lat_bw):
    on = size > 1.0
    return _keep(where(on, lat_bw[0] + fabric.collective_overhead, 0.0)), _keep(where(on, lat_bw[1], 0.0))


def all_reduce(fabric: Fabric, stride, size, nbytes, algorithm: str | None = None):
    """All-reduce of an ``nbytes`` buffer over a (stride, size) group: (latency_s, bandwidth_s);
    from ``two_stage_split`` bytes on it pays the per-call overhead twice."""
    net = _Net(fabric, stride, size)
    costs = {
        "ring": lambda: _twice(net.ring(False)),
        "bidirectional_ring": lambda: _twice(net.ring(True)),
        "recursive_doubling": lambda: net.xor("const"),
        "halving_doubling": lambda: _twice(net.xor("halving")),
        "tree": net.tree,
        "direct": lambda: _twice(net.a2a_flat()),
        "in_switch": net.in_switch,
    }
    lat, bw = _finish(fabric, size, _pick(net, costs, algorithm, "all_reduce", nbytes))
    return _keep(lat + two_stage_overhead(fabric, size, nbytes, within_node(net.L.g))), bw


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
    costs = {"direct": net.a2a_flat, "hierarchical": net.a2a_hier, "ring": net.a2a_ring}
    return _finish(fabric, size, _pick(net, costs, algorithm, "all_to_all", nbytes))


def p2p(fabric: Fabric, stride, nbytes):
    """Point-to-point send of ``nbytes`` to the rank ``stride`` away (PP stage boundary)."""
    net = _Net(fabric, stride, 2.0)
    lat, bw = net.at(tuple(map(_keep, net.coefficients(net.p2p()))), nbytes)
    return _keep(lat + fabric.collective_overhead), _keep(bw)
