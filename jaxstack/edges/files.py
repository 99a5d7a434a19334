"""L5: files a run writes — checked output directories, atomic writes, strict JSON — and
``ConfigError``, the one exception type of bad user input (re-exported by ``io``)."""

import contextlib
import json
import math
import os
from pathlib import Path

__all__ = ["ConfigError", "check_out_dir", "atomic_writer", "write_text_atomic", "in_source_checkout",
           "finite_json", "dumps_json"]


class ConfigError(ValueError):
    """Bad user input: names the file, the key path and what is allowed."""


def check_out_dir(path, flag: str = "--out") -> Path | None:
    """Make sure ``path`` can hold a run's files before any work starts: created if missing,
    refused (ConfigError) if it is a file or cannot be written. None passes through."""
    if path is None:
        return None
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag} {p}: is a file, not a directory; allowed: a new or existing directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{flag} {p}: cannot create the directory ({e.strerror})") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {p}: not writable; allowed: a directory you can write to")
    return p


@contextlib.contextmanager
def atomic_writer(path, mode: str = "w", **kw):
    """Open ``path.tmp`` for writing and move it onto ``path`` only when the block succeeds:
    a reader never sees half a file, and a failed write leaves the old one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode, **kw) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path, text: str) -> None:
    with atomic_writer(path) as fh:
        fh.write(text)


def in_source_checkout() -> bool:
    """True when the package runs from a git checkout (``pip install -e``), where the shipped
    calibration and regression baseline may be rewritten; never inside site-packages."""
    return (Path(__file__).resolve().parents[2] / ".git").exists()


def finite_json(obj):
    """``obj`` with every non-finite float replaced by None (JSON has no NaN / Infinity)."""
    if type(obj).__module__ == "numpy" and hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def dumps_json(obj, indent: int | None = 2, **kw) -> str:
    """Strict JSON (``null`` for a non-finite number, never ``NaN`` / ``Infinity`` literals)."""
    return json.dumps(finite_json(obj), indent=indent, allow_nan=False, **kw)
