"""L5: strict YAML reading: one-line errors for unreadable, oversized, non-UTF-8, malformed or
too deeply nested files, and no key given twice in one mapping. Only a ``yaml.SafeLoader``
subclass is used. ``io`` re-exports everything here.
"""

import re
from pathlib import Path

import yaml

from .files import ConfigError

__all__ = ["MAX_YAML_BYTES", "MAX_YAML_DEPTH", "read_text", "load_yaml"]

MAX_YAML_BYTES = 16 * 2**20   # a design or space file is a few kB; anything this large is a mistake
MAX_YAML_DEPTH = 32           # the deepest legal file nests 5 levels


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, f"unhashable key {key!r}",
                                                        key_node.start_mark) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' given twice (line {seen[key] + 1} and line "
                    f"{key_node.start_mark.line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


# YAML 1.1 (PyYAML) reads 1e30 or 5e-3 (no dot) as strings; every user writes them as numbers
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _depth(x, n: int = 0) -> int:
    if n > MAX_YAML_DEPTH:
        return n
    if isinstance(x, dict):
        return max((_depth(v, n + 1) for v in x.values()), default=n + 1)
    if isinstance(x, list):
        return max((_depth(v, n + 1) for v in x), default=n + 1)
    return n


def read_text(path, what: str = "file") -> str:
    """UTF-8 text of ``path`` or a one-line ConfigError (missing, a directory, too big, not UTF-8)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: {what} of {path.stat().st_size} bytes; allowed: at most {MAX_YAML_BYTES}")
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what} ({e.strerror})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); allowed: a UTF-8 {what}") from None


def load_yaml(path) -> dict:
    path = Path(path)
    text = read_text(path, "YAML file")
    try:
        data = yaml.load(text, Loader=_StrictLoader)   # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{at}: {what}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply; allowed: at most {MAX_YAML_DEPTH} levels") \
            from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    if _depth(data) > MAX_YAML_DEPTH:
        raise ConfigError(f"{path}: nested too deeply; allowed: at most {MAX_YAML_DEPTH} levels")
    return data
