"""L4: disaggregated serving: a prefill pool and a decode pool, each its own design.

The prefill pool (its hardware, fabric, mapping; ``request.batch`` = prompts prefilled
together) only prefills; the decode pool only decodes, at the running batch its KV budget
and engine limits allow (``serving.py``'s offline batch, without a prefill share). A
request's KV cache (all layers, ``input_len`` tokens at the decode model's ``kv_bytes``)
crosses from one pool to the other over a link of ``kv_bandwidth`` B/s per prefill
replica (default: the prefill fabric's outermost used level, ``links_per_node`` links).

Per replica: prefill r_p = prefill tokens/s / input_len requests/s on c_p chips; decode
r_d = running batch / (TPOT x output_len) requests/s on c_d chips; a transfer occupies the
prefill replica's link for t_kv = KV bytes / kv_bandwidth, so r_p = 1 / (1 / r_p + t_kv).
With n_p prefill and n_d decode replicas the system serves min(n_p r_p, n_d r_d); per chip
this is best when the two are equal, at n_p / n_d = r_d / r_p:

    requests/s per chip = 1 / (c_p / r_p + c_d / r_d),  TTFT = prefill TTFT + t_kv,  TPOT = decode TPOT.

With a free transfer (``kv_bandwidth`` = inf) the pools' rates are exactly the two
separate evaluations (``tests/test_serving.py``). Python API and ``jaxstack disagg``.
"""

import dataclasses

import jax
import numpy as np

from ..physics.lean import where
from ..types.design import Design
from .evaluate import evaluate, world_size

__all__ = ["disaggregated", "kv_bytes_per_request"]


def kv_bytes_per_request(d: Design):
    """KV cache of one request's prompt over all layers (bytes)."""
    w = d.model
    gqa = 2.0 * w.num_key_value_heads * w.head_dim
    mla = w.kv_lora_rank + w.qk_rope_head_dim
    per_token = where(w.kv_lora_rank > 0, mla, gqa) * w.kv_bytes
    return per_token * w.num_hidden_layers * d.request.input_len


def _link(d: Design):
    f = d.fabric
    levels = [f.l3, f.l2, f.l1]
    for lv in levels:                 # the outermost level the pool actually spans
        if float(lv.size) > 1:
            return float(lv.link_bandwidth * lv.links_per_node * f.bandwidth_efficiency)
    return float(f.l1.link_bandwidth * f.l1.links_per_node * f.bandwidth_efficiency)


def disaggregated(prefill: Design, decode: Design, kv_bandwidth: float | None = None) -> dict:
    """Rates, latencies and the best pool ratio of a prefill / decode split (module docstring)."""
    ev = jax.jit(evaluate)
    mp = ev(prefill)
    offline = dataclasses.replace(decode, serving=dataclasses.replace(decode.serving, regime=np.float32(1.0)))
    mo = ev(offline)                   # the running batch, and feasibility at the mean KV occupancy
    batch = float(mo.running_batch)
    static = dataclasses.replace(decode, request=dataclasses.replace(decode.request, batch=np.float32(batch)),
                                 serving=dataclasses.replace(decode.serving, regime=np.float32(0.0)))
    md = ev(static)                    # its decode step (its memory check assumes every KV cache at full length)
    bw = _link(prefill) if kv_bandwidth is None else float(kv_bandwidth)
    t_kv = float(kv_bytes_per_request(decode)) / bw if np.isfinite(bw) else 0.0
    isl, osl = float(prefill.request.input_len), float(decode.request.output_len)
    r_p = 1.0 / (isl / float(mp.prefill_tokens_per_s) + t_kv)
    r_d = batch / (float(md.tpot_s) * osl)
    c_p, c_d = float(world_size(prefill)), float(world_size(decode))
    per_chip = 1.0 / (c_p / r_p + c_d / r_d)
    feasible = bool(mp.feasible) and bool(mo.feasible)
    return {"feasible": feasible, "prefill_reason": int(mp.reason), "decode_reason": int(mo.reason),
            "prefill_requests_per_s": r_p, "decode_requests_per_s": r_d, "prefill_chips": c_p, "decode_chips": c_d,
            "decode_running_batch": batch, "kv_transfer_s": t_kv, "kv_bandwidth_Bps": bw,
            "ttft_s": float(mp.ttft_s) + t_kv, "tpot_s": float(md.tpot_s),
            "requests_per_s_per_chip": per_chip if feasible else 0.0,
            "output_tokens_per_s_per_chip": per_chip * osl if feasible else 0.0,
            "prefill_replicas_per_decode_replica": r_d / r_p}
