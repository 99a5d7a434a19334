"""docs/transcript.md stays true: the quick commands it shows are run again and their
headers, column names and metric names must match the transcript (numbers may change;
the transcript is regenerated with ``python docs/make_transcript.py``)."""

import re
import shlex
from pathlib import Path

import pytest

from jaxstack.cli import main

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPT = ROOT / "docs" / "transcript.md"
QUICK = ("jaxstack sweep spaces/quickstart.yaml", "jaxstack eval", "jaxstack presets --show b200")
_IGNORE = ("jaxstack: compiling", "sampling ", "results in ")


def _blocks() -> dict[str, tuple[str, int]]:
    text = TRANSCRIPT.read_text()
    out = {}
    for m in re.finditer(r"```text\n\$ (.+?)\n(.*?)\n```\nexit code (\d+)", text, re.S):
        out[m.group(1)] = (m.group(2), int(m.group(3)))
    return out


def _structure(text: str) -> list[str]:
    """Header lines (no digits) and the leading name of every other line: what a reader
    navigates by, independent of the numbers."""
    keep = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith(_IGNORE) or " points in " in s:
            continue
        if not re.search(r"\d", s):
            keep.append(" ".join(s.split()))
        else:
            head = re.match(r"[A-Za-z_][\w.]*[A-Za-z_]", s)
            if head:
                keep.append(head.group(0))
    return keep


def test_transcript_lists_the_readme_commands():
    blocks = _blocks()
    readme = (ROOT / "README.md").read_text()
    first = readme.splitlines()[1]
    assert "jaxstack sweep spaces/quickstart.yaml --top-k 10" in first
    assert "jaxstack sweep spaces/quickstart.yaml --top-k 10" in blocks
    assert all(rc in (0, 2) for _, rc in blocks.values())


@pytest.mark.parametrize("cmd", [c for c in _blocks() if c.startswith(QUICK)])
def test_quick_commands_match_the_transcript(cmd, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    shown, rc = _blocks()[cmd]
    argv = shlex.split(cmd)[1:]
    if argv[0] == "sweep":
        argv += ["--no-progress"]
    assert main(argv) == rc
    got = capsys.readouterr()
    assert _structure(got.err + got.out) == _structure(shown)
