"""The six capability protocols.

A plugin needs no kernel base class: any object whose methods match one of these protocols is a capability of
that kind. ``typing.runtime_checkable`` would only check that names exist, so the kernel validates attributes,
callability and signatures explicitly (:mod:`guardchain.core.capabilities`) when a capability is registered and
again when it is created. The kernel calls every protocol method with positional arguments, in the order shown.

Framework objects (tensors, modules, tokenizers, batches) are typed ``Any``: the kernel never imports torch.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from guardchain.core.context import RunContext
from guardchain.core.handles import ModelHandle, ModelStructure, SiteRef
from guardchain.core.results import EditPlan, EditReport, GuardReport, MetricResult


class Adapter(Protocol):
    """Loads a model family and exposes what the other capabilities need of it."""

    def load(self, ref: str, context: RunContext) -> ModelHandle:
        """Load ``ref`` (a local directory, a packaged model name, or a hub id when network is opted in)."""
        ...

    def describe(self, handle: ModelHandle) -> ModelStructure:
        """The ordered blocks and every weight matrix with its family and shape; tied weights."""
        ...

    def token_logprobs(self, handle: ModelHandle, batch: Any) -> Any:
        """Per-token log-likelihoods of ``batch``, shape ``(batch, positions)``; padded positions are NaN."""
        ...

    def resolve_sites(self, handle: ModelHandle, site: str) -> Sequence[SiteRef]:
        """Expand a site string (``blocks[*].mlp.output``) to concrete sites; unknown sites raise."""
        ...

    def snapshot(self, handle: ModelHandle, names: Collection[str] | None) -> Any:
        """An opaque copy of the parameters ``names`` (every parameter when ``None``), enough for a bit-identical
        :meth:`restore` of exactly those; an unknown name raises. Copy only what is asked: the runner snapshots
        an edit's targets, not the whole model."""
        ...

    def restore(self, handle: ModelHandle, snapshot: Any) -> None:
        """Put back the parameters captured by :meth:`snapshot`, bit for bit; the others are left as they are."""
        ...

    def weights_digest(self, handle: ModelHandle) -> str:
        """SHA-256 hex digest over every parameter's name, dtype, shape and bytes, in name order.

        Called several times per run (before an edit, after it, after a rollback): an adapter should hash only
        the parameters that changed since its last call (e.g. by caching per-parameter digests)."""
        ...


class Edit(Protocol):
    """Changes a model's weights in place: quantization, pruning, a fine-tuning delta."""

    def plan(self, handle: ModelHandle, structure: ModelStructure) -> EditPlan:
        """Decide which parameters will change, before anything changes."""
        ...

    def apply(self, handle: ModelHandle, plan: EditPlan) -> EditReport:
        """Apply ``plan`` to ``handle`` in place and report what changed."""
        ...


class Guard(Protocol):
    """Measures the model before and after an edit; in ``gate`` mode it may correct the subject and fail.

    Lifecycle, always in this order and each exactly once per edit: ``prepare`` on the baseline,
    ``after_edit`` on the edited subject, ``finalize``.
    """

    def prepare(self, baseline: ModelHandle, context: RunContext) -> None:
        """Measure the reference model before the edit."""
        ...

    def after_edit(self, subject: ModelHandle, context: RunContext) -> None:
        """Measure the edited model; in gate mode, apply corrections."""
        ...

    def finalize(self, context: RunContext) -> GuardReport:
        """Return the report: status, measurements, findings and actions."""
        ...


class Metric(Protocol):
    """Measures a model on data; the per-unit values allow paired baseline/subject comparisons."""

    def compute(self, handle: ModelHandle, data: Any, context: RunContext) -> MetricResult:
        """Evaluate ``handle`` on ``data``."""
        ...


class Detachable(Protocol):
    """What :meth:`Intervention.attach` returns: removing it undoes the attachment (idempotent)."""

    def remove(self) -> None:
        """Detach; calling it twice is harmless."""
        ...


class Intervention(Protocol):
    """Reads or changes activations at addressed sites while the model runs."""

    def attach(self, handle: ModelHandle, sites: Sequence[str], context: RunContext) -> Detachable:
        """Attach to ``sites`` of ``handle``; the returned object detaches exactly what was attached."""
        ...


class Dataset(Protocol):
    """A data source: text files, JSONL, a bundled corpus."""

    def load(self, context: RunContext) -> Any:
        """Return the data (records, texts or windows) that metrics and guards consume."""
        ...

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the content as loaded, for provenance."""
        ...
