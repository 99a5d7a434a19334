"""A small discrete bank-level DRAM schedule (numpy + Python loops), the oracle for
``jaxstack.memory.access_efficiency``.

Geometry (DeepStack's bank oracle): m layers, n connected; layer l belongs to port group
l mod n; every group has ``channels`` ports; a port serves ``banks_per_port`` banks in each
layer of its group. Times are in transfer-clock cycles; a port moves ``bytes_per_transfer``
bytes per cycle.

Each bank receives the same number of row activations (data spread evenly over banks). An
activation of S useful bytes moves ceil(S / sector) sectors, occupying the port's data bus
for D cycles; the bank is then busy for D + R cycles (R = recharge). Per port, a greedy
ready scheduler issues the request that can start
earliest (ties: the bank with most work left; DeepStack's "ready/LPT" oracle):
    start = max(bus free, bank ready, last ACT + tRRD, 4th-last ACT + tFAW)
With ``window`` = w only the first w pending requests in arrival order are eligible: a
finite reorder queue, which the closed form does not model (random small accesses over
many banks then lose up to ~35 %).
The schedule ends when the last transfer of the slowest port completes; efficiency =
useful bytes / (end * ports * bytes_per_transfer), the fraction of the peak delivered.

Access patterns (the order in which a port's requests arrive):
    sequential: whole rows, banks visited round-robin (row-interleaved streaming)
    strided:    ``access_bytes`` of each row, one access per row, rows in address order
    random:     ``access_bytes`` per access, each to a random row of a random bank (balanced)
    partial:    like sequential but ``access_bytes`` (not a sector multiple) of every row
"""

import numpy as np

PATTERNS = ("sequential", "strided", "random", "partial")


def _port_schedule(bank_order, D, R, t_rrd, t_faw, window):
    """Finish time (cycles) of one port serving the requests ``bank_order`` (bank ids).

    ``window`` None: the controller sees every pending request (DeepStack's ready/LPT oracle):
    it issues to the bank that can start earliest, ties to the bank with most work left.
    ``window`` w: only the first w pending requests in arrival order are eligible (a FIFO
    reorder window; not what memory.py assumes: used to show what finite queues cost)."""
    nb = int(max(bank_order)) + 1 if len(bank_order) else 0
    bank_ready = np.zeros(nb)
    acts: list[float] = []
    bus = 0.0
    if window is None:
        left = np.bincount(np.asarray(bank_order, dtype=np.int64), minlength=nb).astype(float)
        for _ in range(len(bank_order)):
            rrd = acts[-1] + t_rrd if acts else 0.0
            faw = acts[-4] + t_faw if len(acts) >= 4 else 0.0
            start = np.where(left > 0, np.maximum(max(bus, rrd, faw), bank_ready), np.inf)
            cand = np.flatnonzero(start == start.min())
            b = cand[np.argmax(left[cand])]
            t = start[b]
            left[b] -= 1
            acts.append(t)
            bus = t + D
            bank_ready[b] = t + D + R
        return bus
    pending = list(bank_order)
    while pending:
        best_i, best_t = 0, None
        rrd = acts[-1] + t_rrd if acts else 0.0
        faw = acts[-4] + t_faw if len(acts) >= 4 else 0.0
        floor = max(bus, rrd, faw)
        for i, b in enumerate(pending[:window]):
            t = max(floor, bank_ready[b])
            if best_t is None or t < best_t:
                best_i, best_t = i, t
                if t == floor:
                    break
        b = pending.pop(best_i)
        acts.append(best_t)
        bus = best_t + D
        bank_ready[b] = best_t + D + R
    return bus


def schedule(m, n, *, channels=1, banks_per_port=1, row_bytes=1024, bytes_per_transfer=32, row_cycle_efficiency=0.5,
             sector_bytes=32, t_rrd=0.0, t_faw=0.0, pattern="sequential", access_bytes=None, acts_per_bank=48,
             window=None, seed=0) -> float:
    """Fraction of the peak (n * channels ports) delivered by the discrete schedule."""
    if pattern not in PATTERNS:
        raise ValueError(pattern)
    rng = np.random.default_rng(seed)
    S = row_bytes if pattern == "sequential" or access_bytes is None else min(access_bytes, row_bytes)
    sectors = np.ceil(S / sector_bytes) if sector_bytes else S / bytes_per_transfer
    moved = min(sectors * sector_bytes, row_bytes) if sector_bytes else S
    D = moved / bytes_per_transfer
    R = row_bytes / bytes_per_transfer * (1.0 / row_cycle_efficiency - 1.0)
    end = 0.0
    for g in range(n):
        layers = len(range(g, m, n))
        banks = layers * banks_per_port
        if pattern == "random":
            order = rng.permutation(np.repeat(np.arange(banks), acts_per_bank))
        else:  # row-interleaved address order: consecutive rows go to consecutive banks
            order = np.tile(np.arange(banks), acts_per_bank)
        t = _port_schedule(order, D, R, t_rrd, t_faw, window)
        end = max(end, t)  # every channel of the group behaves the same
    useful = m * banks_per_port * channels * acts_per_bank * S
    return useful / (end * n * channels * bytes_per_transfer)
