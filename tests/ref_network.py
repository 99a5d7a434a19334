"""Float64 reference of jaxstack.network / jaxstack.topology, written from their docstrings.

Element-wise over numpy arrays of design points (a fabric is a nested dict of arrays). Where
the model sums a dim's steps in closed form, this enumerates the steps one by one (masked
loop over t), so it checks the geometric sums too. Returns total seconds (latency +
bandwidth); ``*_parts`` return the pair.
"""

import numpy as np

SWITCH, ALL2ALL, RING, CHAIN, MESH, TORUS = 0, 1, 2, 3, 4, 5
MAX_STEPS = 24  # enumerated XOR steps per dim (groups up to 2^24 members)
BEST_AR = ("bidirectional_ring", "recursive_doubling", "halving_doubling", "tree", "direct", "in_switch")
BEST_AG = ("bidirectional_ring", "halving_doubling", "direct")
BEST_A2A = ("direct",)


def _f(x):
    return np.asarray(x, dtype=np.float64)


def levels_of_group(fab, stride, size):
    n1, n2 = _f(fab["l1"]["size"]), _f(fab["l2"]["size"])
    g1 = np.clip(n1 / stride, 1.0, size)
    g2 = np.clip(n2 / np.maximum(stride / n1, 1.0), 1.0, size / g1)
    return [g1, g2, size / g1 / g2]


def _levels(fab, stride, size):
    """Per level: a dict of the quantities the docstrings define."""
    gs = levels_of_group(fab, stride, size)
    out, N, G = [], 1.0, 1.0
    lat_in = tr_in = pk_in = hd_in = ak_in = 0.0
    for name, g in zip(("l1", "l2", "l3"), gs, strict=True):
        f = {k: _f(v) for k, v in fab[name].items()}
        kind = f["kind"]
        B = f["link_bandwidth"] * f["links_per_node"]
        xbar = f.get("switch_bandwidth", 0.0 * B)
        B = np.where((kind == SWITCH) & (xbar > 0), np.minimum(B, xbar / f["size"]), B)
        B = B * _f(fab["bandwidth_efficiency"])
        P = f.get("packet_payload", 0.0 * B)
        pkt = P > 0
        H = np.where(pkt, f.get("packet_header", 0.0 * B), 0.0)
        A = np.where(pkt, f.get("ack_bytes", 0.0 * B), 0.0)
        Psafe = np.where(pkt, P, 1.0)
        q = np.where(pkt, 1.0 / B, 0.0)
        two_d = (kind == MESH) | (kind == TORUS)
        X = np.where(two_d, f["dim_x"], f["size"])
        Y = np.where(two_d, f["dim_y"], 1.0)
        sig = np.maximum(stride / N, 1.0)
        gx = np.clip(X / sig, 1.0, g)
        lv = dict(kind=kind, g=g, N=N, G=G, B=B, P=np.where(pkt, P, 0.0), H=H, A=A, hdr=H / Psafe, ackr=A / Psafe,
                  q=q, h=f["hop_latency"], lat_in=lat_in, tr_in=tr_in, pk_in=pk_in, hd_in=hd_in, ak_in=ak_in,
                  gx=gx, gy=g / gx, sx=sig, sy=np.maximum(sig / X, 1.0), X=X, Y=Y)
        out.append(lv)
        t = np.where(kind == SWITCH, 2.0, 1.0)
        lat_in = lat_in + t * lv["h"]
        tr_in = np.maximum(tr_in, N * (1.0 + lv["hdr"] + lv["ackr"]) / B)
        pk_in, hd_in, ak_in = pk_in + t * q, hd_in + t * q * H, ak_in + t * q * A
        N, G = N * f["size"], G * g
    return out


def _dims(lvs):
    out, K = [], 1.0
    for lv in lvs:
        for k, s, D in ((lv["gx"], lv["sx"], lv["X"]), (lv["gy"], lv["sy"], lv["Y"])):
            out.append(dict(lv=lv, k=k, s=s, D=D, K=K, S=np.ceil(np.log2(np.maximum(k, 1.0)))))
            K = K * k
    return out


class _Ctx:
    def __init__(self, fab, stride, size):
        self.lvs = _levels(fab, stride, size)
        self.dims = _dims(self.lvs)
        self.rt = _f(fab.get("ack_round_trip", 0.0))
        self.p = _f(size)
        self.pmax = np.maximum(np.maximum(self.lvs[0]["P"], self.lvs[1]["P"]), self.lvs[2]["P"])


