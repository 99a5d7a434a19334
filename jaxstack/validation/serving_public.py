"""Published offline max-throughput serving: TensorRT-LLM v1.0 perf overview (``serving-public``).

Each TRT10 record (``data/serving-public/records.yaml``, provenance there) becomes one case
in the ``offline`` serving regime (``jaxstack/recipe/serving.py``): hardware ``h100-sxm`` / ``h200``
/ ``b200`` on its NVLink fabric cut to the record's GPU count (``fabric.l1.size = dim_x = n``),
TP as published, ``input_len`` / ``output_len`` as published, metric = system output
tokens/s (``decode_tokens_per_s``). Precision: FP8 = FP8 weights, activations in the GEMMs
and KV cache (``weight_bytes = kv_bytes = 1``; the KV dtype is not stated, ModelOpt FP8
checkpoints quantise it); FP4 = NVFP4 weights (``weight_bytes = 0.5``, FP4 tensor rate) with
an FP8 KV cache; collectives and activations stay 16-bit. Engine limits: TensorRT-LLM's
``max_num_tokens`` default 8192 per step and batch up to 8192 requests (its CUDA-graph
batch sizes), so the KV budget (``dram.usable_fraction``, 0.90-0.95 of free memory in the
runs) sets the running batch. Each run has the record's ``num_requests`` (1,000-3,000): they
run in waves of the running batch, the last one partial (``serving.offline_fill``).

Mapping: TP as published. The MoE records also say ``enable_attention_dp: true``, but the
published options file nests that key under ``cuda_graph_config`` (where TensorRT-LLM would
reject or ignore it), and the data agree with plain TP: expressing them as attention DP
(``ep = n``, each GPU holding all KV heads of its own requests) predicts 1.7-2.3x the
measured throughput on every MoE record at the same calibration (mean error 43 % vs 20 %,
session 9), so TP it is.

Expressed: 63 of the 75 records (Llama-3-8B/70B, Llama-3.1-405B, Qwen3-235B-A22B,
Qwen3-30B-A3B, Llama-4 Scout and Maverick: ``moe_layer_step`` 2 for Maverick's MoE in
every second layer; their chunked local attention is not modelled). Not expressed, and why:
- MLPerf v5.0 (12 records): real data sets whose input lengths the records do not give (only
  the mean output length); the Server points would use the ``online`` regime.

Split (declared before anything is fitted on this set): calibration = records whose id
number is odd, holdout = even. Only the B200 preset carries fitted constants today (from
``vllm-8xb200``); H100 and H200 run on datasheet values.
"""

from pathlib import Path

import yaml

from ..engines.userdata import design_batch, evaluate_rows

NAME = "serving-public"
DESCRIPTION = "TensorRT-LLM v1.0 offline max-throughput output tokens/s (H100 / H200 / B200, FP8 / FP4)"
DATA = Path(__file__).parent / "data" / NAME
HARDWARE = {"H100": ("h100-sxm", "nvlink-h100x8"), "H200": ("h200", "nvlink-h200x8"),
            "B200": ("b200", "nvlink-b200x8")}
MODELS = {"llama3-8b": "llama-3-8b", "llama3-70b": "llama-3-70b", "llama3.1-405b": "llama-3.1-405b",
          "qwen3-235b": "qwen3-235b-a22b", "qwen3-30b": "qwen3-30b-a3b", "llama4-scout": "llama-4-scout",
          "llama4-maverick": "llama-4-maverick"}
PRECISION = {"FP8": {"model.weight_bytes": 1, "model.kv_bytes": 1},
             "FP4": {"model.weight_bytes": 0.5, "model.kv_bytes": 1}}
ENGINE = "trtllm-throughput"     # engine preset: offline, 8192 requests, 8192 tokens per step
SKIPPED = {"MLP50": "MLPerf data-set input lengths not in the records (only the mean output length)"}


def records() -> list[dict]:
    return yaml.safe_load((DATA / "records.yaml").read_text())


def _case(rec) -> dict | None:
    if rec["group"] != "TRT10" or rec["model"]["key"] not in MODELS:
        return None
    gpu = rec["hardware"]["gpu"].split()[1]
    hw, fabric = HARDWARE[gpu]
    n = int(rec["hardware"]["gpu_count"])
    prec = rec["software"]["precision"][:3]
    w = rec["workload"]
    overrides = {"fabric.l1.size": n, "fabric.l1.dim_x": n, "serving.num_requests": int(w["num_requests"]),
                 **PRECISION[prec]}
    num = int(rec["id"].split("-")[1])
    return {"set": NAME, "panel": f"{gpu} {prec}", "case": f"{rec['id']} {rec['model']['key']} {gpu}x{n} "
            f"{w['input_len_tokens']}/{w['output_len_tokens']}",
            "design": {"hardware": hw, "fabric": fabric, "model": MODELS[rec["model"]["key"]],
                       "request": {"batch": 1, "input_len": w["input_len_tokens"],
                                   "output_len": w["output_len_tokens"]},
                       "mapping": {"tp": int(rec["parallelism"]["tp"] or 1), "pp": int(rec["parallelism"]["pp"] or 1)},
                       "engine": ENGINE, "overrides": overrides},
            "measured": float(rec["measured"]["output_tokens_per_s"]), "metric": "decode_tokens_per_s",
            "split": "calibration" if num % 2 else "holdout", "weight": 1.0}


def cases() -> list[dict]:
    return [c for c in (_case(r) for r in records()) if c is not None]


def coverage() -> dict:
    """How many records are expressed, and why the others are not."""
    recs = records()
    out = {"records": len(recs), "expressed": len(cases()), "not_expressed": {}}
    for r in recs:
        key = r["model"]["key"] if r["group"] == "TRT10" else r["group"]
        if r["group"] != "TRT10" or key not in MODELS:
            reason = SKIPPED.get(key, "no preset")
            out["not_expressed"][reason] = out["not_expressed"].get(reason, 0) + 1
    return out


def designs(rows, calibration=True):
    return design_batch(rows, calibration)


def run(calibration: bool = True) -> list[dict]:
    return evaluate_rows(cases(), calibration, extra=("running_batch",))
