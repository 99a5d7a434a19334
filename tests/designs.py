"""Random design batches for tests: presets x random mappings/requests/perturbations."""

import itertools

import jax
import numpy as np

from jaxstack.edges import io
from jaxstack.types.design import Design

HARDWARE = ["a100-80gb", "h100-sxm", "h200", "b200", "mi300x", "mi325x", "stacked-3d"]
FABRICS = ["nvlink-a100x8", "nvlink-h100x8", "nvlink-b200x8", "if-mi325x4", "if-mi300x8", "stacked-256",
           "stacked-256-switch", "torus-16x16"]
MODELS = ["llama-3-8b", "llama-3-70b", "llama-3.1-405b", "mixtral-8x7b", "qwen3-235b-a22b", "deepseek-v3"]


def base_design(hw="b200", fabric="nvlink-b200x8", model="llama-3-70b", batch=64, inp=1024, out=1024,
                calibrated=True, **mapping):
    return io.design_from_dict({"hardware": hw, "fabric": fabric, "model": model,
                                "request": {"batch": batch, "input_len": inp, "output_len": out},
                                "mapping": mapping}, calibrated=calibrated)


def stack(designs):
    return jax.tree_util.tree_map(lambda *xs: np.asarray(xs, dtype=np.float32), *designs)


def random_designs(n: int, seed: int = 0, calibrated: bool = True) -> Design:
    """A batch of n designs (numpy float32 leaves) spanning presets, mappings and requests
    (``calibrated=False``: the raw presets, which no refit of the calibration moves)."""
    rng = np.random.default_rng(seed)
    bases = [base_design(h, f, m, calibrated=calibrated) for h, f, m in itertools.product(HARDWARE, FABRICS, MODELS)]
    table = stack(bases)
    pick = rng.integers(0, len(bases), n)
    d = jax.tree_util.tree_map(lambda x: x[pick].copy(), table)
    dev = d.fabric.l1.size * d.fabric.l2.size * d.fabric.l3.size
    deg = {k: 2.0 ** rng.integers(0, 4, n) for k in ("tp", "ep", "pp")}
    deg["sp"] = 2.0 ** (rng.random(n) < 0.15)
    deg["cp"] = 2.0 ** (rng.random(n) < 0.15)
    prod = deg["tp"] * deg["ep"] * deg["pp"] * deg["sp"] * deg["cp"]
    dp = np.maximum(dev / prod, 1.0)
    deg["dp"] = np.where(rng.random(n) < 0.05, 1.0, np.floor(dp))
    mp = d.mapping
    mp = type(mp)(**{k: deg[k].astype(np.float32) for k in ("tp", "ep", "sp", "cp", "dp", "pp")},
                  fsdp=(rng.random(n) < 0.3).astype(np.float32),
                  moe_tp_to_ep=(rng.random(n) < 0.5).astype(np.float32),
                  overlap=(rng.random(n) < 0.5).astype(np.float32),
                  micro_batches=np.where(rng.random(n) < 0.3, rng.choice([1, 2, 4, 8], n), 0).astype(np.float32))
    req = type(d.request)(batch=rng.integers(1, 1025, n).astype(np.float32),
                          input_len=rng.choice([128, 1024, 4096, 8192], n).astype(np.float32),
                          output_len=rng.choice([1, 256, 1024, 4096], n).astype(np.float32),
                          input_cv=np.zeros(n, np.float32), output_cv=np.zeros(n, np.float32))
    jitter = lambda x: (x * rng.uniform(0.5, 2.0, n)).astype(np.float32)  # noqa: E731
    chip = type(d.chip)(**{**vars(d.chip), "clock": jitter(d.chip.clock), "op_overhead": jitter(d.chip.op_overhead),
                                    "attention_bandwidth_efficiency": rng.uniform(0.3, 1.0, n).astype(np.float32)})
    dram = type(d.dram)(**{**vars(d.dram), "transfer_rate": jitter(d.dram.transfer_rate),
                           "total_layers": np.where(d.dram.total_layers > 1, rng.integers(1, 17, n),
                                                    1).astype(np.float32)})
    dram = type(dram)(**{**vars(dram), "connected_layers": np.where(
        d.dram.total_layers > 1, np.ceil(dram.total_layers * rng.uniform(0.2, 1.0, n)), 1).astype(np.float32)})
    l1 = type(d.fabric.l1)(**{**vars(d.fabric.l1), "link_bandwidth": jitter(d.fabric.l1.link_bandwidth)})
    fabric = type(d.fabric)(**{**vars(d.fabric), "l1": l1})
    # thermal / power-wall variety: hotter packages and lower power limits reach the doubled-
    # refresh, time-shared, throttled and runaway regimes on a share of the points
    chip = type(chip)(**{**vars(chip), "tdp": (chip.tdp * rng.uniform(0.05, 1.5, n)).astype(np.float32)})
    thermal = type(d.thermal)(**{**vars(d.thermal), "r_base": (d.thermal.r_base * rng.uniform(0.5, 6.0, n))
                                 .astype(np.float32)})
    # dtypes: a share of FP8 / FP4 / NVFP4 weights, and W8A8, W8A16, W4A4 GEMM activation operands
    wb = np.where(rng.random(n) < 0.6, d.model.weight_bytes, rng.choice([1.0, 0.5, 0.5625], n)).astype(np.float32)
    ga = rng.choice([0.0, 0.0, 1.0, 2.0, 0.5], n).astype(np.float32)
    model = type(d.model)(**{**vars(d.model), "weight_bytes": wb, "gemm_act_bytes": ga})
    # engine host time per step on a share of the points (the calibration model's software constant)
    serving = type(d.serving)(**{**vars(d.serving), "step_overhead": np.where(
        rng.random(n) < 0.3, rng.uniform(0.0, 2e-3, n), 0.0).astype(np.float32)})
    # the routed experts' grouped-GEMM efficiency (a calibration constant) on a share of the points,
    # drawn last so that every earlier draw is unchanged
    chip = type(chip)(**{**vars(chip), "moe_gemm_efficiency": np.where(
        rng.random(n) < 0.3, rng.uniform(0.3, 1.0, n), 1.0).astype(np.float32)})
    # FP8 attention (model.attn_bytes = 1) on a share of the points (session 13)
    model = type(model)(**{**vars(model), "attn_bytes": np.where(rng.random(n) < 0.3, 1.0, 2.0).astype(np.float32)})
    # how independently a batch's tokens pick their experts (a calibration constant, session 13)
    model = type(model)(**{**vars(model), "moe_routing_independence": np.where(
        rng.random(n) < 0.3, rng.uniform(0.05, 1.0, n), model.moe_routing_independence).astype(np.float32)})
    # vLLM's two-stage all-reduce threshold (a software fact, session 17) on a share of the points
    fabric = type(fabric)(**{**vars(fabric), "two_stage_threshold": np.where(
        rng.random(n) < 0.3, rng.uniform(6.4e4, 4.2e6, n), 0.0).astype(np.float32)})
    # in-switch all-reduce (NVLS) on a share of the points: the capability and the stack's size
    l1 = type(fabric.l1)(**{**vars(fabric.l1), "switch_reduce": (rng.random(n) < 0.3).astype(np.float32)})
    fabric = type(fabric)(**{**vars(fabric), "l1": l1, "switch_reduce_from": np.where(
        rng.random(n) < 0.5, rng.uniform(1e4, 3e7, n), 0.0).astype(np.float32)})
    # routed experts quantised apart from the rest (gpt-oss: MXFP4 experts, BF16 elsewhere) on a share
    model = type(model)(**{**vars(model), "expert_weight_bytes": np.where(
        rng.random(n) < 0.3, rng.choice([0.53125, 0.5625, 1.0, 2.0], n), 0.0).astype(np.float32)})
    return type(d)(chip=chip, dram=dram, fabric=fabric, thermal=thermal, model=model, request=req, mapping=mp,
                   serving=serving)


