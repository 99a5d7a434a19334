"""Validation as a regression test: no set's error may rise 1.5 points above the record."""

import json

import numpy as np
import pytest

from jaxstack import io, validate
from jaxstack.cli import main
from jaxstack.validation import vllm

TOLERANCE_POINTS = 1.5


@pytest.fixture(scope="module")
def summary():
    rows = validate.run_sets()
    return rows, {e["set"]: e for e in validate.summarize(rows) if e["panel"] == "*"}


def test_errors_not_worse_than_recorded(summary):
    _, by_set = summary
    recorded = json.loads(validate.RECORDED.read_text())
    assert set(recorded) <= set(by_set), "a recorded set no longer runs"
    for name, rec in recorded.items():
        got = by_set[name]["all"]
        for key in ("mape_pct", "weighted_pct"):
            assert got[key] <= rec[key] + TOLERANCE_POINTS, f"{name} {key}: {got[key]:.2f} > {rec[key]:.2f} + 1.5"


def test_rows_are_complete_and_split(summary):
    rows, _ = summary
    for r in rows:
        assert r["measured"] > 0 and np.isfinite(r["predicted"]) and r["predicted"] > 0, r["case"]
        assert r["split"] in ("calibration", "holdout")
    for name in {r["set"] for r in rows}:
        splits = {r["split"] for r in rows if r["set"] == name}
        assert "holdout" in splits, f"{name}: every set keeps held-back cases"


def test_vllm_cases_describe_the_measurement():
    rows = vllm.cases()
    assert len(rows) == 21  # Llama BS 1..1024, DeepSeek BS 1..512 (CUDA graphs rows only)
    ds = [r for r in rows if r["panel"] == "deepseek-v3"]
    assert all(r["design"]["mapping"] == {"tp": 8, "moe_tp_to_ep": 1} for r in ds)
    d = io.design_from_dict(ds[0]["design"])
    assert float(d.model.weight_bytes) == 1.0 and float(d.request.input_len) == 1024


def test_calibration_is_global_and_sourced():
    for kind in ("hardware", "fabric"):
        for path in (io.CALIBRATION_DIR / kind).glob("*.yaml"):
            doc = io.load_yaml(path)
            assert "source" in doc and doc["split"], path
            fitted = io.load_calibration(kind, path.stem)
            assert 0 < len(fitted) <= 4, "a handful of global constants, never one per point"


def test_validate_cli(tmp_path, capsys):
    assert main(["validate", "--set", "vllm-8xb200", "--out", str(tmp_path), "--cases"]) == 0
    out = capsys.readouterr().out
    assert "llama-3-70b bs64" in out and "DeepStack" in out
    assert (tmp_path / "validation.csv").exists() and (tmp_path / "summary.json").exists()


def test_leave_one_gpu_out_fits_without_the_held_out_gpu():
    """A coarse grid (4 points, one parameter) keeps this quick; the CLI runs the full one."""
    res = validate.leave_one_out("serving-public", params=(("chip.op_overhead_us", 0.5, 20.0),), points=4,
                                 rounds=1)
    assert [r["held_out"] for r in res] == ["B200", "H100", "H200"]
    for r in res:
        assert r["train_rows"] > 0 and r["test_rows"] > 0
        assert np.isfinite([r["train_mape_pct"], r["held_out_mape_pct"], r["raw_mape_pct"]]).all()
        assert 0.5 <= r["fitted"]["chip.op_overhead_us"] <= 20.0
