"""The intervened model: bindings (site, intervention, units, source) attached to a model by torch hooks.

:class:`IntervenedModel` is an ``nn.Module`` (usable inside other models; its parameters are the trainable
interventions' and the wrapped model's) and a context manager around any forward or ``generate`` call::

    im = IntervenedModel.from_sites(adapter, handle, [("blocks[1].output", Add(v, 4.0), Units(positions=[-1]))])
    with im:                         # hooks on, for any call of handle.model
        logits = handle.model(ids).logits
    logits = im(ids).logits           # the same, hooks on for this call only
    out = im.generate(ids, generation="prompt", max_new_tokens=8)

Sourced interventions (interchange, DAS) read a **source run**: ``im(base_ids, sources=[source_ids])`` or
``with im.attach(sources=[source_ids]):``. Each source runs once per attachment, under ``no_grad``, without any
intervention, and stops as soon as every site it feeds has been read (later blocks and the head are skipped).

Generation. Positions are absolute positions in the sequence; negative ones count from the end of the **prompt**.
``generation="prompt"`` intervenes on the prompt's selected positions only; ``"every_step"`` also on every
generated position. With a KV cache the prompt is computed once (the edit applies once and lives on in the cache);
without a cache every step recomputes the prompt and the edit is re-applied to the same absolute positions, so
both give the same result. The forward's offset is read from ``past_key_values.get_seq_length()`` (or
``cache_position``). Around a bare ``model.generate`` inside ``with im:``, a forward that starts at offset 0 is a
new prompt, so uncached generation there re-resolves negative positions each step: use :meth:`IntervenedModel.generate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal, get_args

import torch
from torch.utils.hooks import RemovableHandle

from guardchain.core.handles import ModelHandle, SiteRef
from guardchain.interventions.base import Intervention
from guardchain.interventions.codes import InterventionErrorCode, intervention_error
from guardchain.interventions.sites import find_module, hook_site, resolve, run_until, split_inputs
from guardchain.interventions.static import Collect
from guardchain.interventions.units import (
    PositionSelection,
    Units,
    gather,
    resolve_heads,
    resolve_positions,
    scatter,
)

GenerationPolicy = Literal["prompt", "every_step"]
_POLICIES = get_args(GenerationPolicy)


@dataclass(frozen=True)
class Binding:
    """One intervention at one concrete site.

    :ivar site: the resolved site (from the adapter's ``resolve_sites``).
    :ivar intervention: what to do there; one object may serve several bindings (records are kept per site).
    :ivar units: which units of the activation it sees.
    :ivar source: index of the source run it reads (sourced interventions only).
    """

    site: SiteRef
    intervention: Intervention
    units: Units = field(default_factory=Units)
    source: int = 0


def _model_heads(model: torch.nn.Module) -> int | None:
    config = getattr(model, "config", None)
    for key in ("num_attention_heads", "n_head"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None


def _past_length(kwargs: Mapping[str, Any]) -> int:
    past = kwargs.get("past_key_values")
    if past is not None:
        if hasattr(past, "get_seq_length"):
            return int(past.get_seq_length())
        if isinstance(past, tuple | list) and past and isinstance(past[0], tuple | list) and past[0]:
            return int(past[0][0].shape[-2])
    position = kwargs.get("cache_position")
    if isinstance(position, torch.Tensor) and position.numel():
        return int(position.reshape(-1)[0])
    return 0


class _Window:
    """Where the current forward pass sits in the sequence: offset of its first position and the prompt length."""

    def __init__(self, prompt_len: int | None) -> None:
        self.offset = 0
        self.prompt_len = prompt_len
        self.fixed = prompt_len is not None


class Attachment:
    """The hooks one attachment of an :class:`IntervenedModel` added; :meth:`remove` removes exactly those.

    A context manager and a kernel ``Detachable``. ``remove`` is idempotent.
    """

    def __init__(self, owner: IntervenedModel, handles: list[RemovableHandle]) -> None:
        self.owner = owner
        self._handles = handles
        self._on_remove: list[Any] = []

    @property
    def attached(self) -> bool:
        """Whether its hooks are still registered."""
        return bool(self._handles)

    def on_remove(self, callback: Any) -> None:
        """Call ``callback()`` once, when the hooks are removed."""
        self._on_remove.append(callback)

    @property
    def records(self) -> dict[str, list[torch.Tensor]]:
        """What the ``collect`` interventions of the owner recorded, per site (one tensor per forward pass)."""
        return self.owner.records

    def remove(self) -> None:
        """Remove this attachment's hooks (and only them); run the ``on_remove`` callbacks once."""
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()
        callbacks, self._on_remove = self._on_remove, []
        for callback in callbacks:
            callback()

    def __enter__(self) -> Attachment:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()


class IntervenedModel(torch.nn.Module):
    """A model with interventions bound to its sites (see the module docstring).

    :param model: the model (``handle.model``).
    :param bindings: what to do where.
    :param generation: the default generation policy for ``with im:`` around a bare ``generate``.
    :raises GuardchainError: ``GC-INTERVENTION-SITE`` for a site whose module the model lacks,
        ``GC-INTERVENTION-GENERATION`` for an unknown policy or ``every_step`` with a sourced intervention.
    """

    def __init__(
        self, model: torch.nn.Module, bindings: Sequence[Binding], *, generation: GenerationPolicy = "prompt"
    ) -> None:
        super().__init__()
        self.model = model
        heads = _model_heads(model)
        self.bindings: tuple[Binding, ...] = tuple(
            replace(b, units=replace(b.units, n_heads=heads))
            if b.units.heads is not None and b.units.n_heads is None
            else b
            for b in bindings
        )
        unique: dict[int, Intervention] = {}
        # plain list, not a ModuleList: the model's submodules must not be registered twice
        self._hooked: list[torch.nn.Module] = [find_module(model, b.site) for b in self.bindings]
        for binding in self.bindings:
            unique.setdefault(id(binding.intervention), binding.intervention)
        self.interventions = torch.nn.ModuleList(unique.values())
        self.generation: GenerationPolicy = self._policy(generation)
        self._active: Attachment | None = None
        self.train(model.training)  # wrapping never flips the model between train and eval mode
        self._selections: dict[tuple[Any, ...], PositionSelection] = {}

    @classmethod
    def from_sites(
        cls,
        adapter: Any,
        handle: ModelHandle,
        plan: Sequence[tuple[Any, ...]],
        *,
        generation: GenerationPolicy = "prompt",
    ) -> IntervenedModel:
        """Bind through an adapter: ``plan`` holds ``(site, intervention)``, ``(site, intervention, units)`` or
        ``(site, intervention, units, source)`` tuples; each site string may expand to several sites
        (``blocks[*].output``), which share the intervention object."""
        bindings: list[Binding] = []
        for entry in plan:
            site, intervention, *rest = entry
            units = rest[0] if rest and rest[0] is not None else Units()
            source = int(rest[1]) if len(rest) > 1 else 0
            bindings.extend(Binding(ref, intervention, units, source) for ref in resolve(adapter, handle, site))
        return cls(handle.model, bindings, generation=generation)

    # -- bookkeeping ----------------------------------------------------------------------------------------------

    def _policy(self, policy: str) -> GenerationPolicy:
        if policy not in _POLICIES:
            raise intervention_error(
                InterventionErrorCode.GENERATION,
                f"unknown generation policy {policy!r}",
                expected=" or ".join(_POLICIES),
            )
        if policy == "every_step":
            sourced = sorted({b.intervention.plugin_name for b in self.bindings if b.intervention.needs_source})
            if sourced:
                raise intervention_error(
                    InterventionErrorCode.GENERATION,
                    f"generation='every_step' cannot apply {sourced}: a source run has no values for generated "
                    "positions",
                    hint="use generation='prompt' for interventions that read a source run",
                )
        return policy  # type: ignore[return-value]

    @property
    def records(self) -> dict[str, list[torch.Tensor]]:
        """Records of every ``collect`` intervention bound here, per site."""
        merged: dict[str, list[torch.Tensor]] = {}
        for intervention in self.interventions:
            if isinstance(intervention, Collect):
                for site, tensors in intervention.records.items():
                    merged.setdefault(site, []).extend(tensors)
        return merged

    def intervention_parameters(self) -> list[torch.nn.Parameter]:
        """The trainable interventions' parameters (not the model's)."""
        return [p for p in self.interventions.parameters() if p.requires_grad]

    def _select(self, spec: Any, batch: int, length: int, device: torch.device, what: str) -> PositionSelection:
        token = ("slice", spec.start, spec.stop, spec.step) if isinstance(spec, slice) else id(spec)
        key = (token, batch, length, device, what)
        found = self._selections.get(key)
        if found is None:
            found = resolve_positions(spec, batch, length, device, what=what)
            if len(self._selections) > 256:
                self._selections.clear()
            self._selections[key] = found
        return found

    # -- sources --------------------------------------------------------------------------------------------------

    def _source_values(self, sources: Any) -> dict[int, torch.Tensor]:
        """Binding index -> the selected source units, one source forward pass per source index."""
        sourced = [i for i, b in enumerate(self.bindings) if b.intervention.needs_source]
        if not sourced:
            return {}
        if sources is None:
            names = sorted({self.bindings[i].intervention.plugin_name for i in sourced})
            raise intervention_error(
                InterventionErrorCode.SOURCE, f"{names} read a source run: pass sources=[...] (one input per source)"
            )
        runs = [sources] if isinstance(sources, torch.Tensor | Mapping) else list(sources)
        values: dict[int, torch.Tensor] = {}
        for source in sorted({self.bindings[i].source for i in sourced}):
            if not 0 <= source < len(runs):
                raise intervention_error(
                    InterventionErrorCode.SOURCE, f"a binding reads source {source} but {len(runs)} were given"
                )
            hooks = [(self.bindings[i].site, self._source_reader(i, values)) for i in sourced]
            hooks = [h for i, h in zip(sourced, hooks, strict=True) if self.bindings[i].source == source]
            run_until(self.model, hooks, runs[source])
        return values

    def _source_reader(self, index: int, values: dict[int, torch.Tensor]) -> Any:
        binding = self.bindings[index]
        spec = binding.units.positions if binding.units.source_positions is None else binding.units.source_positions

        def read(activation: torch.Tensor) -> None:
            batch, length, hidden = activation.shape
            selection = self._select(spec, batch, length, activation.device, "source_positions")
            heads = resolve_heads(binding.units.heads, binding.units.n_heads, hidden)
            values[index] = gather(activation, selection, heads).detach()
            return None

        return read

    # -- attaching ------------------------------------------------------------------------------------------------

    def attach(
        self, sources: Any = None, *, generation: GenerationPolicy | None = None, prompt_len: int | None = None
    ) -> Attachment:
        """Register the hooks; return the :class:`Attachment` that removes them.

        :param sources: inputs of the source runs (a tensor of input ids, a mapping of keyword arguments, or a
            list of those, one per source index); needed iff a bound intervention reads a source.
        :param generation: the policy for this attachment (default: the model's).
        :param prompt_len: the prompt length when it is known (``generate``); otherwise each forward starting at
            offset 0 is a prompt.
        """
        policy = self._policy(generation or self.generation)
        source_values = self._source_values(sources)
        window = _Window(prompt_len)
        handles: list[RemovableHandle] = []
        try:

            def root_hook(_module: torch.nn.Module, _args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                window.offset = _past_length(kwargs)
                return None

            handles.append(self.model.register_forward_pre_hook(root_hook, with_kwargs=True))
            for index, binding in enumerate(self.bindings):
                callback = self._hook(binding, source_values.get(index), window, policy)
                handles.append(hook_site(self._hooked[index], binding.site, callback))
        except BaseException:
            for handle in handles:
                handle.remove()
            raise
        return Attachment(self, handles)

    def _windows(
        self, binding: Binding, window: _Window, policy: GenerationPolicy, batch: int, length: int, device: torch.device
    ) -> list[tuple[PositionSelection, bool]]:
        """``(selection, is_prompt)`` pairs for one activation of ``length`` positions at the window's offset."""
        offset = window.offset
        if offset == 0 and not window.fixed:
            window.prompt_len = length
        prompt = window.prompt_len if window.prompt_len is not None else offset
        out: list[tuple[PositionSelection, bool]] = []
        if offset == 0 and length >= prompt:
            spec = binding.units.positions
            if spec is None and length > prompt:
                spec = slice(0, prompt)
            out.append((self._select(spec, batch, prompt, device, "positions"), True))
        elif offset < prompt:
            raise intervention_error(
                InterventionErrorCode.GENERATION,
                f"a forward pass covers positions {offset}..{offset + length - 1}, only part of the prompt "
                f"0..{prompt - 1} (chunked prefill is not supported)",
            )
        if policy == "every_step" and offset + length > prompt:
            start = max(offset, prompt) - offset
            out.append((self._select(slice(start, length), batch, length, device, "generated positions"), False))
        return out

    def _hook(self, binding: Binding, source: torch.Tensor | None, window: _Window, policy: GenerationPolicy) -> Any:
        intervention = binding.intervention
        units = binding.units
        site = binding.site.site

        def callback(activation: torch.Tensor) -> torch.Tensor | None:
            batch, length, hidden = activation.shape
            heads = resolve_heads(units.heads, units.n_heads, hidden)
            out = activation
            for selection, is_prompt in self._windows(binding, window, policy, batch, length, activation.device):
                selected = gather(out, selection, heads)
                new = intervention.intervene(selected, source if is_prompt else None, site=site)
                if new is not selected:
                    out = scatter(out, selection, heads, new)
            return None if out is activation else out

        return callback

    # -- use --------------------------------------------------------------------------------------------------

    def __enter__(self) -> IntervenedModel:
        if self._active is not None and self._active.attached:
            raise RuntimeError("this IntervenedModel is already attached; use attach() for a second attachment")
        self._active = self.attach()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._active is not None:
            self._active.remove()
            self._active = None

    def forward(self, *args: Any, sources: Any = None, **kwargs: Any) -> Any:
        """``model(*args, **kwargs)`` with the interventions attached for this call only."""
        with self.attach(sources):
            return self.model(*args, **kwargs)

    def run(self, inputs: Any, sources: Any = None) -> Any:
        """``forward`` on inputs given as a tensor (first positional argument), a mapping or ``(args, kwargs)``."""
        args, kwargs = split_inputs(inputs)
        return self(*args, sources=sources, **kwargs)

    def generate(self, *args: Any, generation: GenerationPolicy, sources: Any = None, **kwargs: Any) -> Any:
        """``model.generate(*args, **kwargs)`` with the interventions attached.

        :param generation: required: ``"prompt"`` (intervene on the prompt's selected positions only) or
            ``"every_step"`` (also on every generated position). See the module docstring for KV-cache semantics.
        """
        ids = kwargs.get("input_ids", args[0] if args else kwargs.get("inputs"))
        if ids is None:
            ids = kwargs.get("inputs_embeds")
        if not isinstance(ids, torch.Tensor):
            raise TypeError("generate needs input_ids (or inputs_embeds) as a tensor")
        with self.attach(sources, generation=generation, prompt_len=int(ids.shape[1])):
            return self.model.generate(*args, **kwargs)  # type: ignore[operator]
