"""Every input checked against its physical domain (issue 18).

A table of malformed inputs through every entry point (design YAML, ``eval`` flags,
``--set``, Hugging Face config.json, space YAML, output directories, checkpoints): each
must exit with code 2 and a one-line message naming the key and what is allowed, before
anything is compiled. The leaf cases are generated from the declared domains of every
design leaf, the value chosen by hand per domain kind (not by the code under test).
"""

import dataclasses
import json

import jax
import numpy as np
import pytest

from jaxstack.cli import main
from jaxstack.edges import io
from jaxstack.types import domains, units
from jaxstack.types._tree import fields
from jaxstack.types.design import Design

EVAL = ["eval", "--hardware", "b200", "--fabric", "nvlink-b200x8", "--model", "llama-3-70b", "--tp", "8",
        "--batch", "64", "--input-len", "1024", "--output-len", "1024"]
BASE = ("hardware: b200\nfabric: nvlink-b200x8\nmodel: llama-3-70b\n"
        "request: {batch: 4, input_len: 128, output_len: 128}\nmapping: {tp: 8}\n")
SPACE = ("version: 1\nbase: {hardware: b200, fabric: nvlink-b200x8, model: llama-3-8b,\n"
         "       request: {batch: 8, input_len: 128, output_len: 128}, mapping: {tp: 8}}\n")
HF = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
      "intermediate_size": 14336, "vocab_size": 128256, "torch_dtype": "bfloat16"}


def _leaves(cls=Design, prefix=()):
    for f in fields(cls):
        if dataclasses.is_dataclass(f.type):
            yield from _leaves(f.type, prefix + (f.name,))
        else:
            yield prefix + (f.name,), f.metadata


def _bad_values(dom: domains.Domain) -> list:
    """Hand-picked values outside each kind of domain (never derived from ``contains``)."""
    if dom.choices is not None:
        return [max(dom.choices) + 1, -1, 0.5]
    out = [dom.lo - 1 if not dom.lo_open else dom.lo, 1e30]
    if dom.integer:
        out.append(dom.lo + 1.5)
    if dom.hi == 1:
        out.append(1.5)
    return out


def _key(path, md) -> str:
    unit = md["unit"]
    suffix = next(iter(units.SUFFIXES[unit])) if unit in units.SUFFIXES else None
    return ".".join(path) + (f"_{suffix}" if suffix else "")


LEAF_CASES = [(_key(p, md), v) for p, md in _leaves() for v in _bad_values(md["domain"])]


def test_batch_is_optional_outside_the_static_regime():
    """Offline, online and concurrency choose their own running batch: no request.batch needed."""
    from jaxstack.edges.io import design_from_dict

    base = {"hardware": "b200", "fabric": "nvlink-b200x8", "model": "llama-3-70b", "mapping": {"tp": 8},
            "request": {"input_len": 128, "output_len": 128}}
    for serving in ({"regime": 1}, {"regime": 2, "arrival_rate": 1.0}, {"regime": 3, "concurrency": 8}):
        assert design_from_dict({**base, "serving": serving}).serving.regime == serving["regime"]
    assert design_from_dict({**base, "engine": "trtllm-throughput"}).serving.regime == 1
    assert design_from_dict({**base, "overrides": {"request.batch": 4}}).request.batch == 4


def test_every_design_leaf_declares_a_domain():
    missing = [".".join(p) for p, md in _leaves() if md.get("domain") is None]
    assert not missing, missing
    assert len(LEAF_CASES) >= 150


