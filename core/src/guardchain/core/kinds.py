"""The kinds of capability (kept in a module of its own so that listing plugins imports nothing heavy)."""

from __future__ import annotations

from enum import StrEnum


class CapabilityKind(StrEnum):
    """The six kinds of capability a plugin can register."""

    ADAPTER = "adapter"
    EDIT = "edit"
    GUARD = "guard"
    METRIC = "metric"
    INTERVENTION = "intervention"
    DATASET = "dataset"

    @property
    def plural(self) -> str:
        """``adapters``, ``edits``, ... as used in hook names."""
        return f"{self.value}s"
