"""Float64 reference of jaxstack.network (collectives on a fabric hierarchy), from its docstring."""

import numpy as np

SWITCH, ALL2ALL, RING, CHAIN, MESH, TORUS = 0, 1, 2, 3, 4, 5
BIG = 1e30

def levels_of_group(fab, stride, size):
    n1, n2 = fab["l1"]["size"], fab["l2"]["size"]
    g1 = np.clip(n1 / stride, 1.0, size)
    g2 = np.clip(n2 / np.maximum(stride / n1, 1.0), 1.0, size / g1)
    return [g1, g2, size / g1 / g2]


def per_rank_bw(fab):
    out, inner = [], 1.0
    for name in ("l1", "l2", "l3"):
        lv = fab[name]
        out.append(lv["link_bandwidth"] * lv["links_per_node"] * fab["bandwidth_efficiency"] / inner)
        inner = inner * lv["size"]
    return out


def step_latency(fab):
    out, acc = [], 0.0
    for name in ("l1", "l2", "l3"):
        lv = fab[name]
        hops = np.where(lv["kind"] == SWITCH, 2.0, 1.0)
        acc = acc + hops * lv["hop_latency"]
        out.append(acc)
    return out


def allreduce_time(fab, stride, size, n):
    gs = levels_of_group(fab, stride, size)
    bws, alphas = per_rank_bw(fab), step_latency(fab)
    total = 0.0
    for i, name in enumerate(("l1", "l2", "l3")):
        kind, g, a, B = fab[name]["kind"], gs[i], alphas[i], bws[i]
        steps = np.ceil(np.log2(np.maximum(g, 1.0)))
        frac = (g - 1) / g
        ring_links = np.where(kind == TORUS, 4.0, np.where((kind == RING) | (kind == MESH), 2.0, 1.0))
        ring = 2 * (g - 1) * a + 2 * frac * n / (B * ring_links)
        rdbl = steps * a + np.log2(np.maximum(g, 1.0)) * n / B
        rabe = 2 * steps * a + 2 * frac * n / B
        links = np.where(kind == ALL2ALL, np.maximum(g - 1, 1.0), 1.0)
        direct = np.where((kind == SWITCH) | (kind == ALL2ALL), 2 * a + 2 * frac * n / (B * links), BIG)
        best = np.minimum(np.minimum(ring, rdbl), np.minimum(rabe, direct))
        total = total + np.where(g > 1, best, 0.0)
        n = n / g
    return np.where(size > 1, total + fab["collective_overhead"], 0.0)


def allgather_time(fab, stride, size, n):
    t = allreduce_time(fab, stride, size, n)
    return np.where(size > 1, 0.5 * (t - fab["collective_overhead"]) + fab["collective_overhead"], 0.0)


def alltoall_time(fab, stride, size, n):
    gs = levels_of_group(fab, stride, size)
    bws = per_rank_bw(fab)
    lat, bw_t, reach, acc = 0.0, 0.0, 1.0, 0.0
    for i, name in enumerate(("l1", "l2", "l3")):
        kind, g, B, h = fab[name]["kind"], gs[i], bws[i], fab[name]["hop_latency"]
        k = np.sqrt(g)
        hops = np.select([kind == SWITCH, kind == ALL2ALL, kind == RING, kind == CHAIN, kind == TORUS],
                         [2.0, 1.0, np.floor(g / 2), g - 1, 2 * np.floor(k / 2)], 2 * (k - 1))
        acc = acc + hops * h
        lat = np.where(g > 1, acc, lat)
        m = n * (size - reach) / np.maximum(size, 1.0) * g / np.maximum(g - 1, 1e-9)
        t = np.select([kind == SWITCH, kind == ALL2ALL, kind == RING, kind == CHAIN, kind == TORUS],
                      [m * (g - 1) / g / B, m / (g * B), m * g / (8 * B), m * g / (4 * B), k * m / (8 * B)],
                      k * m / (4 * B))
        bw_t = np.maximum(bw_t, np.where(g > 1, t, 0.0))
        reach = reach * g
    return np.where(size > 1, lat + bw_t + fab["collective_overhead"], 0.0)


def p2p_time(fab, stride, n):
    gs = levels_of_group(fab, stride, 2.0)
    bws, alphas = per_rank_bw(fab), step_latency(fab)
    t = 0.0
    for i in range(3):
        t = np.where(gs[i] > 1, alphas[i] + n / bws[i], t)
    return t + fab["collective_overhead"]


