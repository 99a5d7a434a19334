"""Write docs/transcript.md: the README's commands as a newcomer runs them, with their real output.

    python docs/make_transcript.py            # after `pip install -e .` in the repo root

Each command runs as a subprocess from the repository root (stdout and stderr as a terminal
shows them, timings included). ``tests/test_transcript.py`` re-runs the quick ones and checks
that their headers, column names and metric names still match this file, so the transcript
cannot silently drift from what the tool prints.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = "jaxstack eval --hardware b200 --fabric nvlink-b200x8 --model llama-3-70b --tp 8 --batch 64 " \
       "--input-len 1024 --output-len 1024"
COMMANDS = [  # (command, what the reader should look at)
    ("jaxstack sweep spaces/quickstart.yaml --top-k 10",
     "The README's first line: every mapping and batch of Llama-3.1-405B on one 8x B200 box, with HBM "
     "bandwidth, HBM capacity and NVLink what-ifs, ranked by system decode tokens/s under a 50 ms TPOT SLO. "
     "Columns shared by every row are printed once above the table (`all rows:`); the Pareto front trades "
     "system throughput against per-user speed."),
    (EVAL, "One design point: every metric with its unit, then the per-op breakdown of one decode stage."),
    (EVAL.replace("llama-3-70b --tp 8", "llama-3.1-405b --tp 4"),
     "A legal but impossible combination is an infeasible point (exit 0): the reason comes first, with what "
     "to change (here the BF16 weights of 405B do not fit 4 of the box's 8 GPUs)."),
    (EVAL.replace("--tp 8", "--tp -1"), "An impossible value is an input error: one line, exit code 2."),
    ("jaxstack sweep spaces/hbm-whatif.yaml --sample 20000 --seed 0 --top-k 5",
     "A quick look at a bigger space: 20,000 points spread over all of it (not its first 20,000)."),
    ("jaxstack sweep spaces/rack-scale.yaml --top-k 5",
     "Rack scale: DeepSeek-V3 on 16 GPUs, two 8-GPU nodes over InfiniBand (H100 or B200) or 16 GPUs of a "
     "GB200 NVL72, hardware and fabric varied together (`zip`), every mapping of 16 and the batch."),
    ("jaxstack presets --show b200", "Every value of a preset with its unit, domain, fitted calibration and "
                                     "the source note written next to it (documents under docs/reference/)."),
    ("jaxstack validate", "Errors against the shipped measurements, per split."),
]


def run(cmd: str) -> tuple[str, int]:
    env = {**os.environ, "COLUMNS": "120"}
    p = subprocess.run(cmd, shell=True, cwd=ROOT, capture_output=True, text=True, env=env)
    return (p.stderr + p.stdout).rstrip(), p.returncode


def main() -> int:
    parts = ["# A newcomer's transcript\n",
             "The README's commands as they run on a fresh 2-core CPU machine after `pip install -e .`, with "
             "their real output (`python docs/make_transcript.py` regenerates this file; "
             "`tests/test_transcript.py` checks that headers and column names still match). Times include "
             "the first compile of each program unless the persistent cache already had it.\n"]
    for cmd, note in COMMANDS:
        out, rc = run(cmd)
        parts.append(f"## `{cmd}`\n\n{note}\n\n```text\n$ {cmd}\n{out}\n```\nexit code {rc}\n")
    (ROOT / "docs" / "transcript.md").write_text("\n".join(parts))
    print(f"wrote {ROOT / 'docs' / 'transcript.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
