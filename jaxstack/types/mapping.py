"""L1: parallel mapping of the model onto the devices.

World size = tp * ep * sp * cp * dp * pp. Ranks are grouped TP, EP, SP, CP, DP, PP from
the innermost fabric level outwards (TP shares the innermost switch when it fits).
Module-flexible mapping (DeepStack §2.4): attention and dense ops use EP ranks as extra
data parallelism; with ``moe_tp_to_ep = 1`` MoE layers turn TP into EP
(ep' = tp * ep, tp' = 1, capped at the expert count with the remainder kept as TP).
Schedule options: ``overlap`` switches tile-level compute-communication overlap on;
``micro_batches`` splits each replica's batch into that many pipeline micro-batches
(0 = one per stage).
"""

from ._tree import leaf, pytree

__all__ = ["Mapping", "AXES"]

AXES = ("tp", "ep", "sp", "cp", "dp", "pp")


@pytree
class Mapping:
    tp: float = leaf("1", "tensor parallel degree", domain="int>=1")
    ep: float = leaf("1", "expert parallel degree (data parallel for attention)", domain="int>=1")
    sp: float = leaf("1", "sequence parallel (Ulysses) degree", domain="int>=1")
    cp: float = leaf("1", "context parallel degree (KV sharded along the sequence)", domain="int>=1")
    dp: float = leaf("1", "data parallel replicas", domain="int>=1")
    pp: float = leaf("1", "pipeline stages", domain="int>=1")
    fsdp: float = leaf("1", "1: weights sharded over dp and gathered per layer", domain="{0,1}")
    moe_tp_to_ep: float = leaf("1", "1: MoE layers run TP ranks as extra EP ranks", domain="{0,1}")
    overlap: float = leaf("1", "1: tile-level compute-communication overlap (wave pipelining, "
                          "schedule.py); 0: every collective is exposed (vLLM default)", default=0.0, domain="{0,1}")
    micro_batches: float = leaf("1", "pipeline micro-batches per step; 0 = pp (no bubble in decode)",
                                default=0.0, domain="int>=0")
