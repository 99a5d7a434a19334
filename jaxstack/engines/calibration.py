"""L4: the calibration model — what the software stack costs, what the hardware achieves.

A handful of GLOBAL constants, never one per point, in two kinds:
  software (per engine: ``vllm``, ``trtllm``; an engine preset names its ``software:``, a
      design without an engine is a vLLM run, as the static-batch measurements were):
      ``chip.op_overhead`` (per-kernel launch and tail under CUDA graphs),
      ``fabric.collective_overhead`` (per collective call of its communication library),
      ``chip.moe_gemm_efficiency`` (its MoE kernels against its dense GEMMs) and, where the
      data identify it (``IDENTIFIED_BY``), ``model.moe_routing_independence`` (how
      independently its benchmark's tokens pick their experts);
  hardware (per GPU preset: achieved fractions of the datasheet): the attention kernel's
      fraction of DRAM bandwidth (``chip.attention_bandwidth_efficiency``), the GEMMs'
      fraction of tensor peak (``chip.compute_efficiency``) and the streaming fraction of DRAM
      bandwidth (``dram.efficiency``).
``fit`` minimises the mean over measurement sets of each set's MAPE on its declared
calibration rows (every row of ``FIT_SETS`` carries its split), by coordinate descent (one
log-space grid per constant with the others held, ``rounds`` times, the grid narrowing
around the best value) and then a joint elitist evolution strategy in log space (constants
that trade off move together). A GPU preset without data inherits its vendor family's
correction (``family:`` in the hardware preset): its own preset values times the log-mean
ratio of fitted to preset value over the family's fitted GPUs (over every fitted GPU for a
family without data), so a datasheet-sourced difference between GPUs survives. An engine
without data keeps its raw values, and so do presets without a family (the stacked research
chip): nothing measured speaks for them; nor is a stack's MoE constant fitted without MoE rows.
``leave_one_gpu_out`` fits without any row of one GPU and scores that GPU's rows: the error
to expect on hardware nobody measured. The fitted model is ``presets/calibration/joint.yaml``.
"""

import datetime
import functools

import numpy as np
import yaml

from ..edges import io
from .validate import LATENCY_METRICS

__all__ = ["JOINT", "FIT_SETS", "SOFTWARE_PARAMS", "HARDWARE_PARAMS", "DEFAULT_SOFTWARE", "SOFTWARE_FACTS",
           "family_of", "software_of", "load_joint", "constants", "facts", "apply", "fit", "write",
           "leave_one_gpu_out"]

JOINT = io.CALIBRATION_DIR / "joint.yaml"
FIT_SETS = ("vllm-8xb200", "serving-public")
DEFAULT_SOFTWARE = "vllm"
# (dotted path with unit suffix, lo, hi): the grid's range in that unit
# (serving.step_overhead, an engine's host time per iteration, is not fitted: with it the shipped
# data give the same error, 18.34 / 7.89 % vs 18.22 / 7.99 %, so they do not identify it)
SOFTWARE_PARAMS = (("chip.op_overhead_us", 0.2, 50.0), ("fabric.collective_overhead_us", 0.2, 100.0),
                   ("chip.moe_gemm_efficiency", 0.3, 1.0), ("model.moe_routing_independence", 0.05, 1.0))
