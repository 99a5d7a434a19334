"""L0: the physical domain of every design leaf, declared next to its unit (``_tree.leaf``).

A domain is written as a short spec and parsed once at import:

==================  =====================================================
``">0"``            positive real
``">=0"``           non-negative real
``">=1"``           real, at least 1 (e.g. an imbalance factor)
``"(0,1]"``         a fraction that may reach 1 (an efficiency)
``"[0,1]"``         a fraction that may be 0 or 1
``">-273.15"``      a temperature in degC above absolute zero
``"int>=1"``        integer, at least 1 (counts, degrees, lengths)
``"int>=0"``        integer, at least 0 (0 = feature off)
``"{0,1}"``         a flag
``"{0,1,2,3,4,5}"`` an enumeration code (``TopologyKind``)
==================  =====================================================

Every domain also bounds the magnitude at ``MAX_MAGNITUDE`` (SI units): the model runs in
float32, and a value past that range only produces overflow, never an answer. Integer
domains stop at ``MAX_INT`` = 2^24, the largest range in which float32 holds every
integer exactly. Values are checked on the host, where they enter (``io``, ``space``),
never inside traced code.
"""

import dataclasses
import math
import re

__all__ = ["Domain", "parse", "MAX_MAGNITUDE", "MAX_INT"]

MAX_MAGNITUDE = 1e15   # SI; float32 products of a few such values stay below 3.4e38
MAX_INT = 2**24        # float32 represents every integer up to here exactly


@dataclasses.dataclass(frozen=True)
class Domain:
    lo: float = -MAX_MAGNITUDE
    hi: float = MAX_MAGNITUDE
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    choices: tuple[float, ...] | None = None
    spec: str = ""

    def contains(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        if self.choices is not None:
            return v in self.choices
        if self.integer and v != round(v):
            return False
        lo_ok = v > self.lo if self.lo_open else v >= self.lo
        hi_ok = v < self.hi if self.hi_open else v <= self.hi
        return lo_ok and hi_ok

    def describe(self) -> str:
        """What is allowed, in words a user reads in an error message."""
        if self.choices is not None:
            return "one of " + ", ".join(f"{c:g}" for c in self.choices)
        kind = "an integer" if self.integer else "a number"
        if self.hi in (MAX_MAGNITUDE, MAX_INT):     # the float32 cap: said only when exceeded
            return f"{kind} {'>' if self.lo_open else '>='} {self.lo:.12g}"
        return f"{kind} in {'(' if self.lo_open else '['}{self.lo:.12g}, {self.hi:.12g}{')' if self.hi_open else ']'}"

    def too_large(self, v: float) -> bool:
        """True if ``v`` fails only the float32 magnitude cap."""
        return math.isfinite(v) and self.hi in (MAX_MAGNITUDE, MAX_INT) and v > self.hi

    def snap(self, v: float) -> float:
        """``v`` rounded to an integer for integer domains (YAML 8.0 -> 8)."""
        return float(round(v)) if (self.integer or self.choices is not None) and abs(v - round(v)) < 1e-9 else v


_SPEC = re.compile(r"^(int)?(>=|>)(-?[0-9.e+]+)$")
_INTERVAL = re.compile(r"^([\[(])(-?[0-9.e+]+),(-?[0-9.e+]+)([\])])$")


def parse(spec: str) -> Domain:
    """``">0"``, ``"int>=1"``, ``"(0,1]"``, ``"{0,1}"`` -> ``Domain`` (see module docstring)."""
    s = spec.replace(" ", "")
    if s.startswith("{") and s.endswith("}"):
        return Domain(choices=tuple(float(x) for x in s[1:-1].split(",")), integer=True, spec=spec)
    m = _SPEC.match(s)
    if m:
        integer = m.group(1) is not None
        return Domain(lo=float(m.group(3)), lo_open=m.group(2) == ">", integer=integer,
                      hi=float(MAX_INT) if integer else MAX_MAGNITUDE, spec=spec)
    m = _INTERVAL.match(s)
    if m:
        return Domain(lo=float(m.group(2)), hi=float(m.group(3)), lo_open=m.group(1) == "(",
                      hi_open=m.group(4) == ")", spec=spec)
    raise ValueError(f"bad domain spec {spec!r}")
