"""L5: ``jaxstack disagg PREFILL.yaml DECODE.yaml`` — a prefill pool and a decode pool (disagg.py)."""

from ..edges import io

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser("disagg", help="disaggregated serving: a prefill pool and a decode pool",
                       description="Evaluate a prefill pool and a decode pool (two design files, any hardware, "
                       "fabric and mapping each), the KV transfer between them, the best pool ratio and the "
                       "requests/s per chip (jaxstack/recipe/disagg.py).")
    p.add_argument("prefill", help="design YAML of the prefill pool (request.batch = prompts prefilled together)")
    p.add_argument("decode", help="design YAML of the decode pool (its running batch comes from its KV budget)")
    p.add_argument("--kv-bandwidth-GBps", type=float, help="KV transfer bandwidth per prefill replica (default: "
                   "the prefill fabric's outermost used level)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..recipe.disagg import disaggregated

    if args.kv_bandwidth_GBps is not None and not args.kv_bandwidth_GBps > 0:
        raise io.ConfigError(f"--kv-bandwidth-GBps {args.kv_bandwidth_GBps}: allowed: > 0")
    pre, dec = io.load_design(args.prefill), io.load_design(args.decode)
    if float(pre.request.input_len) != float(dec.request.input_len):
        raise io.ConfigError(f"{args.decode}: key 'request.input_len': {float(dec.request.input_len):g} differs from "
                             f"the prefill pool's {float(pre.request.input_len):g}; allowed: the same prompts")
    res = disaggregated(pre, dec, None if args.kv_bandwidth_GBps is None else args.kv_bandwidth_GBps * 1e9)
    if args.json:
        print(io.dumps_json(res))
        return 0
    print(f"feasible: {res['feasible']} (prefill reason {res['prefill_reason']}, decode reason {res['decode_reason']})")
    print(f"prefill replica: {res['prefill_chips']:g} chips, {res['prefill_requests_per_s']:.4g} requests/s "
          f"(KV transfer {res['kv_transfer_s'] * 1e3:.3g} ms at {res['kv_bandwidth_Bps'] / 1e9:.4g} GB/s)")
    print(f"decode replica:  {res['decode_chips']:g} chips, {res['decode_requests_per_s']:.4g} requests/s "
          f"(running batch {res['decode_running_batch']:g})")
    print(f"best ratio: {res['prefill_replicas_per_decode_replica']:.3g} prefill replicas per decode replica")
    print(f"per chip: {res['requests_per_s_per_chip']:.4g} requests/s, {res['output_tokens_per_s_per_chip']:.4g} "
          f"output tokens/s; TTFT {res['ttft_s'] * 1e3:.4g} ms, TPOT {res['tpot_s'] * 1e3:.4g} ms")
    return 0