class _Cost:
    """An algorithm's latency without stored-and-forwarded payload (lat), that payload's
    store-and-forward with full packets (sf), bandwidth time (bw), steps and message bytes."""

    def __init__(self, lat=0.0, sf=0.0, bw=0.0, steps=0.0, msg=0.0):
        self.lat, self.sf, self.bw, self.steps, self.msg = lat, sf, bw, steps, msg

    def __add__(self, o):
        return _Cost(self.lat + o.lat, self.sf + o.sf, self.bw + o.bw, self.steps + o.steps, self.msg + o.msg)

    def times(self, k):
        return _Cost(k * self.lat, k * self.sf, k * self.bw, k * self.steps, k * self.msg)

    def pick(self, cond, other):
        return _Cost(*(np.where(cond, a, b) for a, b in zip(self.fields(), other.fields(), strict=True)))

    def fields(self):
        return self.lat, self.sf, self.bw, self.steps, self.msg


def _at(ctx, c):
    """Payload stored and forwarded per hop: the mean message, at most one packet."""
    P = ctx.pmax
    mean = c.msg / np.maximum(c.steps, 1.0)
    frac = np.where(P > 0, np.minimum(mean, P) / np.where(P > 0, P, 1.0), 0.0)
    return np.maximum(c.lat + c.sf * frac, 0.0), c.bw


def _step_lat(lv, l1, rt, nsteps, hops, eta_mean):
    """Latency of nsteps steps crossing level lv with ``hops`` hops in all: path (1 + rt), ACKs
    back, headers stored and forwarded per hop after the first; and the full-payload part."""
    lat = ((nsteps * lv["lat_in"] + hops * lv["h"]) * (1 + rt) + rt * (nsteps * lv["ak_in"] + hops * lv["A"] * lv["q"])
           + nsteps * (lv["hd_in"] + eta_mean * lv["q"] * lv["H"] - l1["q"] * l1["H"]))
    sf = nsteps * lv["P"] * (lv["pk_in"] + eta_mean * lv["q"] - l1["q"])
    return lat, sf


def _dim_cost(ctx, d, steps_list, nsteps, rev, msg):
    """Stage 2 for one dim: steps_list = [(mask, c, lam, eta), ...] enumerated steps."""
    lv, l1 = d["lv"], ctx.lvs[0]
    sum_c = sum_lc = hops = 0.0
    for mask, c, lam, eta in steps_list:
        sum_c, sum_lc, hops = sum_c + mask * c, sum_lc + mask * lam * c, hops + mask * eta
    lat, sf = _step_lat(lv, l1, ctx.rt, nsteps, hops, hops / np.maximum(nsteps, 1.0))
    w = 1.0 + lv["hdr"] + np.where(rev, lv["ackr"], 0.0)
    bw = np.maximum(lv["N"] / lv["B"] * w * sum_lc, lv["tr_in"] * sum_c)
    return _Cost(lat, sf, bw, nsteps, msg)


def _flags(kind):
    sw, a2a = kind == SWITCH, kind == ALL2ALL
    wrap = (kind == RING) | (kind == TORUS)
    return sw, a2a, wrap


def _shift(d, bidir):
    sw, a2a, wrap = _flags(d["lv"]["kind"])
    k, s, D = d["k"], d["s"], d["D"]
    full = k * s >= D
    lam = np.where(sw | a2a, 1.0, s)
    span = (k - 1) * s
    eta = np.select([sw, a2a, wrap], [2.0, 1.0, np.where(full, s, np.minimum(span, D - span))],
                    s * np.minimum(2.0, k - 1))
    rev = np.select([a2a, wrap], [k <= 2, (~full) | (D <= 2)], True)
    if bidir:
        half = np.where(a2a, k > 2, wrap & full & (D > 2))
        lam = np.where(half, lam / 2, lam)
        rev = rev | half
    return lam, eta, rev


def _ring(ctx, n, bidir):
    out = _Cost()
    for d in ctx.dims:
        lam, eta, rev = _shift(d, bidir)
        steps = d["k"] - 1
        c = n / (d["K"] * d["k"])
        out = out + _dim_cost(ctx, d, [(steps, c, lam, eta)], steps, rev, steps * c)
    return out


def _xor(ctx, n, series):
    out = _Cost()
    for d in ctx.dims:
        sw, a2a, wrap = _flags(d["lv"]["kind"])
        S, K, s, D = d["S"], d["K"], d["s"], d["D"]
        steps, total = [], 0.0
        for t in range(MAX_STEPS):
            mask = (t < S).astype(np.float64)
            c = {"const": n, "halving": n / (K * 2.0 ** (t + 1)), "doubling": n * K * 2.0**t / ctx.p}[series]
            delta = 2.0**t * s
            last_half = wrap & (t == S - 1) & (2 * delta >= D)  # both ways round on the last step
            lam = np.where(sw | a2a, 1.0, delta * np.where(last_half, 0.5, 1.0))
            eta = np.select([sw, a2a], [2.0, 1.0], delta)
            steps.append((mask, c, lam, eta))
            total = total + mask * c
        out = out + _dim_cost(ctx, d, steps, S, True, total)
    return out


