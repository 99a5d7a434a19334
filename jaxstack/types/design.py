"""L1: one design point = hardware + workload + mapping, all numeric leaves.

Sweep axes address leaves by dotted path (``dram.total_layers``, ``fabric.l1.link_bandwidth``,
``mapping.tp``, ``request.batch``). A batch of designs is the same pytree with a leading axis.
"""

import dataclasses

from ._tree import pytree
from .hardware import Chip, Dram, Fabric, Thermal
from .mapping import Mapping
from .workload import Model, Request, Serving

__all__ = ["Design", "SECTIONS"]

SECTIONS = ("chip", "dram", "fabric", "thermal", "model", "request", "mapping", "serving")


@pytree
class Design:
    chip: Chip
    dram: Dram
    fabric: Fabric
    thermal: Thermal
    model: Model
    request: Request
    mapping: Mapping
    serving: Serving = dataclasses.field(default_factory=Serving)   # static batch unless set
