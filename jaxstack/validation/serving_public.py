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

Mapping: TP as published for the dense models. The MoE records (Qwen3, Llama-4) ran with
``enable_attention_dp: true`` (the records' notes; the perf overview's MoE command also passes
``--ep``): attention is data-parallel over the group's GPUs, each holding the whole KV cache of
its own requests and scheduling them with its own batch and token limits, and the experts are
split over the same GPUs (expert parallelism, EP = the published TP, which the table does not
restate), i.e. jaxstack mapping ``tp = 1, ep = n`` (``_mapping``). The published options file
nests the key under ``cuda_graph_config``, which session 9 read as "ignored" and expressed as
plain TP; that reading came from a model whose FP8 / FP4 GEMMs read 16-bit activation operands
(fixed in session 11), and with the fix the records' own statement also fits better: held-out
MAPE 11.1 % with attention DP against 15.2 % with TP, after refits of the same calibration.

Expressed: all 75 records. TRT10 (63): Llama-3-8B/70B, Llama-3.1-405B, Qwen3-235B-A22B,
Qwen3-30B-A3B, Llama-4 Scout and Maverick (``moe_layer_step`` 2 for Maverick's MoE in every
second layer; their chunked local attention is not modelled). MLPerf Inference v5.0 (12,
``_mlperf``): Llama-2-70B, Llama-3.1-405B and Mixtral-8x7B on 8 x B200 / H200 (NVIDIA's
TensorRT-LLM harness: TensorRT engines, engine preset ``trtllm-mlperf``, a software stack of its
own since session 13; its published TP / PP, batch and token limits per scenario:
``MLPERF_NVIDIA``; Mixtral's mixed-precision checkpoints at their effective bits,
``MLPERF_EFFECTIVE_BITS``) and 8 x MI325X (vLLM, TP1 per GPU), at each data set's mean input length
(``MLPERF_INPUT``) and each record's own output tokens per sample; the Offline records score
output tokens/s in the ``offline`` regime, the Server records TTFT and TPOT (mean and p99) in
the ``online`` regime at the record's Poisson rate, and the rate itself (samples/s, MLPerf
Server's result: the highest rate the submitter found to meet the p99 TTFT / TPOT limits)
against the model's goodput under the same limits (``MLPERF_SERVER_SLO``). Real data sets vary in length; the
model runs every request at the mean.

