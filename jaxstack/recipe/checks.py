"""L4: relations between the leaves of one design, and what to change when a point cannot run.

Two kinds of "no" (README "Inputs and errors"):

* an **input error**: a value outside its own domain (``domains``; checked in ``io`` where
  the value enters) or a relation that no run of that hardware or model could satisfy
  (``check_design``: ``num_key_value_heads`` must divide ``num_attention_heads``, a stack
  cannot connect more layers than it has, refresh must leave the DRAM some time, a 2D
  fabric level has ``dim_x * dim_y = size`` nodes, ...). Raised as ``io.ConfigError``,
  exit code 2, before anything is compiled.
* an **infeasible point**: every value is legal but the combination cannot run (TP 16 on 8
  chips, a model that does not fit, a DRAM above its limit). ``evaluate`` returns it with a
  ``Reason``; ``explain`` turns the reason into one sentence with what to change. Exit code 0.

Host-side only (concrete scalars); inside a sweep the same combinations are infeasible points.
"""

import math

import numpy as np

from ..edges.io import ConfigError
from ..types.design import Design
from ..types.hardware import TopologyKind
from ..types.metrics import Reason

__all__ = ["check_design", "explain"]

_2D = (int(TopologyKind.mesh2d), int(TopologyKind.torus2d))


def _v(x) -> float:
    return float(np.asarray(x))


def check_design(d: Design, where: str = "<design>") -> Design:
    """Raise ``ConfigError`` (naming the keys) if the leaves of ``d`` contradict each other."""
    w, dram = d.model, d.dram
    heads, kvh = _v(w.num_attention_heads), _v(w.num_key_value_heads)
    mla = _v(w.kv_lora_rank) > 0

    def bad(keys, msg):
        raise ConfigError(f"{where}: key '{keys}': {msg}")

    if not mla and heads % kvh:
        bad("model.num_key_value_heads", f"{kvh:g} does not divide num_attention_heads = {heads:g}; allowed: "
            f"a divisor of {heads:g} (" + ", ".join(str(k) for k in range(1, int(heads) + 1) if heads % k == 0)
            + ")")
    if mla and _v(w.qk_rope_head_dim) + _v(w.qk_nope_head_dim) <= 0:
        bad("model.qk_rope_head_dim", "MLA (kv_lora_rank > 0) needs qk_rope_head_dim + qk_nope_head_dim >= 1")
    if mla and _v(w.v_head_dim) <= 0:
        bad("model.v_head_dim", "MLA (kv_lora_rank > 0) needs v_head_dim >= 1")
    experts, k = _v(w.n_routed_experts), _v(w.num_experts_per_tok)
    if experts > 0 and not 1 <= k <= experts:
        bad("model.num_experts_per_tok", f"{k:g}; allowed: 1 <= num_experts_per_tok <= n_routed_experts "
            f"= {experts:g}")
    if experts > 0 and _v(w.moe_intermediate_size) <= 0:
        bad("model.moe_intermediate_size", "an MoE model (n_routed_experts > 0) needs moe_intermediate_size >= 1")
    layers = _v(w.num_hidden_layers)
    if _v(w.first_k_dense_replace) > layers:
        bad("model.first_k_dense_replace", f"{_v(w.first_k_dense_replace):g}; allowed: <= num_hidden_layers "
            f"= {layers:g}")
    dense_layers = layers if experts == 0 else _v(w.first_k_dense_replace)
    if dense_layers > 0 and _v(w.intermediate_size) <= 0:
        bad("model.intermediate_size", "dense FFN layers need intermediate_size >= 1")
    if _v(dram.connected_layers) > _v(dram.total_layers):
        bad("dram.connected_layers", f"{_v(dram.connected_layers):g}; allowed: <= total_layers "
            f"= {_v(dram.total_layers):g}")
    if 2.0 * _v(dram.t_rfc) >= _v(dram.t_refi):
        bad("dram.t_rfc", f"{_v(dram.t_rfc):.4g} s leaves no time between refreshes once refresh doubles "
            f"(2 t_rfc >= t_refi = {_v(dram.t_refi):.4g} s); allowed: t_rfc < t_refi / 2")
    for lv in ("l1", "l2", "l3"):
        f = getattr(d.fabric, lv)
        size, kind = _v(f.size), int(_v(f.kind))
        if kind in _2D and _v(f.dim_x) * _v(f.dim_y) != size:
            bad(f"fabric.{lv}.dim_x", f"a {TopologyKind(kind).name} level of size {size:g} needs dim_x * dim_y "
                f"= size, got {_v(f.dim_x):g} x {_v(f.dim_y):g}")
    if _v(d.chip.static_power) >= _v(d.chip.tdp):
        bad("chip.static_power", f"{_v(d.chip.static_power):g} W leaves no power for work under tdp = "
            f"{_v(d.chip.tdp):g} W; allowed: static_power < tdp")
    return d


