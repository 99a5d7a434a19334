"""L2: a design point's collectives resolved once (``plans``) and priced per message size (``cost``).

``network.py`` has the algorithms and the one-call API (``all_reduce`` ...); here the
n-independent coefficients of each op's cheapest-algorithm candidates (``network._BEST``) on a
vector of G groups are computed once per design point, and ``cost`` picks the cheapest for a
message size with an argmin: ``schedule.py`` prices every collective of a step this way.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ..types.hardware import Fabric
from .collective_policy import splits, switch_reduces, two_stage_split, within_node
from .lean import where
from .network import _BEST, NEVER, _keep, _Net, _twice, stack_to

__all__ = ["Plan", "plans", "cost"]


class Plan(NamedTuple):
    """n-independent coefficients of the cheapest-algorithm candidates (``_BEST``) of one
    collective on a vector of G groups: (α, SF, β, mean message) each [A, G]."""

    coef: tuple
    payload: jnp.ndarray
    on: jnp.ndarray          # [G] the group has more than one rank (p2p: always)
    overhead: jnp.ndarray
    split: jnp.ndarray | None   # [G] all-reduce: bytes from which it runs in two stages (0 = never); others None
    switch_from: jnp.ndarray | None   # all-reduce: bytes from which its last candidate (in_switch) runs; others None


def _ops(net: _Net, op: str) -> dict:
    m = net.memo
    ring = lambda: m("ring2", lambda: net.ring(True))  # noqa: E731
    halving = lambda: m("halving", lambda: net.xor("halving"))  # noqa: E731
    flat = lambda: m("a2a", net.a2a_flat)  # noqa: E731
    return {"all_reduce": {"bidirectional_ring": lambda: _twice(ring()), "recursive_doubling": lambda: net.xor("const"),
                           "halving_doubling": lambda: _twice(halving()), "tree": net.tree,
                           "direct": lambda: _twice(flat()), "in_switch": net.in_switch},
            "all_gather": {"bidirectional_ring": ring, "halving_doubling": halving, "direct": flat},
            "all_to_all": {"direct": flat},
            "p2p": {"p2p": net.p2p}}[op]


def _plan(net: _Net, op: str) -> Plan:
    costs = _ops(net, op)
    coefs = [net.coefficients(costs[a]()) for a in _BEST.get(op, tuple(costs))]
    coef = tuple(_keep(stack_to([c[i] for c in coefs], jnp.shape(net.p))) for i in range(4))
    on = jnp.ones_like(net.p, dtype=bool) if op == "p2p" else net.p > 1.0
    ar = op == "all_reduce"       # the stack's all-reduce policy (collective_policy.py)
    return Plan(coef, net.payload, on, net.fabric.collective_overhead,
                two_stage_split(net.fabric, net.p, within_node(net.L.g)) if ar else None,
                net.fabric.switch_reduce_from if ar else None)


def plans(fabric: Fabric, stride, size, ops: dict) -> dict:
    """``{op: Plan}`` for ``ops = {op: [group indices]}`` on the group vectors (``stride``,
    ``size``): one geometry pass for all groups, each op's algorithms only on its own groups
    (column j of a plan = the op's j-th group, what ``cost`` reads)."""
    net = _Net(fabric, stride, size)
    return {op: _plan(net.take(idx), op) for op, idx in ops.items()}


def cost(pl: Plan, g: int, n):
    """(latency, bandwidth) of the cheapest candidate of ``pl`` on its group ``g`` for n bytes
    (n may be an array: one result per size); 0 on a one-rank group, else
    ``collective_overhead`` added to the latency (twice for a two-stage all-reduce).
    Ties keep the earlier candidate."""
    n = jnp.asarray(n)
    col = (slice(None), g) + (None,) * n.ndim
    alpha, sf, beta, m = (c[col] for c in pl.coef)
    P = pl.payload[g] if jnp.ndim(pl.payload) else pl.payload
    n1 = n[None]
    lat = jnp.maximum(alpha + sf * jnp.minimum(m * n1, P), 0.0)
    if pl.switch_from is not None:      # in_switch (the last candidate) only from the stack's size on
        last = np.zeros(lat.shape[0], np.float32)
        last[-1] = 1.0
        lat = lat + last.reshape((-1,) + (1,) * n.ndim) * where(switch_reduces(pl.switch_from, n), 0.0, NEVER)[None]
    bw = beta * n1
    if lat.shape[0] > 1:
        pick = jnp.arange(lat.shape[0]).reshape((-1,) + (1,) * n.ndim) == jnp.argmin(lat + bw, axis=0, keepdims=True)
        lat, bw = where(pick, lat, 0.0).sum(axis=0), where(pick, bw, 0.0).sum(axis=0)
    else:
        lat, bw = lat[0], bw[0]
    on = pl.on[g]
    over = pl.overhead
    if pl.split is not None:                                        # two stages pay the overhead twice
        split = pl.split[g] if jnp.ndim(pl.split) else pl.split
        over = where(splits(split, n), 2.0 * over, over)
    return _keep(where(on, lat + over, 0.0)), _keep(where(on, bw, 0.0))
