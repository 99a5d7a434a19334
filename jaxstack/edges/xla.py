"""Edge: XLA runtime flags jaxstack sets before the JAX backend starts (``configure``).

``--xla_cpu_experimental_ynn_fusion_type=`` (no library fusion types): XLA:CPU otherwise
hands reductions and some elementwise fusions to the YNNPACK library, one library call per
fusion. The model's reductions are tiny (a handful of fabric dimensions, levels or tile
candidates per design point), so each call's fixed cost dominates. Measured on the 2-core
CPU, jaxlib 0.10.2 (``python -m jaxstack.cli sweep spaces/hbm-whatif.yaml``): the hoisted
whole-space sweep 387,116 -> 524,891 points/s, the flat one 239,933 -> 295,956, the search
bound 183,680 -> 220,471 bounds/s.

The flag is added only for jaxlib versions known to accept it (an unknown XLA flag aborts
the process), only while the backend has not started (else a one-line note on stderr says
so: a script that starts JAX before importing jaxstack runs without it), never over the
caller's own ``XLA_FLAGS`` value for it, and not at all with ``JAXSTACK_XLA_DEFAULTS=off``.
"""

import os
import sys

__all__ = ["configure", "YNN_FLAG", "KNOWN_JAXLIB", "LATE_NOTE", "SINGLE_POINT_OPTIONS", "single_point_options"]

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type="
KNOWN_JAXLIB = ("0.10.",)         # jaxlib releases whose XLA knows the flag (checked: 0.10.2)
LATE_NOTE = ("jaxstack: note: JAX's backend started before jaxstack was imported, so XLA:CPU runs without "
             f"jaxstack's {YNN_FLAG} (sweeps ~1.3x slower): import jaxstack before using jax "
             "(JAXSTACK_XLA_DEFAULTS=off silences this)")


# Compiler options for programs that evaluate ONE design (``jaxstack eval``, ``point_evaluator``,
# a sweep's winners): XLA:CPU's backend optimisations and fusion emitters buy nothing on
# scalars. Measured on the 2-core CPU, jaxlib 0.10.2, jit(evaluate) of one quickstart point
# behind packed vectors: compile 6.2 -> 2.0 s, one call 0.38 -> 0.28 ms.
SINGLE_POINT_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


def single_point_options() -> dict:
    """``SINGLE_POINT_OPTIONS`` on a CPU backend, {} elsewhere (and with JAXSTACK_XLA_DEFAULTS=off)."""
    import jax

    if os.environ.get("JAXSTACK_XLA_DEFAULTS", "").lower() == "off" or jax.default_backend() != "cpu":
        return {}
    return dict(SINGLE_POINT_OPTIONS)


def _jaxlib_version() -> str:
    try:
        from importlib.metadata import version

        return version("jaxlib")
    except Exception:             # pragma: no cover - not installed as a distribution
        return ""


def _backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:             # pragma: no cover - internal API moved: assume started (do nothing)
        return True


def configure() -> bool:
    """Add jaxstack's XLA flags to ``XLA_FLAGS`` if it is still possible; True if added."""
    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("JAXSTACK_XLA_DEFAULTS", "").lower() == "off" or "xla_cpu_experimental_ynn_fusion_type" in flags:
        return False
    if not _jaxlib_version().startswith(KNOWN_JAXLIB):
        return False
    if _backend_started():
        print(LATE_NOTE, file=sys.stderr)
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {YNN_FLAG}".strip()
    return True
