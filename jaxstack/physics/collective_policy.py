"""L2: a software stack's collective policy, as fabric leaves: when an all-reduce runs in two stages
(``two_stage_threshold``) and when it is reduced in the switch (``switch_reduce_from``). Both are
0 (off) by default; ``engines.calibration.SOFTWARE_FACTS`` sets vLLM's from its source."""

from ..types.hardware import Fabric
from .lean import where

__all__ = ["two_stage_split", "splits", "two_stage_overhead", "switch_reduces"]


def two_stage_split(fabric: Fabric, size):
    """Bytes from which an all-reduce over ``size`` ranks runs in two stages (a reduce-scatter and
    an all-gather, each paying ``collective_overhead``), 0 = never: vLLM's custom all-reduce
    (csrc/custom_all_reduce.cuh, ``allreduce``) runs one stage below 256 KiB on up to 8 GPUs, below
    512 KiB on up to 4 and always on 2: ``fabric.two_stage_threshold`` T scaled by that rule."""
    t = fabric.two_stage_threshold
    return where(size > 2.0, where(size > 4.0, t, 2.0 * t), 0.0)


def splits(split, nbytes):
    """An all-reduce of ``nbytes`` runs in two stages (``split`` from ``two_stage_split``; 0 = never)."""
    return (split > 0.0) & (nbytes >= split)


def switch_reduces(from_bytes, nbytes):
    """The stack reduces an all-reduce of ``nbytes`` in the switch (``fabric.switch_reduce_from``; 0 = never)."""
    return (from_bytes > 0.0) & (nbytes >= from_bytes)


def two_stage_overhead(fabric: Fabric, size, nbytes):
    """The second stage's ``collective_overhead`` where an all-reduce of ``nbytes`` splits, else 0."""
    return where(splits(two_stage_split(fabric, size), nbytes) & (size > 1.0), fabric.collective_overhead, 0.0)
