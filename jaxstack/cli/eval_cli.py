"""L5: ``jaxstack eval`` — evaluate one design point and print every metric."""

import dataclasses
import sys

import jax
import numpy as np

from ..edges import cache, io, xla
from ..recipe import checks
from ..types import units
from ..types.metrics import METRIC_UNITS, Reason

__all__ = ["add_parser", "run", "design_from_args"]

_MAPPING_FLAGS = ("tp", "ep", "sp", "cp", "dp", "pp", "fsdp", "overlap", "micro_batches")
_FLAG_HELP = {"fsdp": "1 to shard weights over dp", "overlap": "1 for tile-level compute-communication overlap",
              "micro_batches": "pipeline micro-batches (0 = pp)"}


def add_parser(sub):
    p = sub.add_parser("eval", help="evaluate one design point",
                       description="Evaluate one design (a YAML design file and/or flags) and print all metrics.")
    p.add_argument("design", nargs="?", help="YAML design file: {hardware, fabric, model, request, mapping, overrides}")
    p.add_argument("--hardware", help="hardware preset (see `jaxstack presets`)")
    p.add_argument("--fabric", help="fabric preset")
    p.add_argument("--model", help="model preset or path to a Hugging Face config.json")
    p.add_argument("--engine", help=f"serving engine preset ({', '.join(io.preset_names('engine'))}): its "
                   "scheduler limits, regime and software stack (the calibration model's overheads); --regime and "
                   "the other serving flags override it")
    for k in _MAPPING_FLAGS:
        p.add_argument(f"--{k.replace('_', '-')}", dest=k, type=int, help=_FLAG_HELP.get(k, f"{k} degree"))
    p.add_argument("--moe-tp-to-ep", type=int, choices=(0, 1), help="1: MoE layers run TP ranks as EP")
    p.add_argument("--batch", type=int, help="concurrent requests")
    p.add_argument("--input-len", type=int, help="prompt tokens")
    p.add_argument("--output-len", type=int, help="generated tokens")
    p.add_argument("--input-cv", type=float, help="online: prompt-length coefficient of variation (std / mean; "
                   "default 0 = fixed prompts)")
    p.add_argument("--output-cv", type=float, help="offline / online: output-length coefficient of variation "
                   "(default 0 = equal outputs; running requests hold KV length-biased, short ones spread TPOT)")
    p.add_argument("--regime", help="serving regime: static (request.batch decodes together, default), "
                   "offline (max-throughput: the engine runs the largest batch its KV budget allows), online "
                   "(Poisson arrivals at --arrival-rate; serving.py) or concurrency (a closed loop of --concurrency "
                   "clients; closed.py)")
    p.add_argument("--arrival-rate", type=float, help="online: Poisson arrivals, requests/s for the whole system")
    p.add_argument("--concurrency", type=int, help="concurrency: clients for the whole system, one request each "
                   "in flight (vllm bench serve --max-concurrency)")
    p.add_argument("--spec-tokens", type=int, help="speculative decoding: tokens proposed per step (0 = off)")
    p.add_argument("--spec-acceptance", type=float, help="speculative decoding: acceptance rate per token")
    p.add_argument("--ttft-slo-ms", type=float, help="goodput's p99 TTFT limit, ms (serving.ttft_slo; default 2000)")
    p.add_argument("--tpot-slo-ms", type=float, help="goodput's p99 TPOT limit, ms (serving.tpot_slo; default 50)")
    p.add_argument("--max-num-seqs", type=int, help="offline: running requests per replica (default 2048)")
    p.add_argument("--max-num-batched-tokens", type=int, help="offline: tokens per step per replica (default 8192)")
    p.add_argument("--kv-block-size", type=int, help="paged KV cache: tokens per block, a request holds whole "
                   "blocks (vLLM 16, TensorRT-LLM 32; default 1 = no rounding; the engine presets set theirs)")
    p.add_argument("--num-requests", type=int,
                   help="offline: requests in the run (default 0 = an endless queue; N equal requests run in "
                        "waves of the running batch, the last one partial)")
    p.add_argument("--auto-limits", type=int, choices=(0, 1),
                   help="1: the engine sizes its batch and token limits itself (trtllm-bench's rule, capped by the "
                        "two flags above); the trtllm-throughput engine preset sets it")
    p.add_argument("--weight-dtype", help="weights: fp32, bf16, fp16, fp8, int8, fp4, int4, nvfp4, mxfp4 "
                   "(sets model.weight_bytes)")
    p.add_argument("--expert-dtype", help="routed-expert weights quantised apart from the rest "
                   "(model.expert_weight_bytes): mxfp4 with bf16 weights = gpt-oss's MXFP4 experts beside BF16 "
                   "attention")
    p.add_argument("--act-dtype", help="a GEMM's activation operand (model.gemm_act_bytes): fp8 with fp8 weights = "
                   "W8A8; bf16 with fp8/fp4 weights = weight-only quantisation at the 16-bit tensor rate")
    p.add_argument("--kv-dtype", help="KV cache (sets model.kv_bytes)")
    p.add_argument("--attn-dtype", help="the attention core's matmul operands (model.attn_bytes): fp8 = FP8 attention "
                   "(TensorRT-LLM use_fp8_context_fmha, FlashAttention-3 FP8); default bf16")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="override a leaf by dotted path with unit suffix, e.g. fabric.l1.link_bandwidth_GBps=450")
    p.add_argument("--json", action="store_true", help="print metrics (SI units) as JSON")
    p.add_argument("--grad", action="store_true",
                   help="sensitivities: d(metric)/d(parameter) and elasticity for every continuous hardware "
                   "parameter (relaxed model, jaxstack/engines/grad.py), sorted by |elasticity|")
    p.add_argument("--metric", default="decode_tokens_per_s", help="with --grad: any Metrics field "
                   "(default decode_tokens_per_s)")
    p.add_argument("--tau", type=float, help="with --grad: relaxation temperature (default grad.DEFAULT_TAU)")
    p.set_defaults(func=run)
    return p


