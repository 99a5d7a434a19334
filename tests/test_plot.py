"""``jaxstack plot`` on a tiny sweep run directory, and clear errors on bad input.

The sweep is real (engine, run directory, CSV/Parquet files, dump) but uses the toy
``evaluate_fn`` of ``_multihost_worker`` with a made-up decode-step breakdown, so the module
compiles in seconds; ``notebooks/02_sweep_pareto.py`` (``test_notebooks.py``) runs
``plot_run`` on a run of the real model.
"""

import dataclasses
import shutil
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from jaxstack.cli import main  # noqa: E402
from jaxstack.edges import io  # noqa: E402
from jaxstack.engines import plot
from jaxstack.engines.sweep import sweep  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _multihost_worker import toy_evaluate  # noqa: E402

SPACE = """\
version: 1
base:
  hardware: b200
  fabric: nvlink-b200x8
  model: llama-3-70b
  request: {batch: 1, input_len: 1024, output_len: 1024}
axes:
  dram.efficiency: {choices: [0.7, 0.8, 0.9]}
  fabric.l1.link_bandwidth_GBps: {range: [100, 900], step: 200}
  request.batch: {range: [1, 256], count: 9, scale: log}
zip:
  - {request.input_len: [1024, 2048], request.output_len: [256, 512]}
mapping: {factorizations: 8, axes: [tp, dp, pp], fsdp: [0, 1]}
objective: decode_tokens_per_s
pareto: [decode_tokens_per_s, user_tokens_per_s, energy_per_token_J]
"""
FIGURES = ("pareto", "heatmap", "breakdown")


def toy_with_breakdown(d):
    """The toy model plus a decode-step split and an energy per token (all > 0)."""
    m = toy_evaluate(d)
    t = m.tpot_s
    return dataclasses.replace(m, t_attention_s=0.4 * t, t_ffn_s=0.3 * t, t_other_s=0.1 * t, t_comm_s=0.3 * t,
                               t_comm_exposed_s=0.2 * t,
                               energy_per_token_J=m.power_W / jnp.maximum(m.decode_tokens_per_s, 1.0))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("plot")
    (base / "tiny.yaml").write_text(SPACE)
    out = base / "run"
    sweep(base / "tiny.yaml", evaluate_fn=toy_with_breakdown, top_k=5, chunk=256, dump=True, out=out,
          progress=False)
    return out


def _check_files(out: Path, names, formats=("png", "svg")):
    for name in names:
        for fmt in formats:
            f = out / f"{name}.{fmt}"
            assert f.exists() and f.stat().st_size > 1000, f
            head = f.read_bytes()[:400]
            assert head.startswith(b"\x89PNG") if fmt == "png" else b"<svg" in head


def test_plot_writes_png_and_svg(run_dir, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["plot", str(run_dir), "--out", str(out)]) == 0
    _check_files(out, FIGURES)
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(out / f"{n}.{e}") for n in FIGURES for e in ("png", "svg"))
    assert main(["plot", str(run_dir)]) == 0                      # default: RUN_DIR/plots
    _check_files(run_dir / "plots", FIGURES)


def test_heatmap_axes_and_values(run_dir, tmp_path):
    run = plot.load_run(run_dir)
    groups = plot.axis_groups(run.dump)
    # the zip group is one axis; the mapping columns are one axis
    assert set(groups) == {"dram.efficiency", "fabric.l1.link_bandwidth_GBps", "request.batch",
                           "request.input_len+request.output_len", "mapping"}
    out = tmp_path / "h"
    assert main(["plot", str(run_dir), "--x", "batch", "--y", "mapping", "--metric", "power_W",
                 "--format", "png", "--out", str(out)]) == 0
    _check_files(out, FIGURES, ("png",))
    # the drawn grid is the best (lowest) power_W per (mapping, batch) over the feasible points
    cols = {"b": groups["request.batch"], "m": groups["mapping"], "power_W": run.dump["power_W"],
            "feasible": run.dump["feasible"]}
    grid = np.ma.filled(plot.heatmap_figure(cols, "b", "m", "power_W").axes[0].images[0].get_array(), np.nan)
    ok = run.dump["feasible"]
    for j, m in enumerate(dict.fromkeys(groups["mapping"])):      # rows: first-appearance order
        for i, b in enumerate(np.unique(groups["request.batch"])):
            sel = ok & (groups["mapping"] == m) & (groups["request.batch"] == b)
            want = run.dump["power_W"][sel].min() if sel.any() else np.nan
            np.testing.assert_allclose(grid[j, i], want)


