"""The registered capabilities: ``attach(handle, sites, context)`` builds an :class:`IntervenedModel` and
returns its :class:`~guardchain.interventions.model.Attachment` (the kernel's ``Detachable``).

One factory serves every registered name: :class:`RegisteredIntervention` finds the intervention class from the
type of its validated config (:mod:`guardchain.interventions.table`).

Sites are resolved by the run's adapter (``context.adapter``, else the handle's adapter created through
``context.registry``). Trainable interventions read the hidden size of their sites from one short probe forward
pass; with ``load_from`` their weights come from a directory written by ``save_interventions``. Sourced
interventions run their source (``source_input_ids`` or ``source_text``) once, when attached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pydantic import BaseModel
from safetensors.torch import save_file

from guardchain.core.context import RunContext
from guardchain.core.handles import ModelHandle
from guardchain.interventions.base import Intervention
from guardchain.interventions.catalog import class_for_config
from guardchain.interventions.codes import InterventionErrorCode, intervention_error
from guardchain.interventions.model import Attachment, Binding, IntervenedModel
from guardchain.interventions.serialize import read_saved
from guardchain.interventions.sites import adapter_for, probe_hidden_sizes, resolve
from guardchain.interventions.units import Units


class RegisteredIntervention:
    """Every registered intervention: ``config`` is the validated config model of one table row, whose class
    :attr:`intervention_class` is built on :meth:`attach`."""

    def __init__(self, config: BaseModel) -> None:
        self.config = config
        self.intervention_class: type[Intervention] = class_for_config(config)

    def _device(self, handle: ModelHandle) -> torch.device:
        model: torch.nn.Module = handle.model
        return next(model.parameters()).device

    def _sources(self, handle: ModelHandle) -> torch.Tensor | None:
        config: Any = self.config
        if not self.intervention_class.needs_source:
            return None
        if config.source_input_ids is not None:
            return torch.tensor(config.source_input_ids, dtype=torch.long, device=self._device(handle))
        if config.source_text is not None:
            if handle.tokenizer is None:
                raise intervention_error(
                    InterventionErrorCode.SOURCE, "source_text needs a tokenizer, and this handle has none"
                )
            rows = [handle.tokenizer(text, add_special_tokens=False)["input_ids"] for text in config.source_text]
            if len({len(row) for row in rows}) != 1:
                raise intervention_error(
                    InterventionErrorCode.SHAPE,
                    f"source_text rows tokenize to different lengths {[len(r) for r in rows]}; give equal lengths",
                )
            return torch.tensor(rows, dtype=torch.long, device=self._device(handle))
        raise intervention_error(
            InterventionErrorCode.SOURCE,
            f"{self.intervention_class.plugin_name} reads a source run: set source_input_ids or source_text",
        )

    def _dim(self, handle: ModelHandle, refs: Sequence[Any], units: Units) -> int | None:
        if not self.intervention_class.trainable:
            return None
        sizes = set(probe_hidden_sizes(handle.model, refs).values())
        if len(sizes) != 1:
            raise intervention_error(
                InterventionErrorCode.SHAPE,
                f"one {self.intervention_class.plugin_name} intervention cannot serve sites of hidden sizes "
                f"{sorted(sizes)}; attach one per size",
            )
        hidden = sizes.pop()
        if units.heads is None:
            return hidden
        n_heads = units.n_heads or getattr(getattr(handle.model, "config", None), "num_attention_heads", None)
        if not n_heads or hidden % n_heads:
            raise intervention_error(InterventionErrorCode.UNITS, f"cannot split {hidden} into {n_heads} heads")
        return hidden // int(n_heads)

    def _load_weights(self, intervention: Intervention, handle: ModelHandle) -> None:
        config: Any = self.config
        if getattr(config, "load_from", None) is None:
            return
        saved = read_saved(config.load_from, map_location=self._device(handle), allow_nonfinite=config.allow_nonfinite)
        if config.index >= len(saved.interventions):
            raise intervention_error(
                InterventionErrorCode.LOAD,
                f"{config.load_from} holds {len(saved.interventions)} interventions; index {config.index} is past them",
            )
        found = saved.interventions[config.index]
        if found.plugin_name != intervention.plugin_name:
            raise intervention_error(
                InterventionErrorCode.LOAD,
                f"{config.load_from} intervention {config.index} is a {found.plugin_name!r}, not a "
                f"{intervention.plugin_name!r}",
            )
        intervention.load_tensors(found.tensors())

    def build(self, handle: ModelHandle, sites: Sequence[str], context: RunContext) -> IntervenedModel:
        """The :class:`IntervenedModel` that :meth:`attach` attaches."""
        refs = resolve(adapter_for(handle, context), handle, sites)
        units = Units.from_config(self.config)
        intervention = self.intervention_class.from_config(
            self.config, dim=self._dim(handle, refs, units), seed=context.seed
        )
        self._load_weights(intervention, handle)
        intervention.to(self._device(handle))
        return IntervenedModel(handle.model, [Binding(ref, intervention, units) for ref in refs])

    def attach(self, handle: ModelHandle, sites: Sequence[str], context: RunContext) -> Attachment:
        """Attach to ``sites`` of ``handle``; the returned attachment's ``remove()`` detaches exactly this. With
        ``collect``'s ``artifact`` set, the records are written to the run directory on ``remove()``."""
        attachment = self.build(handle, sites, context).attach(self._sources(handle))
        artifact = getattr(self.config, "artifact", None)
        if artifact:

            def write() -> None:
                tensors = {
                    f"{site}/{i}": t.contiguous().cpu()
                    for site, records in attachment.records.items()
                    for i, t in enumerate(records)
                }
                if tensors:
                    save_file(tensors, str(context.artifact_path(artifact)))

            attachment.on_remove(write)
        return attachment