def _section(data: dict, key: str, where: str) -> dict:
    v = data.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise io.ConfigError(f"{where}: key '{key}': expected a mapping of keys to values, got {io._short(v)}")
    return dict(v)


def design_from_args(args):
    data = io.load_yaml(args.design) if args.design else {}
    where = args.design or "<command line>"
    for key in ("hardware", "fabric", "model", "engine"):
        if getattr(args, key, None):
            data[key] = getattr(args, key)
    req = _section(data, "request", where)
    for key, flag in (("batch", "batch"), ("input_len", "input_len"), ("output_len", "output_len"),
                      ("input_cv", "input_cv"), ("output_cv", "output_cv")):
        if getattr(args, flag) is not None:
            req[key] = getattr(args, flag)
    data["request"] = req
    mapping = _section(data, "mapping", where)
    for k in _MAPPING_FLAGS:
        if getattr(args, k) is not None:
            mapping[k] = getattr(args, k)
    if args.moe_tp_to_ep is not None:
        mapping["moe_tp_to_ep"] = args.moe_tp_to_ep
    data["mapping"] = mapping
    serving = _section(data, "serving", where)
    for key in ("regime", "arrival_rate", "concurrency", "max_num_seqs", "max_num_batched_tokens", "auto_limits",
                "spec_tokens", "spec_acceptance", "num_requests", "kv_block_size"):
        if getattr(args, key, None) is not None:
            serving[key] = getattr(args, key)
    for key in ("ttft_slo", "tpot_slo"):
        if getattr(args, f"{key}_ms", None) is not None:
            serving[f"{key}_ms"] = getattr(args, f"{key}_ms")
    if serving:
        data["serving"] = serving
    overrides = _section(data, "overrides", where)
    for flag, leaf in (("weight_dtype", "weight_bytes"), ("act_dtype", "gemm_act_bytes"), ("kv_dtype", "kv_bytes"),
                       ("attn_dtype", "attn_bytes"), ("expert_dtype", "expert_weight_bytes")):
        if getattr(args, flag, None) is not None:
            overrides[f"model.{leaf}"] = getattr(args, flag)
    for item in args.set:
        if "=" not in item:
            raise io.ConfigError(f"--set '{item}': expected PATH=VALUE, e.g. dram.efficiency=0.9")
        path, value = item.split("=", 1)
        try:
            overrides[path.strip()] = float(value) if value.strip()[0].isdigit() or value.strip()[0] in "+-." else value
        except (ValueError, IndexError):
            raise io.ConfigError(f"--set '{item}': value must be a number") from None
    data["overrides"] = overrides
    return io.design_from_dict(data, where)