# constants only some stacks' measurements identify; the others keep their raw value. How
# independently a batch's tokens pick their experts (model.moe_routing_independence, session 13)
# shows only where MoE decodes at batches that touch part of the experts: vLLM's DeepSeek-V3 runs at
# batch 1-512 (the benchmark's prompts); the TensorRT-LLM records run batches that touch every expert
IDENTIFIED_BY = {"model.moe_routing_independence": ("vllm",)}
MOE_PARAMS = ("chip.moe_gemm_efficiency", "model.moe_routing_independence")   # informed by MoE rows only
# sourced (never fitted) facts of a software stack, set on every design of a GPU preset that runs it,
# raw or calibrated: vLLM's custom all-reduce runs in two stages (reduce-scatter + all-gather, two
# barriers) from 256 KiB on 5-8 GPUs (512 KiB on 3-4, never on 2; vllm-project/vllm
# csrc/custom_all_reduce.cuh ``CustomAllreduce::allreduce``, REDUCE_CASE; session 17); and it hands
# all-reduces of 8 MiB and more to NCCL (custom_all_reduce.py: max_size = 8192 * 1024,
# ``should_custom_ar``: inp_size < max_size), which reduces in the switch where the fabric can (NVLS)
SOFTWARE_FACTS = {"vllm": {"fabric.two_stage_threshold_KiB": 256, "fabric.switch_reduce_from_MiB": 8}}
HARDWARE_PARAMS = (("chip.attention_bandwidth_efficiency", 0.2, 1.0), ("chip.compute_efficiency", 0.5, 1.0),
                   ("dram.efficiency", 0.7, 1.0))
_KEYS = {"source", "sets", "split", "error", "software", "hardware", "families", "default"}
# families / default hold RATIOS (fitted / preset value) that GPUs without data apply to their own preset


@functools.cache
def _meta(kind: str, name: str, key: str):
    return io.load_yaml(io._preset_file(kind, name)).get(key)


def family_of(hardware: str) -> str | None:
    """The vendor family a hardware preset declares (``family:``), or None (a config.json or
    research chip)."""
    return _meta("hardware", hardware, "family") if hardware in io.preset_names("hardware") else None


def software_of(engine: str | None) -> str:
    return DEFAULT_SOFTWARE if engine is None else (_meta("engine", engine, "software") or DEFAULT_SOFTWARE)


def load_joint(path=None) -> dict | None:
    path = JOINT if path is None else path
    if not path.exists():
        return None
    doc = io.load_yaml(path)
    for key in doc:
        if key not in _KEYS:
            raise io.ConfigError(f"{path}: key '{key}': unknown; allowed: {', '.join(sorted(_KEYS))}")
    for section in ("software", "hardware"):
        for name, consts in (doc.get(section) or {}).items():
            for k, v in consts.items():
                io.convert_value(str(k), v, f"{path}: {section}.{name}")
    ratios = [(f"families.{n}", c) for n, c in (doc.get("families") or {}).items()] + [("default", doc.get("default"))]
    for where, consts in ratios:
        for k, v in (consts or {}).items():       # ratios of fitted to preset value
            io.resolve_path(str(k), f"{path}: {where}")
            if not isinstance(v, (int, float)) or not 0 < v < 100:
                raise io.ConfigError(f"{path}: key '{where}.{k}': {v!r} is not a ratio; allowed: a number in (0, 100)")
    return doc


@functools.cache
def _preset_value(hardware: str, path: str) -> float:
    names = io.resolve_path(path)[0]
    leaf = io.load_preset("hardware", hardware)[names[0]]
    for n in names[1:]:
        leaf = getattr(leaf, n)
    return float(leaf)


def constants(hardware: str, engine: str | None, doc: dict | None) -> dict:
    """{dotted path: value} the calibration model sets for a design (empty without a family).
    A GPU without its own fitted constants takes its preset's values times its family's (or
    every fitted GPU's) mean ratio of fitted to preset value, at most 1 (they are fractions)."""
    fam = family_of(hardware)
    if doc is None or fam is None:
        return {}
    hw = (doc.get("hardware") or {}).get(hardware)
    if hw is None:
        ratios = (doc.get("families") or {}).get(fam) or doc.get("default") or {}
        hw = {p: round(min(_preset_value(hardware, p) * r, 1.0), 4) for p, r in ratios.items()}
    return {**hw, **((doc.get("software") or {}).get(software_of(engine)) or {})}


def facts(hardware: str, engine: str | None) -> dict:
    """{dotted path: value} of the engine's software stack's sourced facts (``SOFTWARE_FACTS``),
    for GPU presets (a family); none for research chips."""
    return dict(SOFTWARE_FACTS.get(software_of(engine), {})) if family_of(hardware) else {}


