"""edges/xla.py: jaxstack's XLA flag is added only when it is safe and wanted."""

from jaxstack.edges import xla


def _setup(monkeypatch, flags=None, version="0.10.2", started=False, off=False):
    if flags is None:
        monkeypatch.delenv("XLA_FLAGS", raising=False)
    else:
        monkeypatch.setenv("XLA_FLAGS", flags)
    if off:
        monkeypatch.setenv("JAXSTACK_XLA_DEFAULTS", "off")
    else:
        monkeypatch.delenv("JAXSTACK_XLA_DEFAULTS", raising=False)
    monkeypatch.setattr(xla, "_jaxlib_version", lambda: version)
    monkeypatch.setattr(xla, "_backend_started", lambda: started)


def test_flag_added_for_a_known_jaxlib_before_the_backend_starts(monkeypatch):
    import os

    _setup(monkeypatch, flags="--xla_backend_optimization_level=0")
    assert xla.configure()
    assert os.environ["XLA_FLAGS"] == "--xla_backend_optimization_level=0 " + xla.YNN_FLAG
    assert not xla.configure()                         # already there: not twice
    _setup(monkeypatch)
    assert xla.configure() and os.environ["XLA_FLAGS"] == xla.YNN_FLAG


def test_flag_left_alone_when_unsafe_or_unwanted(monkeypatch):
    import os

    for kw in ({"version": "0.4.35"}, {"version": ""}, {"started": True}, {"off": True},
               {"flags": "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_REDUCE"}):
        _setup(monkeypatch, **kw)
        before = os.environ.get("XLA_FLAGS")
        assert not xla.configure(), kw
        assert os.environ.get("XLA_FLAGS") == before, kw


def test_a_late_import_says_why_the_flag_is_missing(monkeypatch, capsys):
    _setup(monkeypatch, started=True)
    assert not xla.configure()
    assert capsys.readouterr().err.strip() == xla.LATE_NOTE
    for kw in ({"started": True, "off": True}, {"started": True, "version": "0.4.35"}, {}):
        _setup(monkeypatch, **kw)
        xla.configure()
        assert capsys.readouterr().err == "", kw
