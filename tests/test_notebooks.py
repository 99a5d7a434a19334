"""The notebooks (jupytext "percent" scripts in ``notebooks/``) run as plain Python.

Each runs in a fresh interpreter with ``JAXSTACK_NOTEBOOK_SMALL=1`` (CI sizes) and writes its
figures to a temporary ``JAXSTACK_NOTEBOOK_OUT``. Every notebook compiles the model once
(~20-40 s on a 2-core CPU), so the module takes a few minutes: it is marked ``slow`` (runs in
the default ``pytest -q``; ``-m "not slow"`` deselects it).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
TIMEOUT_S = 600


def test_notebooks_present():
    names = [p.stem for p in NOTEBOOKS]
    assert names == ["01_quickstart", "02_sweep_pareto", "03_parallelism", "04_validation",
                     "05_gradient_codesign", "06_dram_layers", "07_serving"], names
    for p in NOTEBOOKS:
        text = p.read_text()
        assert "# %% [markdown]" in text and "JAXSTACK_NOTEBOOK_SMALL" in text and "format_name: percent" in text


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    pytest.importorskip("matplotlib")
    env = {**os.environ, "JAXSTACK_NOTEBOOK_SMALL": "1", "JAXSTACK_NOTEBOOK_OUT": str(tmp_path / "out"),
           "JAX_PLATFORMS": "cpu", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=TIMEOUT_S)
    assert p.returncode == 0, f"{path.name} failed:\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    figures = list((tmp_path / "out").glob("*.png"))
    assert figures and all(f.stat().st_size > 1000 for f in figures), figures
