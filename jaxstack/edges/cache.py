"""L4: JAX's persistent compilation cache, on by default for every command, and the note
printed while a first compile runs.

Every ``jaxstack`` command compiles the same few programs (the model vmapped over a chunk,
its bounds, its relaxed gradient); their shapes do not depend on the values of a design, so
after the first run a command with other flag values loads the compiled program from disk
(about a second) instead of compiling it again. Location: ``$JAXSTACK_CACHE_DIR``, else
``~/.cache/jaxstack/jax``; ``JAXSTACK_CACHE_DIR=off`` (or '', 0, none) disables it.

``compiled`` goes one step further for the one-point programs (``eval``): it compiles once
with the persistent cache off (an executable the cache hands back serializes without its
object code) and stores the serialized executable itself under ``exec/``, keyed on a hash of the package's source, the
JAX / jaxlib versions, the backend and the argument shapes, so a warm command skips tracing
and lowering too (~1 s of the ~3 s a warm ``eval`` took) and only loads the executable.
Any change to the package source, JAX or the shapes is a new key; an unreadable entry is
recompiled and rewritten. ``load_or_compile`` does the same for any lowered program with a
caller-given key: the sweep's chunk step and search's bound / exact steps (keyed on their
static plan: space structure, folded base values, chunk, devices; session 18), and ``memo``
stores small JSON results that cost a trace (the sweep's hoisting choice), so a warm
``sweep`` or ``search`` traces nothing either. Only jaxstack's own model and bounds carry a
``cache_key``; a caller's own ``evaluate_fn`` is compiled in every process, never stored.
"""

import contextlib
import functools
import hashlib
import os
import pickle
import sys
import tempfile
import threading
from pathlib import Path

import jax

__all__ = ["enable", "compile_note", "compiled", "load_or_compile", "memo", "EXEC_MAX_BYTES", "MIN_COMPILE_S",
           "NOTE_AFTER_S"]

EXEC_MAX_BYTES = 2 * 2**30    # stored executables (``<cache>/exec``) beyond this: least recently used removed
MIN_COMPILE_S = 0.5   # programs that compiled faster than this are not written to the cache
NOTE_AFTER_S = 3.0    # the compile note appears only when a compile takes longer than this (a cache load: ~2 s)
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


@functools.cache
def source_hash() -> str:
    """sha256 of every .py / .yaml file of the installed package (what a program depends on)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.suffix in (".py", ".yaml") and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _key(name: str, args) -> str:
    import jaxlib

    leaves, tree = jax.tree_util.tree_flatten(args)
    dev = jax.devices()[0]
    parts = [name, source_hash(), jax.__version__, jaxlib.__version__, dev.platform, dev.device_kind,
             str(jax.device_count()), str(jax.config.jax_enable_x64), os.environ.get("XLA_FLAGS", ""), str(tree),
             ";".join(f"{jax.numpy.shape(x)}{jax.numpy.result_type(x)}" for x in leaves)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


@contextlib.contextmanager
def _fresh_compiles():
    """Compiles inside bypass XLA's persistent cache: an executable it hands back serializes
    without its object code (it then loads but cannot run: "Function ... not found"). JAX
    decides once per process whether the cache is used (``compilation_cache.is_cache_used``
    memoises it at the first compile), so the config flag alone does not do it after a first
    compile: the memo is set for the duration too (restored after)."""
    from jax._src import compilation_cache as cc

    before = jax.config.jax_enable_compilation_cache
    memo = (getattr(cc, "_cache_checked", None), getattr(cc, "_cache_used", None))
    jax.config.update("jax_enable_compilation_cache", False)
    if memo[0] is not None:
        cc._cache_checked, cc._cache_used = True, False
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", before)
        if memo[0] is not None:
            cc._cache_checked, cc._cache_used = memo


def compiled(name: str, fn, *args, options=None):
    """``jax.jit(fn, compiler_options=options).lower(*args).compile()``, loaded from
    ``<cache>/exec/`` when this exact program (source, JAX, backend, shapes, options) was
    compiled before; written there otherwise. Without an enabled cache it just compiles."""
    return load_or_compile(name, f"{name}{sorted((options or {}).items())}",
                           lambda: jax.jit(fn, compiler_options=options).lower(*args), args)


def load_or_compile(name: str, key: str, lower, args, devices=None):
    """``lower().compile()`` (``lower``: a thunk returning a ``jax.stages.Lowered`` for
    ``args``), loaded from ``<cache>/exec/`` when the program keyed by ``key`` (with the
    source, JAX, backend and ``args``' shapes) was compiled before, written there otherwise.
    ``key`` must name everything else the traced program depends on (``compiled``: the
    options; the sweep step: its static plan). ``devices``: where the executable runs (one
    device by default: a process with several local devices would otherwise spread it over
    all). Without an enabled cache it just compiles."""
    if not _ENABLED:
        return lower().compile()
    from jax.experimental import serialize_executable as se

    tag = "".join(c if c.isalnum() else "-" for c in name)
    path = Path(_ENABLED[-1]) / "exec" / f"{tag}-{_key(key, args)}.pkl"
    devices = list(devices or jax.local_devices()[:1])
    try:
        payload, in_tree, out_tree = pickle.loads(path.read_bytes())
        exe = se.deserialize_and_load(payload, in_tree, out_tree, execution_devices=devices)
        jax.block_until_ready(exe(*args))   # an entry that loads but cannot run is compiled again
        with contextlib.suppress(OSError):
            os.utime(path)                  # recently used: the last to be evicted (``_evict``)
        return exe
    except Exception:       # missing, truncated, from another build or not runnable: compile again
        pass
    with _fresh_compiles(), compile_note(name):
        exe = lower().compile()
    try:
        blob = pickle.dumps(se.serialize(exe))
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(blob)
        os.replace(tmp.name, path)
        _evict(path.parent, keep=path)
    except Exception:       # pragma: no cover - unserializable backend or read-only cache
        pass
    return exe


def _evict(folder: Path, keep: Path, limit: int | None = None) -> None:
    """Keep the stored executables under ``EXEC_MAX_BYTES`` (every distinct space or shape is a
    new entry of 1-20 MB): the least recently used go first, down to 80 % of the limit, never
    ``keep`` (the entry just written)."""
    limit = EXEC_MAX_BYTES if limit is None else limit
    files = [(f.stat().st_mtime, f.stat().st_size, f) for f in folder.glob("*.pkl") if f != keep]
    total = sum(size for _, size, _ in files) + (keep.stat().st_size if keep.exists() else 0)
    if total <= limit:
        return
    for _, size, f in sorted(files, key=lambda x: x[0]):
        with contextlib.suppress(OSError):
            f.unlink()
            total -= size
        if total <= 0.8 * limit:
            break


def memo(name: str, key: str, compute):
    """``compute()`` (a JSON value), stored under ``<cache>/exec/`` keyed on ``key`` and the
    package source and JAX versions, so a later process reads it instead of recomputing (the
    sweep's hoisting choice, which traces the model); without an enabled cache it computes."""
    if not _ENABLED:
        return compute()
    import json

    tag = "".join(c if c.isalnum() else "-" for c in name)
    path = Path(_ENABLED[-1]) / "exec" / f"{tag}-{_key(key, ())}.json"
    try:
        return json.loads(path.read_text())["value"]
    except Exception:       # missing or unreadable: compute and write
        pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as tmp:
            json.dump({"value": value}, tmp)
        os.replace(tmp.name, path)
    except Exception:       # pragma: no cover - read-only cache
        pass
    return value
