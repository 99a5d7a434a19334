"""ASTRA-sim + NS-3 collective times (DeepStack Fig. 12/13 panels) as jaxstack inputs.

Ground truth: ``overall_time_ns_as_ns3`` (rows without it are skipped); DeepStack's own
prediction (``overall_time_ns``) is reported next to ours on the same points.

Each case as jaxstack inputs (the per-case topology of ``data/collectives-ns3/PROVENANCE.md``,
recovered from DeepStack's predictions): link bandwidth and per-hop latency per level;
switch cases are 8 endpoints on one switch (s5, s0, s2) or 8 L1 switches of 8 under one L2
switch with ONE uplink per L1 switch shared by its 8 ranks (s1, s3, s4; ``links_per_node =
1`` at L2); torus cases a k x k 2D torus at L1. Algorithms as the panels name them, run
the way ASTRA-sim runs a collective over a multi-dimensional topology, one dimension after
the other: halving-doubling all-gather, Rabenseifner (``halving_doubling``) all-reduce,
all-to-all dimension by dimension (``hierarchical``: intra-L1, then across L2 — NS-3's
latency floor is two round trips, and its slope has the intra-L1 phase in it), and the
``ring`` all-reduce on the torus along x then y (4(k-1) steps, not the 2(k²-1) of one flat
ring: the NS-3 latency floor shows it), and the torus all-to-all as ASTRA-sim's native ring
all-to-all (``Ring.cc``: k(k-1)/2 neighbour steps of n/k per dim, the same whole buffer in
every dim, chunks alternating ring directions and pipelining through the dims: the 4x4
latency floor is 12 steps, the ring all-reduce's, and its slope 12 B per link). Message sizes: the torus CSV gives
the NS-3 payload B; the switch CSVs give DeepStack's header-inflated B' = B + ceil(B/988)·36,
inverted here to the power-of-two payload NS-3 was run with. All-gather and all-to-all
buffers are p·B (B per rank / per destination).

The NS-3 backend's mechanics, from its source, are global constants of every case (none is
fitted): RDMA packets of ``NS3_PAYLOAD`` bytes with ``NS3_HEADER`` header bytes, one
``NS3_ACK``-byte ACK per data packet on the reverse link, store-and-forward switches, and a
message completes when its last ACK is back at the sender (``ack_round_trip = 1``). NS-3
computes each packet's serialisation time in double precision and keeps it on its integer
1-ns clock (``NS3_TICK``), so the effective header/ACK bytes per link are the rounded times
times the link rate (1036 B → 32 ns at 32 GB/s; a 48-B ACK, 1.5 ns at 32 GB/s as a double
just below 1.5, costs 1 ns at 32 and 64 GB/s, 0
from 128 GB/s). Split: every other message size of each case is "calibration", the rest
"holdout" (nothing is fitted, so both are out of sample).
"""

import csv
import math
from fractions import Fraction
from pathlib import Path

import jax
import numpy as np

from ..physics import network
from ..types.hardware import Fabric, FabricLevel, TopologyKind

__all__ = ["NAME", "DESCRIPTION", "CASES", "cases", "fabric_for", "run", "summary"]

NAME = "collectives-ns3"
DESCRIPTION = "ASTRA-sim/NS-3 collective times: switch AG/AR/A2A, torus ring AR and A2A (DeepStack Fig. 13)"
DATA = Path(__file__).parent / "data" / NAME
GB, NS = 1e9, 1e-9

# astra-sim/astra-network-ns3 scratch/config/config.txt: PACKET_PAYLOAD_SIZE 1000
NS3_PAYLOAD = 1000.0
# HPCC ns-3 (alibaba-edu/High-Precision-Congestion-Control) data frame: PPP 2 + IPv4 20 + UDP 8
# + SeqTsHeader 6 (GetHeaderSize = 6 + IntHeader::GetStaticSize() = 0 without INT)
NS3_HEADER = 36.0
# rdma-hw.cc ReceiveUdp: ACK payload max(60-14-20-qbb, 0) + qbb + IPv4 20 + PPP 2 = 48 B
NS3_ACK = 48.0
# ns-3 time resolution (1 ns); qbb-net-device TransmitStart: DataRate::CalculateBytesTxTime
NS3_TICK = 1e-9
# inflation DeepStack applied to the switch CSVs' `bytes` (1024-B packets, 36-B header)
DS_PACKET, DS_HEADER = 988, 36