def apply(d, hardware: str, engine: str | None, doc: dict | None = None, where: str | None = None):
    """``d`` with the calibration model's constants for (hardware, engine) set."""
    doc = load_joint() if doc is None else doc
    for path, value in constants(hardware, engine, doc).items():
        d = io.set_path(d, *io.convert_value(str(path), value, where or str(JOINT)))
    return d


# ---------------------------------------------------------------- fitting
def _rows(sets, keep) -> list[dict]:
    from ..validation import load_set

    return [r for s in sets for r in load_set(s).cases() if "design" in r and keep(r)]


@functools.cache
def _is_moe(model: str) -> bool:
    return float(io.load_preset("model", model)["model"].n_routed_experts) > 0


def _params(rows) -> list[tuple]:
    """(kind, name, path, lo, hi) of every constant the rows can inform: a stack's MoE constants
    only where it has MoE rows (leave-one-GPU-out can remove them all: the constant then keeps
    its raw value instead of drifting on a flat objective)."""
    sws = sorted({software_of(r["design"].get("engine")) for r in rows})
    moe = {software_of(r["design"].get("engine")) for r in rows if _is_moe(r["design"]["model"])}
    hws = sorted({r["design"]["hardware"] for r in rows if family_of(r["design"]["hardware"])})
    return ([("software", s, *p) for s in sws for p in SOFTWARE_PARAMS if s in IDENTIFIED_BY.get(p[0], (s,))
             and (s in moe or p[0] not in MOE_PARAMS)]
            + [("hardware", h, *p) for h in hws for p in HARDWARE_PARAMS])


def _owner(r, kind):
    return software_of(r["design"].get("engine")) if kind == "software" else r["design"]["hardware"]


class _Batch:
    """The calibration rows of the sets as one ``userdata.MeasuredBatch`` (raw presets), each
    set weighing the same in the objective."""

    def __init__(self, rows):
        from .userdata import MeasuredBatch, design_batch

        self.rows = rows
        sets = [r["set"] for r in rows]
        self.m = MeasuredBatch(design_batch(rows, calibrated=False), [r["measured"] for r in rows],
                               [r["metric"] for r in rows],
                               [1.0 / (sets.count(s) * len(set(sets))) for s in sets])
        self.meas, self.weight, self.raw, self.errors = self.m.meas, self.m.weight, self.m.raw, self.m.errors
        self.base = self.m.base


def _doc_values(doc: dict, batch: _Batch, G: int = 1) -> list[tuple]:
    """Per-row leaf values [(path, [G, C])] the calibration model ``doc`` sets on the rows
    (rows it does not touch keep their raw value)."""
    out = {}
    for j, r in enumerate(batch.rows):
        for path, v in constants(r["design"]["hardware"], r["design"].get("engine"), doc).items():
            if path not in out:
                out[path] = batch.raw(path).copy()
            out[path][j] = float(v)
    return [(p, np.broadcast_to(a, (G, len(a)))) for p, a in out.items()]


def _log_mean(values) -> float:
    return float(np.exp(np.mean(np.log(values))))


def _assemble(theta: dict) -> dict:
    """Fitted constants -> the model's sections, with family and default priors."""
    sw = {n: {p: round(v, 4) for (k, nn, p), v in theta.items() if k == "software" and nn == n}
          for n in sorted({nn for (k, nn, _) in theta if k == "software"})}
    hw = {n: {p: round(v, 4) for (k, nn, p), v in theta.items() if k == "hardware" and nn == n}
          for n in sorted({nn for (k, nn, _) in theta if k == "hardware"})}
    ratio = {n: {p: v / _preset_value(n, p) for p, v in c.items()} for n, c in hw.items()}
    fams: dict = {}
    for n, r in ratio.items():
        fams.setdefault(family_of(n), []).append(r)
    families = {f: {p: round(_log_mean([r[p] for r in rs]), 4) for p in rs[0]} for f, rs in sorted(fams.items())}
    default = {p: round(_log_mean([r[p] for r in ratio.values()]), 4) for p in next(iter(ratio.values()))} \
        if ratio else {}
    return {"software": sw, "hardware": hw, "families": families, "default": default}


