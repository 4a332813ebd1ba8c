"""Fuzzing ``doctor`` and ``run`` over generated chain files: no traceback, no hang, only documented exit codes.

Each example is a chain file in YAML, JSON or TOML: a chain assembled from valid and invalid pieces (the fake
capabilities of ``tests/fixtures/dists/gc-fakes`` with wrong types, out-of-range values, unknown keys and names,
empty names, odd sites), a valid file with characters flipped, or a hostile construct (an alias bomb, deep nesting,
repeated keys, a lone surrogate, a NUL, arbitrary text). The CLI runs in process; a watchdog turns a hang into a
failure. The budget is fixed (100 derandomized examples plus every hostile construct, well under a minute), so
CI runs the same cases every time.
"""

from __future__ import annotations

import json
import signal
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from guardchain.core.cli import main

pytestmark = pytest.mark.dists

DOCTOR_CODES = {0, 1}  # ok, problems found
RUN_CODES = {0, 1, 2}  # ok, a step failed or an edit rolled back, invalid chain or cannot start
WATCHDOG_S = 60

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "fake:2", "blocks.", "gate", "monitor", "\x00", "\ud800", "../..", "1e309"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
maybe = st.one_of(values, st.just("__keep__"))

STEP_TEMPLATES: list[dict[str, Any]] = [
    {"guard": "fake_norm", "config": {"mode": "gate", "max_ratio": 1.5}},
    {"guard": "fake_norm", "config": {"mode": "monitor", "max_ratio": 1.1}},
    {"edit": "fake_scale", "config": {"factor": 1.2, "targets": ["blocks."]}},
    {"edit": "fake_scale", "config": {"factor": 3.0}},
    {"edit": "fake_scale", "config": {"fail": True}},
    {"metric": "fake_score", "id": "score"},
    {"metric": "fake_score", "config": {"scale": 2.0}},
    {"intervention": "fake_tap", "sites": ["blocks[*].mlp.output"]},
    {"intervention": "fake_tap", "sites": ["blocks[9].mlp.output"]},
]


@st.composite
def mutated_step(draw: st.DrawFn) -> Any:
    step = json.loads(json.dumps(draw(st.sampled_from(STEP_TEMPLATES))))
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 0, 0, 1, 2]))):  # hypothesis tries the first choices first
        target = step.setdefault("config", {}) if draw(st.booleans()) else step
        key = draw(st.sampled_from([*target.keys(), "extra", "id", "sites", "guard", "edit", "max_ratio"]))
        value = draw(maybe)
        if value == "__keep__":
            target.pop(key, None)
        else:
            target[key] = value
    return draw(values) if draw(st.integers(0, 9)) == 9 else step


