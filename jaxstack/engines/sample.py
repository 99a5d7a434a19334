"""L4: reproducible samples of a design space (``jaxstack sweep --sample N --seed S``).

``--max-points N`` takes a prefix of the global index: the last axes vary fastest, so a
prefix of a big space only ever sees the first values of its leading axes. A sample visits
``N`` distinct points spread over the whole index instead, through the affine bijection

    index(i) = (b + a i) mod size,    i = 0 .. N-1,

with ``a`` the integer nearest to ``size (sqrt(5) - 1) / 2`` made coprime with ``size`` (a
golden-ratio Weyl sequence: consecutive samples land far apart and every prefix is spread
evenly) and ``b`` drawn from ``seed``. It is a permutation of the index, so no point repeats;
the last axis (a divisor of ``size``, coprime with ``a``) cycles through all its values every
``radix`` samples, and the leading axis is equidistributed; ``N >= size`` visits every point.
The order is a pure function of (size, seed), so a sampled run is chunked, checkpointed and
resumed exactly as a full sweep (its manifest records ``sample`` and ``seed``).
"""

import math
import random

import numpy as np

__all__ = ["weyl", "indices", "digits", "MAX_SIZE"]

MAX_SIZE = 2**62      # global indices stay int64 on the host


def weyl(size: int, seed: int) -> tuple[int, int]:
    """(a, b) of the sample of a space of ``size`` points for ``seed``."""
    if size <= 1:
        return 1, 0
    a = max(1, round(size * (math.sqrt(5.0) - 1.0) / 2.0)) % size or 1
    while math.gcd(a, size) != 1:
        a = a % (size - 1) + 1
    return a, random.Random(int(seed)).randrange(size)


def indices(a: int, b: int, size: int, start: int, n: int) -> np.ndarray:
    """Global indices of samples ``start .. start + n - 1`` (int64)."""
    out = np.empty(n, np.int64)
    v = (b + a * start) % size
    for j in range(n):
        out[j] = v
        v += a
        if v >= size:
            v -= size
    return out


def digits(index: np.ndarray, radices) -> np.ndarray:
    """int32[n, A] mixed-radix digits (first axis most significant) of int64 ``index``."""
    rest = np.asarray(index, np.int64).copy()
    out = np.zeros((len(rest), len(radices)), np.int32)
    for a in range(len(radices) - 1, -1, -1):
        out[:, a] = rest % radices[a]
        rest //= radices[a]
    return out
