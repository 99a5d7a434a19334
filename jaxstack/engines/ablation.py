"""L4: the DeepStack Table-4 style ablation: nested restricted searches.

``space_axes.restrict(space, fix)`` turns ``{column: values}`` (user units, as the space YAML writes
them: ``request.batch``, ``dram.total_layers``, ``mapping.tp``, ``hardware``) into the
allowed rows of every axis; ``search(.., fix=...)`` then searches that sub-space (its
global indices stay those of the full space).

``ablation`` runs nested restricted searches, each stage unlocking more of the space
(DEEPSTACK.md §4.2 Table 4; the stage list is ``STAGES``):

    1 TP/PP/DP only       mapping rows with ep = sp = cp = 1, no FSDP, no MoE TP->EP, no overlap
    2 + EP/SP/CP/FSDP     every factorisation and FSDP ("full parallel")
    3 + per-module MoE    moe_tp_to_ep (module-flexible mapping)
    4 + on-chip arch      axes setting chip.* leaves (compute units, SRAM, clock, TDP, presets)
    5 + overlap           tile-level compute-communication overlap
    6 + 3D stacking       axes setting only dram.* leaves (layers m/n, channels)
    7 + fabric            axes setting only fabric.* leaves (link bandwidths, hop latencies)

A locked axis stays at the row equal to the space's base design (the stacked-3d preset is
DeepStack's step-1 chip: m = n = 4, 8 SMs, 256 KiB, 256 B/cycle); other axes (request,
model, thermal) stay there in every stage unless ``fix`` sets them. Differences from
DeepStack: its stage 4 picks an SM archetype x NoC profile and stage 6 also moves SMEM/L1
(here: SRAM is a chip axis, stage 4). Stages are nested, so each best is >= the previous
one; a stage starts from the previous best (``seed_indices``), which prunes from the start.
"""

import math
import time
from pathlib import Path

import numpy as np

from ..edges import io
from .space import Space
from .space_axes import restrict

__all__ = ["restrict", "baseline", "STAGES", "stage_allowed", "ablation"]

# (name, mapping rule, axis kinds unlocked)
STAGES = (
    ("TP/PP/DP only", "tpdp", ()),
    ("+ EP/SP/CP/FSDP", "parallel", ()),
    ("+ per-module MoE (TP->EP)", "flexible", ()),
    ("+ on-chip architecture", "flexible", ("chip",)),
    ("+ comp-comm overlap", "all", ("chip",)),
    ("+ 3D stacking (DRAM)", "all", ("chip", "dram")),
    ("+ fabric", "all", ("chip", "dram", "fabric")),
)


def _kind(axis) -> str:
    """chip | dram | fabric | mapping | other: what an axis varies (for the stages)."""
    if axis.name == "mapping":
        return "mapping"
    sections = {t[0] for t in axis.targets}
    if "chip" in sections or "hardware" in axis.columns:
        return "chip"
    if sections == {"dram"}:
        return "dram"
    if sections == {"fabric"}:
        return "fabric"
    return "other"


def baseline(space: Space, a: int) -> int | None:
    """Row of axis ``a`` equal to the base design on every leaf it sets (None: no such row)."""
    import jax

    base = {tuple(k.name for k in p): float(v) for p, v in jax.tree_util.tree_flatten_with_path(space.base)[0]}
    ax = space.axes[a]
    for r in range(ax.size):
        if all(math.isclose(ax.table[r, j], base[t], rel_tol=1e-6, abs_tol=1e-12) for j, t in enumerate(ax.targets)):
            return r
    return None


def _mapping_ok(row: dict, rule: str) -> bool:
    flag = lambda f: row.get(f"mapping.{f}", 0) == 1  # noqa: E731
    if rule in ("tpdp",) and any(row.get(f"mapping.{d}", 1) != 1 for d in ("ep", "sp", "cp")):
        return False
    if rule == "tpdp" and flag("fsdp"):
        return False
    if rule in ("tpdp", "parallel") and flag("moe_tp_to_ep"):
        return False
    return rule == "all" or not flag("overlap")


def stage_allowed(space: Space, allowed, stage: int, fixed=()) -> list[np.ndarray]:
    """Allowed rows per axis in ``stage`` (index into STAGES); ``fixed``: axes set by the user."""
    _, rule, kinds = STAGES[stage]
    out = []
    for a, ax in enumerate(space.axes):
        k = _kind(ax)
        if k == "mapping":
            rows = [r for r in allowed[a] if _mapping_ok(dict(zip(ax.columns, ax.display[r], strict=True)), rule)]
            out.append(np.array(rows, np.int64))
        elif k in kinds or a in fixed:
            out.append(np.asarray(allowed[a], np.int64))
        else:
            b = baseline(space, a)
            if b is None or b not in allowed[a]:
                raise io.ConfigError(f"ablation: axis '{ax.name}' has no row equal to the base design in the "
                                     "allowed values; pin it with --fix")
            out.append(np.array([b], np.int64))
    if any(len(x) == 0 for x in out):
        raise io.ConfigError(f"ablation: stage '{STAGES[stage][0]}' is empty (no mapping row qualifies)")
    return out


def ablation(space: Space, *, objective=None, fix=None, allowed=None, top_k: int = 1, out=None,
             resume: bool = False, devices=None, progress=None) -> list[dict]:
    """Run the STAGES as nested restricted searches; one row per stage with its best design,
    gain vs the previous stage and search statistics (``out``: one run directory per stage).
    ``allowed`` (per-axis digit lists) replaces ``fix`` when given."""
    from .search import search

    allowed = restrict(space, fix) if allowed is None else [np.asarray(a, np.int64) for a in allowed]
    fixed = {i for i, a in enumerate(space.axes) if len(allowed[i]) < a.size}
    rows, prev = [], None
    for i, (name, _, _) in enumerate(STAGES):
        al = stage_allowed(space, allowed, i, fixed)
        t0 = time.perf_counter()
        res = search(space, objective=objective, top_k=top_k, allowed=al, devices=devices, progress=progress,
                     seed_indices=[prev["index"]] if prev else (), resume=resume,
                     out=Path(out) / f"stage{i + 1}" if out is not None else None)
        best = res.best
        value = best[res.objective] if best else float("nan")
        row = {"stage": i + 1, "name": name, "objective": res.objective, "value": value,
               "gain": value / prev["value"] if prev and best else float("nan"),
               "cumulative": value / rows[0]["value"] if rows and best else (1.0 if best else float("nan")),
               "points": int(math.prod(len(x) for x in al)), "exact_evals": res.stats["exact_evals"],
               "bound_evals": res.stats["bound_evals"], "wall_s": time.perf_counter() - t0,
               "compile_s": res.timings["compile_s"], "index": best["index"] if best else None, "best": best}
        rows.append(row)
        prev = row if best else prev
    return rows
