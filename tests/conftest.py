"""Test-session settings, applied before JAX initialises its CPU backend.

Compile time dominates the suite (the tests evaluate small batches through many distinct
compiled programs of the full model), so XLA:CPU is asked to compile fast rather than to
emit fast code: LLVM -O0 and the classic elemental fusion emitters (measured on a 2-core
CPU: compiles ~2x faster, same float32 results; ``grad.CPU_COMPILER_OPTIONS`` uses the same
pair for the relaxed gradient). ``XLA_FLAGS`` set by the caller wins. A persistent
compilation cache shared by the xdist workers and the subprocess tests (CLI, notebooks)
dedupes identical programs compiled by several modules; ``JAXSTACK_TEST_CACHE=off``
disables it.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false")
_cache = os.environ.get("JAXSTACK_TEST_CACHE", str(Path(tempfile.gettempdir()) / f"jaxstack-test-cache-{os.getuid()}"))
if _cache.lower() != "off":
    os.environ.setdefault("JAXSTACK_CACHE_DIR", _cache)

import jax  # noqa: E402

# strictness (equinox/diffrax style): silent broadcasting under vmap is an error
jax.config.update("jax_numpy_rank_promotion", "raise")
if _cache.lower() != "off":
    jax.config.update("jax_compilation_cache_dir", _cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)
