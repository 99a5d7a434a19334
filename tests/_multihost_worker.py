"""Test helpers: a toy ``evaluate_fn`` and a worker for the 2-process sweep test.

The toy model is a pure jnp function of a few design leaves, so the engine's mechanics
are tested without the physics. As a script (see ``main``) it runs one sweep of a toy space
and prints a JSON report; the ``multihost`` mode first initialises ``jax.distributed``
(gloo on CPU), so two such processes share the sweep.
"""

import json
import sys

import jax.numpy as jnp

from jaxstack.engines.space import metric_fields
from jaxstack.types.metrics import Metrics, Reason

TRACES = [0]

# the toy space the engine tests sweep (test_sweep.py, test_hoist.py)
TOY_SPACE = """\
version: 1
base:
  hardware: b200
  fabric: nvlink-b200x8
  model: llama-3-70b
  request: {batch: 1, input_len: 1024, output_len: 1024}
axes:
  dram.efficiency: {choices: [0.7, 0.8, 0.9, 0.72]}          # 0.72 rounds like 0.7: exact ties
  fabric.l1.link_bandwidth_GBps: {range: [100, 900], step: 200}
  request.batch: {range: [1, 256], count: 9, scale: log}
  dram.total_layers: {choices: [1, 2]}
mapping: {factorizations: 8, axes: [tp, dp, pp], fsdp: [0, 1]}
limits: {power_W: {max: 700}}
objective: decode_tokens_per_s
"""


def toy_evaluate(d) -> Metrics:
    """A toy model that is exact in float32 (small integers and powers of two only), so any
    evaluation order gives bit-identical values and the many exact ties are real ties.

    Throughput grows with batch, rounded DRAM efficiency, link bandwidth and tp; per-user
    speed falls with batch (a real trade-off for the Pareto front); infeasible when
    tp*ep*sp*cp*dp*pp != 8 or when the 'memory' does not fit the DRAM layers.
    """
    TRACES[0] += 1
    m = d.mapping
    b = d.request.batch
    e10 = jnp.round(d.dram.efficiency * 10.0)                       # 7, 8, 9
    bwi = jnp.round(d.fabric.l1.link_bandwidth / 1e11)              # 1 ... 9
    x = e10 * bwi * (2.0 * m.tp + m.dp) / 8.0
    tput = b * x
    user = 64.0 * x - b
    power = 300.0 + 50.0 * m.tp + 2.0 * bwi
    mem = 64.0 / (m.tp * m.pp) + b / 64.0                           # "GiB"
    ok_dev = m.tp * m.ep * m.sp * m.cp * m.dp * m.pp == 8.0
    ok_mem = mem <= 16.0 * d.dram.total_layers
    reason = jnp.where(~ok_dev, int(Reason.device_count), jnp.where(~ok_mem, int(Reason.memory), 0))
    vals = {f: jnp.zeros_like(b) for f in metric_fields()}
    vals.update(decode_tokens_per_s=tput, user_tokens_per_s=user, tpot_s=1.0 / (jnp.abs(user) + 1.0), power_W=power,
                memory_bytes=mem * 2.0**30, tokens_per_J=tput / power, temperature_C=40.0 + power / 16.0)
    return Metrics(feasible=ok_dev & ok_mem, reason=reason.astype(jnp.int32), **vals)


def _report(res) -> str:
    return json.dumps({"top": [r["index"] for r in res.top], "pareto": sorted(r["index"] for r in res.pareto),
                       "counts": res.counts, "points": res.points,
                       "best": res.top[0]["decode_tokens_per_s"] if res.top else None})


SWEEP_KW = {"top_k": 7, "chunk": 64, "pareto": ("decode_tokens_per_s", "user_tokens_per_s"),
            "progress": False}


def main(argv):
    """Modes: multihost SPACE OUT PORT NPROC PID | plain SPACE [OUT] | devices SPACE | slow SPACE OUT."""
    import jax

    mode, space_path, *rest = argv
    if mode == "multihost":
        out, port, nproc, pid = rest
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=int(nproc),
                                   process_id=int(pid))
    from jaxstack.engines.sweep import sweep

    kw = dict(SWEEP_KW, evaluate_fn=toy_evaluate)
    if mode == "slow":  # checkpoint every chunk and go slowly, to be killed mid-run
        import time

        kw.update(checkpoint_every_s=0.0, on_chunk=lambda c, n: time.sleep(0.05))
    res = sweep(space_path, out=rest[0] if rest else None, **kw)
    if mode == "devices":
        print(json.dumps({**json.loads(_report(res)), "devices": res.timings["devices"]}), flush=True)
    else:
        print(_report(res), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
