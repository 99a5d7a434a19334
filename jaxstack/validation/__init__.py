"""Validation sets: real measurements described as jaxstack inputs.

Each set is a module with ``NAME``, ``DESCRIPTION`` and ``run(calibration=...) -> list[dict]``
returning one row per measured case: ``set, panel, case, measured, predicted, split
("calibration" | "holdout"), weight`` and, where the source has it, ``deepstack`` (DeepStack's
prediction on the same point). Data lives in ``data/<set>/`` with its provenance.
"""

import importlib

__all__ = ["SET_MODULES", "load_set"]

# set name -> module (imported lazily: a set's module may be absent in a partial build)
SET_MODULES = {
    "vllm-8xb200": "jaxstack.validation.vllm",
    "kernels-8xh100": "jaxstack.validation.kernels",
    "collectives-ns3": "jaxstack.validation.collectives",
    "serving-public": "jaxstack.validation.serving_public",
}


def load_set(name: str):
    if name not in SET_MODULES:
        raise KeyError(name)
    return importlib.import_module(SET_MODULES[name])