def _chips(d: Design) -> int:
    f = d.fabric
    return int(round(_v(f.l1.size) * _v(f.l2.size) * _v(f.l3.size)))


def explain(d: Design, m) -> str:
    """One sentence: why point ``d`` with metrics ``m`` is infeasible and what would change it."""
    r = Reason(int(np.asarray(m.reason)))
    mp, w = d.mapping, d.model
    deg = {a: int(round(_v(getattr(mp, a)))) for a in ("tp", "ep", "sp", "cp", "dp", "pp")}
    world = math.prod(deg.values())
    if r == Reason.ok:
        return "feasible"
    if r == Reason.device_count:
        n = _chips(d)
        fix = (f"use degrees whose product is at most {n}, or a fabric of {world} chips or more (e.g. --set "
               f"fabric.l1.size={world} --set fabric.l1.dim_x={world})")
        return f"tp x ep x sp x cp x dp x pp = {world} chips but the fabric has only {n}: {fix}"
    if r == Reason.divisibility:
        heads, tpsp = _v(w.num_attention_heads), deg["tp"] * deg["sp"]
        if heads % tpsp:
            return f"tp x sp = {tpsp} does not divide the {heads:g} attention heads: use a divisor of {heads:g}"
        if deg["pp"] > _v(w.num_hidden_layers):
            return f"pp = {deg['pp']} exceeds the {_v(w.num_hidden_layers):g} layers: lower --pp"
        return (f"the {_v(w.n_routed_experts):g} experts do not split over the expert-parallel ranks "
                f"(ep = {deg['ep']}, moe_tp_to_ep = {_v(mp.moe_tp_to_ep):g}): use an ep that divides them "
                "(and ep = 1 for a dense model)")
    if r == Reason.batch:
        need = deg["dp"] * deg["pp"]
        return (f"batch {_v(d.request.batch):g} < dp x pp = {need}: some replica or stage would idle; use "
                f"--batch {need} or more, or fewer dp / pp")
    if r == Reason.memory:
        from ..physics.memory import usable_capacity

        need, have = _v(m.memory_bytes) / 2**30, _v(usable_capacity(d.dram)) / 2**30
        return (f"needs {need:.1f} GiB per chip (weights {_v(m.weight_bytes) / 2**30:.1f}, KV "
                f"{_v(m.kv_bytes) / 2**30:.1f}, activations {_v(m.activation_bytes) / 2**30:.1f}) but "
                f"{have:.1f} GiB are usable: shard more (tp / pp / ep), lower the batch or the sequence "
                "length, or use smaller weights (model.weight_bytes / kv_bytes)")
    if r == Reason.thermal:
        return (f"DRAM reaches {_v(m.dram_temperature_C):.1f} C, above its limit "
                f"{_v(d.thermal.dram_limit):g} C: fewer stacked layers, a lower clock or better cooling")
    if r == Reason.unstable:
        return (f"arrivals at {_v(d.serving.arrival_rate):g} requests/s outpace the engine (prefill or decode "
                "saturates, or the running batch would exceed max_num_seqs): lower --arrival-rate (see "
                "goodput_requests_per_s), add replicas (dp) or raise max_num_seqs")
    if r == Reason.slo:
        return "a limit of the sweep or search (power, TPOT, ...) is violated"
    return ("a metric came out NaN or infinite: the parameters together are outside the range where the model "
            "holds (check refresh timing, efficiencies and bandwidths)")