def test_run_without_dump_skips_heatmap(run_dir, tmp_path, capsys):
    small = tmp_path / "nodump"
    small.mkdir()
    for name in ("summary.json", "top.csv", "pareto.csv"):       # CSV only: the reader without pyarrow
        shutil.copy(run_dir / name, small / name)
    assert main(["plot", str(small), "--format", "svg"]) == 0
    _check_files(small / "plots", ("pareto", "breakdown"), ("svg",))
    assert not (small / "plots" / "heatmap.svg").exists()
    err = capsys.readouterr().err
    assert "heatmap skipped" in err and "--dump" in err
    assert main(["plot", str(small), "--x", "batch", "--y", "mapping"]) == 2
    assert "no dump" in capsys.readouterr().err


def test_bad_inputs_give_one_line_errors(run_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "manifest.json").write_text("{}")
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "none_ok").mkdir()                               # a run without any feasible design
    shutil.copy(run_dir / "summary.json", tmp_path / "none_ok" / "summary.json")
    (tmp_path / "none_ok" / "top.csv").write_text("rank,index\n")
    cases = [([str(tmp_path / "nope")], ["nope", "no such run directory"]),
             ([str(tmp_path / "empty")], ["empty", "missing summary.json", "jaxstack sweep"]),
             ([str(tmp_path / "unfinished")], ["not finished", "--resume"]),
             ([str(tmp_path / "file.txt")], ["file.txt", "not a directory"]),
             ([str(tmp_path / "none_ok")], ["nothing to plot", "no feasible design"]),
             ([str(run_dir), "--x", "bogus"], ["bogus", "allowed:", "request.batch"]),
             ([str(run_dir), "--x", "mapping", "--y", "mapping"], ["same axis"]),
             ([str(run_dir), "--metric", "speed"], ["speed", "decode_tokens_per_s"]),
             ([str(run_dir), "--format", "gif"], ["gif", "png, svg"])]
    for args, words in cases:
        assert main(["plot", *args, "--out", str(tmp_path / "o")]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("jaxstack: error: ") and "Traceback" not in err, err
        for w in words:
            assert w in err, (args, w, err)


def test_missing_matplotlib_says_what_to_install(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(io.ConfigError, match=r"pip install 'jaxstack\[plot\]'"):
        plot.plot_run(run_dir, out=tmp_path)


def test_validation_directory(tmp_path):
    d = tmp_path / "val"
    d.mkdir()
    rows = ["set,panel,case,split,measured,predicted,deepstack,weight"]
    rows += [f"s{k},p{i % 2},c{i},{'calibration' if i % 3 else 'holdout'},{10.0 * (i + 1)},{10.5 * (i + 1)},,1"
             for k in (1, 2) for i in range(6)]
    (d / "validation.csv").write_text("\n".join(rows) + "\n")
    assert main(["plot", str(d), "--format", "png,svg"]) == 0
    _check_files(d / "plots", ("validation",))


def test_pareto_mask():
    x = np.array([1.0, 2.0, 3.0, 3.0, 0.5, 2.0])
    y = np.array([3.0, 2.0, 1.0, 0.5, 3.0, 2.0])
    assert plot.pareto_mask(x, y).tolist() == [True, True, True, False, False, False]   # ties kept once
    assert plot.pareto_mask(x, y, max_y=False).tolist() == [False, False, False, True, False, False]
