"""A loaded baseline kept between certifications of one process, so that a sweep worker loads it once.

:meth:`guardchain.certify.pipeline.Certification.run` takes the baseline from a :class:`BaselineSlot` when the
slot holds the one it needs (same adapter and validated config, reference and seed: its ``baseline_key``), and
hands it back restored bit for bit (the edit's verified rollback) when it is done; a run that fails drops it.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

from guardchain.core.handles import ModelHandle


@dataclass
class LoadedBaseline:
    """A baseline model held between certifications (see :class:`BaselineSlot`).

    :ivar key: :meth:`Certification.baseline_key` of the certifications that may take it.
    :ivar adapter: the adapter instance that loaded it.
    :ivar handle: the model, holding the baseline weights (bit for bit) whenever it is in the slot.
    """

    key: str
    adapter: Any
    handle: ModelHandle


class BaselineSlot:
    """At most one loaded baseline, kept by a process between certifications (a sweep worker).

    :ivar loads: how many times a baseline was loaded into this slot (a sweep worker reports whether a cell
        reused the held one).
    """

    def __init__(self) -> None:
        self.loaded: LoadedBaseline | None = None
        self.loads = 0

    def take(self, key: str) -> LoadedBaseline | None:
        """The held baseline if it is ``key``'s (the slot is then empty until it is handed back); otherwise the
        held one is dropped (one model in memory) and ``None`` is returned."""
        loaded, self.loaded = self.loaded, None
        if loaded is not None and loaded.key == key:
            return loaded
        if loaded is not None:
            del loaded
            gc.collect()  # the previous model's memory goes before the next one loads
        return None

    def keep(self, loaded: LoadedBaseline) -> None:
        """Hold ``loaded`` (its weights must be the baseline's) for the next certification."""
        self.loaded = loaded
