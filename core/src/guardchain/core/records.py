"""The JSON run record a chain run writes (``run.json``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RUN_RECORD_SCHEMA_VERSION: Literal[1] = 1


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemRecord(_Record):
    """A problem as stored in a record (see :class:`guardchain.core.errors.Problem`)."""

    code: str
    message: str
    path: str = ""
    expected: str = ""
    hint: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class CapabilityRef(_Record):
    """Which capability ran, and from which distribution."""

    kind: str
    name: str
    plugin: str
    distribution: str | None
    version: str | None


class StepRecord(_Record):
    """What one step did.

    :ivar duration_s: wall time of the step in seconds.
    :ivar result: the step's JSON-ready result (metric result, edit report with guard reports, ...).
    :ivar rolled_back: for an edit step: true when a gate-mode guard failed and the weights were restored.
    """

    index: int
    id: str
    kind: str
    capability: CapabilityRef
    status: Literal["ok", "failed"]
    duration_s: float = Field(ge=0)
    result: dict[str, Any] | None = None
    rolled_back: bool = False
    error: ProblemRecord | None = None


class RunRecord(_Record):
    """Everything a chain run did, written atomically to ``<out_dir>/run.json``.

    ``status`` is ``ok`` when every step succeeded and no edit was rolled back, ``rolled_back`` when a gate-mode
    guard failed an edit (which was restored), ``failed`` when a step raised.

    Two runs of the same chain with the same seed give records equal in every field except ``run_id``,
    ``started_at``, ``finished_at`` and the ``duration_s`` fields.
    """

    schema_version: Literal[1] = RUN_RECORD_SCHEMA_VERSION
    run_id: str
    chain: str
    chain_digest: str
    source: str | None = None
    seed: int
    status: Literal["ok", "rolled_back", "failed"]
    started_at: str
    finished_at: str
    duration_s: float = Field(ge=0)
    model: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    artifacts: dict[str, str] = Field(default_factory=dict)
    problems: list[ProblemRecord] = Field(default_factory=list)
    environment: dict[str, Any] = Field(default_factory=dict)