@st.composite
def clean_steps(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Steps that validate: every guard followed by an edit, unique ids, settings inside their ranges."""
    steps: list[dict[str, Any]] = []
    for template in draw(st.lists(st.sampled_from(STEP_TEMPLATES), min_size=1, max_size=5)):
        step = json.loads(json.dumps(template))
        step.pop("id", None)
        if "guard" in step:
            step["config"]["max_ratio"] = draw(st.floats(1.01, 4.0))
        elif "edit" in step and "factor" in step["config"]:
            step["config"]["factor"] = draw(st.floats(0.1, 4.0))
        steps.append(step)
    if "guard" in steps[-1]:
        steps.append({"edit": "fake_scale"})
    return steps


@st.composite
def chains(draw: st.DrawFn) -> dict[str, Any]:
    """A chain that validates (half the time, so that the runner is exercised), or one with broken pieces."""
    chain: dict[str, Any] = {
        "version": 1,
        "name": "fuzz",
        "seed": draw(st.integers(0, 2**32 - 1)),
        "model": {"ref": draw(st.sampled_from(["fake:1", "fake:2", "fake:3"]))},
        "data": {"dataset": "fake_text", "config": {"n_windows": draw(st.integers(1, 6)), "seq_len": 4}},
        "steps": draw(clean_steps()),
    }
    if draw(st.booleans()):
        return chain
    broken = {
        "version": st.sampled_from([2, "1", None]),
        "name": st.sampled_from(["", "-bad", "x" * 70, "na me"]),
        "seed": st.sampled_from([-1, 2**32, 1.5, "7"]),
        "model": st.sampled_from(
            [
                {"ref": "fake:1", "adapter": "fake_lm"},
                {"ref": "fake:0"},
                {"ref": "fake:x"},
                {"ref": "org/missing-model"},
                {"ref": "./no/such/dir"},
                {"ref": ""},
                {"ref": "fake:2", "adapter": ""},
                {"ref": "fake:2", "config": {"dtype": "float16"}},
                None,
            ]
        ),
        "data": st.sampled_from(
            [
                {"dataset": "fake_text", "config": {"n_windows": 0}},
                {"dataset": "fake_txt"},
                {"dataset": "fake_text", "config": None},
                None,
            ]
        ),
        "steps": st.lists(mutated_step(), max_size=5),
        "output": values,
        "sed": values,
    }
    for key in draw(st.lists(st.sampled_from(sorted(broken)), min_size=1, max_size=3, unique=True)):
        chain[key] = draw(broken[key])
    if draw(st.integers(0, 9)) == 9:
        chain.pop(draw(st.sampled_from(sorted(chain))))
    return chain


def valid_text() -> str:
    return (Path(__file__).resolve().parents[1] / "fixtures" / "chains" / "example.yaml").read_text()


@st.composite
def flipped(draw: st.DrawFn) -> tuple[str, str]:
    text = valid_text()
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at]
            + draw(st.sampled_from(["", ":", "[", "{", "&a ", "*a", "\t", "'", "\n  - ", "<<: "]))
            + text[at + 1 :]
        )
    return "yaml", text


HOSTILE = [
    (
        "yaml",
        'a: &a ["x"]\n'
        + "".join(f"b{i}: &b{i} [" + ", ".join([f"*{'a' if i == 0 else f'b{i - 1}'}"] * 9) + "]\n" for i in range(8))
        + "name: bomb\nsteps: [{metric: fake_score}]\n",
    ),
    ("yaml", "name: loop\nsteps: &s [*s]\n"),
    ("json", '{"name": "deep", "steps": ' + "[" * 3000 + "]" * 3000 + "}"),
    ("toml", 'name = "deep"\nsteps = ' + "[" * 3000 + "]" * 3000 + "\n"),
    ("json", '{"name": "a", "name": "b", "steps": [{"metric": "fake_score"}]}'),
    ("yaml", "name: a\nname: b\nsteps: [{metric: fake_score}]\n"),
    ("json", '{"name": "s\\ud800", "steps": [{"metric": "fake_score"}]}'),
    ("json", '{"name": "n", "model": {"ref": "fake:2\\u0000"}, "steps": [{"metric": "fake_score"}]}'),
    ("toml", 'name = "t"\n[[steps]]\nmetric = "fake_score"\n[[steps]]\nedit = ""\n'),
    ("yaml", "--- a\n--- b\n"),
    ("yaml", "!!python/object/apply:os.system ['true']\n"),
]


def serialise(fmt: str, chain: dict[str, Any]) -> str:
    if fmt == "json":
        return json.dumps(chain, ensure_ascii=True, allow_nan=True)
    if fmt == "yaml":
        return yaml.safe_dump(chain, allow_unicode=False)
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in chain.items() if v is not None)


def toml_value(value: Any) -> str:
    """TOML inline syntax (TOML has no null: ``None`` entries are left out)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value if v is not None) + "]"
    return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items() if v is not None) + "}"


structured = st.tuples(st.sampled_from(["json", "yaml", "yaml", "toml"]), chains()).map(lambda p: (p[0], serialise(*p)))
#: What kind of file each example is: mostly assembled chains (half of which validate and run), then characters
#: flipped in the documented example, hostile constructs, arbitrary text.
files = st.sampled_from(["chain"] * 6 + ["flipped", "hostile", "text"]).flatmap(
    lambda kind: {
        "chain": structured,
        "flipped": flipped(),
        "hostile": st.sampled_from(HOSTILE),
        "text": st.tuples(st.sampled_from(["json", "yaml", "toml"]), st.text(max_size=80)),
    }[kind]
)


@pytest.fixture
def fakes_installed(fixture_sites: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake capabilities discoverable by the in-process CLI, as an installed distribution."""
    monkeypatch.syspath_prepend(str(fixture_sites.by_dist["gc-fakes"]))
    monkeypatch.delenv("GUARDCHAIN_PLUGINS", raising=False)
    monkeypatch.delenv("GUARDCHAIN_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("GUARDCHAIN_ALLOW_NETWORK", raising=False)


def _every_hostile_file(test: Any) -> Any:
    """Run every hostile construct, whatever the draw (explicit examples come on top of the 100 drawn)."""
    for case in HOSTILE:
        test = example(file=case)(test)
    return test


def _hang(signum: int, frame: object) -> None:
    raise TimeoutError(f"a command ran for more than {WATCHDOG_S} s")


@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(file=files)
@_every_hostile_file
def test_every_generated_chain_file_gets_a_documented_exit_code_and_no_traceback(
    file: tuple[str, str], fakes_installed: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fmt, text = file
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    path = work / f"chain.{fmt}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(WATCHDOG_S)
    try:
        doctor = main(["doctor", str(path)])
        run = main(["run", str(path), "--out", str(work / "out")])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert doctor in DOCTOR_CODES, (doctor, text[:300], output[-2000:])
    assert run in RUN_CODES, (run, text[:300], output[-2000:])
    assert "Traceback" not in output and "GC-INTERNAL" not in output, (text[:300], output[-2000:])
    if doctor == 0:
        assert run in {0, 1}, (text[:300], output[-2000:])  # a chain doctor passes always starts