@pytest.mark.parametrize("key,value", LEAF_CASES, ids=[f"{k}={v}" for k, v in LEAF_CASES])
def test_set_outside_domain_is_an_input_error(key, value, capsys):
    assert main(EVAL + ["--set", f"{key}={value!r}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"key '{key}'" in err and "allowed" in err, err


def _design_file(tmp_path, text, name="d.yaml", mode="w"):
    f = tmp_path / name
    f.write_bytes(text) if isinstance(text, bytes) else f.write_text(text)
    return str(f)


DESIGN_CASES = [  # (YAML text, words the one-line message must contain)
    (BASE.replace("batch: 4", "batch: 0"), ["request.batch", "allowed", ">= 1"]),
    (BASE.replace("batch: 4", "batch: -4"), ["request.batch", "allowed"]),
    (BASE.replace("batch: 4", "batch: 2.5"), ["request.batch", "integer"]),
    (BASE.replace("batch: 4", "batch: 1e30"), ["request.batch", "too large"]),
    (BASE.replace("batch: 4", "batch: " + "9" * 400), ["request.batch", "too large"]),
    (BASE.replace("batch: 4", "batch: .nan"), ["request.batch", "finite"]),
    (BASE.replace("batch: 4", "batch: '4'"), ["request.batch", "expected a number"]),
    (BASE.replace("batch: 4", "batch: true"), ["request.batch", "expected a number"]),
    (BASE.replace("input_len: 128", "input_len: 0"), ["request.input_len", "allowed"]),
    (BASE.replace("output_len: 128", "output_len: -3"), ["request.output_len", "allowed"]),
    (BASE.replace("output_len: 128", "output_len: 12.5"), ["request.output_len", "integer"]),
    (BASE.replace("{tp: 8}", "{tp: 0}"), ["mapping.tp", "allowed"]),
    (BASE.replace("{tp: 8}", "{tp: 2.5}"), ["mapping.tp", "integer"]),
    (BASE.replace("{tp: 8}", "{tp: 1e9}"), ["mapping.tp", "too large"]),
    (BASE.replace("{tp: 8}", "{tp: 8, pp: 0}"), ["mapping.pp", "allowed"]),
    (BASE.replace("{tp: 8}", "{tp: 8, dp: 0}"), ["mapping.dp", "allowed"]),
    (BASE.replace("{tp: 8}", "{tp: 8, fsdp: 2}"), ["mapping.fsdp", "one of 0, 1"]),
    (BASE.replace("{tp: 8}", "{tp: 8, overlap: -1}"), ["mapping.overlap", "one of 0, 1"]),
    (BASE.replace("{tp: 8}", "{tp: 8, overlap: 5}"), ["mapping.overlap", "one of 0, 1"]),
    (BASE.replace("{tp: 8}", "{tp: 8, micro_batches: -1}"), ["mapping.micro_batches", "allowed"]),
    (BASE.replace("{tp: 8}", "{tp: 8, micro_batches: 1.5}"), ["mapping.micro_batches", "integer"]),
    (BASE.replace("{tp: 8}", "{tp: 8, moe_tp_to_ep: 3}"), ["mapping.moe_tp_to_ep", "one of 0, 1"]),
    (BASE.replace("{tp: 8}", "{tq: 8}"), ["mapping.tq", "allowed"]),
    (BASE.replace("{tp: 8}", "8"), ["mapping", "expected a mapping"]),
    (BASE.replace("{tp: 8}", "[8]"), ["mapping", "expected a mapping"]),
    (BASE.replace("request: {batch: 4, input_len: 128, output_len: 128}", "request: fast"),
     ["request", "expected a mapping"]),
    (BASE.replace("request: {batch: 4, input_len: 128, output_len: 128}", "request: [4, 128]"),
     ["request", "expected a mapping"]),
    (BASE.replace("request: {batch: 4, input_len: 128, output_len: 128}", "request: 4"),
     ["request", "expected a mapping"]),
    (BASE.replace("request: {batch: 4, input_len: 128, output_len: 128}\n", ""), ["request", "missing keys"]),
    (BASE.replace("request: {batch: 4, input_len: 128, output_len: 128}", "request: {batch: 4, input_len: 128}"),
     ["request", "missing keys: output_len"]),
    (BASE.replace("request: {batch: 4, input_len: 128, output_len: 128}", "request: {input_len: 128, output_len: 128}"),
     ["request", "missing keys: batch", "static regime"]),
    (BASE + "overrides: fast\n", ["overrides", "expected a mapping"]),
    (BASE + "overrides: [1, 2]\n", ["overrides", "expected a mapping"]),
    (BASE + "overrides: {dram.efficiency: -0.5}\n", ["dram.efficiency", "(0, 1]"]),
    (BASE + "overrides: {dram.efficiency: 0}\n", ["dram.efficiency", "(0, 1]"]),
    (BASE + "overrides: {dram.efficiency: 5}\n", ["dram.efficiency", "(0, 1]"]),
    (BASE + "overrides: {chip.clock_GHz: 0}\n", ["chip.clock_GHz", "> 0"]),
    (BASE + "overrides: {chip.clock_GHz: -1}\n", ["chip.clock_GHz", "> 0"]),
    (BASE + "overrides: {chip.clock_GHz: 1e30}\n", ["chip.clock_GHz", "too large"]),
    (BASE + "overrides: {fabric.l1.link_bandwidth_GBps: 0}\n", ["fabric.l1.link_bandwidth_GBps", "> 0"]),
    (BASE + "overrides: {fabric.l1.kind: 17}\n", ["fabric.l1.kind", "one of"]),
    (BASE + "overrides: {fabric.l1.kind: 2.5}\n", ["fabric.l1.kind", "one of"]),
    (BASE + "overrides: {fabric.l1.kind: -1}\n", ["fabric.l1.kind", "one of"]),
    (BASE + "overrides: {fabric.l1.kind: hypercube}\n", ["fabric.l1.kind", "not one of"]),
    (BASE + "overrides: {fabric.l1.size: 0}\n", ["fabric.l1.size", ">= 1"]),
    (BASE + "overrides: {model.num_hidden_layers: 0}\n", ["model.num_hidden_layers", ">= 1"]),
    (BASE + "overrides: {model.hidden_size: 0}\n", ["model.hidden_size", ">= 1"]),
    (BASE + "overrides: {model.num_attention_heads: 0}\n", ["model.num_attention_heads", ">= 1"]),
    (BASE + "overrides: {model.num_key_value_heads: 0}\n", ["model.num_key_value_heads", ">= 1"]),
    (BASE + "overrides: {model.num_key_value_heads: 7}\n", ["model.num_key_value_heads", "divisor of 64"]),
    (BASE + "overrides: {model.weight_bytes: 0}\n", ["model.weight_bytes", "> 0"]),
    (BASE + "overrides: {model.moe_imbalance: 0.5}\n", ["model.moe_imbalance", ">= 1"]),
    (BASE + "overrides: {chip.tdp_W: 0}\n", ["chip.tdp_W", "> 0"]),
    (BASE + "overrides: {chip.static_power_W: 2000}\n", ["chip.static_power", "static_power < tdp"]),
    (BASE + "overrides: {dram.connected_layers: 2}\n", ["dram.connected_layers", "total_layers"]),
    (BASE + "overrides: {dram.t_rfc_ns: 3000}\n", ["dram.t_rfc", "t_rfc < t_refi / 2"]),
    (BASE + "overrides: {fabric.l1.kind: torus2d, fabric.l1.dim_x: 3}\n", ["fabric.l1.dim_x", "dim_x * dim_y"]),
    (BASE + "overrides: {model.n_routed_experts: 8}\n", ["model.num_experts_per_tok", "n_routed_experts"]),
    (BASE + "overrides: {model.first_k_dense_replace: 99}\n", ["model.first_k_dense_replace", "num_hidden_layers"]),
    (BASE + "overrides: {dram.usable_fraction: 1.2}\n", ["dram.usable_fraction", "(0, 1]"]),
    (BASE + "overrides: {thermal.ambient_C: -300}\n", ["thermal.ambient_C", "-273.15"]),
    (BASE + "overrides: {dram.bogus: 1}\n", ["dram.bogus", "allowed"]),
    (BASE + "overrides: {dram.efficiency: [0.5]}\n", ["dram.efficiency", "expected a number"]),
    (BASE + "request: {batch: 8, input_len: 128, output_len: 128}\n", ["request", "given twice"]),
    (BASE.replace("batch: 4,", "batch: 4, batch: 8,"), ["batch", "given twice"]),
    (BASE.replace("hardware: b200", "hardware: [b200]"), ["hardware", "preset name"]),
    (BASE.replace("hardware: b200", "hardware: 7"), ["hardware", "preset name"]),
    (BASE.replace("hardware: b200", "hardware: ../fabric/nvlink-b200x8"), ["unknown hardware preset", "available"]),
    (BASE.replace("model: llama-3-70b", "model: {hidden: 1}"), ["model", "preset name"]),
    (BASE + "colour: blue\n", ["colour", "allowed"]),
    ("- just\n- a list\n", ["top level must be a mapping"]),
    ("hardware: b200\n  fabric: [\n", ["invalid YAML", "line"]),
    ("a: " + "[" * 3000 + "]" * 3000 + "\n", ["nested too deeply"]),
    (b"\xff\xfeh\x00a\x00r\x00", ["not UTF-8"]),
    (b"hardware: b\xe9200\n", ["not UTF-8"]),
]


@pytest.mark.parametrize("text,words", DESIGN_CASES, ids=range(len(DESIGN_CASES)))
def test_design_yaml_errors(text, words, tmp_path, capsys):
    assert main(["eval", _design_file(tmp_path, text)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("jaxstack: error:"), err
    for w in words:
        assert w in err, (w, err)


FLAG_CASES = [
    (["--tp", "-1"], ["mapping.tp", ">= 1"]), (["--tp", "0"], ["mapping.tp", ">= 1"]),
    (["--batch", "0"], ["request.batch", ">= 1"]), (["--batch", "-4"], ["request.batch", ">= 1"]),
    (["--input-len", "0"], ["request.input_len", ">= 1"]), (["--output-len", "-1"], ["request.output_len", ">= 1"]),
    (["--pp", "0"], ["mapping.pp", ">= 1"]), (["--dp", "0"], ["mapping.dp", ">= 1"]),
    (["--fsdp", "2"], ["mapping.fsdp", "one of 0, 1"]), (["--overlap", "5"], ["mapping.overlap", "one of 0, 1"]),
    (["--micro-batches", "-1"], ["mapping.micro_batches", ">= 0"]),
    (["--set", "dram.efficiency"], ["--set", "PATH=VALUE"]),
    (["--set", "dram.efficiency=fast"], ["dram.efficiency", "expected a number"]),
    (["--set", "dram.efficiency=nan"], ["dram.efficiency", "expected a number"]),
    (["--set", "dram.efficiency=1e400"], ["dram.efficiency", "finite"]),
    (["--set", "dram=1"], ["dram", "needs a field"]),
    (["--set", "nosuch.leaf=1"], ["nosuch.leaf", "unknown section"]),
    (["--set", "fabric.l9.size=1"], ["fabric.l9.size", "sub-section"]),
    (["--set", "chip.clock=1"], ["chip.clock", "unit suffix"]),
    (["--set", "chip.clock_GBps=1"], ["chip.clock_GBps", "wrong unit suffix"]),
    (["--hardware", "nope"], ["unknown hardware preset", "available"]),
    (["--fabric", "nope"], ["unknown fabric preset", "available"]),
    (["--model", "nope"], ["unknown model preset", "available", "config.json"]),
    (["--model", "openai/gpt-oss-120b"], ["unknown model preset", "gpt-oss-120b,",
                                          "huggingface-cli download openai/gpt-oss-120b config.json"]),
]


@pytest.mark.parametrize("flags,words", FLAG_CASES, ids=[" ".join(f) for f, _ in FLAG_CASES])
def test_flag_errors(flags, words, capsys):
    assert main(EVAL + flags) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    for w in words:
        assert w in err, (w, err)


HF_CASES = [
    ({**HF, "hidden_size": float("nan")}, ["hidden_size", "finite"]),
    ({**HF, "num_attention_heads": 0}, ["num_attention_heads", ">= 1"]),
    ({**HF, "hidden_size": "4096"}, ["hidden_size", "expected a number"]),
    ({**HF, "hidden_size": None}, ["hidden_size", "required"]),
    ({**HF, "num_attention_heads": [32]}, ["num_attention_heads", "expected a number"]),
    ({**HF, "num_key_value_heads": 5}, ["num_key_value_heads", "divisor of 32"]),
    ({**HF, "num_hidden_layers": -2}, ["num_hidden_layers", ">= 1"]),
    ({**HF, "vocab_size": 1.5}, ["vocab_size", "integer"]),
    ({k: v for k, v in HF.items() if k != "vocab_size"}, ["vocab_size", "required"]),
    ([1, 2, 3], ["JSON object"]),
    ("not json {", ["cannot read Hugging Face config"]),
]


@pytest.mark.parametrize("cfg,words", HF_CASES, ids=range(len(HF_CASES)))
def test_hf_config_errors(cfg, words, tmp_path, capsys):
    f = tmp_path / "config.json"
    f.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    argv = ["eval", "--hardware", "b200", "--fabric", "nvlink-b200x8", "--model", str(f), "--tp", "8",
            "--batch", "4", "--input-len", "64", "--output-len", "64"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    for w in words:
        assert w in err, (w, err)


SPACE_CASES = [
    ("axes: {request.batch: {range: [1, 1000000000000], step: 1}}", ["step", "at most"]),
    ("axes: {request.batch: {range: [1, 2], step: 1e-12}}", ["step", "at most"]),
    ("axes: {request.batch: {range: [1, 1e308], step: 1e-300}}", ["step", "at most"]),
    ("axes: {request.batch: {range: [1, 16], count: 1000000000000}}", ["count", "allowed"]),
    ("axes: {request.batch: {range: [1, 16], count: 0}}", ["count", "allowed"]),
    ("axes: {request.batch: {range: [16, 1], count: 4}}", ["range", "lo <= hi"]),
    ("axes: {request.batch: {choices: []}}", ["choices", "empty"]),
    ("axes: {request.batch: {choices: [0, 8]}}", ["request.batch", ">= 1"]),
    ("axes: {request.batch: {choices: [2.5]}}", ["request.batch", "integer"]),
    ("axes: {dram.efficiency: {choices: [0.5, 1.5]}}", ["dram.efficiency", "(0, 1]"]),
    ("axes: {dram.efficiency: {range: [0.5, 1.5], count: 3}}", ["dram.efficiency", "(0, 1]"]),
    ("axes: {chip.clock_GHz: {choices: [0, 1]}}", ["chip.clock_GHz", "> 0"]),
    ("axes: {fabric.l1.kind: {choices: [ring, 9]}}", ["fabric.l1.kind", "one of"]),
    ("axes: {hardware: {choices: [b200, nope]}}", ["hardware", "available"]),
    ("axes: {request.batch: [1, 2]}", ["axes.request.batch", "expected a mapping"]),
    ("axes: {request.batch: {values: [1, 2]}}", ["values", "allowed"]),
    ("axes: {nosuch.leaf: {choices: [1]}}", ["nosuch.leaf", "unknown section"]),
    ("axes: [1, 2]", ["axes", "expected a mapping"]),
    ("mapping: {factorizations: 1099511627776}", ["mapping.factorizations", "allowed"]),
    ("mapping: {factorizations: 0}", ["mapping.factorizations", "allowed"]),
    ("mapping: {factorizations: 8, axes: [tp, xx]}", ["mapping.axes", "allowed"]),
    ("mapping: {factorizations: 8, fsdp: [0, 2]}", ["mapping.fsdp", "allowed"]),
    ("limits: {tpot_ms: {max: fast}}", ["limits.tpot_ms.max", "expected a finite number"]),
    ("limits: {nosuch: {max: 1}}", ["limits.nosuch", "allowed"]),
    ("pareto: [{a: 1}, {b: 2}]", ["pareto", "allowed"]),
    ("pareto: [[1], [2]]", ["pareto", "allowed"]),
    ("objective: speed", ["objective", "allowed"]),
    ("zip: [{request.input_len: [1, 2], request.output_len: [1]}]", ["zip[0]", "equal length"]),
    ("colour: blue", ["colour", "allowed"]),
    ("mapping: {factorizations: 16}", ["every point is infeasible", "factorizations: 8"]),
]


@pytest.mark.parametrize("extra,words", SPACE_CASES, ids=range(len(SPACE_CASES)))
def test_space_yaml_errors(extra, words, tmp_path, capsys):
    f = _design_file(tmp_path, SPACE + extra + "\n", "s.yaml")
    assert main(["sweep", f]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    for w in words:
        assert w in err, (w, err)


def test_space_version_and_base_errors(tmp_path, capsys):
    f = _design_file(tmp_path, SPACE.replace("version: 1", "version: 2"), "s.yaml")
    assert main(["sweep", f]) == 2 and "version" in capsys.readouterr().err
    f = _design_file(tmp_path, SPACE.replace("batch: 8", "batch: 0"), "s.yaml")
    assert main(["sweep", f]) == 2 and "request.batch" in capsys.readouterr().err


def test_output_places_checked_before_work(tmp_path, capsys):
    space = _design_file(tmp_path, SPACE + "axes: {request.batch: {choices: [1, 2]}}\n", "s.yaml")
    afile = tmp_path / "afile"
    afile.write_text("x")
    for cmd in (["sweep", space], ["search", space], ["optimize", space], ["validate"]):
        assert main(cmd + ["--out", str(afile)]) == 2
        assert "is a file" in capsys.readouterr().err
    assert main(["sweep", space, "--out", "/proc/no/such/dir"]) == 2
    assert "cannot create" in capsys.readouterr().err


def test_corrupt_checkpoint_is_an_input_error(tmp_path, capsys):
    space = _design_file(tmp_path, SPACE + "axes: {request.batch: {choices: [1, 2]}}\n", "s.yaml")
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.npz").write_bytes(b"garbage")
    from jaxstack.engines import sweep as sweep_mod
    from jaxstack.engines.space import load_space

    sp = load_space(space)
    (run / "manifest.json").write_text(json.dumps({"space_hash": sp.hash}))
    with pytest.raises(io.ConfigError, match="unreadable"):
        sweep_mod.resume_state(run, "", {"space_hash": sp.hash}, True, "sweep", sp)


def test_internal_error_is_one_line_and_debug_shows_traceback(monkeypatch, capsys):
    from jaxstack.cli import eval_cli

    def boom(args):
        raise RuntimeError("kaput")

    monkeypatch.setattr(eval_cli, "design_from_args", boom)
    assert main(EVAL) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: kaput" in err and "Traceback" not in err
    assert main(EVAL + ["--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_json_never_has_nan_literals():
    text = io.dumps_json({"a": float("nan"), "b": [np.float32("inf"), 1.0], "c": np.float64(2.0)})
    assert json.loads(text) == {"a": None, "b": [None, 1.0], "c": 2.0}


def test_domains_parse_and_describe():
    d = domains.parse("(0,1]")
    assert d.contains(1.0) and not d.contains(0.0) and not d.contains(float("nan"))
    assert d.describe() == "a number in (0, 1]"
    i = domains.parse("int>=1")
    assert i.contains(3.0) and not i.contains(2.5) and not i.contains(0.0) and not i.contains(2.0**25)
    assert domains.parse("{0,1}").describe() == "one of 0, 1"
    with pytest.raises(ValueError):
        domains.parse("positive")


def test_every_shipped_preset_satisfies_its_domains():
    from jaxstack.recipe import checks

    for hw in io.preset_names("hardware"):
        for fab in io.preset_names("fabric"):
            d = io.design_from_dict({"hardware": hw, "fabric": fab, "model": "llama-3-8b",
                                     "request": {"batch": 1, "input_len": 1, "output_len": 1}})
            checks.check_design(d)
    for m in io.preset_names("model"):
        io.design_from_dict({"hardware": "b200", "fabric": "nvlink-b200x8", "model": m,
                             "request": {"batch": 1, "input_len": 1, "output_len": 1}})


def test_leaf_values_round_to_integers():
    d = io.design_from_dict({"hardware": "b200", "fabric": "nvlink-b200x8", "model": "llama-3-8b",
                             "request": {"batch": 8.0, "input_len": 16, "output_len": 16}, "mapping": {"tp": 8.0}})
    assert float(d.request.batch) == 8 and float(d.mapping.tp) == 8
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda x: np.isfinite(x), d))


def test_closed_pipe_is_quiet():
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "jaxstack.cli", "presets", "--show", "b200"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()                                   # the reader leaves before the first line
    with p.stderr:
        err = p.stderr.read().decode()
    p.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_fit_and_record_refused_outside_a_source_checkout(monkeypatch, capsys):
    monkeypatch.setattr(io, "in_source_checkout", lambda: False)
    assert main(["validate", "--fit"]) == 2
    assert "source checkout" in capsys.readouterr().err