def fit(sets=FIT_SETS, exclude_hardware: str | None = None, points: int = 12, rounds: int = 3,
        generations: int = 40, population: int = 48, restarts: int = 3, only=None, base: dict | None = None) -> dict:
    """The calibration model fitted on the calibration rows of ``sets`` (without any row of
    ``exclude_hardware``): {software, hardware, families, default, error, split}. ``only``: fit
    just the constants of these owners (software stacks or GPU presets, e.g. ``("vllm",)``), the
    others held at ``base``'s values (the shipped model's by default): a change that touches one
    stack is refitted without moving the rest (every other fitted value stays as it was)."""
    rows = _rows(sets, lambda r: r["split"] == "calibration" and r["design"]["hardware"] != exclude_hardware)
    batch = _Batch(rows)
    params = _params(rows)
    base = (load_joint() or {}) if only and base is None else (base or {})
    C = len(rows)
    theta, masks = {}, {}
    for kind, name, path, lo, hi in params:
        mask = np.array([_owner(r, kind) == name for r in rows])
        masks[(kind, name, path)] = mask
        # a constant starts from its value in ``base`` where it has one (a refit of some
        # constants starts where the shipped model stands, so it never ends above it on the
        # calibration rows: the search only accepts improvements), else from the preset's raw value
        start = ((base.get(kind) or {}).get(name) or {}).get(path) if only else None
        if start is None:
            start = np.clip(batch.raw(path)[mask][0], lo, hi)
        elif name in only:
            start = np.clip(start, lo, hi)
        theta[(kind, name, path)] = float(start)
    keys = list(theta)
    unknown = sorted(set(only or ()) - {k[1] for k in keys})
    if unknown:
        raise io.ConfigError(f"--fit-only: {', '.join(unknown)}: no constant of the calibration rows; allowed: "
                             + ", ".join(sorted({k[1] for k in keys})))
    free = np.array([not only or k[1] in only for k in keys], dtype=float)    # 1 = fitted, 0 = held
    lo = np.log([p[3] for p in params])
    hi = np.log([p[4] for p in params])
    paths = sorted({k[2] for k in keys})
    raw = {p: batch.raw(p) for p in paths}
    cols = {p: [(j, masks[k]) for j, k in enumerate(keys) if k[2] == p] for p in paths}

    def values(T):
        """Per-row leaf values [(path, [G, C])] of G parameter vectors T [G, P] (user units);
        rows no constant of a path touches keep their raw value."""
        out = []
        for p in paths:
            arr = np.broadcast_to(raw[p], (len(T), C)).copy()
            for j, mask in cols[p]:
                arr[:, mask] = T[:, j:j + 1]
            out.append((p, arr))
        return out

    def objective(T):
        return batch.errors(values(T)) @ batch.weight

    x = np.log([theta[k] for k in keys])
    start_err = batch.errors(values(np.exp(x)[None]))[0]        # where the search starts (never ends above)
    # coordinate descent: one log grid per constant, the others held (the current value is
    # always a candidate, so the objective never rises) ...
    for rnd in range(rounds):
        for j in np.flatnonzero(free):
            w = (hi[j] - lo[j]) / (2.0 ** (2 * rnd))
            g = np.linspace(max(lo[j], x[j] - w / 2), min(hi[j], x[j] + w / 2), points) if rnd else \
                np.linspace(lo[j], hi[j], points)
            T = np.repeat(x[None], points + 1, 0)
            T[:-1, j] = g
            x = T[int(np.argmin(objective(np.exp(T))))]
    # ... then a joint elitist evolution strategy in log space: constants that trade off (a
    # kernel overhead against a bandwidth fraction) move together, out of a coordinate trap
    rng = np.random.default_rng(0)
    for _ in range(restarts):          # the step size restarts: a narrowed search escapes again
        sigma = 0.25
        for _ in range(generations):
            T = np.clip(x[None] + sigma * rng.standard_normal((population, len(keys))) * free, lo, hi)
            T[0] = x
            obj = objective(np.exp(T))
            x, sigma = T[int(np.argmin(obj))], sigma * 0.93
    theta = {k: float(np.exp(v)) for k, v in zip(keys, x, strict=True)}
    err = batch.errors(values(np.exp(x)[None]))[0]

    def per_set(e):
        return {s: round(100 * float(np.mean(e[[r["set"] == s for r in rows]])), 3) for s in sorted(set(sets))
                if any(r["set"] == s for r in rows)}

    doc = _assemble(theta)
    doc["error"] = {"calibration_mape_pct": per_set(err), "start_mape_pct": per_set(start_err)}
    doc["split"] = {s: sorted(r["case"] for r in rows if r["set"] == s) for s in doc["error"]["calibration_mape_pct"]}
    return doc


