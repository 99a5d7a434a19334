"""Test helpers: a toy ``evaluate_fn`` and a worker for the 2-process sweep test.

The toy model is a pure jnp function of a few design leaves, so the engine's mechanics
are tested without the physics. As a script: ``python _multihost_worker.py SPACE OUT PORT
NPROC PID`` initialises ``jax.distributed`` (gloo on CPU) and sweeps with the toy model.
"""

import json
import sys

import jax.numpy as jnp

from jaxstack.metrics import Metrics, Reason
from jaxstack.space import metric_fields

TRACES = [0]


def toy_evaluate(d) -> Metrics:
    """Throughput grows with bandwidth, batch and tp; infeasible when tp*pp*dp != 8 or when
    the 'memory' (layers / tp) is too small. Ties on purpose: efficiency enters rounded."""
    TRACES[0] += 1
    m = d.mapping
    bw = d.fabric.l1.link_bandwidth * 1e-9
    b = d.request.batch
    devices = m.tp * m.ep * m.sp * m.cp * m.dp * m.pp
    eff = jnp.round(d.dram.efficiency * 10.0) / 10.0
    tput = b * eff * jnp.sqrt(bw) * (m.tp + 0.5 * m.dp) / (1.0 + 0.1 * m.pp + 0.01 * b)
    tpot = b / tput
    mem = 1e11 / (m.tp * m.pp) + 1e6 * b
    power = 300.0 + 0.2 * bw + 50.0 * m.tp
    ok_dev = devices == 8.0
    ok_mem = mem <= d.dram.capacity_per_layer * d.dram.total_layers
    feasible = ok_dev & ok_mem
    reason = jnp.where(~ok_dev, int(Reason.device_count), jnp.where(~ok_mem, int(Reason.memory), 0))
    vals = {f: jnp.zeros_like(b) for f in metric_fields()}
    vals.update(decode_tokens_per_s=tput, user_tokens_per_s=1.0 / tpot, tpot_s=tpot, ttft_s=tpot * 10.0,
                power_W=power, memory_bytes=mem, tokens_per_J=tput / power,
                energy_per_token_J=power / tput, temperature_C=40.0 + 0.05 * power)
    return Metrics(feasible=feasible, reason=reason.astype(jnp.int32), **vals)


def _report(res) -> str:
    return json.dumps({"top": [r["index"] for r in res.top], "pareto": sorted(r["index"] for r in res.pareto),
                       "counts": res.counts, "points": res.points,
                       "best": res.top[0]["decode_tokens_per_s"] if res.top else None})


SWEEP_KW = {"top_k": 7, "chunk": 64, "pareto": ("decode_tokens_per_s", "user_tokens_per_s"),
            "progress": False}


def main(argv):
    """Modes: multihost SPACE OUT PORT NPROC PID | plain SPACE [OUT] | slow SPACE OUT."""
    import jax

    mode, space_path, *rest = argv
    if mode == "multihost":
        out, port, nproc, pid = rest
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=int(nproc),
                                   process_id=int(pid))
    from jaxstack.sweep import sweep

    kw = dict(SWEEP_KW, evaluate_fn=toy_evaluate)
    if mode == "slow":  # checkpoint every chunk and go slowly, to be killed mid-run
        import time

        kw.update(checkpoint_every_s=0.0, on_chunk=lambda c, n: time.sleep(0.05))
    res = sweep(space_path, out=rest[0] if rest else None, **kw)
    print(_report(res), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