def _tree(ctx, n):
    out, per = _Cost(), 0.0
    for d in ctx.dims:
        lam, eta, rev = _shift(d, False)
        S2 = 2 * d["S"]
        out = out + _dim_cost(ctx, d, [(S2, 0.0, 0.0, eta)], S2, rev, S2 * n)
        lv = d["lv"]
        w = 1.0 + lv["hdr"] + np.where(rev, lv["ackr"], 0.0)
        link = np.maximum(lv["N"] * w * lam / lv["B"], lv["tr_in"]) / d["K"]
        per = np.maximum(per, np.where(d["k"] > 1, link, 0.0))
    out.bw = 2.0 * n * per
    return out


def _a2a_pair(kind, k, s):
    """(λ_a, η_a) of an all-to-all among k members of one dim, per-pair volume units."""
    sw, a2a, wrap = _flags(kind)
    lam = np.select([sw, a2a, wrap], [k - 1, 1.0, s * np.floor(k * k / 4) / 2], s * np.floor(k / 2) * np.ceil(k / 2))
    eta = np.select([sw, a2a, wrap], [2.0, 1.0, s * np.floor(k / 2)], s * (k - 1))
    return np.where(k > 1, lam, 0.0), np.where(k > 1, eta, 0.0)


def _a2a_direct(ctx, n):
    c = n / ctx.p
    l1, out, bw = ctx.lvs[0], None, 0.0
    for lv in ctx.lvs:
        flat = (lv["kind"] == SWITCH) | (lv["kind"] == ALL2ALL)
        lx, ex = _a2a_pair(lv["kind"], np.where(flat, lv["g"], lv["gx"]), lv["sx"])
        ly, ey = _a2a_pair(np.full_like(lv["kind"], CHAIN) + np.where(_flags(lv["kind"])[2], RING - CHAIN, 0),
                           lv["gy"], lv["sy"])
        lam = np.maximum(lx * np.where(flat, 1.0, lv["gy"]), ly * lv["gx"])
        eta = ex + ey
        msgs = lv["G"] * lam + ctx.p - lv["G"] * lv["g"]
        w = 1.0 + lv["hdr"] + lv["ackr"]
        bw = np.maximum(bw, np.where(ctx.p - lv["G"] > 0.5, lv["N"] * msgs * w * c / lv["B"], 0.0))
        here = _Cost(*_step_lat(lv, l1, ctx.rt, 1.0, eta, eta), 0.0, 1.0, c)
        out = here if out is None else here.pick(lv["g"] > 1, out)  # the outermost level spanned
    out.bw = bw
    return out


def _a2a_hier(ctx, n):
    out = _Cost()
    for d in ctx.dims:
        lam, eta = _a2a_pair(d["lv"]["kind"], d["k"], d["s"])
        on = (d["k"] > 1).astype(np.float64)
        m = n / d["k"]
        out = out + _dim_cost(ctx, d, [(on, m * (d["k"] - 1), lam / np.maximum(d["k"] - 1, 1.0), eta)], on, True,
                              on * m)
    return out


def _a2a_ring(ctx, n):
    """ASTRA-sim ring all-to-all: per dim k(k-1)/2 neighbour steps of n/k each, the
    chunks both ways round a full wrap dim; steps add, the busiest dim's bytes set the time."""
    out, bw = _Cost(), 0.0
    for d in ctx.dims:
        lam, eta, rev = _shift(d, True)
        k = d["k"]
        nsteps = k * (k - 1) / 2
        c = _dim_cost(ctx, d, [(nsteps, n / k, lam, eta)], nsteps, rev, nsteps * n / k)
        bw = np.maximum(bw, c.bw)
        out = out + c
    out.bw = bw
    return out


def _best(ctx, costs, names):
    lat, bw = _at(ctx, costs[names[0]]())
    for a in names[1:]:
        la, ba = _at(ctx, costs[a]())
        better = la + ba < lat + bw
        lat, bw = np.where(better, la, lat), np.where(better, ba, bw)
    return lat, bw


def _finish(fab, size, lat, bw):
    on = _f(size) > 1
    return np.where(on, lat + _f(fab["collective_overhead"]), 0.0), np.where(on, bw, 0.0)


def _run(ctx, fab, size, costs, algorithm, best):
    return _finish(fab, size, *(_at(ctx, costs[algorithm]()) if algorithm else _best(ctx, costs, best)))