Split (declared before anything is fitted on this set): calibration = records whose id
number is odd, holdout = even; MLPerf Server rows (latencies and rates) are all held out (never fitted).
"""

from pathlib import Path

import yaml

from ..engines.userdata import design_batch, evaluate_rows

NAME = "serving-public"
DESCRIPTION = ("TensorRT-LLM v1.0 offline max-throughput output tokens/s (H100 / H200 / B200, FP8 / FP4) and MLPerf "
               "Inference v5.0 Offline tokens/s, Server TTFT / TPOT and Server samples/s (B200 / H200 / MI325X)")
DATA = Path(__file__).parent / "data" / NAME
HARDWARE = {"H100": ("h100-sxm", "nvlink-h100x8"), "H200": ("h200", "nvlink-h200x8"),
            "B200": ("b200", "nvlink-b200x8"), "MI325X": ("mi325x", "if-mi325x8")}
MODELS = {"llama3-8b": "llama-3-8b", "llama3-70b": "llama-3-70b", "llama3.1-405b": "llama-3.1-405b",
          "qwen3-235b": "qwen3-235b-a22b", "qwen3-30b": "qwen3-30b-a3b", "llama4-scout": "llama-4-scout",
          "llama4-maverick": "llama-4-maverick", "llama2-70b": "llama-2-70b", "mixtral-8x7b": "mixtral-8x7b"}
# MLPerf Inference v5.0 data sets: mean input tokens per sample (the processed data sets' token
# counts, chat template included for llama2: openshift-psap/performance-dashboard
# mlperf-data/summaries/{llama2-70b-99,llama3-1-405b,mixtral-8x7b}.csv @ 71007029fb5bced1d79808e7e64dc4c2af82ea55,
# extracted from the official pickles named in mlcommons/inference's v5.0 READMEs; their reference
# output columns reproduce the official tokens_per_sample 684.68 / 144.84 exactly, and the llama2
# rows match the 24,576 samples and processorca.py's < 1024-token filters). Output tokens per sample
# are each record's own (its tokens/s over samples/s).
MLPERF_INPUT = {"llama2-70b": 222.33, "llama3.1-405b": 9428.64, "mixtral-8x7b": 427.39}
# ... and the spread of those input lengths, population std / mean over the same files (24,576 /
# 8,313 / 15,000 samples): request.input_cv, which the online regime's prefill queue and p99 TTFT use
MLPERF_INPUT_CV = {"llama2-70b": 0.7714, "llama3.1-405b": 0.4313, "mixtral-8x7b": 0.7689}
# The reference OUTPUT lengths of the same files spread as much (cv 0.79 / 0.38 / 0.78), but they are
# not what the engines generated (llama2: 218.9 reference tokens per sample, 272.7 generated on B200),
# so request.output_cv stays 0 here: set to the reference spread it makes the Llama-2-70B B200 Server
# run, which MLPerf measured stable at 361 req/s, unstable in the model (the length-biased KV of the
# running requests, 1.62x the mean output's, no longer fits 1,830 per GPU), and widens the p99 TPOTs
# that are already high (405B B200 +18.6 -> +21.3 %) (session 16)
# NVIDIA's v5.0 harness settings per (model, GPU, scenario): TP, PP, gpu_batch_size (max requests
# per engine instance -> serving.max_num_seqs), runtime max_num_tokens (-> max_num_batched_tokens),
# and whether the engine is built with TensorRT-LLM's gemm_allreduce_plugin (the TP all-reduce fused
# into the GEMM that produces it -> mapping.overlap = 1: set for both H200 Llama-3.1-405B classes,
# commented out for B200 "to prevent intermittent failures"; the other models run TP1); KV cache FP8.
# closed/NVIDIA/configs/<benchmark>/<Offline|Server>/__init__.py of the v5.0 results, MaxP
# Custom-harness k_99 classes B200_SXM_180GBx8 / H200_SXM_141GBx8 (llama3.1-405b: B200_SXM_180GB_TP2PP2x2,
# H200_SXM_141GBx8_TP4PP2 Offline, H200_SXM_141GBx8_TP8PP1 Server with runtime max_batch_size 64):
# partners' copies in ntuhpc/mlperf_inference_results_v5.0 @ cf354115 (Cisco; the QPS they produce
# equals target_qps in NVIDIA's own mlperf_log_summary.txt for all 12 runs), llama2-70b Offline also
# mlcommons/inference_results_v5.0 @ 6069beb24b7a0a352f2ea8e76989fa16cd47c76e
MLPERF_NVIDIA = {("llama2-70b", "B200", "offline"): (1, 1, 2048, 3584, 0),
                 ("llama2-70b", "B200", "server"): (1, 1, 2048, 3584, 0),
                 ("llama2-70b", "H200", "offline"): (1, 1, 2048, 1536, 0),
                 ("llama3.1-405b", "B200", "offline"): (2, 2, 128, 1536, 0),
                 ("llama3.1-405b", "B200", "server"): (2, 2, 128, 1024, 0),
                 ("llama3.1-405b", "H200", "offline"): (4, 2, 512, 1536, 1),
                 ("llama3.1-405b", "H200", "server"): (8, 1, 64, 2560, 1),
                 ("mixtral-8x7b", "B200", "offline"): (1, 1, 6144, 14336, 0),
                 ("mixtral-8x7b", "B200", "server"): (1, 1, 6144, 10240, 0),
                 ("mixtral-8x7b", "H200", "offline"): (1, 1, 3072, 9216, 0),
                 ("mixtral-8x7b", "H200", "server"): (1, 1, 3072, 8192, 0)}
# AMD's MI325X llama2-70b: vLLM 0.6.5 (ROCm 6.3.1) through AMD's harness with data_parallel_size 8
# (closed/AMD, 8xMI325X_2xEPYC_9575F); its TP (harness default 1) and batch limits are not published:
# TP1 per GPU and the vllm-offline preset's limits
# NVIDIA's harness builds TensorRT engines run by TensorRT-LLM's C++ executor: a software stack of its own
# (engine preset trtllm-mlperf, its own fitted overheads), not the v1.0 PyTorch backend of the TRT10 rows
MLPERF_ENGINE = {"NVIDIA": "trtllm-mlperf", "AMD": "vllm-offline"}
MLPERF_SERVER = (("ttft_s", "ttft_mean_ms"), ("ttft_p99_s", "ttft_p99_ms"), ("tpot_s", "tpot_mean_ms"),
                 ("tpot_p99_s", "tpot_p99_ms"))
# MLPerf Server's latency limits (p99 TTFT s, p99 TPOT s): a run is valid only if both hold at its
# scheduled rate, so the published samples/s is the highest passing rate the submitter found: the model's
# goodput under the same limits (``goodput_requests_per_s``) predicts it. mlcommons/inference
# loadgen/mlperf.conf @ 001712e9daf80386e0dda43f97b8f36981d792c4: <model>.Server.ttft_latency / tpot_latency (ms)
MLPERF_SERVER_SLO = {"llama2-70b": (2.0, 0.200), "mixtral-8x7b": (2.0, 0.200), "llama3.1-405b": (6.0, 0.175)}
# the goodput row's own arrival rate (the design must be stable at it; goodput does not depend on it):
# this share of the published rate
GOODPUT_ROW_RATE_SHARE = 0.01
# ModelOpt AutoQuantize checkpoints: NVIDIA's v5.0 Mixtral configs quantise with trtllm_checkpoint_flags
# 'effective_bits' (mixed precision per layer under an average weight-width budget; same Cisco copy,
# configs/mixtral-8x7b/{Offline,Server}/__init__.py): Blackwell 7.25 bits of NVFP4 (4) and FP8 (8), i.e.
# ~81 % of the weights FP8, so the GEMMs run at the FP8 rate on FP8 activations; Hopper 8.75 bits of FP8
# and BF16 (~9 % BF16, at the FP8 rate here: the tensor rate follows the wider format's majority).
# Weights take effective_bits / 8 bytes; the records' "FP4" / "FP8" name the checkpoint's lowest format.
MLPERF_EFFECTIVE_BITS = {("mixtral-8x7b", "B200"): 7.25, ("mixtral-8x7b", "H200"): 8.75}
# FP8 attention (model.attn_bytes = 1): the engines built with trtllm_build_flags 'use_fp8_context_fmha':
# 'enable' (same copies): both Llama-3.1-405B base classes (Hopper and Blackwell) in Offline and Server,
# and Mixtral's Blackwell Server class; Llama-2-70B and the other Mixtral classes do not set it
MLPERF_FP8_ATTENTION = {("llama3.1-405b", "B200", "offline"), ("llama3.1-405b", "B200", "server"),
                        ("llama3.1-405b", "H200", "offline"), ("llama3.1-405b", "H200", "server"),
                        ("mixtral-8x7b", "B200", "server")}
# KV blocks of 32 tokens: trtllm_build_flags 'tokens_per_block': 32 in both Llama-3.1-405B base classes (Hopper and
# Blackwell, Offline and Server; same copies, configs/llama3_1-405b/<scenario>/__init__.py); the Llama-2 and Mixtral
# configs do not set it and keep the engine preset's 64 (trtllm-mlperf.yaml)
MLPERF_KV_BLOCK = {"llama3.1-405b": 32}
PRECISION = {"FP8": {"model.weight_bytes": 1, "model.kv_bytes": 1},
             "FP4": {"model.weight_bytes": 0.5, "model.kv_bytes": 1}}
ENGINE = "trtllm-throughput"     # engine preset: offline, 8192 requests, 8192 tokens per step
SKIPPED: dict = {}


def records() -> list[dict]:
    return yaml.safe_load((DATA / "records.yaml").read_text())


def _mlperf(rec) -> list[dict]:
    """An MLPerf v5.0 record: Offline -> one row (output tokens/s, offline regime); Server -> five
    rows: TTFT and TPOT, mean and p99, online regime at the record's Poisson rate, and the rate
    itself against the model's goodput under MLPerf's p99 limits (``MLPERF_SERVER_SLO``)."""
    gpu = next(k for k in HARDWARE if k in rec["hardware"]["gpu"])
    hw, fabric = HARDWARE[gpu]
    n = int(rec["hardware"]["gpu_count"])
    key, prec, meas = rec["model"]["key"], rec["software"]["precision"][:3], rec["measured"]
    server = "server" in rec["workload"]["mode"]
    scenario = "server" if server else "offline"
    amd = gpu.startswith("MI")
    engine = MLPERF_ENGINE["AMD" if amd else "NVIDIA"]
    overrides = {"fabric.l1.size": n, "fabric.l1.dim_x": n, **PRECISION[prec]}
    bits = MLPERF_EFFECTIVE_BITS.get((key, gpu))
    if bits is not None:
        overrides.update({"model.weight_bytes": bits / 8, "model.gemm_act_bytes": 1.0})
    if (key, gpu, scenario) in MLPERF_FP8_ATTENTION:
        overrides["model.attn_bytes"] = 1.0
    tp, pp, gemm_ar = 1, 1, 0
    if not amd:
        tp, pp, seqs, tokens, gemm_ar = MLPERF_NVIDIA[(key, gpu, scenario)]
        overrides.update({"serving.auto_limits": 0, "serving.max_num_seqs": seqs,
                          "serving.max_num_batched_tokens": tokens})
        if key in MLPERF_KV_BLOCK:
            overrides["serving.kv_block_size"] = MLPERF_KV_BLOCK[key]
    if server:
        ttft_slo, tpot_slo = MLPERF_SERVER_SLO[key]
        overrides.update({"serving.regime": 2, "serving.arrival_rate": float(meas["samples_per_s"]),
                          "serving.ttft_slo_s": ttft_slo, "serving.tpot_slo_s": tpot_slo})
    design = {"hardware": hw, "fabric": fabric, "model": MODELS[key], "engine": engine, "overrides": overrides,
              "request": {"batch": 1, "input_len": round(MLPERF_INPUT[key]), "input_cv": MLPERF_INPUT_CV[key],
                          "output_len": round(float(meas["mean_output_tokens_per_sample"]))},
              "mapping": {"tp": tp, "pp": pp, "dp": n // (tp * pp), "overlap": gemm_ar}}
    num = int(rec["id"].split("-")[1])
    # split: Offline records by id parity like TRT10 (odd = calibration); Server latencies are
    # never fitted (they test the queueing model on top of the fitted throughput): all held out
    split = "calibration" if num % 2 and not server else "holdout"
    base = {"set": NAME, "design": design, "split": split, "weight": 1.0}
    name = f"{rec['id']} {key} {gpu}x{n}"
    if not server:
        return [{**base, "panel": "MLPerf Offline", "case": f"{name} offline",
                 "measured": float(meas["output_tokens_per_s"]), "metric": "decode_tokens_per_s"}]
    rate = dict(overrides, **{"serving.arrival_rate": GOODPUT_ROW_RATE_SHARE * float(meas["samples_per_s"])})
    qps = {**base, "design": {**design, "overrides": rate}, "panel": "MLPerf Server QPS", "case": f"{name} qps",
           "measured": float(meas["samples_per_s"]), "metric": "goodput_requests_per_s"}
    return [{**base, "panel": f"MLPerf Server {metric.split('_')[0].upper()}", "case": f"{name} {metric}",
             "measured": float(meas[field]) / 1e3, "metric": metric} for metric, field in MLPERF_SERVER] + [qps]


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
                       "mapping": _mapping(rec),
                       "engine": ENGINE, "overrides": overrides},
            "measured": float(rec["measured"]["output_tokens_per_s"]), "metric": "decode_tokens_per_s",
            "split": "calibration" if num % 2 else "holdout", "weight": 1.0}


def _mapping(rec) -> dict:
    """TP as published; attention DP with EP over the same GPUs where the record ran it (MoE)."""
    tp, pp = int(rec["parallelism"]["tp"] or 1), int(rec["parallelism"]["pp"] or 1)
    if "attention DP" in str(rec["parallelism"].get("notes")) and tp > 1:
        return {"tp": 1, "ep": tp, "pp": pp}
    return {"tp": tp, "pp": pp}


def _rows_of(rec) -> list[dict]:
    if rec["group"] == "MLP50":
        return _mlperf(rec) if rec["model"]["key"] in MODELS else []
    c = _case(rec)
    return [] if c is None else [c]


def cases() -> list[dict]:
    return [c for r in records() for c in _rows_of(r)]


def coverage() -> dict:
    """How many records are expressed (a Server record gives five rows), and why the others are not."""
    per = [(r, _rows_of(r)) for r in records()]       # the records file is read and expressed once
    out = {"records": len(per), "expressed": sum(bool(rows) for _, rows in per),
           "rows": sum(len(rows) for _, rows in per), "not_expressed": {}}
    for r, rows in per:
        if not rows:
            reason = SKIPPED.get(r["model"]["key"], "no preset")
            out["not_expressed"][reason] = out["not_expressed"].get(reason, 0) + 1
    return out


def designs(rows, calibration=True):
    return design_batch(rows, calibration)


def run(calibration: bool = True) -> list[dict]:
    return evaluate_rows(cases(), calibration, extra=("running_batch", "load_factor"))
