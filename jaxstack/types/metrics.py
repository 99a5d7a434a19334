"""L3: the per-point outputs of ``evaluate`` and the infeasibility reason codes.

Errors are values (diffrax ``RESULTS`` style): ``feasible`` is a bool mask and ``reason``
the first failing check in the order of ``Reason``. Every float field is finite for every
point, feasible or not, so reducers can read them without masking NaNs: a value that came out
NaN/inf is reported as 0 with ``Reason.numerical`` (unless an earlier check already failed).
"""

from enum import IntEnum

from ._tree import leaf, pytree

__all__ = ["Metrics", "Reason", "METRIC_UNITS", "HIGHER_IS_BETTER"]


class Reason(IntEnum):
    ok = 0
    device_count = 1      # tp*ep*sp*cp*dp*pp != devices in the fabric
    divisibility = 2      # heads, KV heads, experts or layers do not divide
    batch = 3             # batch < dp*pp (some replica or stage would idle)
    memory = 4            # weights + KV + activations > usable DRAM capacity
    thermal = 5           # DRAM above its temperature limit
    slo = 6               # a sweep/search limit (power, TPOT, ...) is violated
    numerical = 7         # a metric came out NaN/inf: parameters outside the model's range together
    #                       (e.g. DRAM refresh that takes all the time once the DRAM is hot)
    unstable = 8          # online: arrivals outpace the engine (the queue grows without bound)


@pytree
class Metrics:
    feasible: bool = leaf("1")
    reason: int = leaf("enum", "Reason code")
    ttft_s: float = leaf("s", "time to first token (prefill of the batch through all stages)")
    tpot_s: float = leaf("s", "time per output token, averaged over the decode")
    prefill_tokens_per_s: float = leaf("1", "system prefill throughput")
    decode_tokens_per_s: float = leaf("1", "system decode throughput")
    user_tokens_per_s: float = leaf("1", "per-request decode speed = 1/TPOT")
    scaled_decode_tokens_per_s: float = leaf("1", "decode throughput after the power wall's clock scaling")
    energy_per_token_J: float = leaf("J", "decode energy per generated token (whole system)")
    tokens_per_J: float = leaf("1", "decode tokens per joule")
    power_W: float = leaf("W", "average decode power per chip (after the power wall)")
    temperature_C: float = leaf("degC", "steady-state junction (logic die) temperature in decode")
    dram_temperature_C: float = leaf("degC", "steady-state temperature of the hottest DRAM layer in decode")
    refresh_hot_fraction: float = leaf("1", "fraction of decode time with doubled DRAM refresh (> 85 C)")
    prefill_power_W: float = leaf("W", "power per chip a prefill step demands (before the power wall)")
    frequency_scale: float = leaf("1", "clock scale from the power wall (1 = none)")
    weight_bytes: float = leaf("B", "weights per chip")
    kv_bytes: float = leaf("B", "KV cache per chip at the longest sequence")
    activation_bytes: float = leaf("B", "activation working set per chip")
    memory_bytes: float = leaf("B", "weights + KV + activations per chip")
    t_attention_s: float = leaf("s", "decode step: attention block compute (per stage)")
    t_ffn_s: float = leaf("s", "decode step: dense FFN compute (per stage)")
    t_moe_s: float = leaf("s", "decode step: MoE compute (per stage)")
    t_other_s: float = leaf("s", "decode step: norms, residuals, LM head")
    t_comm_s: float = leaf("s", "decode step: all communication")
    t_comm_exposed_s: float = leaf("s", "decode step: communication not hidden by overlap")
    bubble_fraction: float = leaf("1", "decode: fraction of time a pipeline stage idles (mb < pp)")
    running_batch: float = leaf("1", "requests decoding together in the whole system (static: request.batch; "
                                "offline: the steady-state batch the KV budget and engine limits allow)")
    requests_per_s: float = leaf("1", "completed requests per second (decode tokens/s / output_len)")
    ttft_p99_s: float = leaf("s", "99th-percentile TTFT (online; = ttft_s in the other regimes)")
    tpot_p99_s: float = leaf("s", "99th-percentile TPOT (online; = tpot_s in the other regimes)")
    goodput_requests_per_s: float = leaf("1", "largest Poisson arrival rate whose p99 TTFT and TPOT meet "
                                         "serving.ttft_slo / tpot_slo (serving.py; 0 if none)")
    load_factor: float = leaf("1", "requests served per second over the engine's capacity: its full batch, each "
                              "step carrying its share of the prompts (online: the arrival rate's share; the "
                              "queue is unstable at or before 1; offline: 1, less for a finite run; static: 0)")
    ttft_p50_s: float = leaf("s", "median TTFT (online and concurrency: a gamma of the mean and p99; = ttft_s "
                             "in the other regimes)")
    ttft_p90_s: float = leaf("s", "90th-percentile TTFT (as ttft_p50_s)")
    tpot_p50_s: float = leaf("s", "median TPOT (as ttft_p50_s)")
    tpot_p90_s: float = leaf("s", "90th-percentile TPOT (as ttft_p50_s)")


METRIC_UNITS = {
    "ttft_s": "s", "tpot_s": "s", "prefill_tokens_per_s": "tok/s", "decode_tokens_per_s": "tok/s",
    "user_tokens_per_s": "tok/s", "energy_per_token_J": "J", "tokens_per_J": "tok/J",
    "scaled_decode_tokens_per_s": "tok/s", "dram_temperature_C": "°C", "refresh_hot_fraction": "",
    "prefill_power_W": "W", "power_W": "W", "temperature_C": "°C", "frequency_scale": "", "weight_bytes": "B",
    "kv_bytes": "B", "activation_bytes": "B", "memory_bytes": "B", "t_attention_s": "s",
    "t_ffn_s": "s", "t_moe_s": "s", "t_other_s": "s", "t_comm_s": "s", "t_comm_exposed_s": "s",
    "bubble_fraction": "", "running_batch": "req", "requests_per_s": "req/s",
    "ttft_p99_s": "s", "tpot_p99_s": "s", "goodput_requests_per_s": "req/s", "load_factor": "",
    "ttft_p50_s": "s", "ttft_p90_s": "s", "tpot_p50_s": "s", "tpot_p90_s": "s",
}

HIGHER_IS_BETTER = {
    "prefill_tokens_per_s": True, "decode_tokens_per_s": True, "scaled_decode_tokens_per_s": True,
    "user_tokens_per_s": True, "tokens_per_J": True, "ttft_s": False, "tpot_s": False, "energy_per_token_J": False,
    "power_W": False, "temperature_C": False, "dram_temperature_C": False, "prefill_power_W": False,
    "memory_bytes": False, "requests_per_s": True, "goodput_requests_per_s": True, "ttft_p99_s": False,
    "tpot_p99_s": False, "ttft_p50_s": False, "ttft_p90_s": False, "tpot_p50_s": False, "tpot_p90_s": False,
}
