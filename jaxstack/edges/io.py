"""L5: strict YAML / Hugging Face config loading into design pytrees.

Every loader validates eagerly, on the host, before anything is traced: an unknown key,
a missing key, a wrong unit suffix or an impossible value raises ``ConfigError`` naming
the file, the key path and the allowed values. Only ``yaml.safe_load`` is used.
"""

import dataclasses
import math
from pathlib import Path
from typing import Any

from ..types import units
from ..types._tree import domain_of, fields
from ..types.design import SECTIONS, Design
from ..types.hardware import Chip, Dram, Fabric, FabricLevel, Thermal, TopologyKind
from ..types.mapping import Mapping
from ..types.workload import REGIMES, Model, Request, Serving
from .files import (  # noqa: F401  (re-exported: io is where callers find them)
    ConfigError,
    atomic_writer,
    check_out_dir,
    dumps_json,
    finite_json,
    in_source_checkout,
    write_text_atomic,
)
from .yamlio import MAX_YAML_BYTES, MAX_YAML_DEPTH, _StrictLoader, load_yaml, read_text  # noqa: F401  (re-exported)

__all__ = [
    "ConfigError", "build", "load_yaml", "preset_names", "load_preset", "load_hf_config",
    "load_design", "design_from_dict", "resolve_path", "set_path", "get_path",
    "to_dict", "ENUMS", "DTYPE_BYTES", "DTYPE_KEYS",
]

PRESET_DIR = Path(__file__).parent.parent / "presets"
ENUMS = {("fabric", "kind"): {k.name: int(k) for k in TopologyKind}, ("serving", "regime"): REGIMES}
# bytes per element of a named dtype; block-scaled formats include their scales: NVFP4 = E2M1 +
# one FP8 E4M3 scale per 16 values (4.5 bit; NVIDIA, "Introducing NVFP4", 2025), MXFP4 = E2M1 +
# one E8M0 scale per 32 values (4.25 bit; OCP Microscaling Formats (MX) v1.0, 2023)
DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5, "int4": 0.5,
               "nvfp4": 0.5625, "mxfp4": 0.53125}
# model leaves that take a dtype name (YAML, --set, space choices, user data)
DTYPE_KEYS = {("model", k) for k in ("weight_bytes", "kv_bytes", "act_bytes", "gemm_act_bytes", "attn_bytes",
                                     "expert_weight_bytes")}
_NESTED = {"l1": FabricLevel, "l2": FabricLevel, "l3": FabricLevel}
_SECTION_CLS = {"chip": Chip, "dram": Dram, "fabric": Fabric, "thermal": Thermal,
                "model": Model, "request": Request, "mapping": Mapping, "serving": Serving}
MAPPING_DEFAULTS = {"tp": 1, "ep": 1, "sp": 1, "cp": 1, "dp": 1, "pp": 1, "fsdp": 0,
                    "moe_tp_to_ep": 0, "overlap": 0, "micro_batches": 0}
# HF models rarely state these; jaxstack's defaults (BF16 serving, balanced experts).
MODEL_DEFAULTS = {"weight_bytes": 2.0, "kv_bytes": 2.0, "act_bytes": 2.0, "moe_imbalance": 1.0}


