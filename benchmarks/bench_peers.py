"""jaxstack vs the pip-installable analytical peers (GenZ-LLM-Analyzer, llm-analysis).

    python3.11 -m venv /tmp/peers && /tmp/peers/bin/pip install -r benchmarks/peers/requirements.txt
    python benchmarks/bench_peers.py --peer-python /tmp/peers/bin/python          # full run
    python benchmarks/bench_peers.py --smoke                                      # tiny, no peers (CI)
    python benchmarks/bench_peers.py --smoke --peer-python /tmp/peers/bin/python  # tiny, with peers

The peers live in their OWN virtual environment (never in jaxstack's dependencies): the
jaxstack side runs in this interpreter, the peer side in a subprocess of ``--peer-python``
running the embedded ``PEER_HELPER`` script, which reads the cases as JSON on stdin and
prints one JSON object (tool versions, per-case predictions and per-call wall times).
See ``benchmarks/peers/README.md``; the versions used are pinned in
``benchmarks/peers/requirements.txt`` (genz-llm 0.0.16, llm-analysis 0.2.2).

Cases (all BF16, TP = 8 on one 8-GPU NVLink node):
  a  Llama-3-70B decode on 8xH100, batch 32, 1024 input / 256 output tokens.
  b  Llama-3-70B on 8xB200, batch 1 / 64 / 512, 1024 / 1024, against vLLM's measured system
     decode tokens/s (``jaxstack/validation/data/vllm-8xb200``, CUDA graphs). jaxstack's three
     global B200 constants were fitted on the batch 1, 4, 16, 64, 256 rows ("calibration");
     batch 512 is held back; each row says which. Neither peer ships a B200: both get
     2.25 PFLOP/s BF16 dense, 8 TB/s HBM, 192 GB, NVLink 900 GB/s per direction (GenZ link
     latency 0.25 us as in its own Blackwell presets, llm-analysis 8 us minimum message
     latency as in its H100 preset). DeepStack's published predictions on the same points are
     shown for reference (not re-run).
  c  Mixtral-8x7B (MoE, top-2 of 8) decode on 8xH100, TP8 (experts TP-sharded), batch 32,
     1024 / 256.

How each tool is called (out-of-the-box settings, efficiencies left at their default 1.0):
  jaxstack      ``evaluate`` on the preset design (``jaxstack eval`` flags in CASES). TPOT = mean
                step time over 4 KV lengths from input to input + output.
  genz          ``GenZ.prefill_moddeling`` (TTFT) and ``GenZ.decode_moddeling`` with ``Bb=1``
                (no beams), ``system_eff=1``, ``output_tokens = output // 2`` so its single
                decode step is priced at the mean KV length of the generation; H100 = its
                ``H100_GPU`` preset (989 TFLOP/s, "3400 GB/s" read as GiB/s, ICN 450, 1 us);
                Llama-3-70B = its ``meta-llama/Llama-3.1-70B`` config (same shapes).
  llm-analysis  ``LLMAnalysis(...).inference`` (one call gives prefill and decode) with
                ``num_tokens_to_generate = output // 2`` (KV at the mean length), H100 = its
                ``h100-sxm-80gb`` preset; models are given explicitly (it ships no Llama-3 /
                Mixtral) with ``ffn_embed_dim = 1.5 x intermediate_size`` because it prices a
                2-matrix MLP and SwiGLU has 3.

Wall time per design point (everything needed for TTFT + TPOT of one design): jaxstack
``jit(evaluate)`` on one device-resident design after compile (mean over ``--single-repeat``
calls, ``block_until_ready``, best of 5 such blocks) and amortised inside
``jit(vmap(evaluate))`` over a stacked batch of ``--batch`` random designs
(``tests/designs.py``: every preset, dense/MoE/MLA, random mappings and requests; best of
``--repeat`` runs / N); peers: mean over ``--peer-repeat`` (>= 20) calls after one warm-up
call, best of 5 such blocks. Speed-up = peer s/point / jaxstack
s/point, measured in the same run.

Prints ONE JSON line on stdout (device kind, JAX version, peer versions, per-case numbers,
per-point seconds, ratios, notes), then a human summary table and notes on stderr.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

H100 = {"hardware": "h100-sxm", "fabric": "nvlink-h100x8"}
B200 = {"hardware": "b200", "fabric": "nvlink-b200x8"}


def make_cases(b200_batches):
    """The workloads: jaxstack design dict + what the peers need (hardware / model keys)."""
    from jaxstack.validation import vllm

    measured = {r["case"]: r for r in vllm.cases()}
    cases = [{"name": "a llama70b h100 bs32", "model": "llama-3-70b", **H100, "tp": 8, "batch": 32,
              "input_len": 1024, "output_len": 256}]
    for bs in b200_batches:
        row = measured.get(f"llama-3-70b bs{bs}")
        cases.append({"name": f"b llama70b b200 bs{bs}", "model": "llama-3-70b", **B200, "tp": 8, "batch": bs,
                      "input_len": 1024, "output_len": 1024,
                      "measured_decode_tokens_per_s": row["measured"] if row else None,
                      "deepstack_decode_tokens_per_s": row["deepstack"] if row else None,
                      "jaxstack_split": row["split"] if row else None})
    cases.append({"name": "c mixtral8x7b h100 bs32", "model": "mixtral-8x7b", **H100, "tp": 8, "batch": 32,
                  "input_len": 1024, "output_len": 256})
    for c in cases:
        c["jaxstack_cli"] = (f"jaxstack eval --hardware {c['hardware']} --fabric {c['fabric']} --model {c['model']} "
                             f"--tp {c['tp']} --batch {c['batch']} --input-len {c['input_len']} "
                             f"--output-len {c['output_len']}")
    return cases


# --------------------------------------------------------------------------------------
# peer side: runs under --peer-python (its own venv); reads {"cases", "repeat"} on stdin
# --------------------------------------------------------------------------------------
PEER_HELPER = r'''
import json
import os
import sys
import time
import warnings
from importlib.metadata import version

warnings.filterwarnings("ignore")
spec = json.load(sys.stdin)
out = {"python": sys.version.split()[0], "versions": {}, "results": {}}

GIB = 2.0 ** 30
# GenZ units: TFLOP/s, GB (x1024 MB), GiB/s (its unit class is binary), link latency in us
GENZ_HW = {
    "h100-sxm": "H100_GPU",
    "b200": {"Flops": 2250, "Memory_size": 192, "Memory_BW": 8e12 / GIB, "ICN": 900e9 / GIB,
             "ICN_LL": 0.25, "real_values": True},
}
GENZ_MODEL = {"llama-3-70b": "meta-llama/Llama-3.1-70B", "mixtral-8x7b": "mistralai/Mixtral-8x7B"}
LA_HW = {
    "h100-sxm": "h100-sxm-80gb",
    "b200": dict(name="b200-sxm-192gb", mem_per_GPU_in_GB=192, hbm_bandwidth_in_GB_per_sec=8000,
                 intra_node_bandwidth_in_GB_per_sec=900, intra_node_min_message_latency=8e-6,
                 peak_fp16_TFLOPS=2250),
}
# llm-analysis prices a 2-matrix MLP (2*h*ffn weights): ffn = 1.5 x intermediate_size carries
# SwiGLU's 3*h*intermediate; expansion_ratio given so its divisibility assertion is skipped.
LA_MODEL = {
    "llama-3-70b": dict(name="llama-3-70b", num_layers=80, n_head=64, hidden_dim=8192, vocab_size=128256,
                        max_seq_len=8192, num_key_value_heads=8, ffn_embed_dim=43008, expansion_ratio=5.25,
                        model_type="llama"),
    "mixtral-8x7b": dict(name="mixtral-8x7b", num_layers=32, n_head=32, hidden_dim=4096, vocab_size=32000,
                         max_seq_len=32768, num_key_value_heads=8, ffn_embed_dim=21504, expansion_ratio=5.25,
                         model_type="mixtral", moe_num_experts=8, moe_top_k=2),
}


def timed(fn, repeat, blocks=5):
    """(result, s per call): the best of ``blocks`` timed blocks of ``repeat`` calls, as for
    jaxstack's one-call timings (the shared VM's noise)."""
    r = fn()                      # warm-up call (imports, caches), not timed
    best = float("inf")
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeat)
    return r, best


def genz_case(c, repeat):
    from GenZ import decode_moddeling, prefill_moddeling
    hw, model = GENZ_HW.get(c["hardware"]), GENZ_MODEL.get(c["model"])
    if hw is None or model is None:
        return {"unsupported": "no GenZ system/model for %s / %s" % (c["hardware"], c["model"])}
    kw = dict(model=model, batch_size=c["batch"], input_tokens=c["input_len"], system_name=hw,
              system_eff=1, bits="bf16", tensor_parallel=c["tp"], expert_parallel=c.get("ep", 1))

    def decode():   # one step priced at KV = input + output/2 (the mean of the generation), no beams
        return decode_moddeling(output_tokens=c["output_len"] // 2, Bb=1, **kw)

    def point():
        return prefill_moddeling(**kw), decode()

    (p, d), per_point = timed(point, repeat)
    _, per_decode = timed(decode, repeat)
    st = d["summary_table"]
    return {"tpot_s": d["Latency"] / 1e3, "decode_tokens_per_s": d["Throughput"], "ttft_s": p["Latency"] / 1e3,
            "per_point_s": per_point, "per_decode_call_s": per_decode, "calls": repeat,
            "decode_breakdown_ms": {k: float(st["%s Latency (msec)" % k.title()].values[0])
                                    for k in ("attn", "linear", "comm")}}


def la_case(c, repeat):
    import logging
    from llm_analysis.analysis import LLMAnalysis
    from llm_analysis.config import GPUConfig, ModelConfig, ParallelismConfig, get_gpu_config_by_name
    from llm_analysis.logger import logger
    logger.setLevel(logging.ERROR)
    hw, model = LA_HW.get(c["hardware"]), LA_MODEL.get(c["model"])
    if hw is None or model is None:
        return {"unsupported": "no llm-analysis GPU/model for %s / %s" % (c["hardware"], c["model"])}
    gpu = get_gpu_config_by_name(hw) if isinstance(hw, str) else GPUConfig(**hw)

    def point():   # one call gives prefill and decode; decode KV at input + output/2
        a = LLMAnalysis(ModelConfig(**model), gpu,
                        parallelism_config=ParallelismConfig(tp_size=c["tp"], ep_size=c.get("ep", 1)))
        return a.inference(batch_size_per_gpu=c["batch"], seq_len=c["input_len"],
                           num_tokens_to_generate=c["output_len"] // 2)

    s, per_point = timed(point, repeat)
    bd = {k[len("decode_latency_fwd_"):]: 1e3 * v for k, v in s.items() if k.startswith("decode_latency_fwd_")}
    bd["kv_cache"] = 1e3 * s["kv_cache_latency"]
    return {"tpot_s": s["decode_latency"], "decode_tokens_per_s": s["decode_tokens_per_sec"],
            "ttft_s": s["prefill_latency"], "per_point_s": per_point, "calls": repeat, "decode_breakdown_ms": bd}


def genz_files():   # GenZ writes one CSV per model build here; remove the ones this run made
    import glob
    return set(glob.glob("/tmp/genz/data/model/*.csv"))


TOOLS = {"genz": ("genz-llm", genz_case), "llm-analysis": ("llm-analysis", la_case)}
before = genz_files()
for tool, (dist, fn) in TOOLS.items():
    try:
        out["versions"][tool] = version(dist)
    except Exception as e:
        out["versions"][tool] = None
        out["results"][tool] = {c["name"]: {"unsupported": "not installed: %s" % e} for c in spec["cases"]}
        continue
    res = out["results"][tool] = {}
    for c in spec["cases"]:
        try:
            res[c["name"]] = fn(c, spec["repeat"])
        except Exception as e:  # a case the tool cannot model: say so, never fake a number
            res[c["name"]] = {"unsupported": ("%s: %s" % (type(e).__name__, e))[:300]}
prefixes = tuple(m.replace("/", "_") for m in GENZ_MODEL.values())
for f in genz_files() - before:
    if f.rsplit("/", 1)[-1].startswith(prefixes):
        try:
            os.remove(f)
        except OSError:
            pass
print(json.dumps(out))
'''


def run_peers(peer_python: str, cases, repeat: int) -> dict:
    spec = {"repeat": repeat, "cases": [{k: c[k] for k in ("name", "hardware", "model", "tp", "batch", "input_len",
                                                          "output_len")} for c in cases]}
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TRANSFORMERS_VERBOSITY": "error"}
    env.pop("PYTHONPATH", None)
    p = subprocess.run([peer_python, "-c", PEER_HELPER], input=json.dumps(spec), capture_output=True, text=True,
                       env=env, cwd="/tmp", check=False)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        raise SystemExit(f"peer helper failed (rc {p.returncode}) under {peer_python}:\n{p.stderr[-3000:]}")
    return json.loads(lines[-1])


BLOCKS = 5                            # one-call timings: best of this many blocks

# --------------------------------------------------------------------------------------
# jaxstack side: this interpreter
# --------------------------------------------------------------------------------------
def run_jaxstack(cases, n_batch: int, single_repeat: int, repeat: int) -> dict:
    import jax
    import numpy as np

    from jaxstack.edges import io
    from jaxstack.recipe.evaluate import evaluate

    sys.path.insert(0, str(ROOT / "tests"))
    from designs import random_designs

    def f32(tree):
        return jax.device_put(jax.tree_util.tree_map(lambda x: np.asarray(x, dtype=np.float32), tree))

    single = jax.jit(evaluate)
    designs = [f32(io.design_from_dict({"hardware": c["hardware"], "fabric": c["fabric"], "model": c["model"],
                                        "request": {k: c[k] for k in ("batch", "input_len", "output_len")},
                                        "mapping": {"tp": c["tp"]}}, c["name"])) for c in cases]
    t0 = time.perf_counter()
    jax.block_until_ready(single(designs[0]))
    compile_single = time.perf_counter() - t0
    from jaxstack.recipe.single import point_evaluator

    point = point_evaluator(designs[0])
    host = [jax.tree_util.tree_map(float, d) for d in designs]       # what a user's script holds
    point(host[0])
    blocks = []                       # best of BLOCKS timed blocks (the shared VM's noise)
    for _ in range(BLOCKS):
        t0 = time.perf_counter()
        for _ in range(single_repeat):
            for h in host:
                point(h)
        blocks.append((time.perf_counter() - t0) / (single_repeat * len(host)))
    packed_call = min(blocks)
    per_case = {}
    for c, d in zip(cases, designs, strict=True):
        m = jax.block_until_ready(single(d))     # same shapes: no recompile
        blocks = []
        for _ in range(BLOCKS):
            t0 = time.perf_counter()
            for _ in range(single_repeat):
                jax.block_until_ready(single(d))
            blocks.append((time.perf_counter() - t0) / single_repeat)
        per_call = min(blocks)
        per_case[c["name"]] = {"tpot_s": float(m.tpot_s), "decode_tokens_per_s": float(m.decode_tokens_per_s),
                               "ttft_s": float(m.ttft_s), "feasible": bool(m.feasible), "per_point_s": per_call,
                               "decode_breakdown_ms": {k: 1e3 * float(getattr(m, f"t_{k}_s"))
                                                       for k in ("attention", "ffn", "moe", "other", "comm")}}

    batched = jax.jit(jax.vmap(evaluate))
    batch = jax.device_put(random_designs(n_batch, seed=0))
    t0 = time.perf_counter()
    jax.block_until_ready(batched(batch))
    first = time.perf_counter() - t0
    runs = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        jax.block_until_ready(batched(batch))
        runs.append(time.perf_counter() - t0)
    # the engines' way: the same designs in fixed chunks of the engine's size (sweep.auto_chunk,
    # cache-resident), every chunk dispatched before any result is fetched
    from jaxstack.engines.sweep import auto_chunk, map_chunks

    chunk = auto_chunk(jax.devices()[:1])
    host_batch = jax.tree_util.tree_map(np.asarray, batch)
    flat, treedef = jax.tree_util.tree_flatten(host_batch)
    rows = np.stack(flat, -1)                                          # [n, leaves]
    step = jax.jit(lambda r: (jax.vmap(evaluate)(jax.tree_util.tree_unflatten(treedef, list(r.T))).tpot_s,))
    map_chunks(step, rows[:chunk], chunk)
    runs_c = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        map_chunks(step, rows, chunk)
        runs_c.append(time.perf_counter() - t0)
    single_s = float(np.mean([v["per_point_s"] for v in per_case.values()]))
    return {"cases": per_case, "compile_single_s": compile_single, "single_call_s": single_s,
            "chunk": chunk, "chunked_per_point_s": min(runs_c) / n_batch,
            "point_evaluator_call_s": packed_call,
            "single_repeat": single_repeat, "batch_points": n_batch, "batch_run_s": min(runs),
            "batch_compile_s": first - min(runs), "batched_per_point_s": min(runs) / n_batch}


NOTES = [
    "Efficiency: both peers are ideal rooflines out of the box (GenZ system_eff = 1, llm-analysis "
    "flops_efficiency = hbm_memory_efficiency = 1, no kernel-launch or collective start-up overheads beyond "
    "the fixed latencies below). jaxstack derates compute and DRAM by its calibration model "
    "(jaxstack/engines/calibration.py, presets/calibration/joint.yaml): achieved GEMM / DRAM / attention "
    "fractions per GPU and per-kernel "
    "and per-collective overheads per engine, fitted on the calibration rows of vllm-8xb200 and serving-public. "
    "So "
    "at B200 batch 1-64 (weight streaming) the peers predict ~2.1-2.3x the measured tokens/s and still "
    "~1.5-1.7x at batch 512; their users are expected to hand-tune the efficiency knobs per system, which "
    "these runs do not do.",
    "Communication: GenZ prices each TP all-reduce as a ring, 5 us start + 2(N-1) x link latency (1 us on its "
    "H100 preset, 0.25 us on the B200 we configure) + 2(N-1)/N x message / link bandwidth, 2 per layer (+1 for "
    "the MoE gate), i.e. 35-65 % of its decode step here. llm-analysis uses max(2(N-1)/N x message / NVLink "
    "bandwidth, 8 us) per all-reduce, 2 per layer (1.3 ms of a 3.7 ms B200 bs1 step). jaxstack takes the best "
    "of ring / recursive doubling / Rabenseifner / tree / direct on the fabric hierarchy (hop latency + "
    "most-loaded link) plus its fitted per-collective overhead.",
    "KV growth: jaxstack averages 4 decode steps from KV = input to input + output. GenZ and llm-analysis "
    "price one step at one KV length; here both are called at input + output/2 (the mean), which is "
    "equivalent because their attention cost is linear in KV. llm-analysis reads AND writes back the whole KV "
    "cache every step (2 x KV bytes), which dominates its large-batch step (B200 bs512: 8.1 of 14.2 ms), and "
    "reads the whole input-embedding table (not TP-sharded) every step.",
    "Compute: llm-analysis counts MLP FLOPs as 16 x b x s x h^2 (a 4h GELU MLP) whatever ffn_embed_dim is, "
    "and reads 2 x h x ffn_embed_dim weights (hence ffn = 1.5 x intermediate_size here); GenZ builds the op "
    "graph from the HF-style config (SwiGLU, GQA) and takes max(compute, memory) per op; jaxstack tiles GEMMs "
    "on the compute units (wave quantisation, SRAM-limited reuse) with transaction-aware DRAM traffic.",
    "MoE routing (Mixtral, TP8): GenZ activates exactly top_k = 2 experts per layer whatever the batch, so it "
    "streams 2 of 8 experts' weights although 32 requests touch ~8 (8(1-(6/8)^32)); it prices Mixtral decode "
    "lowest (2.97 ms). llm-analysis streams ALL experts every step (moe_num_experts x MLP weights / TP; top-k "
    "and ep_size do not enter its latency) with dense-MLP FLOPs. jaxstack streams the expected number of "
    "distinct experts the batch touches and prices the routed GEMMs with an imbalance factor.",
    "TTFT: all three price the batch x input prompt as one prefill pass (jaxstack in <= 8192-token chunks per "
    "micro-batch); no measurement backs any TTFT here.",
    "Speed: GenZ builds its op graph as pandas DataFrames and writes it as a CSV to /tmp/genz/data/model on "
    "every model build (2 per decode call; the helper deletes the files it made), ~0.13-0.25 s per point; "
    "llm-analysis is closed-form Python, ~0.2-0.6 ms per point; one jaxstack point_evaluator call (one packed "
    "input and output vector around jit(evaluate)) takes ~0.16-0.24 ms on the 2-core CPU (best of 5 blocks "
    "0.16 ms), ~0.15 ms of it the XLA program itself (about a thousand fused kernels on scalars). jaxstack's "
    "advantage is the vmapped batch.",
]


def _err(pred, meas):
    return None if pred is None or not meas else 100.0 * (pred / meas - 1.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer-python", help="python of a venv with genz-llm and llm-analysis (see benchmarks/peers/)")
    ap.add_argument("--peer-repeat", type=int, default=20, help="timed calls per peer and case (>= 20)")
    ap.add_argument("--batch", type=float, default=1e6, help="designs in the jit(vmap) batch (1e5..1e6)")
    ap.add_argument("--single-repeat", type=int, default=200, help="timed jit(evaluate) calls per case")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs of the vmapped batch (best kept)")
    ap.add_argument("--b200-batches", default="1,64,512", help="batch sizes of case b (rows of the vLLM data)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes; peers skipped unless --peer-python")
    ap.add_argument("--plot", help="also write a PNG (e.g. docs/img/peers.png): B200 error, s/point")
    args = ap.parse_args(argv)

    import jax

    n_batch = 2_000 if args.smoke else int(args.batch)
    single_repeat = 5 if args.smoke else args.single_repeat
    peer_repeat = 2 if args.smoke else max(20, args.peer_repeat)
    repeat = 1 if args.smoke else args.repeat
    cases = make_cases([int(b) for b in args.b200_batches.split(",")])
    if args.smoke:
        cases = cases[:2]

    t0 = time.perf_counter()
    peers = run_peers(args.peer_python, cases, peer_repeat) if args.peer_python else None
    peer_wall = time.perf_counter() - t0
    js = run_jaxstack(cases, n_batch, single_repeat, repeat)

    tools = ["jaxstack"] + (list(peers["results"]) if peers else [])
    out_cases, ratios = [], {}
    for c in cases:
        meas = c.get("measured_decode_tokens_per_s")
        per_tool = {"jaxstack": js["cases"][c["name"]]}
        if peers:
            per_tool.update({t: peers["results"][t][c["name"]] for t in peers["results"]})
        for t, r in per_tool.items():
            if "unsupported" in r:
                continue
            r["error_pct"] = _err(r["decode_tokens_per_s"], meas)
            if t != "jaxstack":
                r["speedup_vs_jaxstack_single"] = r["per_point_s"] / js["cases"][c["name"]]["per_point_s"]
                r["speedup_vs_jaxstack_vmapped"] = r["per_point_s"] / js["batched_per_point_s"]
        entry = {k: c[k] for k in ("name", "hardware", "fabric", "model", "tp", "batch", "input_len", "output_len",
                                   "jaxstack_cli")}
        if meas:
            entry.update(measured_decode_tokens_per_s=meas, jaxstack_split=c["jaxstack_split"],
                         deepstack_decode_tokens_per_s=c["deepstack_decode_tokens_per_s"],
                         deepstack_error_pct=_err(c["deepstack_decode_tokens_per_s"], meas))
        entry["tools"] = per_tool
        out_cases.append(entry)

    mape = {}
    for t in tools + ["deepstack"]:
        errs = []
        for e in out_cases:
            if "measured_decode_tokens_per_s" not in e:
                continue
            v = e["deepstack_error_pct"] if t == "deepstack" else e["tools"][t].get("error_pct")
            if v is not None and not math.isnan(v):
                errs.append(abs(v))
        if errs:
            mape[t] = sum(errs) / len(errs)
    for t in tools[1:]:
        pts = [e["tools"][t]["per_point_s"] for e in out_cases if "per_point_s" in e["tools"][t]]
        if pts:
            mean = sum(pts) / len(pts)
            ratios[t] = {"per_point_s": mean, "vs_jaxstack_single": mean / js["single_call_s"],
                         "vs_jaxstack_point_evaluator": mean / js["point_evaluator_call_s"],
                         "vs_jaxstack_vmapped": mean / js["batched_per_point_s"],
                         "vs_jaxstack_chunked": mean / js["chunked_per_point_s"]}

    dev = jax.devices()
    out = {
        "bench": "peers", "device_kind": dev[0].device_kind, "platform": dev[0].platform, "devices": len(dev),
        "cpu_count": os.cpu_count(), "jax_version": jax.__version__, "smoke": args.smoke,
        "peer_python": args.peer_python, "peer_python_version": peers["python"] if peers else None,
        "peer_versions": peers["versions"] if peers else None, "peer_repeat": peer_repeat if peers else 0,
        "peer_wall_s": round(peer_wall, 2) if peers else None,
        "jaxstack": {k: v for k, v in js.items() if k != "cases"},
        "cases": out_cases, "b200_mape_pct": mape, "speedup": ratios, "notes": NOTES,
    }
    print(json.dumps(out))
    _summary(out, tools)
    if args.plot:
        plot(out, args.plot)
    return 0


def plot(out, path):
    """Two panels: B200 decode tokens/s per tool vs vLLM, and seconds per design point (log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tools = list(out["cases"][0]["tools"])
    colors = {"jaxstack": "C0", "genz": "C1", "llm-analysis": "C2", "deepstack": "C7", "vLLM": "k"}
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    meas = [e for e in out["cases"] if "measured_decode_tokens_per_s" in e]
    series = ["vLLM"] + tools + ["deepstack"]
    w = 0.8 / len(series)
    for j, t in enumerate(series):
        ys = []
        for e in meas:
            v = (e["measured_decode_tokens_per_s"] if t == "vLLM" else e["deepstack_decode_tokens_per_s"]
                 if t == "deepstack" else e["tools"][t].get("decode_tokens_per_s", float("nan")))
            ys.append(v / e["measured_decode_tokens_per_s"])
        a.bar([i + (j - (len(series) - 1) / 2) * w for i in range(len(meas))], ys, w, color=colors.get(t),
              label=t + (" (published)" if t == "deepstack" else " (measured)" if t == "vLLM" else ""))
    a.set_xticks(range(len(meas)), [f"bs {e['batch']} ({'cal' if e['jaxstack_split'] == 'calibration' else 'held'})"
                                    for e in meas])
    a.set_ylabel("predicted / measured decode tok/s")
    a.set_title("Llama-3-70B, 8xB200 TP8, 1024/1024 vs vLLM")
    a.axhline(1.0, color="k", lw=0.8)
    a.set_ylim(0, 3.0)
    a.legend(fontsize=8, ncol=3, loc="upper center")
    js = out["jaxstack"]
    names = ["jaxstack\nvmap", "jaxstack\njit"] + [t for t in tools if t != "jaxstack"]
    vals = [js["batched_per_point_s"], js["single_call_s"]] + [out["speedup"][t]["per_point_s"]
                                                             for t in tools if t != "jaxstack"]
    b.bar(names, vals, color=["C0", "C0"] + [colors.get(t, "C3") for t in tools if t != "jaxstack"])
    b.set_yscale("log")
    b.set_ylabel("wall seconds per design point")
    b.set_title(f"{out['device_kind']} ({out['cpu_count']} CPUs), JAX {out['jax_version']}")
    for x, v in enumerate(vals):
        b.text(x, v, f"{v:.1e}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}", file=sys.stderr)


def _summary(out, tools):
    js = out["jaxstack"]
    p = lambda *a: print(*a, file=sys.stderr)  # noqa: E731
    p(f"\n{out['device_kind']} ({out['cpu_count']} CPUs), JAX {out['jax_version']}; peers: "
      + (", ".join(f"{k} {v}" for k, v in out["peer_versions"].items()) if out["peer_versions"] else "skipped"))
    p(f"jaxstack: compile {js['compile_single_s']:.1f} s (single) / {js['batch_compile_s']:.1f} s "
      f"(vmap N={js['batch_points']:,}); {1e6 * js['single_call_s']:.0f} us per jit call on a device-resident "
      f"design, {1e6 * js['point_evaluator_call_s']:.0f} us per point_evaluator call (Python floats in, "
      f"packed), "
      f"{1e6 * js['batched_per_point_s']:.2f} us per point vmapped ({1 / js['batched_per_point_s']:,.0f} points/s), "
      f"{1e6 * js['chunked_per_point_s']:.2f} us in chunks of {js['chunk']:,} as the engines run it")
    hdr = (f"{'case':24s} {'tool':13s} {'TPOT ms':>8s} {'dec tok/s':>10s} {'TTFT ms':>9s} {'meas tok/s':>10s} "
           f"{'err %':>7s} {'s/point':>9s} {'vs jit':>8s} {'vs vmap':>9s}")
    p("\n" + hdr + "\n" + "-" * len(hdr))
    for e in out["cases"]:
        meas = e.get("measured_decode_tokens_per_s")
        for t in tools:
            r = e["tools"][t]
            tool = t + ("" if t != "jaxstack" or not meas else " (cal)" if e["jaxstack_split"] == "calibration"
                        else " (held)")
            if "unsupported" in r:
                p(f"{e['name']:24s} {tool:13s} cannot model: {r['unsupported'][:80]}")
                continue
            err = f"{r['error_pct']:+7.1f}" if r.get("error_pct") is not None else f"{'':>7s}"
            sp = (f"{r['speedup_vs_jaxstack_single']:7.3g}x {r['speedup_vs_jaxstack_vmapped']:8,.0f}x"
                  if "speedup_vs_jaxstack_single" in r else "")
            p(f"{e['name']:24s} {tool:13s} {1e3 * r['tpot_s']:8.2f} {r['decode_tokens_per_s']:10,.0f} "
              f"{1e3 * r['ttft_s']:9.1f} {f'{meas:,.0f}' if meas else '-':>10s} {err} {r['per_point_s']:9.2e} {sp}")
        if meas:
            p(f"{'':24s} {'deepstack*':13s} {'':8s} {e['deepstack_decode_tokens_per_s']:10,.0f} {'':9s} "
              f"{meas:10,.0f} {e['deepstack_error_pct']:+7.1f}")
    p("vs jit / vs vmap: the peer's s/point over jaxstack's (one jit call / amortised in the vmapped batch); "
      "(cal) / (held): the row is in / held out of jaxstack's B200 calibration split")
    if out["b200_mape_pct"]:
        p("\nB200 decode MAPE vs vLLM: " + ", ".join(f"{k} {v:.1f} %" for k, v in out["b200_mape_pct"].items())
          + "   (* DeepStack: published predictions, not re-run)")
    for t, r in out["speedup"].items():
        p(f"speed-up over {t} ({r['per_point_s'] * 1e3:.3g} ms/point): {r['vs_jaxstack_single']:.3g}x per jit "
          f"call, {r['vs_jaxstack_point_evaluator']:.3g}x per point_evaluator call, "
          f"{r['vs_jaxstack_vmapped']:,.0f}x per vmapped point (one batch of {js['batch_points']:,}), "
          f"{r['vs_jaxstack_chunked']:,.0f}x in the engines' chunks")
    p("\nnotes:")
    for n in out["notes"]:
        p(" - " + n)


if __name__ == "__main__":
    sys.exit(main())