def _fmt(name, value):
    unit = METRIC_UNITS.get(name, "")
    if unit in ("s", "B"):
        return units.format_quantity(value, unit)
    return f"{value:.5g} {unit}".rstrip()


def _eval_and_breakdown(d):
    from ..recipe.evaluate import breakdown, evaluate

    m = evaluate(d)     # the breakdown at the batch that runs (offline / online: the engine's, not request.batch)
    return m, breakdown(dataclasses.replace(d, request=dataclasses.replace(d.request, batch=m.running_batch)))


def run(args) -> int:
    from ..recipe.evaluate import BREAKDOWN_ORDER

    d = design_from_args(args)
    if getattr(args, "grad", False):
        return _run_grad(args, d)
    d32 = jax.tree_util.tree_map(np.float32, d)     # float32 leaves, as the engines pass (no weak-type conversions)
    fn = cache.compiled("the model", _eval_and_breakdown, d32, options=xla.single_point_options())
    m, bd = fn(d32)
    out = {k: (bool(v) if k == "feasible" else int(v) if k == "reason" else float(v)) for k, v in vars(m).items()}
    out["reason_name"] = Reason(out["reason"]).name
    out["explanation"] = checks.explain(d, m)
    out["breakdown"] = jax.tree_util.tree_map(float, bd)
    if args.json:
        print(io.dumps_json(out))
        return 0
    from_file = io.load_yaml(args.design) if args.design else {}
    if d.serving.regime > 0.5 and d.serving.auto_limits > 0.5:     # the limits the engine sized itself
        from ..recipe import ops
        from ..recipe import serving as serving_rules

        seqs, tokens = serving_rules.engine_limits(d, ops.shard(d), ops.param_count(d.model))
        limits = f"auto: max_num_seqs={float(seqs):g}, max_num_batched_tokens={float(tokens):g}"
    else:
        limits = f"max_num_seqs={d.serving.max_num_seqs:g}, max_num_batched_tokens={d.serving.max_num_batched_tokens:g}"
    name = {k: getattr(args, k) or from_file.get(k) or "-" for k in ("hardware", "fabric", "model")}
    print(f"design: hardware={name['hardware']} fabric={name['fabric']} model={name['model']}  "
          f"mapping tp={d.mapping.tp:g} ep={d.mapping.ep:g} sp={d.mapping.sp:g} cp={d.mapping.cp:g} "
          f"dp={d.mapping.dp:g} pp={d.mapping.pp:g} fsdp={d.mapping.fsdp:g} overlap={d.mapping.overlap:g}  "
          + (f"concurrency ({d.serving.concurrency:g} clients; {limits}) " if d.serving.regime > 2.5 else
             f"online ({d.serving.arrival_rate:g} requests/s) " if d.serving.regime > 1.5 else
             f"offline ({limits}) " if d.serving.regime > 0.5 else f"batch={d.request.batch:g} ")
          + f"in={d.request.input_len:g} out={d.request.output_len:g}")
    if out["feasible"]:
        print("feasible: True")
    else:
        print(f"feasible: False  (reason: {out['reason_name']}): {out['explanation']}")
    groups = [("serving", ["ttft_s", "tpot_s", "prefill_tokens_per_s", "decode_tokens_per_s",
                           "scaled_decode_tokens_per_s", "user_tokens_per_s", "running_batch", "requests_per_s",
                           "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tpot_p50_s", "tpot_p90_s", "tpot_p99_s",
                           "goodput_requests_per_s", "load_factor"]),
              ("decode step breakdown (one stage)", ["t_attention_s", "t_ffn_s", "t_moe_s", "t_other_s",
                                                     "t_comm_s", "t_comm_exposed_s", "bubble_fraction"]),
              ("memory per chip", ["weight_bytes", "kv_bytes", "activation_bytes", "memory_bytes"]),
              ("power and thermal", ["power_W", "prefill_power_W", "energy_per_token_J", "tokens_per_J",
                                     "temperature_C", "dram_temperature_C", "refresh_hot_fraction",
                                     "frequency_scale"])]
    for title, keys in groups:
        print(f"\n{title}:")
        for k in keys:
            slo = (f"  (p99 TTFT <= {units.format_quantity(float(d.serving.ttft_slo), 's')}, p99 TPOT <= "
                   f"{units.format_quantity(float(d.serving.tpot_slo), 's')})" if k == "goodput_requests_per_s" else "")
            print(f"  {k:24s} {_fmt(k, out[k])}{slo}")
    _print_breakdown(out["breakdown"], BREAKDOWN_ORDER)
    return 0