def _err(where: str, path: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: key '{path}': {msg}")


def _number(value, where, path, section, name):
    if (section, name) in DTYPE_KEYS and isinstance(value, str):
        if value.lower() not in DTYPE_BYTES:
            raise _err(where, path, f"'{value}' is not a dtype; allowed: a number of bytes per element or one of "
                       f"{sorted(DTYPE_BYTES)}")
        return DTYPE_BYTES[value.lower()]
    enum = ENUMS.get((section, name))
    if enum is not None and isinstance(value, str):
        if value not in enum:
            raise _err(where, path, f"'{value}' is not one of {sorted(enum)}")
        return float(enum[value])
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _err(where, path, f"expected a number, got {_short(value)}")
    try:
        v = float(value)
    except OverflowError:
        raise _err(where, path, f"number too large ({len(str(value))} digits)") from None
    if not math.isfinite(v):
        raise _err(where, path, f"must be finite, got {value!r}")
    return v


def _short(value, n: int = 60) -> str:
    r = repr(value)
    return r if len(r) <= n else r[:n] + "..."


def check_domain(cls, name: str, v: float, where: str, path: str, raw=None) -> float:
    """``v`` (SI) inside the declared domain of field ``name`` of ``cls``, else ConfigError
    naming the key, the value and what is allowed. Integers come back rounded (8.0 -> 8)."""
    dom = domain_of(cls, name)
    if dom is None:
        return v
    v = dom.snap(v)
    if not dom.contains(v):
        shown = _short(raw if raw is not None else v)
        unit = _key_table(cls).get(name, "1")
        if dom.too_large(v):
            raise _err(where, path, f"{shown} is too large: the model runs in float32; allowed: at most "
                       f"{dom.hi:.12g}" + (f" {unit} (SI units)" if unit not in ("1", "enum") else ""))
        raise _err(where, path, f"{shown} is outside the domain of {name}; allowed: {dom.describe()}")
    return v


def _key_table(cls) -> dict[str, str]:
    return {f.name: f.metadata.get("unit", "1") for f in fields(cls) if f.name not in _NESTED}


def allowed_keys(cls) -> list[str]:
    out = []
    for f in fields(cls):
        if f.name in _NESTED:
            out.append(f.name)
            continue
        unit = f.metadata.get("unit", "1")
        if unit in units.SUFFIXES:
            out.append(f.name + "_{" + ",".join(units.SUFFIXES[unit]) + "}")
        else:
            out.append(f.name)
    return out


def parse_key(cls, key: str, where: str, path: str, section: str) -> tuple[str, float]:
    """Map a YAML key with unit suffix to (field name, factor to SI)."""
    table = _key_table(cls)
    try:
        name, suf = units.split_key(key, table)
    except KeyError:
        raise _err(where, path, f"unknown key; allowed: {', '.join(allowed_keys(cls))}") from None
    unit = table[name]
    if suf is None:
        if unit in units.SUFFIXES:
            raise _err(where, path, f"needs a unit suffix: {name}_{{{','.join(units.SUFFIXES[unit])}}}")
        return name, 1.0
    if unit not in units.SUFFIXES or suf not in units.SUFFIXES[unit]:
        allowed = ",".join(units.SUFFIXES.get(unit, {})) or "none (dimensionless)"
        raise _err(where, path, f"wrong unit suffix '{suf}' for {name} [{unit}]; allowed: {allowed}")
    return name, units.SUFFIXES[unit][suf]


def build(cls, data: dict, where: str, prefix: str = "", section: str = ""):
    """Build dataclass ``cls`` from ``data`` strictly (all keys known, none missing)."""
    if not isinstance(data, dict):
        raise _err(where, prefix or cls.__name__, f"expected a mapping, got {data!r}")
    section = section or prefix.split(".")[0]
    values: dict[str, Any] = {}
    for key, val in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key in _NESTED and any(f.name == key for f in fields(cls)):
            values[key] = build(_NESTED[key], val, where, path, section)
            continue
        name, factor = parse_key(cls, str(key), where, path, section)
        if name in values:
            raise _err(where, path, f"'{name}' given twice")
        values[name] = check_domain(cls, name, _number(val, where, path, section, name) * factor, where, path, val)
    missing = [f.name for f in fields(cls) if f.name not in values and f.default is dataclasses.MISSING]
    if missing:
        raise _err(where, prefix or cls.__name__, f"missing keys: {', '.join(missing)}")
    return cls(**values)


def to_dict(obj) -> dict:
    """SI dict of a dataclass (nested), for JSON output and round trips."""
    out = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = to_dict(v) if dataclasses.is_dataclass(v) else float(v)
    return out


# ---------------------------------------------------------------- presets
def preset_names(kind: str) -> list[str]:
    return sorted(p.stem for p in (PRESET_DIR / kind).glob("*.yaml"))


def _preset_file(kind: str, name: str) -> Path:
    p = PRESET_DIR / kind / f"{name}.yaml"
    if name not in preset_names(kind):
        hint = ""
        if kind == "model":    # a Hugging Face id: jaxstack reads a downloaded config.json, it never fetches
            hint = (" or the path of a Hugging Face config.json" + (
                f" (download it first, e.g. huggingface-cli download {name} config.json --local-dir DIR)"
                if "/" in name else ""))
        raise ConfigError(f"unknown {kind} preset '{name}'; available: {', '.join(preset_names(kind))}{hint}")
    return p


def load_preset(kind: str, name: str) -> dict:
    """Return the sections of a preset as built dataclasses (plus 'source')."""
    if kind == "model" and (name.endswith(".json") or Path(name).is_file()):
        return {"model": load_hf_config(name), "source": str(name)}
    path = _preset_file(kind, name)
    data = load_yaml(path)
    where = str(path)
    if "source" not in data:
        raise _err(where, "source", "every preset needs a 'source:' line")
    expected = {"hardware": ("chip", "dram", "thermal"), "fabric": ("fabric",), "model": ("model",),
                "engine": ("serving",)}[kind]
    out: dict[str, Any] = {"source": data.pop("source")}
    data.pop("description", None)
    meta = {"hardware": "family", "engine": "software"}.get(kind)     # calibration.py reads these
    if meta in data and not isinstance(data.pop(meta), str):
        raise _err(where, meta, "expected a name")
    for key in data:
        if key not in expected:
            raise _err(where, key, f"unknown section; allowed: source, description, {', '.join(expected)}"
                       + (f", {meta}" if meta else ""))
    for sec in expected:
        if sec not in data:
            raise _err(where, sec, "missing section")
        body = dict(data[sec])
        if sec == "model":
            body = {**MODEL_DEFAULTS, **body}
        out[sec] = build(_SECTION_CLS[sec], body, where, sec)
    return out


def load_hf_config(path) -> Model:
    """A Model from a Hugging Face ``config.json`` (``hf.py``)."""
    from .hf import load_hf_config as _load

    return _load(path)


# ---------------------------------------------------------------- dotted paths
def resolve_path(path: str, where: str = "<design>") -> tuple[tuple[str, ...], str, float]:
    """``fabric.l1.link_bandwidth_GBps`` -> (('fabric','l1','link_bandwidth'), 'B/s', 1e9)."""
    parts = path.split(".")
    if parts[0] not in SECTIONS:
        raise _err(where, path, f"unknown section '{parts[0]}'; allowed: {', '.join(SECTIONS)}")
    cls = _SECTION_CLS[parts[0]]
    names = [parts[0]]
    for p in parts[1:-1]:
        if p not in _NESTED or not any(f.name == p for f in fields(cls)):
            raise _err(where, path, f"'{p}' is not a sub-section of {names[-1]}")
        cls = _NESTED[p]
        names.append(p)
    if len(parts) < 2:
        raise _err(where, path, "needs a field, e.g. dram.total_layers")
    name, factor = parse_key(cls, parts[-1], where, path, parts[0])
    return tuple(names + [name]), _key_table(cls)[name], factor


def get_path(obj, names):
    for n in names:
        obj = getattr(obj, n)
    return obj


def set_path(obj, names, value):
    if len(names) == 1:
        return dataclasses.replace(obj, **{names[0]: value})
    return dataclasses.replace(obj, **{names[0]: set_path(getattr(obj, names[0]), names[1:], value)})


def leaf_class(names: tuple[str, ...]):
    """The dataclass that holds the leaf at ``names`` (('fabric', 'l1', 'size') -> FabricLevel)."""
    return _NESTED[names[-2]] if len(names) > 2 else _SECTION_CLS[names[0]]


def convert_value(path: str, value, where: str = "<design>") -> tuple[tuple[str, ...], float]:
    names, _unit, factor = resolve_path(path, where)
    v = _number(value, where, path, names[0], names[-1]) * factor
    return names, check_domain(leaf_class(names), names[-1], v, where, path, value)


# ---------------------------------------------------------------- designs
_DESIGN_KEYS = ("hardware", "fabric", "model", "engine", "request", "mapping", "serving", "overrides")


CALIBRATION_DIR = PRESET_DIR / "calibration"


_USER_CALIBRATION: list = []      # (path, fitted {dotted path: value}, applies_to or None)


def load_user_calibration(path) -> tuple:
    """A ``jaxstack calibrate`` file: (path, fitted constants, hardware presets it applies to
    or None for all); every key resolved and every value checked against its domain."""
    where = str(path)
    data = load_yaml(path)
    allowed = {"source", "data", "split", "error", "fitted", "applies_to"}
    for key in data:
        if key not in allowed:
            raise _err(where, str(key), f"unknown key; allowed: {', '.join(sorted(allowed))}")
    fitted = data.get("fitted")
    if not isinstance(fitted, dict) or not fitted:
        raise _err(where, "fitted", "required: a mapping of dotted leaf paths to values")
    for key, value in fitted.items():
        convert_value(str(key), value, where)
    scope = data.get("applies_to")
    if scope is not None and (not isinstance(scope, list) or not all(isinstance(x, str) for x in scope)):
        raise _err(where, "applies_to", "expected a list of hardware preset names")
    return where, fitted, scope


def use_calibration(path) -> None:
    """Apply a user calibration file to every design built from now on (``--calibration``);
    None clears it."""
    _USER_CALIBRATION[:] = [] if path is None else [load_user_calibration(path)]


def design_from_dict(data: dict, where: str = "<design>", calibrated: bool = True) -> Design:
    """Design from {hardware, fabric, model, request, mapping, overrides} (presets by name).

    With ``calibrated`` (default) the calibration model's constants for the hardware preset
    and the engine's software stack (``calibration.py``, ``presets/calibration/joint.yaml``)
    are applied, or instead a user calibration file (``--calibration``) that applies to the
    hardware; the design's own overrides come last."""
    for key in data:
        if key not in _DESIGN_KEYS:
            raise _err(where, key, f"unknown key; allowed: {', '.join(_DESIGN_KEYS)}")
    for key in ("hardware", "fabric", "model", "request"):
        if key not in data:
            raise _err(where, key, "required")
    for key in ("hardware", "fabric", "model"):
        if not isinstance(data[key], str):
            raise _err(where, key, f"expected a preset name, got {_short(data[key])}; allowed: "
                       + ", ".join(preset_names(key)) + (" or a config.json path" if key == "model" else ""))
    hw = load_preset("hardware", data["hardware"])
    fab = load_preset("fabric", data["fabric"])
    model = load_preset("model", data["model"])
    # request.batch is the static regime's; offline, online and concurrency choose their own running batch
    no_batch = isinstance(data["request"], dict) and "batch" not in data["request"]
    request = build(Request, {**data["request"], "batch": 1} if no_batch else data["request"], where, "request")
    user_mapping = data.get("mapping") or {}
    if not isinstance(user_mapping, dict):
        raise _err(where, "mapping", f"expected a mapping of degrees, got {_short(user_mapping)}")
    mapping = build(Mapping, {**MAPPING_DEFAULTS, **user_mapping}, where, "mapping")
    user_serving = data.get("serving") or {}
    if not isinstance(user_serving, dict):
        raise _err(where, "serving", f"expected a mapping (regime, max_num_seqs, ...), got {_short(user_serving)}")
    serving = build(Serving, user_serving, where, "serving")
    if data.get("engine") is not None:          # an engine preset's serving values, the design's own on top
        if not isinstance(data["engine"], str):
            raise _err(where, "engine", f"expected an engine preset name; allowed: {', '.join(preset_names('engine'))}")
        engine = load_preset("engine", data["engine"])["serving"]
        given = {parse_key(Serving, str(k), where, f"serving.{k}", "serving")[0] for k in user_serving}
        serving = Serving(**{f.name: getattr(serving if f.name in given else engine, f.name) for f in fields(Serving)})
    d = Design(chip=hw["chip"], dram=hw["dram"], fabric=fab["fabric"], thermal=hw["thermal"],
               model=model["model"], request=request, mapping=mapping, serving=serving)
    from ..engines.calibration import facts

    for path, value in facts(str(data["hardware"]), data.get("engine")).items():   # the stack's sourced facts
        d = set_path(d, *convert_value(str(path), value, where))
    if calibrated:
        # a user calibration (``jaxstack calibrate``: fitted on raw presets) replaces the shipped
        # calibration model for the hardware it applies to
        mine = [(w, f) for w, f, scope in _USER_CALIBRATION if scope is None or data["hardware"] in scope]
        if not mine:
            from ..engines.calibration import apply

            d = apply(d, str(data["hardware"]), data.get("engine"))
        for cal_where, fitted in mine:
            for path, value in fitted.items():
                d = set_path(d, *convert_value(str(path), value, cal_where))
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise _err(where, "overrides", "must be a mapping of dotted paths to numbers")
    for path, value in overrides.items():
        names, v = convert_value(str(path), value, where)
        d = set_path(d, names, v)
    if no_batch and "request.batch" not in overrides and float(d.serving.regime) < 0.5:
        raise _err(where, "request", "missing keys: batch (the static regime's concurrent requests; the offline, "
                   "online and concurrency regimes choose their own running batch and need none)")
    from ..recipe.checks import check_design

    return check_design(d, where)


def load_design(path, calibrated: bool = True) -> Design:
    return design_from_dict(load_yaml(path), str(path), calibrated)
