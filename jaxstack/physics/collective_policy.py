"""L2: a software stack's collective policy, as fabric leaves: when an all-reduce runs in two stages
(``two_stage_threshold``) and when it is reduced in the switch (``switch_reduce_from``). Both are
0 (off) by default; ``engines.calibration.SOFTWARE_FACTS`` sets vLLM's from its source."""

from ..types.hardware import Fabric
from .lean import where

__all__ = ["two_stage_split", "splits", "two_stage_overhead", "switch_reduces", "within_node"]


def within_node(g):
    """A group lies within one level-1 node: ``g`` = members per fabric level ([3, ...] rows)."""
    return (g[1] <= 1.0) & (g[2] <= 1.0)


def two_stage_split(fabric: Fabric, size, within=True):
    """Bytes from which an all-reduce over ``size`` ranks runs in two stages (a reduce-scatter and
    an all-gather, each paying ``collective_overhead``), 0 = never: vLLM's custom all-reduce
    (csrc/custom_all_reduce.cuh, ``allreduce``) runs one stage below 256 KiB on up to 8 GPUs, below
    512 KiB on up to 4 and always on 2: ``fabric.two_stage_threshold`` T scaled by that rule; and
    only ``within`` one level-1 node (``within_node``): a group that spans nodes runs NCCL
    (custom_all_reduce.py: "disabled because this process group spans across nodes")."""
    t = fabric.two_stage_threshold
    return where(within & (size > 2.0), where(size > 4.0, t, 2.0 * t), 0.0)


def splits(split, nbytes):
    """An all-reduce of ``nbytes`` runs in two stages (``split`` from ``two_stage_split``; 0 = never)."""
    return (split > 0.0) & (nbytes >= split)


def switch_reduces(from_bytes, nbytes):
    """The stack reduces an all-reduce of ``nbytes`` in the switch (``fabric.switch_reduce_from``; 0 = never)."""
    return (from_bytes > 0.0) & (nbytes >= from_bytes)


def two_stage_overhead(fabric: Fabric, size, nbytes, within=True):
    """The second stage's ``collective_overhead`` where an all-reduce of ``nbytes`` splits, else 0."""
    return where(splits(two_stage_split(fabric, size, within), nbytes) & (size > 1.0), fabric.collective_overhead, 0.0)
