"""CLI smoke tests (in-process) and clear errors for bad input."""

import json

from jaxstack.cli import main

EVAL = ["eval", "--hardware", "b200", "--fabric", "nvlink-b200x8", "--model", "llama-3-70b", "--tp", "8",
        "--batch", "64", "--input-len", "1024", "--output-len", "1024"]


def test_eval_json(capsys):
    assert main(EVAL + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["feasible"] is True and out["reason_name"] == "ok"
    assert out["decode_tokens_per_s"] > 0 and out["tpot_s"] > 0


def test_eval_table_with_units(capsys):
    assert main(EVAL + ["--set", "fabric.l1.link_bandwidth_GBps=450"]) == 0
    out = capsys.readouterr().out
    assert "decode_tokens_per_s" in out and "tok/s" in out and "GiB" in out and "ms" in out


def test_eval_design_file(tmp_path, capsys):
    f = tmp_path / "d.yaml"
    f.write_text("hardware: h100-sxm\nfabric: nvlink-h100x8\nmodel: mixtral-8x7b\n"
                 "request: {batch: 32, input_len: 512, output_len: 128}\nmapping: {tp: 2, ep: 4}\n"
                 "overrides: {model.moe_imbalance: 1.4, dram.efficiency: 0.8}\n")
    assert main(["eval", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["feasible"] is True


def test_infeasible_point_reports_reason(capsys):
    assert main(EVAL[:-8] + ["--tp", "16", "--batch", "1", "--input-len", "8", "--output-len", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reason_name"] == "device_count" and "at most 8" in out["explanation"]
    assert main(EVAL[:-8] + ["--tp", "4", "--batch", "1", "--input-len", "8", "--output-len", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["feasible"] is True       # TP4 inside the 8-GPU box


def test_bad_inputs_name_key_and_allowed(capsys, tmp_path):
    assert main(EVAL + ["--set", "dram.bogus=1"]) == 2
    err = capsys.readouterr().err
    assert "dram.bogus" in err and "total_layers" in err
    assert main(EVAL + ["--set", "fabric.l1.link_bandwidth_ns=1"]) == 2
    assert "wrong unit suffix" in capsys.readouterr().err
    assert main(["eval", "--hardware", "nope", "--fabric", "nvlink-b200x8", "--model", "llama-3-70b",
                 "--batch", "1", "--input-len", "1", "--output-len", "1"]) == 2
    assert "available" in capsys.readouterr().err
    f = tmp_path / "bad.yaml"
    f.write_text("hardware: b200\nfabric: nvlink-b200x8\nmodel: llama-3-70b\nrequest: {batch: 1, inputlen: 3}\n")
    assert main(["eval", str(f)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "request.inputlen" in err and "input_len" in err


def test_presets_listing(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("b200", "h100-sxm", "mi325x", "stacked-3d", "deepseek-v3", "nvlink-b200x8", "stacked-256"):
        assert name in out


def test_presets_show_every_value_with_unit_domain_and_source(capsys):
    assert main(["presets", "--show", "b200"]) == 0
    out = capsys.readouterr().out
    assert "chip.clock" in out and "1.965 GHz" in out and "a number > 0" in out
    assert "MAMF 1745 / 2250 TF" in out                       # the note written next to the value
    assert "[calibrated:" in out and "(default)" in out
    assert main(["presets", "--show", "nvlink-b200x8"]) == 0
    assert "switch" in capsys.readouterr().out                # enum codes by name
    assert main(["presets", "--show", "nope"]) == 2
    # an engine preset names its software stack and that stack's fitted constants
    assert main(["presets", "--show", "trtllm-mlperf"]) == 0
    out = capsys.readouterr().out
    assert "software stack 'trtllm-mlperf': chip.op_overhead_us = " in out and "chip.moe_gemm_efficiency" in out
    assert "facts" not in out
    assert main(["presets", "--show", "sglang-offline"]) == 0
    assert "software stack 'sglang': no fitted constants" in capsys.readouterr().out
    assert main(["presets", "--show", "vllm-server"]) == 0          # and its sourced facts
    assert "software stack 'vllm' facts: fabric.two_stage_threshold_KiB = 256" in capsys.readouterr().out


def test_unit_formatting_helpers():
    from jaxstack.types import units

    assert units.format_quantity(2**18, "B") == "256 KiB"
    assert units.format_quantity(80 * 2**30, "B") == "80 GiB"
    assert units.format_quantity(3.2e-4, "s") == "320 µs"
    assert units.format_quantity(0.03, "s") == "30 ms"
    assert units.format_quantity(8e12, "B/s") == "8 TB/s"
    assert units.format_quantity(1.965e9, "Hz") == "1.965 GHz"
    assert units.format_quantity(0.0, "s") == "0 µs"
    assert units.readable(0.0, "s") == ("us", 1e-6)
    assert units.format_quantity(1e-12, "J/bit") == "1 pJ/bit"


def test_eval_design_file_prints_preset_names(tmp_path, capsys):
    f = tmp_path / "d.yaml"
    f.write_text("hardware: h100-sxm\nfabric: nvlink-h100x8\nmodel: llama-3-8b\n"
                 "request: {batch: 8, input_len: 128, output_len: 128}\nmapping: {tp: 8}\n")
    assert main(["eval", str(f)]) == 0
    out = capsys.readouterr().out
    assert "hardware=h100-sxm fabric=nvlink-h100x8 model=llama-3-8b" in out


def test_sweep_describe_names_mapping_degrees():
    import re
    from pathlib import Path

    from jaxstack.cli.sweep_cli import describe
    from jaxstack.engines.space import load_space

    text = describe(load_space(Path(__file__).resolve().parent.parent / "spaces" / "quickstart.yaml"))
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("mapping"))
    assert "(1, 1, 1" not in line and re.search(r"\[(tp|ep|sp|cp|dp|pp)\d", line), line


def test_search_pruned_share_shows_what_is_left():
    from jaxstack.cli.search_cli import _percent

    assert _percent(59 / 60) == "98.3 %"                 # was 98.3333333333 %
    assert _percent(1 - 3.3e-9) == "99.99999967 %" and _percent(1.0) == "100 %" and _percent(0.5) == "50 %"
