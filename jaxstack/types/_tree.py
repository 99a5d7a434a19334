"""L0: the pytree dataclass recipe used for every data type (cf. jax_md/dataclasses.py).

A design is a frozen dataclass whose leaves are scalars (one design point) or arrays
with a leading batch axis (a batch of points). Every leaf carries its SI unit in the
field metadata so that YAML keys can be checked for the right unit suffix.
"""

import dataclasses
from typing import Any

import jax

from . import domains

__all__ = ["pytree", "leaf", "fields", "unit_of", "domain_of", "replace"]


def pytree(cls):
    """Frozen, keyword-only dataclass registered as a JAX pytree (all fields leaves)."""
    cls = dataclasses.dataclass(frozen=True, kw_only=True)(cls)
    return jax.tree_util.register_dataclass(cls)


def leaf(unit: str = "1", doc: str = "", default: Any = dataclasses.MISSING, domain: str | None = None):
    """A numeric leaf with its SI unit (``"1"`` = dimensionless, ``"enum"`` = coded) and its
    physical domain (``domains.parse`` spec, e.g. ``"(0,1]"``; every design leaf has one)."""
    md = {"unit": unit, "doc": doc, "domain": None if domain is None else domains.parse(domain)}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=md)
    return dataclasses.field(default=default, metadata=md)


def fields(cls_or_obj):
    return dataclasses.fields(cls_or_obj)


def unit_of(cls_or_obj, name: str) -> str:
    for f in dataclasses.fields(cls_or_obj):
        if f.name == name:
            return f.metadata.get("unit", "1")
    raise KeyError(name)


def domain_of(cls_or_obj, name: str):
    """The declared ``domains.Domain`` of field ``name`` (None for outputs such as Metrics)."""
    for f in dataclasses.fields(cls_or_obj):
        if f.name == name:
            return f.metadata.get("domain")
    raise KeyError(name)


replace = dataclasses.replace