# case -> (L1 link GB/s, L1 hop ns, L2 link GB/s, L2 hop ns); README table of the reference data
CASES = {
    "s5": (32, 32, None, None), "s0": (128, 128, None, None), "s2": (512, 128, None, None),
    "s1": (256, 128, 32, 512), "s3": (512, 128, 64, 512), "s4": (512, 256, 128, 512),
    "t2": (32, 32, None, None), "t0": (128, 128, None, None), "t1": (512, 128, None, None),
}
PANELS = {  # file stem -> (collective, algorithm)
    "switch_all_gather_halving_doubling_test": ("all_gather", "halving_doubling"),
    "switch_all_reduce_rabenseifner_test": ("all_reduce", "halving_doubling"),
    "switch_all_to_all_test": ("all_to_all", "hierarchical"),
    "torus_all_reduce_ring_test": ("all_reduce", "ring"),
    "torus_all_to_all_t0": ("all_to_all", "ring"),
}
DEEPSTACK_WEIGHTED_PCT = {  # reference README, for the record
    "switch_all_gather_halving_doubling_test": 2.42, "switch_all_reduce_rabenseifner_test": 2.12,
    "switch_all_to_all_test": 3.80, "torus_all_reduce_ring_test": 1.62,
}


def _tx_ns(nbytes: float, rate: float) -> int:
    """NS-3's serialisation time of one packet on its 1-ns clock (double, then rounded)."""
    seconds = float(nbytes) * 8.0 / (rate * 8.0)
    return round(Fraction(seconds) / Fraction(NS3_TICK))


def _level(size, kind, dx, dy, rate, hop_ns):
    """One fabric level; effective header/ACK bytes reproduce NS-3's rounded packet times."""
    b_ns = rate * NS3_TICK
    header = _tx_ns(NS3_PAYLOAD + NS3_HEADER, rate) * b_ns - NS3_PAYLOAD
    ack = _tx_ns(NS3_ACK, rate) * b_ns
    return FabricLevel(size=float(size), kind=float(kind), dim_x=float(dx), dim_y=float(dy),
                       link_bandwidth=float(rate), links_per_node=1.0, hop_latency=hop_ns * NS,
                       energy_per_bit=0.0, switch_bandwidth=0.0, packet_payload=NS3_PAYLOAD,
                       packet_header=float(header), ack_bytes=float(ack))


def fabric_for(case: str, nx: int, ny: int) -> Fabric:
    """The jaxstack fabric of one case: switch ``nx`` x ``ny`` (L1 x L2) or torus nx x ny."""
    bw1, h1, bw2, h2 = CASES[case]
    if case.startswith("t"):
        l1 = _level(nx * ny, TopologyKind.torus2d, nx, ny, bw1 * GB, h1)
        l2 = None
    else:
        l1 = _level(nx, TopologyKind.switch, nx, 1, bw1 * GB, h1)
        l2 = _level(ny, TopologyKind.switch, ny, 1, bw2 * GB, h2) if ny > 1 else None
    unused = _level(1, TopologyKind.switch, 1, 1, bw1 * GB, h1)
    return Fabric(l1=l1, l2=l2 or unused, l3=unused, collective_overhead=0.0, bandwidth_efficiency=1.0,
                  ack_round_trip=1.0)


def _payload(stem: str, nbytes: float) -> float:
    """NS-3 payload per rank: the torus CSV has it; the switch CSVs have B + ceil(B/988)·36."""
    b = int(round(nbytes))
    if stem.startswith("torus"):
        return float(b)
    for e in range(41):
        if 2**e + math.ceil(2**e / DS_PACKET) * DS_HEADER == b:
            return float(2**e)
    raise ValueError(f"{stem}: bytes {b} is not a DeepStack-inflated power of two")