def _in_switch(ctx, fab, n, gate):
    """In-switch all-reduce (NVLS): one step of two hops (node -> switch -> node) on level 1, n
    bytes up and the n-byte sum down; only for a group within level 1 on a reducing switch and,
    as a best-of candidate, from the stack's size ``switch_reduce_from`` on."""
    l1 = ctx.lvs[0]
    lat, sf = _step_lat(l1, l1, ctx.rt, 1.0, 2.0, 2.0)
    w = 1.0 + l1["hdr"] + l1["ackr"]
    bw = np.maximum(l1["N"] / l1["B"] * w * n, l1["tr_in"] * n)
    ok = ((ctx.lvs[1]["g"] <= 1) & (ctx.lvs[2]["g"] <= 1) & (l1["kind"] == SWITCH)
          & (_f(fab["l1"].get("switch_reduce", 0.0)) > 0.5))
    if gate:
        f = _f(fab.get("switch_reduce_from", 0.0))
        ok = ok & (f > 0) & (n >= f)
    return _Cost(np.where(ok, lat, 1e30), sf, bw, 1.0, n)


def allreduce_parts(fab, stride, size, n, algorithm=None):
    ctx = _Ctx(fab, stride, size)
    costs = {"ring": lambda: _ring(ctx, n, False).times(2), "bidirectional_ring": lambda: _ring(ctx, n, True).times(2),
             "recursive_doubling": lambda: _xor(ctx, n, "const"),
             "halving_doubling": lambda: _xor(ctx, n, "halving").times(2), "tree": lambda: _tree(ctx, n),
             "direct": lambda: _a2a_direct(ctx, n).times(2),
             "in_switch": lambda: _in_switch(ctx, fab, n, algorithm is None)}
    lat, bw = _run(ctx, fab, size, costs, algorithm, BEST_AR)
    # two stages (reduce-scatter + all-gather) from the threshold on: the per-call overhead twice
    # (vLLM's rule: the threshold on 5+ ranks, twice it on 3-4, never on 2; never on a group
    # spanning level-1 nodes, where vLLM's custom all-reduce is off)
    t, p = _f(fab.get("two_stage_threshold", 0.0)), _f(size)
    one_node = (ctx.lvs[1]["g"] <= 1) & (ctx.lvs[2]["g"] <= 1)
    split = np.where(one_node & (p > 2), np.where(p > 4, t, 2.0 * t), 0.0)
    extra = np.where((split > 0) & (n >= split) & (p > 1), _f(fab["collective_overhead"]), 0.0)
    return lat + extra, bw


def allgather_parts(fab, stride, size, n, algorithm=None):
    ctx = _Ctx(fab, stride, size)
    costs = {"ring": lambda: _ring(ctx, n, False), "bidirectional_ring": lambda: _ring(ctx, n, True),
             "recursive_doubling": lambda: _xor(ctx, n, "doubling"),
             "halving_doubling": lambda: _xor(ctx, n, "halving"), "direct": lambda: _a2a_direct(ctx, n)}
    return _run(ctx, fab, size, costs, algorithm, BEST_AG)


def alltoall_parts(fab, stride, size, n, algorithm=None):
    ctx = _Ctx(fab, stride, size)
    costs = {"direct": lambda: _a2a_direct(ctx, n), "hierarchical": lambda: _a2a_hier(ctx, n),
             "ring": lambda: _a2a_ring(ctx, n)}
    return _run(ctx, fab, size, costs, algorithm, BEST_A2A)


def p2p_parts(fab, stride, n):
    ctx = _Ctx(fab, stride, 2.0)
    l1, out = ctx.lvs[0], None
    for lv in ctx.lvs:
        sw, a2a, wrap = _flags(lv["kind"])
        along_x = lv["gx"] > 1
        delta = np.where(along_x, lv["sx"], lv["sy"])
        D = np.where(along_x, lv["X"], lv["Y"])
        dist = np.where(wrap, np.minimum(delta, np.maximum(D - delta, 1.0)), delta)
        lam = np.where(sw | a2a, 1.0, dist)
        eta = np.select([sw, a2a], [2.0, 1.0], dist)
        w = 1.0 + lv["hdr"] + np.where(sw, lv["ackr"], 0.0)
        t = np.maximum(lv["N"] * lam * w * n / lv["B"], lv["tr_in"] * n)
        here = _Cost(*_step_lat(lv, l1, ctx.rt, 1.0, eta, eta), t, 1.0, n)
        out = here if out is None else here.pick(lv["g"] > 1, out)  # the outermost level crossed
    lat, bw = _at(ctx, out)
    return lat + _f(fab["collective_overhead"]), bw


def allreduce_time(fab, stride, size, n, algorithm=None):
    return sum(allreduce_parts(fab, stride, size, n, algorithm))


def allgather_time(fab, stride, size, n, algorithm=None):
    return sum(allgather_parts(fab, stride, size, n, algorithm))


def alltoall_time(fab, stride, size, n, algorithm=None):
    return sum(alltoall_parts(fab, stride, size, n, algorithm))


def p2p_time(fab, stride, n):
    return sum(p2p_parts(fab, stride, n))
