"""jaxstack: vectorised JAX performance / power / thermal model of distributed LLM inference.

Layers, one folder each: ``types`` (the design pytree, metrics) -> ``physics`` (chip, DRAM,
network, power, thermal) -> ``recipe`` (op table, schedule, serving, ``evaluate``) ->
``engines`` (spaces, sweep, search, optimize, validation, calibration) -> ``edges`` (input,
presets, output files, compile cache) and ``cli``.

The flat public API (loaded on first use, so ``import jaxstack`` stays cheap)::

    import jax, jaxstack
    d = jaxstack.design_from_dict({"hardware": "b200", "fabric": "nvlink-b200x8", "model": "llama-3-70b",
                                   "request": {"batch": 64, "input_len": 1024, "output_len": 1024},
                                   "mapping": {"tp": 8}})
    m = jax.jit(jaxstack.evaluate)(d)              # Metrics of one design point
    f = jaxstack.point_evaluator(d)                # one design per call, ~0.17 ms: f(d).tpot_s
    r = jaxstack.sweep(jaxstack.load_space("spaces/quickstart.yaml"), top_k=10)
"""

import importlib

from .edges import xla as _xla

__version__ = "0.1.0"
_xla.configure()          # XLA:CPU flags, before any backend starts (edges/xla.py)

_API = {
    "evaluate": "recipe.evaluate", "breakdown": "recipe.evaluate", "Metrics": "types.metrics",
    "Reason": "types.metrics", "Design": "types.design", "design_from_dict": "edges.io", "load_design": "edges.io",
    "load_space": "engines.space", "Space": "engines.space", "sweep": "engines.sweep", "SweepResult": "engines.sweep",
    "search": "engines.search", "optimize": "engines.optimize", "relaxed": "physics.relax",
    "enable_compile_cache": "edges.cache", "point_evaluator": "recipe.single",
}
__all__ = ["__version__", *_API]


def __getattr__(name):
    if name in _API:
        mod = importlib.import_module(f".{_API[name]}", __name__)
        return getattr(mod, "enable" if name == "enable_compile_cache" else name)
    raise AttributeError(f"module 'jaxstack' has no attribute {name!r}")