def write(doc: dict, path=None, only=None) -> None:
    path = JOINT if path is None else path
    how = (f"`jaxstack validate --fit {' '.join('--fit-only ' + n for n in only)}` (only these constants; the "
           "others held at the previous model's values)" if only else "`jaxstack validate --fit`")
    out = {"source": f"fitted by {how} on {datetime.date.today().isoformat()}: coordinate-descent "
                     "log-space grid search minimising the mean over sets of each set's MAPE on its calibration "
                     "rows (jaxstack/engines/calibration.py)",
           "sets": sorted(doc["split"]), **doc}
    io.write_text_atomic(path, yaml.safe_dump(out, sort_keys=False, width=100))


# leave-one-GPU-out scores throughput rows: MLPerf Server latencies (never fitted) are measured
# at a load within a few per cent of the engine's capacity, where the queueing model turns a
# throughput error into a many-fold latency error; ``validate`` reports them on their own panels
LOGO_SKIPS_METRICS = LATENCY_METRICS


def leave_one_gpu_out(sets=FIT_SETS, points: int = 12, rounds: int = 3) -> list[dict]:
    """Per GPU with data: fit without any of its rows, score all of its throughput rows (every
    split); also the raw presets and the full fit on the same rows."""
    allrows = _rows(sets, lambda r: family_of(r["design"]["hardware"]) is not None
                    and r["metric"] not in LOGO_SKIPS_METRICS)
    gpus = sorted({r["design"]["hardware"] for r in allrows})
    full = load_joint()
    out = []
    for g in gpus:
        test = [r for r in allrows if r["design"]["hardware"] == g]
        doc = fit(sets, exclude_hardware=g, points=points, rounds=rounds)
        batch = _Batch(test)
        res = {"held_out": g, "family": family_of(g), "test_rows": len(test),
               "train_rows": sum(len(v) for v in doc["split"].values()),
               "prior": "family" if family_of(g) in doc["families"] else "default"}
        for label, d in (("held_out", doc), ("raw", None), ("fitted_with_it", full)):
            err = batch.errors(_doc_values(d, batch) if d else [])[0]
            res[f"{label}_mape_pct"] = float(100 * np.mean(err))
        res["per_set"] = {s: float(100 * np.mean(batch.errors(_doc_values(doc, batch))[0][
            [r["set"] == s for r in test]])) for s in sorted({r["set"] for r in test})}
        # engines measured on no other GPU keep their raw overheads in the held-out fit; the same
        # fit with every engine's constants from the full fit (which saw this GPU's rows: not a
        # held-out figure) splits the error into the hardware's transfer and the unknown engine
        res["engines_only_here"] = sorted({software_of(r["design"].get("engine")) for r in test}
                                          - set(doc.get("software") or {}))
        if full is not None and res["engines_only_here"]:
            known = {**doc, "software": full.get("software") or {}}
            res["engines_from_full_fit_mape_pct"] = float(100 * np.mean(batch.errors(_doc_values(known, batch))[0]))
        out.append(res)
    return out