def cases() -> list[dict]:
    rows = []
    for stem in PANELS:
        with open(DATA / f"{stem}.csv") as fh:
            data = list(csv.DictReader(fh))
        seen: dict[str, int] = {}
        for r in data:
            torus = stem.startswith("torus")
            nx = int(r["num_nodes_x"] if torus else r["num_nodes_l1"])
            ny = int(r["num_nodes_y"] if torus else r["num_nodes_l2"])
            key = f"{r['reference_case_id']} {nx}x{ny}"
            i = seen[key] = seen.get(key, -1) + 1
            if not r["overall_time_ns_as_ns3"]:
                continue
            payload = _payload(stem, float(r["bytes"]))
            rows.append({"set": NAME, "panel": stem, "case": f"{key} {payload:.0f}B",
                         "ref": r["reference_case_id"], "nx": nx, "ny": ny, "payload": payload,
                         "measured": float(r["overall_time_ns_as_ns3"]) * NS,
                         "deepstack": float(r["overall_time_ns"]) * NS,
                         "split": "calibration" if i % 2 == 0 else "holdout"})
    for r in rows:
        r["weight"] = r["measured"]
    return rows


def _predict(stem: str, fabrics: Fabric, p, payload):
    coll, alg = PANELS[stem]

    def one(fab, p, b):
        if coll == "all_to_all":
            lat, bw = network.all_to_all(fab, 1.0, p, p * b, alg)
        elif coll == "all_gather":
            lat, bw = network.all_gather(fab, 1.0, p, p * b, alg)
        else:
            lat, bw = network.all_reduce(fab, 1.0, p, b, alg)
        return lat + bw

    return np.asarray(jax.jit(jax.vmap(one))(fabrics, p, payload), dtype=np.float64)


def run(calibration: bool = True) -> list[dict]:
    """One row per NS-3 point: measured, predicted, deepstack (s), split, weight (= measured)."""
    del calibration  # no constant of this set is fitted
    rows = cases()
    for stem in PANELS:
        sel = [r for r in rows if r["panel"] == stem]
        fabs = [fabric_for(r["ref"], r["nx"], r["ny"]) for r in sel]
        batch = jax.tree_util.tree_map(lambda *xs: np.asarray(xs, dtype=np.float32), *fabs)
        p = np.array([r["nx"] * r["ny"] for r in sel], dtype=np.float32)
        pay = np.array([r["payload"] for r in sel], dtype=np.float32)
        for r, t in zip(sel, _predict(stem, batch, p, pay), strict=True):
            r["predicted"] = float(t)
    for r in rows:
        for k in ("ref", "nx", "ny", "payload"):
            del r[k]
    return rows


def _err(meas, pred):
    meas, pred = np.asarray(meas), np.asarray(pred)
    return 100 * np.sum(np.abs(pred - meas)) / np.sum(meas), 100 * np.mean(np.abs(pred / meas - 1))


def summary(rows) -> list[dict]:
    """Per panel: weighted error Σ|p-m|/Σm and point MAPE (all / holdout rows), and DeepStack's."""
    out = []
    for stem in [*PANELS, "*"]:
        sel = [r for r in rows if stem in ("*", r["panel"])]
        hold = [r for r in sel if r["split"] == "holdout"]
        w, m = _err([r["measured"] for r in sel], [r["predicted"] for r in sel])
        wh, mh = _err([r["measured"] for r in hold], [r["predicted"] for r in hold])
        dw, dm = _err([r["measured"] for r in sel], [r["deepstack"] for r in sel])
        out.append({"panel": stem, "n": len(sel), "weighted_pct": w, "mape_pct": m, "holdout_weighted_pct": wh,
                    "holdout_mape_pct": mh, "deepstack_weighted_pct": dw, "deepstack_mape_pct": dm})
    return out
