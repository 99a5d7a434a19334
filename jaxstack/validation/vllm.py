"""vLLM on 8×B200: measured system decode tokens/s (CUDA graphs, fixed concurrency).

Each case as jaxstack inputs: hardware ``b200``, fabric ``nvlink-b200x8``, TP = 8; the
MoE model (DeepSeek-V3, FP8 weights) runs its MoE layers as EP8 (``moe_tp_to_ep = 1``,
DeepStack's ``replace_only``); input 1024, output 1024 tokens so the KV cache grows from
1024 to 2048 while ``batch`` requests decode together; the metric is system decode
tokens/s (``decode_tokens_per_s``). Calibration split: batch in {1, 4, 16, 64, 256};
holdout: {2, 8, 32, 128, 512} and Llama BS 1024. Llama BS 2048 is excluded: 2048 requests
of 2048 tokens do not fit the KV cache of 8×B200 (vLLM then preempts, so the measured
concurrency is not 2048: its per-user speed × 2048 = 40,119 ≠ the reported 53,316 tok/s).
"""

import csv
from pathlib import Path

from ..engines.userdata import design_batch, evaluate_rows

NAME = "vllm-8xb200"
DESCRIPTION = "vLLM system decode tokens/s on 8xB200 (Llama-3-70B TP8, DeepSeek-V3 TP8 + MoE EP8)"
DATA = Path(__file__).parent / "data" / NAME
CALIBRATION_BATCHES = {1, 4, 16, 64, 256}
MODELS = {  # csv file -> (model preset, mapping, DeepStack's name in cases.csv)
    "llama_3_70b.csv": ("llama-3-70b", {"tp": 8}, "Llama3_70b"),
    "deepseek_v3.csv": ("deepseek-v3", {"tp": 8, "moe_tp_to_ep": 1}, "DeepSeekV3"),
}
MAX_BATCH = 1024
HARDWARE, FABRIC = "b200", "nvlink-b200x8"


def _deepstack():
    out = {}
    with open(DATA / "cases.csv") as f:
        for row in csv.DictReader(f):
            out[(row["model"], int(row["bs"]))] = float(row["paper_stps_avg"])
    return out


def cases() -> list[dict]:
    ds = _deepstack()
    rows = []
    for fname, (model, mapping, ds_name) in MODELS.items():
        with open(DATA / fname) as f:
            for r in csv.DictReader(f):
                bs = int(r["BS"])
                if r["Eager_Mode"] != "False" or bs > MAX_BATCH:
                    continue
                rows.append({
                    "set": NAME, "panel": model, "case": f"{model} bs{bs}",
                    "design": {"hardware": HARDWARE, "fabric": FABRIC, "model": model,
                               "request": {"batch": bs, "input_len": 1024, "output_len": 1024},
                               "mapping": dict(mapping)},
                    "measured": float(r["System Decode TPS"]), "deepstack": ds.get((ds_name, bs), float("nan")),
                    "split": "calibration" if bs in CALIBRATION_BATCHES else "holdout", "weight": 1.0,
                    "metric": "decode_tokens_per_s",
                })
    return rows


def designs(rows, calibration=True):
    return design_batch(rows, calibration)


def run(calibration: bool = True) -> list[dict]:
    return evaluate_rows(cases(), calibration)
