"""Space YAML loading, strict validation and the index <-> design bijection."""

import math
import random
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from jaxstack.edges import io
from jaxstack.engines.space import decode_offsets, factorizations, host_digits, load_space, space_from_dict

SPACES = Path(__file__).resolve().parent.parent / "spaces"
BASE = {"hardware": "b200", "fabric": "nvlink-b200x8", "model": "llama-3-70b",
        "request": {"batch": 1, "input_len": 1024, "output_len": 1024}}


def space_dict(**parts):
    return {"version": 1, "base": BASE, **parts}


def load(tmp_path, data, name="s.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_space(p)


# ---------------------------------------------------------------- good spaces
def test_axes_tables_units_and_display(tmp_path):
    s = load(tmp_path, space_dict(
        axes={"fabric.l1.link_bandwidth_GBps": {"choices": [450, 900]},
              "dram.transfer_rate_GHz": {"range": [4, 8], "count": 5},
              "request.batch": {"range": [1, 1024], "count": 11, "scale": "log"},
              "dram.total_layers": {"range": [1, 7], "step": 2},
              "fabric.l1.kind": {"choices": ["switch", "ring"]}},
        zip=[{"request.input_len": [1024, 8192], "request.output_len": [1024, 256]}],
        mapping={"factorizations": 8, "axes": ["tp", "dp", "pp"], "fsdp": [0, 1]},
        limits={"tpot_ms": {"max": 50}, "memory_bytes": {"max_GiB": 180}, "user_tokens_per_s": {"min": 20},
                "power_W": {"max": 900, "min": 10}, "ttft_p90_ms": {"max": 500}},
        objective="tokens_per_J", pareto=["decode_tokens_per_s", "user_tokens_per_s", "power_W"]))
    # 10 factorisations of 8 into (tp, dp, pp); fsdp = 1 only where dp > 1 (6 of them)
    assert s.radices == (2, 5, 11, 4, 2, 2, 10 + 6)
    assert s.size == math.prod(s.radices)
    batch = s.axes[2]
    assert [r[0] for r in batch.display] == [2**i for i in range(11)]       # exact powers of two
    assert batch.table[:, 0].tolist() == [float(2**i) for i in range(11)]
    assert s.axes[1].table[:, 0].tolist() == [4e9, 5e9, 6e9, 7e9, 8e9]     # GHz -> Hz
    assert s.axes[0].table[:, 0].tolist() == [450e9, 900e9]                  # GBps -> B/s
    assert [r[0] for r in s.axes[3].display] == [1, 3, 5, 7]
    assert s.axes[4].display == (("switch",), ("ring",)) and s.axes[4].table[:, 0].tolist() == [0.0, 2.0]
    lims = {lim.label: lim for lim in s.limits}
    assert lims["tpot_ms"].metric == "tpot_s" and lims["tpot_ms"].hi == pytest.approx(0.05)
    assert lims["memory_bytes"].hi == 180 * 2**30
    assert lims["user_tokens_per_s"].lo == 20 and lims["power_W"].lo == 10
    assert lims["ttft_p90_ms"].metric == "ttft_p90_s" and lims["ttft_p90_ms"].hi == pytest.approx(0.5)
    # last axis fastest; values decode in user units
    v = s.values(s.size - 1)
    assert v["fabric.l1.link_bandwidth_GBps"] == 900 and v["request.batch"] == 1024
    # tp8 dp1 pp1: its fsdp = 1 twin is a no-op and not enumerated
    assert v["mapping.tp"] == 8 and v["mapping.pp"] == 1 and v["mapping.fsdp"] == 0 and v["mapping.sp"] == 1
    d = s.design(s.size - 1)
    assert float(d.fabric.l1.link_bandwidth) == pytest.approx(900e9)
    assert float(d.request.output_len) == 256 and float(d.mapping.tp) == 8


def test_model_dtype_and_share_axes_take_fractions(tmp_path):
    """Model leaves declared real (dtypes, shares, efficiencies) take fractional values on an axis;
    only the shape leaves are integers (their declared domains; before session 19 every model
    leaf but four was read as an integer, so a gemm_act_bytes of 0.5 or an MXFP4 axis failed)."""
    s = load(tmp_path, space_dict(axes={"model.expert_weight_bytes": {"choices": ["mxfp4", "fp8"]},
                                        "model.gemm_act_bytes": {"choices": [0.5, 1]},
                                        "model.attn_bytes": {"choices": [1, 2]},
                                        "model.sliding_window_layers": {"choices": [0.5, 1]},
                                        "model.moe_routing_independence": {"choices": [0.25, 1]}}))
    tables = {a.name.removeprefix("axes."): a.table[:, 0].tolist() for a in s.axes}
    assert tables["model.expert_weight_bytes"] == [0.53125, 1.0]
    assert tables["model.gemm_act_bytes"] == [0.5, 1.0] and tables["model.moe_routing_independence"] == [0.25, 1.0]


def test_mapping_factorizations_counts():
    assert len(factorizations(256, 6)) == 1287          # DEEPSTACK.md §2.4
    assert len(factorizations(64, 6)) == 462 and len(factorizations(1024, 6)) == 3003
    assert len(factorizations(8, 6)) == 56
    assert all(math.prod(f) == 12 for f in factorizations(12, 4))
    assert len(set(factorizations(12, 4))) == len(factorizations(12, 4))


def test_preset_axes_and_numeric_precedence(tmp_path):
    s = load(tmp_path, space_dict(
        base={**BASE, "overrides": {"dram.efficiency": 0.5}},
        axes={"dram.transfer_rate_GHz": {"choices": [5]}},
        zip=[{"hardware": ["b200", "h200"], "fabric": ["nvlink-b200x8", "nvlink-h200x8"]}]))
    a = s.axes[1]
    assert ("chip", "clock") in a.targets and ("dram", "transfer_rate") not in a.targets
    d0, d1 = s.design(0), s.design(1)
    assert float(d0.dram.efficiency) == float(d1.dram.efficiency) == 0.5    # base overrides kept
    assert float(d0.dram.transfer_rate) == float(d1.dram.transfer_rate) == 5e9
    assert float(d0.chip.clock) != float(d1.chip.clock)
    assert s.values(1) == {"dram.transfer_rate_GHz": 5, "hardware": "h200", "fabric": "nvlink-h200x8"}


def test_space_hash_is_canonical(tmp_path):
    a = load(tmp_path, space_dict(axes={"request.batch": {"choices": [1, 2]}}), "a.yaml")
    (tmp_path / "b.yaml").write_text("# comment\nversion: 1\nbase: " + yaml.safe_dump(BASE, default_flow_style=True)
                                     + "axes:\n  request.batch:   {choices: [1, 2]}\n")
    b = load_space(tmp_path / "b.yaml")
    c = load(tmp_path, space_dict(axes={"request.batch": {"choices": [1, 4]}}), "c.yaml")
    assert a.hash == b.hash != c.hash


@pytest.mark.parametrize("name", sorted(p.name for p in SPACES.glob("*.yaml")))
def test_shipped_spaces_load(name):
    s = load_space(SPACES / name)
    assert s.size >= 1
    if name == "hbm-whatif.yaml":
        assert 5e5 <= s.size <= 2e6
    if name == "quickstart.yaml":
        assert 1e4 <= s.size <= 1e5
    if name == "deepstack-decode.yaml":
        assert s.size >= 2.5e14
        assert max(s.values(s.size - 1)[c] for c in ("mapping.tp", "mapping.pp")) == 256


# ---------------------------------------------------------------- bijection
def _radices_big():
    return (3, 4, 6, 4, 3, 3, 7, 7, 7, 5, 5, 5, 11, 40, 5148)   # the deepstack-decode shape


def test_host_digits_roundtrip_beyond_2_40(tmp_path):
    s = load_space(SPACES / "deepstack-decode.yaml") if (SPACES / "deepstack-decode.yaml").exists() else None
    radices = s.radices if s is not None else _radices_big()
    total = math.prod(radices)
    assert total > 2**47
    rng = random.Random(0)
    for i in [0, 1, total - 1, 2**40, 2**40 + 12345, 2**47 - 1] + [rng.randrange(total) for _ in range(200)]:
        d = host_digits(i, radices)
        assert all(0 <= x < r for x, r in zip(d, radices, strict=True))
        j = 0
        for x, r in zip(d, radices, strict=True):
            j = j * r + x
        assert j == i
        if s is not None:
            assert s.index(d) == i
    with pytest.raises(IndexError):
        host_digits(total, radices)


@pytest.fixture(scope="module")
def device_decode():
    radices = _radices_big()
    fn = jax.jit(lambda b, o: jnp.stack(decode_offsets(radices, b, o)))
    return radices, fn


def test_device_decode_matches_host_beyond_2_40(device_decode):
    radices, fn = device_decode
    total = math.prod(radices)
    n = 3000
    offsets = np.arange(n, dtype=np.int32)
    rng = random.Random(1)
    # random bases above 2^40, the very end, and bases whose low digits are all at the maximum
    # (so the in-chunk offset carries through many digits)
    carry_base = sum((r - 1) * math.prod(radices[a + 1:]) for a, r in enumerate(radices) if a >= 9)
    bases = [rng.randrange(2**40, total - n) for _ in range(6)] + [total - n, carry_base, 2**40 - 7]
    for base in bases:
        got = np.asarray(fn(np.array(host_digits(base, radices), np.int32), offsets)).T
        sample = list(range(0, n, 7)) + [n - 1]
        want = np.array([host_digits(base + o, radices) for o in sample])
        np.testing.assert_array_equal(got[sample], want)


def test_device_decode_is_a_bijection_on_a_small_space(device_decode):
    radices = (3, 1, 5, 2, 7)
    total = math.prod(radices)
    fn = jax.jit(lambda b, o: jnp.stack(decode_offsets(radices, b, o)))
    got = np.asarray(fn(np.zeros(5, np.int32), np.arange(total, dtype=np.int32))).T
    assert len({tuple(r) for r in got}) == total
    np.testing.assert_array_equal(got, np.stack(np.unravel_index(np.arange(total), radices), -1))


# ---------------------------------------------------------------- strict errors
BAD = [
    # (description, space dict, substrings the message must contain)
    ("unknown top key", space_dict(axis={}), ["s.yaml", "'axis'", "allowed", "axes"]),
    ("unknown axis key", space_dict(axes={"request.batch": {"choices": [1], "count": 2}}),
     ["s.yaml", "axes.request.batch", "choices"]),
    ("unknown spec key", space_dict(axes={"request.batch": {"values": [1]}}),
     ["s.yaml", "axes.request.batch.values", "allowed", "choices"]),
    ("wrong unit suffix", space_dict(axes={"fabric.l1.link_bandwidth_GBs": {"choices": [1]}}),
     ["s.yaml", "fabric.l1.link_bandwidth_GBs", "suffix", "GBps"]),
    ("missing unit suffix", space_dict(axes={"fabric.l1.link_bandwidth": {"choices": [1]}}),
     ["s.yaml", "fabric.l1.link_bandwidth", "GBps"]),
    ("unknown leaf", space_dict(axes={"dram.layers": {"choices": [1]}}),
     ["s.yaml", "dram.layers", "allowed", "total_layers"]),
    ("duplicate value", space_dict(axes={"request.batch": {"choices": [1, 2, 1]}}),
     ["s.yaml", "axes.request.batch", "twice", "distinct"]),
    ("empty axis", space_dict(axes={"request.batch": {"choices": []}}),
     ["s.yaml", "axes.request.batch.choices", "empty"]),
    ("count < 1", space_dict(axes={"dram.efficiency": {"range": [0.5, 0.9], "count": 0}}),
     ["s.yaml", "axes.dram.efficiency.count", "allowed", ">= 1"]),
    ("lo > hi", space_dict(axes={"dram.efficiency": {"range": [0.9, 0.5], "count": 3}}),
     ["s.yaml", "axes.dram.efficiency.range", "lo <= hi"]),
    ("log lo <= 0", space_dict(axes={"request.batch": {"range": [0, 8], "count": 3, "scale": "log"}}),
     ["s.yaml", "axes.request.batch.range", "lo > 0"]),
    ("bad scale", space_dict(axes={"request.batch": {"range": [1, 8], "count": 3, "scale": "exp"}}),
     ["s.yaml", "axes.request.batch.scale", "linear, log"]),
    ("count and step", space_dict(axes={"request.batch": {"range": [1, 8], "count": 3, "step": 1}}),
     ["s.yaml", "axes.request.batch", "exactly one"]),
    ("non-integer degree", space_dict(axes={"mapping.tp": {"choices": [1, 2.5]}}),
     ["s.yaml", "axes.mapping.tp.choices[1]", "integer"]),
    ("non-integer layers", space_dict(axes={"dram.total_layers": {"range": [1, 4], "count": 3}}),
     ["s.yaml", "axes.dram.total_layers[1]", "integer"]),
    ("non-integer model shape", space_dict(axes={"model.num_key_value_heads": {"choices": [8, 4.5]}}),
     ["s.yaml", "axes.model.num_key_value_heads.choices[1]", "integer"]),
    ("model share outside its domain", space_dict(axes={"model.sliding_window_layers": {"choices": [0.5, 1.5]}}),
     ["s.yaml", "model.sliding_window_layers", "[0, 1]"]),
    ("degree below 1", space_dict(axes={"mapping.pp": {"choices": [0]}}),
     ["s.yaml", "axes.mapping.pp.choices[0]", ">= 1"]),
    ("flag not 0/1", space_dict(axes={"mapping.fsdp": {"choices": [0, 2]}}),
     ["s.yaml", "mapping.fsdp", "0, 1"]),
    ("string for a number", space_dict(axes={"request.batch": {"choices": ["many"]}}),
     ["s.yaml", "request.batch", "number"]),
    ("unknown preset", space_dict(axes={"hardware": {"choices": ["b300"]}}),
     ["s.yaml", "axes.hardware.choices[0]", "b200"]),
    ("zip unequal", space_dict(zip=[{"request.input_len": [1, 2], "request.output_len": [1]}]),
     ["s.yaml", "zip[0].request.output_len", "equal length"]),
    ("leaf twice", space_dict(axes={"mapping.tp": {"choices": [1, 2]}},
                              mapping={"factorizations": 8, "axes": ["tp", "pp"]}),
     ["s.yaml", "mapping", "mapping.tp", "already varied"]),
    ("factorizations 0", space_dict(mapping={"factorizations": 0}),
     ["s.yaml", "mapping.factorizations", "allowed"]),
    ("bad mapping axis", space_dict(mapping={"factorizations": 8, "axes": ["tp", "xp"]}),
     ["s.yaml", "mapping.axes", "allowed", "tp, ep, sp, cp, dp, pp"]),
    ("bad fsdp list", space_dict(mapping={"factorizations": 8, "fsdp": [0, 2]}),
     ["s.yaml", "mapping.fsdp", "allowed"]),
    ("unknown limit metric", space_dict(limits={"speed": {"max": 1}}),
     ["s.yaml", "limits.speed", "allowed", "tpot_s"]),
    ("bad limit bound", space_dict(limits={"tpot_s": {"below": 1}}),
     ["s.yaml", "limits.tpot_s.below", "allowed", "max_ms"]),
    ("suffix on both", space_dict(limits={"tpot_ms": {"max_ms": 1}}),
     ["s.yaml", "limits.tpot_ms.max_ms", "allowed: max, min"]),
    ("min > max", space_dict(limits={"power_W": {"min": 10, "max": 1}}), ["s.yaml", "limits.power_W", "min"]),
    ("unknown objective", space_dict(objective="speed"), ["s.yaml", "objective", "allowed", "decode_tokens_per_s"]),
    ("pareto of one", space_dict(pareto=["tpot_s"]), ["s.yaml", "pareto", "2 or 3"]),
    ("missing version", {"base": BASE}, ["s.yaml", "version", "allowed: 1"]),
    ("missing base", {"version": 1}, ["s.yaml", "base", "required"]),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_space_errors_name_file_key_and_allowed(tmp_path, case):
    _, data, needles = case
    with pytest.raises(io.ConfigError) as e:
        load(tmp_path, data)
    for needle in needles:
        assert needle in str(e.value), (needle, str(e.value))


def test_yaml_is_safe_loaded(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(io.ConfigError, match="invalid YAML"):
        load_space(p)


def test_space_from_dict_without_file():
    s = space_from_dict(space_dict(axes={"request.batch": {"choices": [1, 2, 4]}}), "<inline>")
    assert s.size == 3 and s.values(2) == {"request.batch": 4}
