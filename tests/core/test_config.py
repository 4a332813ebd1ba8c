"""Chain files: parsing, two-step validation, error paths and codes, digests."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardchain.core.config import load_chain, read_chain_file, validate_chain
from guardchain.core.errors import ErrorCode, GuardchainError, format_path
from guardchain.core.registry import Registry

YAML_CHAIN = """
name: demo
seed: 3
model: {ref: "fake:2"}
data: {dataset: fake_text, config: {n_windows: 3}}
steps:
  - guard: fake_norm
    config: {max_ratio: 2.0}
  - edit: fake_scale
    config: {factor: 1.1}
  - metric: fake_score
"""

TOML_CHAIN = """
name = "demo"
seed = 3

[model]
ref = "fake:2"

[data]
dataset = "fake_text"
config = {n_windows = 3}

[[steps]]
guard = "fake_norm"
config = {max_ratio = 2.0}

[[steps]]
edit = "fake_scale"
config = {factor = 1.1}

[[steps]]
metric = "fake_score"
"""


@pytest.fixture
def registry(fakes_module) -> Registry:
    return Registry.from_plugins({"fakes": fakes_module})


def problems_of(raw, registry):
    with pytest.raises(GuardchainError) as caught:
        validate_chain(raw, registry)
    return [(p.code, p.path) for p in caught.value.problems], caught.value.problems


def test_yaml_toml_and_json_give_the_same_chain_and_digest(registry, tmp_path):
    (tmp_path / "c.yaml").write_text(YAML_CHAIN)
    (tmp_path / "c.toml").write_text(TOML_CHAIN)
    (tmp_path / "c.json").write_text(json.dumps(read_chain_file(tmp_path / "c.yaml")))
    chains = [load_chain(tmp_path / f"c.{ext}", registry) for ext in ("yaml", "toml", "json")]
    assert len({c.digest for c in chains}) == 1
    assert chains[0].config == chains[1].config == chains[2].config
    assert chains[0].step_configs[0].max_ratio == 2.0
    assert chains[0].step_configs[2].scale == 1.0  # defaults are filled in and part of the digest


def test_the_digest_changes_with_any_setting(registry, tmp_path):
    base = read_chain_file_text(tmp_path, YAML_CHAIN)
    changed = read_chain_file_text(tmp_path, YAML_CHAIN.replace("factor: 1.1", "factor: 1.2"))
    assert validate_chain(base, registry).digest != validate_chain(changed, registry).digest


def read_chain_file_text(tmp_path, text):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    return read_chain_file(path)


def test_four_kinds_of_mistake_are_all_reported_with_paths(registry):
    raw = {
        "name": "bad",
        "model": {"ref": "fake:2"},
        "steps": [
            {"guard": "fake_norm", "config": {"max_ratoi": 2.0}},  # typo'd key
            {"edit": "fake_scale", "config": {"factor": "lots"}},  # wrong type
            {"metric": "fake_scroe"},  # unknown plugin
        ],
        "data": {"config": {}},  # missing required field
    }
    pairs, problems = problems_of(raw, registry)
    assert set(pairs) == {
        (ErrorCode.CONFIG_UNKNOWN_KEY, "steps[0].config.max_ratoi"),
        (ErrorCode.CONFIG_TYPE, "steps[1].config.factor"),
        (ErrorCode.PLUGIN_UNKNOWN, "steps[2].metric"),
        (ErrorCode.CONFIG_MISSING, "data.dataset"),
    }
    by_code = {p.code: p for p in problems}
    assert by_code[ErrorCode.CONFIG_UNKNOWN_KEY].hint == "did you mean 'max_ratio'?"
    assert "max_ratio" in by_code[ErrorCode.CONFIG_UNKNOWN_KEY].expected
    assert by_code[ErrorCode.CONFIG_TYPE].expected == "a valid number"
    assert "'lots'" in by_code[ErrorCode.CONFIG_TYPE].message
    assert by_code[ErrorCode.PLUGIN_UNKNOWN].hint == "did you mean 'fake_score'?"
    assert "str" in by_code[ErrorCode.CONFIG_MISSING].expected


def test_envelope_typos_suggest_the_right_key(registry):
    raw = {"name": "x", "model": {"ref": "fake:1"}, "stepz": [], "steps": [{"metric": "fake_score"}]}
    pairs, problems = problems_of(raw, registry)
    assert pairs == [(ErrorCode.CONFIG_UNKNOWN_KEY, "stepz")]
    assert problems[0].hint == "did you mean 'steps'?"


def test_a_step_must_name_exactly_one_capability(registry):
    raw = {"name": "x", "model": {"ref": "fake:1"}, "steps": [{"guard": "fake_norm", "metric": "fake_score"}, {}]}
    pairs, problems = problems_of(raw, registry)
    assert pairs == [(ErrorCode.CONFIG_VALUE, "steps[0]"), (ErrorCode.CONFIG_VALUE, "steps[1]")]
    assert "found guard, metric" in problems[0].message


def test_value_errors_keep_their_constraint(registry):
    raw = {"name": "x", "seed": -1, "steps": [{"guard": "fake_norm", "config": {"max_ratio": 0.5}}]}
    pairs, problems = problems_of(raw, registry)
    assert set(pairs) == {(ErrorCode.CONFIG_VALUE, "seed"), (ErrorCode.CONFIG_VALUE, "steps[0].config.max_ratio")}
    assert any("greater than or equal to 0" in p.expected for p in problems)


def test_intervention_steps_need_sites(registry):
    raw = {"name": "x", "steps": [{"intervention": "fake_tap"}, {"metric": "fake_score", "sites": ["a"]}]}
    pairs, _ = problems_of(raw, registry)
    assert pairs == [(ErrorCode.CONFIG_VALUE, "steps[0]"), (ErrorCode.CONFIG_VALUE, "steps[1]")]


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("c.yaml", "name: [unclosed", ErrorCode.CONFIG_PARSE),
        ("c.toml", "name = ", ErrorCode.CONFIG_PARSE),
        ("c.json", "{", ErrorCode.CONFIG_PARSE),
        ("c.yaml", "- just\n- a list\n", ErrorCode.CONFIG_PARSE),
        ("c.ini", "[x]", ErrorCode.CONFIG_FORMAT),
    ],
)
def test_unreadable_files_have_codes(tmp_path, name, content, code):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(GuardchainError) as caught:
        read_chain_file(path)
    assert caught.value.code == code


def test_a_missing_file(tmp_path):
    with pytest.raises(GuardchainError) as caught:
        read_chain_file(tmp_path / "nope.yaml")
    assert caught.value.code == ErrorCode.CONFIG_NOT_FOUND


def test_format_path():
    assert format_path(("steps", 2, "config", "sigma_quantile")) == "steps[2].config.sigma_quantile"
    assert format_path((0, "a")) == "[0].a"
    assert format_path(()) == ""


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)
keys = st.sampled_from(["name", "seed", "steps", "model", "data", "output", "version", "bogus"])
step = st.dictionaries(
    st.sampled_from(["guard", "edit", "metric", "intervention", "config", "sites", "id", "x"]),
    st.sampled_from(["fake_norm", "fake_scale", "fake_score", "fake_tap", "nope"]) | json_values,
    max_size=3,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.dictionaries(keys, json_values | st.lists(step, max_size=3), max_size=6))
def test_any_input_gives_a_chain_or_coded_problems_never_a_crash(registry, raw):
    try:
        validate_chain(raw, registry)
    except GuardchainError as exc:
        assert all(p.code in ErrorCode for p in exc.problems)
        assert all(p.message for p in exc.problems)


def test_explicit_step_ids_are_unique(registry):
    raw = {"name": "x", "steps": [{"metric": "fake_score", "id": "a"}, {"metric": "fake_score", "id": "a"}]}
    pairs, problems = problems_of(raw, registry)
    assert pairs == [(ErrorCode.CONFIG_VALUE, "steps")]
    assert "steps[1] repeats the id 'a' of steps[0]" in problems[0].message
    default_like = {"name": "x", "steps": [{"metric": "fake_score", "id": "0-fake_score"}]}
    assert problems_of(default_like, registry)[0] == [(ErrorCode.CONFIG_VALUE, "steps[0].id")]