def as_dict(d, dtype=np.float64):
    """Nested dict of numpy arrays (the reference's input)."""
    if hasattr(d, "__dataclass_fields__"):
        return {k: as_dict(getattr(d, k), dtype) for k in d.__dataclass_fields__}
    return np.asarray(d, dtype=dtype)


def jittered_designs(n: int, seed: int = 0, lo: float = 0.25, hi: float = 4.0) -> Design:
    """``random_designs`` with every continuous hardware leaf (chip, dram, fabric, thermal)
    multiplied by a log-uniform factor in [lo, hi], then put back into its declared domain
    (fractions capped at 1, integers rounded): legal values, far from the presets."""
    import dataclasses

    from jaxstack.types._tree import domain_of

    rng = np.random.default_rng(seed + 1)
    d = random_designs(n, seed)

    def jit(obj):
        out = {}
        for f in dataclasses.fields(obj):
            x = getattr(obj, f.name)
            if dataclasses.is_dataclass(x):
                out[f.name] = jit(x)
                continue
            dom = domain_of(obj, f.name)
            if dom.choices is not None or f.name in ("total_layers", "connected_layers", "size", "dim_x", "dim_y"):
                out[f.name] = x
                continue
            y = x * np.exp(rng.uniform(np.log(lo), np.log(hi), n))
            if dom.integer:
                y = np.maximum(np.round(y), dom.lo)
            if dom.hi == 1.0:
                y = np.minimum(y, 1.0)
            out[f.name] = y.astype(np.float32)
        return type(obj)(**out)

    return type(d)(chip=jit(d.chip), dram=jit(d.dram), fabric=jit(d.fabric), thermal=jit(d.thermal),
                   model=d.model, request=d.request, mapping=d.mapping, serving=d.serving)
