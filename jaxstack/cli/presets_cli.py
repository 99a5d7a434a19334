"""L5: ``jaxstack presets`` — list the presets, or ``--show NAME`` every value of one with its
unit, domain, calibrated value and the source note written next to it in the preset file."""

import dataclasses
import re

from ..edges import io
from ..types import units
from ..types._tree import fields

__all__ = ["add_parser", "run", "preset_rows"]

_KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+):\s*([^#\n]*?)\s*(?:#\s?(.*))?$")
_COMMENT = re.compile(r"^\s*#\s?(.*)$")


def add_parser(sub):
    p = sub.add_parser("presets", help="list hardware, fabric and model presets (--show NAME: every value)")
    p.add_argument("--show", metavar="NAME", help="print every value of preset NAME with unit, domain and source")
    p.add_argument("--kind", choices=("hardware", "fabric", "model", "engine"),
                   help="with --show: the preset kind when a name exists in several")
    p.set_defaults(func=run)
    return p


def _notes(path) -> dict[str, str]:
    """{dotted key as written: trailing comment (with its continuation lines)} of a preset file."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last = None
    for line in io.read_text(path, "preset").splitlines():
        m = _KEY.match(line)
        if m and not line.lstrip().startswith("#"):
            indent, key, _val, note = len(m.group(1)), m.group(2), m.group(3), m.group(4)
            stack = [(i, k) for i, k in stack if i < indent]
            path_key = ".".join([k for _, k in stack] + [key])
            stack.append((indent, key))
            out[path_key] = (note or "").strip()
            last = path_key
            continue
        c = _COMMENT.match(line)
        if c and last is not None and out.get(last):
            out[last] += " " + c.group(1).strip()
        else:
            last = None
    return out


def preset_rows(kind: str, name: str) -> list[dict]:
    """One row per leaf of the preset's sections: key, value in the file's (or display) unit,
    SI unit, domain, calibrated value (if a fitted calibration changes it) and source note."""
    path = io._preset_file(kind, name)
    built = io.load_preset(kind, name)
    notes = _notes(path)
    calib = {}
    if kind == "hardware":   # the calibration model's constants for this GPU under vLLM (the default engine)
        from ..engines.calibration import constants, load_joint

        for key, value in constants(name, None, load_joint()).items():
            if not str(key).startswith("fabric."):
                names, v = io.convert_value(str(key), value)
                calib[".".join(names)] = (str(key), value)
    raw = io.load_yaml(path)
    rows = []

    def walk(obj, prefix, section_raw):
        for f in fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                walk(v, prefix + [f.name], (section_raw or {}).get(f.name) or {})
                continue
            unit, dom = f.metadata.get("unit", "1"), f.metadata.get("domain")
            written = next((k for k in (section_raw or {}) if k == f.name or str(k).startswith(f.name + "_")
                            and str(k)[len(f.name) + 1:] in units.SUFFIXES.get(unit, {})), None)
            if unit == "enum":      # the enum's own names (io.ENUMS: fabric kind, serving regime)
                names = {c: n for n, c in io.ENUMS.get((prefix[0], f.name), {}).items()}
                shown = names.get(int(round(float(v))), f"{float(v):g}")
            elif written is not None and written != f.name:
                suf = str(written)[len(f.name) + 1:]
                shown = f"{units.from_si(float(v), unit, suf):.6g} {suf}"
            elif unit in units.DISPLAY:
                shown = f"{units.from_si(float(v), unit, units.DISPLAY[unit]):.6g} {units.DISPLAY[unit]}"
            else:
                shown = f"{float(v):.6g}"
            dotted = ".".join(prefix + [f.name])
            key = ".".join(prefix + [str(written)]) if written is not None else dotted
            c = calib.get(dotted)
            rows.append({"key": dotted, "value": shown if written is not None else shown + " (default)",
                         "unit": unit, "domain": dom.describe() if dom else "",
                         "calibrated": f"{c[1]} ({c[0]})" if c else "", "source": notes.get(key, "")})

    for sec in {"hardware": ("chip", "dram", "thermal"), "fabric": ("fabric",), "model": ("model",),
                "engine": ("serving",)}[kind]:
        walk(built[sec], [sec], raw.get(sec) or {})
    return rows


def run(args) -> int:
    if not args.show:
        for kind in ("hardware", "fabric", "model", "engine"):
            print(f"{kind}:")
            for name in io.preset_names(kind):
                src = io.load_preset(kind, name)["source"]
                print(f"  {name:24s} {' '.join(str(src).split())[:90]}")
        print("\njaxstack presets --show NAME: every value with its unit, domain and source")
        return 0
    kinds = [k for k in ("hardware", "fabric", "model", "engine") if args.show in io.preset_names(k)]
    if args.kind:
        kinds = [k for k in kinds if k == args.kind]
    if not kinds:
        allowed = ", ".join(n for k in ("hardware", "fabric", "model", "engine") for n in io.preset_names(k))
        raise io.ConfigError(f"--show '{args.show}': unknown preset; allowed: {allowed}")
    kind = kinds[0]
    src = io.load_preset(kind, args.show)["source"]
    print(f"{kind} preset {args.show}  ({io._preset_file(kind, args.show)})")
    print(f"source: {' '.join(str(src).split())}\n")
    rows = preset_rows(kind, args.show)
    w = max(len(r["key"]) for r in rows)
    print(f"{'key':{w}s}  {'value':>22s}  {'SI unit':8s} {'domain':28s} note / source")
    for r in rows:
        note = r["source"] + (f" [calibrated: {r['calibrated']}]" if r["calibrated"] else "")
        print(f"{r['key']:{w}s}  {r['value']:>22s}  {r['unit']:8s} {r['domain']:28s} {note}".rstrip())
    if kind == "engine":     # the software stack's fitted constants (calibration model)
        from ..engines.calibration import SOFTWARE_FACTS, load_joint, software_of

        sw = software_of(args.show)
        fitted = ((load_joint() or {}).get("software") or {}).get(sw)
        print(f"\nsoftware stack '{sw}': " + (", ".join(f"{k} = {v:g}" for k, v in fitted.items())
                                             + " (fitted, jaxstack/presets/calibration/joint.yaml; applied "
                                             "to every calibrated design with this engine)" if fitted else
                                             "no fitted constants (raw hardware-preset values)"))
        if SOFTWARE_FACTS.get(sw):
            print(f"software stack '{sw}' facts: " + ", ".join(f"{k} = {v:g}" for k, v in SOFTWARE_FACTS[sw].items())
                  + " (sourced, never fitted: calibration.SOFTWARE_FACTS; set on every design of a GPU preset "
                  "with this engine, raw or calibrated)")
    print("\n(default) = not in the preset file: the neutral default of jaxstack/types/hardware.py / workload.py; "
          "[U] unsourced estimate, [D] derived (see the preset's source line)")
    return 0
