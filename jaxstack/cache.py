"""L4: JAX's persistent compilation cache, on by default for every command, and the note
printed while a first compile runs.

Every ``jaxstack`` command compiles the same few programs (the model vmapped over a chunk,
its bounds, its relaxed gradient); their shapes do not depend on the values of a design, so
after the first run a command with other flag values loads the compiled program from disk
(about a second) instead of compiling it again. Location: ``$JAXSTACK_CACHE_DIR``, else
``~/.cache/jaxstack/jax``; ``JAXSTACK_CACHE_DIR=off`` (or '', 0, none) disables it.
"""

import contextlib
import os
import sys
import threading
from pathlib import Path

import jax

__all__ = ["enable", "compile_note", "MIN_COMPILE_S", "NOTE_AFTER_S"]

MIN_COMPILE_S = 0.5   # programs that compiled faster than this are not written to the cache
NOTE_AFTER_S = 1.0    # the compile note appears only when a compile takes longer than this
_ENABLED: list = []


def enable(path=None) -> str | None:
    """Turn the persistent cache on (once per process); returns its directory or None."""
    env = os.environ.get("JAXSTACK_CACHE_DIR")
    if path is None and env is not None and env.strip().lower() in ("", "off", "0", "none"):
        return None
    path = Path(path or env or Path.home() / ".cache" / "jaxstack" / "jax")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(path, os.W_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
    if str(path) not in _ENABLED:
        _ENABLED.append(str(path))
    return str(path)


@contextlib.contextmanager
def compile_note(what: str = "the model", stream=None):
    """Print one line on stderr if the enclosed compile (or cache load) takes longer than
    ``NOTE_AFTER_S``: a cache hit stays silent, a first compile says what is happening."""
    if not _ENABLED:          # library use: silent (the CLI enables the cache)
        yield
        return
    stream = sys.stderr if stream is None else stream
    where = f"; cached in {_ENABLED[-1]}" if _ENABLED else ""
    timer = threading.Timer(NOTE_AFTER_S, lambda: print(
        f"jaxstack: compiling {what} (first run only{where}) ...", file=stream, flush=True))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
