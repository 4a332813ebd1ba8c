"""State the guards of one run share, attached to that run's :class:`~guardchain.core.context.RunContext`.

Two things, both scoped to the context object (they disappear with it, so two runs never see each other's):

* a memo of pure functions of the weights: spectra keyed by the matrix's name, value sketch and start vector
  source, so ``spectral`` and ``rmt`` compute each spectrum once per phase; the invariants probe keyed by a sketch
  of every parameter; the baseline's SHA-256 digests keyed by that sketch and every parameter's storage and version
  counter, so the chain's second ``invariants`` does not hash the weights again (each entry is a function of its
  key only: the memo never changes a result);
* a memo of activation statistics, keyed by a sketch of every parameter, the token rows and the sites, so
  ``rmt`` and ``variance`` share one hooked forward over the calibration windows.

Which parameters guards corrected is the kernel's business, not this module's: a guard calls
``context.will_change_weights(names)`` before it writes, the runner copies just those tensors, and
``context.corrected`` lists them for ``invariants``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from guardchain.core.context import RunContext


@dataclass
class RunState:
    """The shared state of one run (see the module docstring)."""

    memo: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    captures: list[tuple[tuple[Any, ...], frozenset[str], Any]] = field(default_factory=list)


_STATES: dict[int, tuple[weakref.ReferenceType[RunContext], RunState]] = {}
_MAX_MEMO = 4096


def run_state(context: RunContext) -> RunState:
    """The :class:`RunState` of ``context``, created on first use and dropped when the context is collected."""
    key = id(context)
    entry = _STATES.get(key)
    if entry is not None and entry[0]() is context:
        state = entry[1]
    else:
        state = RunState()
        _STATES[key] = (weakref.ref(context), state)
        weakref.finalize(context, _STATES.pop, key, None)
    if len(state.memo) > _MAX_MEMO:
        state.memo.clear()
    return state
