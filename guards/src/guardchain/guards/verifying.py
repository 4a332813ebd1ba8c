"""What the four guards' verifiers share: parsing a recorded report's evidence, and naming every field where the
recorded report differs from the one its evidence gives.

The guard verifier contract (``registrar.register(..., verifier="module:function")``, called by
``guardchain verify``)::

    verify_report(report: Mapping[str, Any], config: Mapping[str, Any]) -> list[tuple[str, str]]

``report`` is a :class:`~guardchain.core.results.GuardReport` as JSON, ``config`` the guard's full validated config
as JSON. Each guard's ``*_decide`` module holds a pure function from its recorded **evidence** (per-matrix singular
values, per-site variances, per-window NLL differences, the names of what changed) and its config's thresholds
(:mod:`guardchain.guards.tiers` for the config's tier, plus its overrides) to the whole report; the guard calls it
to write its report, the verifier calls it on the evidence parsed back from the recorded report, and
:func:`differences` lists every field where the two disagree — status, findings, actions, measurements, derived
details, and the recorded thresholds. Nothing here imports torch (numpy at most, for the bootstrap).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from guardchain.core.results import GuardReport
from guardchain.guards.config_base import GuardConfig

Mismatch = tuple[str, str]

#: at most this many disagreements are listed (one tampered number can move many derived fields)
MAX_MISMATCHES = 40
#: relative and absolute tolerance of a recomputed number (see :func:`differences`)
REL_TOL = 1e-9
ABS_TOL = 1e-12


class Evidence(BaseModel):
    """Base of the evidence models: what a report records as measured, parsed strictly (numbers must be finite JSON
    numbers, strings strings); derived fields sitting beside the evidence in the same objects are ignored here and
    checked by recomputing them."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, allow_inf_nan=False)


class Rows(Evidence):
    """The token rows a guard ran the model on (:meth:`guardchain.guards.common.WindowRows.describe`)."""

    source: str
    ids: list[str]
    tokens: list[int]


class EvidenceError(Exception):
    """The recorded evidence cannot give a report: a piece is missing, contradicts another, or does not fit the
    config (``path`` relative to the report)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


E = TypeVar("E", bound=Evidence)
C = TypeVar("C", bound=GuardConfig)


def verify_with(
    report: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    guard: str,
    config_model: type[C],
    evidence_model: type[E],
    rebuild: Callable[[E, C], GuardReport],
    evidence_words: str,
) -> list[Mismatch]:
    """Validate the config, parse the evidence from ``report["details"]``, rebuild the report and list the
    differences (see the module docstring). Never raises on a malformed report: every problem is a mismatch.

    :param evidence_words: what the evidence is, for messages (``"the recorded spectra"``).
    """
    try:
        settings = config_model.model_validate(dict(config))
    except (ValidationError, TypeError, ValueError) as exc:
        return [("config", f"is not a valid {guard} config: {_first_error(exc)}")]
    if not isinstance(report, Mapping):
        return [("", f"is a {type(report).__name__}, not a {guard} report")]
    if report.get("guard") != guard:
        return [("guard", f"is {report.get('guard')!r}, this verifier checks {guard!r} reports")]
    details = report.get("details")
    if not isinstance(details, Mapping):
        return [("details", f"is missing: the {guard} report records its evidence there")]
    try:
        evidence = evidence_model.model_validate(dict(details))
    except ValidationError as exc:
        return [
            (_join("details", error["loc"]), f"is not valid evidence: {error['msg']}")
            for error in exc.errors()[:MAX_MISMATCHES]
        ]
    try:
        expected = rebuild(evidence, settings).model_dump(mode="json")
    except EvidenceError as exc:
        return [(exc.path, exc.message)]
    except Exception as exc:  # hostile evidence must give a mismatch, never a traceback in verify
        return [("details", f"{evidence_words} cannot be evaluated: {type(exc).__name__}: {exc}")]
    return differences(expected, report, evidence_words)


def differences(expected: Any, recorded: Any, evidence_words: str, path: str = "") -> list[Mismatch]:
    """Every field where ``recorded`` differs from ``expected`` (both JSON), as ``(path, message)``; at most
    :data:`MAX_MISMATCHES`, then one line counting the rest.

    Numbers agree when within :data:`REL_TOL` relatively (or :data:`ABS_TOL`): on the machine that wrote the report
    the recomputation is bit for bit, elsewhere ``log``/``exp``/``erfc`` of another C library may differ in the last
    bits; anything a tampering changes moves far more. Everything else (statuses, codes, flags, counts as names)
    compares exactly; ``true`` is not ``1``."""
    out: list[Mismatch] = []
    _walk(expected, recorded, path, evidence_words, out)
    if len(out) > MAX_MISMATCHES:
        rest = len(out) - MAX_MISMATCHES
        out = [*out[:MAX_MISMATCHES], ("", f"... and {rest} more differences")]
    return out


def _walk(expected: Any, recorded: Any, path: str, words: str, out: list[Mismatch]) -> None:
    if isinstance(expected, Mapping):
        if not isinstance(recorded, Mapping):
            out.append((path, f"is {_short(recorded)}; {words} give an object"))
            return
        for key, value in expected.items():
            where = _join(path, (key,))
            if key not in recorded:
                out.append((where, f"is missing; {words} give {_short(value)}"))
            else:
                _walk(value, recorded[key], where, words, out)
        for key in recorded:
            if key not in expected:
                out.append((_join(path, (key,)), "is not part of the report that the recorded evidence gives"))
        return
    if isinstance(expected, list):
        if not isinstance(recorded, list):
            out.append((path, f"is {_short(recorded)}; {words} give a list"))
        elif len(recorded) != len(expected):
            out.append((path, f"has {len(recorded)} entries; {words} give {len(expected)}{_which(expected, recorded)}"))
        else:
            for index, (e, r) in enumerate(zip(expected, recorded, strict=True)):
                _walk(e, r, f"{path}[{index}]", words, out)
        return
    if not _same(expected, recorded):
        out.append((path, f"is {_short(recorded)}; {words} give {_short(expected)}"))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isfinite(float(b)) and (a == b or math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL))
    return type(a) is type(b) and bool(a == b)


def _which(expected: Sequence[Any], recorded: Sequence[Any]) -> str:
    """For lists of findings or actions: the entries only one side has, by code/kind and target."""

    def key(item: Any) -> str | None:
        if not isinstance(item, Mapping):
            return None
        label = item.get("code") or item.get("kind") or item.get("name") or item.get("site")
        return f"{label} {item.get('target', '')}".strip() if label else None

    keys_e = [key(i) for i in expected]
    keys_r = [key(i) for i in recorded]
    if None in keys_e or None in keys_r:
        return ""
    missing = list((Counter(keys_e) - Counter(keys_r)).elements())
    extra = list((Counter(keys_r) - Counter(keys_e)).elements())
    parts = []
    if missing:
        parts.append(f"missing {', '.join(map(str, missing[:3]))}")
    if extra:
        parts.append(f"not derivable {', '.join(map(str, extra[:3]))}")
    return f" ({'; '.join(parts)})" if parts else ""


def _join(path: str, loc: Sequence[Any]) -> str:
    out = path
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def _short(value: Any) -> str:
    """A short description of a JSON value (containers by size only: a recorded value may be nested arbitrarily)."""
    if isinstance(value, Mapping):
        return f"an object of {len(value)} keys"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{_join('', error['loc']) or 'config'}: {error['msg']}"
    return str(exc)
