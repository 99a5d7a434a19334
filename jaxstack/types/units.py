"""L0: SI units inside, unit suffixes only at the YAML/CLI edge.

Each physical leaf declares its SI unit (``_tree.leaf(unit=...)``). A YAML key is the
field name plus one suffix from the closed table below for that unit, e.g.
``link_bandwidth_GBps: 900`` -> ``link_bandwidth = 9e11`` B/s. Decimal prefixes for
rates and sizes written in decimal (GB, GBps), binary prefixes only where the suffix
says so (KiB, MiB, GiB, TiB). A dimensionless field takes no suffix.
"""

__all__ = ["SUFFIXES", "to_si", "from_si", "split_key", "DISPLAY", "readable", "format_quantity"]

# unit -> {suffix: factor to SI}
SUFFIXES: dict[str, dict[str, float]] = {
    "B/s": {"Bps": 1.0, "MBps": 1e6, "GBps": 1e9, "TBps": 1e12},
    "B": {"B": 1.0, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
          "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30, "TiB": 2.0**40},
    "s": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9},
    "Hz": {"Hz": 1.0, "MHz": 1e6, "GHz": 1e9},
    "W": {"W": 1.0, "kW": 1e3},
    "J/bit": {"pJ_per_bit": 1e-12},
    "J/FLOP": {"pJ_per_flop": 1e-12},
    "m": {"um": 1e-6, "mm": 1e-3},
    "m2": {"mm2": 1e-6},
    "degC": {"C": 1.0},
    "K/W": {"K_per_W": 1.0},
    "FLOP/s": {"TFLOPS": 1e12, "GFLOPS": 1e9},
}

# preferred display suffix per unit for tables
DISPLAY: dict[str, str] = {
    "B/s": "GBps", "B": "GiB", "s": "us", "Hz": "GHz", "W": "W", "J/bit": "pJ_per_bit",
    "J/FLOP": "pJ_per_flop", "m": "um", "m2": "mm2", "degC": "C", "K/W": "K_per_W",
    "FLOP/s": "TFLOPS",
}


def to_si(value: float, unit: str, suffix: str) -> float:
    return float(value) * SUFFIXES[unit][suffix]


def from_si(value, unit: str, suffix: str):
    return value / SUFFIXES[unit][suffix]


def split_key(key: str, names_units: dict[str, str]) -> tuple[str, str | None]:
    """Split ``link_bandwidth_GBps`` into (``link_bandwidth``, ``GBps``).

    ``names_units`` maps field names to their unit. Returns (name, None) for a
    dimensionless field given without suffix. Raises KeyError with no match.
    """
    if key in names_units:
        return key, None
    for name, unit in names_units.items():
        if key.startswith(name + "_"):
            suf = key[len(name) + 1:]
            if unit in SUFFIXES:
                return name, suf
    raise KeyError(key)


# suffixes a person reads, smallest first (bytes in binary prefixes, rates in decimal ones)
_LADDER: dict[str, tuple[str, ...]] = {
    "B": ("B", "KiB", "MiB", "GiB", "TiB"), "B/s": ("Bps", "MBps", "GBps", "TBps"),
    "s": ("ns", "us", "ms", "s"), "Hz": ("Hz", "MHz", "GHz"), "W": ("W", "kW"),
    "FLOP/s": ("GFLOPS", "TFLOPS"),
}
_SHOW = {"Bps": "B/s", "MBps": "MB/s", "GBps": "GB/s", "TBps": "TB/s", "us": "µs", "pJ_per_bit": "pJ/bit",
         "pJ_per_flop": "pJ/FLOP", "mm2": "mm²", "C": "°C", "K_per_W": "K/W"}


def readable(value: float, unit: str) -> tuple[str, float]:
    """(suffix, SI per suffix unit) that shows ``value`` (SI) between 1 and 1000 where the unit
    has a ladder (``readable(2.5e-4 * 2**30, 'B') == ('MiB', 2**20)``); else ``DISPLAY``."""
    ladder = _LADDER.get(unit)
    if ladder is None or value == 0:
        suf = DISPLAY.get(unit)
        return (suf, SUFFIXES[unit][suf]) if suf else ("", 1.0)
    best = ladder[0]
    for suf in ladder:
        if abs(value) >= SUFFIXES[unit][suf]:
            best = suf
    return best, SUFFIXES[unit][best]


def format_quantity(value: float, unit: str, digits: int = 4) -> str:
    """``value`` (SI) as a person writes it: ``format_quantity(3.2e-4, 's') == '320 µs'``."""
    if value == 0:
        suf = DISPLAY.get(unit, "")
        return f"0 {_SHOW.get(suf, suf)}".rstrip()
    suf, per = readable(value, unit)
    return f"{value / per:.{digits}g} {_SHOW.get(suf, suf)}".rstrip()