def _print_breakdown(bd, order):
    total = bd["stage_total"]

    def ms(t):
        return f"{t * 1e3:9.4f} ms {100 * t / total:5.1f} %"

    print("\nper-op decode stage at mid-generation KV (one stage, all its layers):")
    for name in order:
        if name in bd["compute"]:
            print(f"  {name:40s} {ms(bd['compute'][name])}")
    print(f"  {'communication':40s} {'all':>9s}    {'exposed (after overlap)':>24s}")
    for name in order:
        c, x = bd["communication"].get(name, (0.0, 0.0))
        if c > 0:
            print(f"  {name:40s} {c * 1e3:9.4f} ms {ms(x)}")
    print(f"  {'stage total':40s} {ms(total)}")


def _run_grad(args, d) -> int:
    """``eval --grad``: relaxed-mode sensitivities of ``--metric`` (grad.sensitivities)."""
    from ..engines import grad
    from ..engines.space import metric_fields

    if args.metric not in metric_fields():
        raise io.ConfigError(f"--metric '{args.metric}': allowed: {', '.join(metric_fields())}")
    tau = grad.DEFAULT_TAU if args.tau is None else args.tau
    if not tau > 0:
        raise io.ConfigError(f"--tau {tau}: allowed: > 0")
    grad.enable_compile_cache()
    if not args.json:
        print("compiling the relaxed gradient of the model (minutes on a CPU the first time) ...", file=sys.stderr)
    s = grad.sensitivities(d, args.metric, tau)
    if args.json:
        print(io.dumps_json(s))
        return 0
    unit = METRIC_UNITS.get(args.metric, "")
    print(f"{args.metric}: exact {s['exact']:.6g} {unit}, relaxed (tau={tau:g}) {s['relaxed']:.6g} {unit}; "
          f"feasible: {s['feasible']} ({s['reason']})")
    print(f"\n{'parameter':36s} {'value':>14s} {'d metric / d param':>26s} {'elasticity':>11s}")
    zero = []
    for r in s["rows"]:
        if r["grad"] == 0.0:
            zero.append(r["path"])
            continue
        el = "-" if r["elasticity"] is None else f"{r['elasticity']:+.4f}"
        suf, per = units.readable(r["value"], r["unit"])
        shown = units.format_quantity(r["value"], r["unit"]) if suf else f"{r['value']:.5g}"
        per_unit = units._SHOW.get(suf, suf)
        grad = f"{r['grad'] * per:.5g}" + (f" {unit}/{per_unit}" if per_unit else "")
        print(f"  {r['path']:34s} {shown:>14s} {grad:>26s} {el:>11s}")
    if zero:
        more = ", ... (--json lists all)" if len(zero) > 6 else ""
        print(f"  ({len(zero)} parameters with zero sensitivity here: {', '.join(zero[:6])}{more})")
    print("\nelasticity = d ln metric / d ln parameter (+1 % parameter -> +e % metric); '-' = parameter or "
          "metric is 0; derivatives of the relaxed model (integers treated as reals)")
    return 0
