"""The run context every step of a chain receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardchain.core.handles import ModelHandle

if TYPE_CHECKING:
    from guardchain.core.registry import Registry


@dataclass
class RunContext:
    """State shared by the steps of one chain run.

    :ivar run_id: unique id of this run (a UUID4 hex string); the only field that differs between two runs of
        the same chain with the same seed.
    :ivar seed: the chain's master seed; capabilities derive their own seeds from it deterministically.
    :ivar out_dir: directory where the run record and artifacts are written.
    :ivar registry: the registry the chain was resolved from (capabilities may look up siblings by name).
    :ivar adapter: the adapter instance that loaded ``handle``, or ``None`` when the chain loads no model.
    :ivar handle: the model being measured; an edit step modifies it in place.
    :ivar data: whatever the chain's dataset returned from ``load``, or ``None``.
    :ivar results: JSON-ready results of finished steps, keyed by step id.
    :ivar artifacts: files written by steps, as ``name -> path relative to out_dir``.
    """

    run_id: str
    seed: int
    out_dir: Path
    registry: Registry | None = None
    adapter: Any = None
    handle: ModelHandle | None = None
    data: Any = None
    results: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)

    def artifact_path(self, name: str) -> Path:
        """Reserve ``out_dir / name`` for an artifact, record it, and return the path (parents created)."""
        if not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"artifact name must be a relative path inside the run directory, got {name!r}")
        path = self.out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.artifacts[name] = name
        return path
