"""Collection: torch hooks at resolved sites (and router modules) that stream every batch into the accumulators.

- One hook per site, registered once for the whole pass and removed in a ``finally``: each is torch's own
  ``RemovableHandle``, so user hooks and other plugins' hooks (the interventions member's) on the same modules
  survive, and hooks registered before these (an intervention that edits an activation) are seen applied.
- **The forward stops early.** When every hook has fired in a batch, the last one raises a private sentinel that
  the collector catches: the blocks after the last hooked site and the LM head never run, no logits are computed,
  and no model output exists to keep alive between batches.
- **Padding is excluded.** A batch's attention mask (all ones when the batch has none) selects the unmasked rows
  of each activation once per batch on the host; the selected indices are moved to the device and used with
  ``index_select``, so no device-to-host synchronisation happens per hook call.
- Activations of shape ``(batch, positions, hidden)`` or ``(batch·positions, hidden)`` (a router's flattened
  input) are read; row ``b·T + t`` is token ``t`` of sequence ``b``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from guardchain.core.errors import GuardchainError, describe_exception
from guardchain.core.handles import HookPoint, SiteRef
from guardchain.geometry.accumulate import CovarianceAccumulator, ReservoirUpdate, RouterCounter, TokenReservoir
from guardchain.geometry.codes import GeometryErrorCode, geometry_error


@dataclass(frozen=True)
class RouterRef:
    """A router module whose output holds router logits ``(tokens, E)``.

    :ivar module_path: dotted path inside the model.
    :ivar index: element of a tuple output holding the logits.
    :ivar block: the block it belongs to, or ``None``.
    :ivar top_k: experts chosen per token (``config.num_experts_per_tok``).
    :ivar experts: ``E`` when the config says it, else taken from the logits.
    """

    module_path: str
    index: int = 0
    block: int | None = None
    top_k: int = 2
    experts: int | None = None


@dataclass
class SiteState:
    """The streamed state of one site: covariance and the sample rows (in reservoir slots), on the device."""

    ref: SiteRef
    covariance: CovarianceAccumulator | None = None
    rows: torch.Tensor | None = None

    @property
    def dim(self) -> int | None:
        """The hidden size, once the site has been seen."""
        return None if self.covariance is None else self.covariance.dim


@dataclass
class CollectionState:
    """Everything a pass collected; :meth:`merge` folds in a pass over other data (another shard or process).

    :ivar sites: per-site state, in site order.
    :ivar reservoir: the shared sample's keys and token indices (``None`` when no sample is kept).
    :ivar routers: per-router counts, keyed by module path.
    :ivar tokens: unmasked tokens seen.
    :ivar batches: batches run.
    """

    sites: list[SiteState]
    reservoir: TokenReservoir | None
    routers: dict[str, RouterCounter] = field(default_factory=dict)
    router_refs: dict[str, RouterRef] = field(default_factory=dict)
    tokens: int = 0
    batches: int = 0

    def merge(self, other: CollectionState) -> None:
        """Fold ``other`` into this state exactly: covariances by the Chan merge, samples by bottom-k over both key
        sets (``other``'s tokens count as coming after these), router counts by addition.

        :raises GuardchainError: ``GC-GEOM-MERGE`` when the sites, hidden sizes or sample sizes differ.
        """
        mine = [s.ref.site for s in self.sites]
        theirs = [s.ref.site for s in other.sites]
        if mine != theirs or set(self.routers) != set(other.routers):
            raise geometry_error(
                GeometryErrorCode.MERGE, f"cannot merge collections over different sites ({mine} vs {theirs})"
            )
        if (self.reservoir is None) != (other.reservoir is None):
            raise geometry_error(GeometryErrorCode.MERGE, "only one of the two collections kept a sample")
        for site, theirs_state in zip(self.sites, other.sites, strict=True):
            if theirs_state.covariance is None:
                continue
            if site.covariance is None:
                site.covariance = CovarianceAccumulator(theirs_state.covariance.dim, theirs_state.covariance.device)
            site.covariance.merge(theirs_state.covariance)
        if self.reservoir is not None and other.reservoir is not None:
            kept_self, kept_other = self.reservoir.merge_plan(other.reservoir)
            for site, theirs_state in zip(self.sites, other.sites, strict=True):
                parts = []
                if site.rows is not None:
                    parts.append(site.rows[kept_self.to(site.rows.device)])
                if theirs_state.rows is not None:
                    device = site.rows.device if site.rows is not None else theirs_state.rows.device
                    parts.append(theirs_state.rows[kept_other.to(theirs_state.rows.device)].to(device))
                if parts:
                    merged = torch.cat(parts)
                    size = self.reservoir.size
                    site.rows = torch.zeros((size, merged.shape[1]), dtype=merged.dtype, device=merged.device)
                    site.rows[: merged.shape[0]] = merged
        for path, counter in other.routers.items():
            self.routers[path].merge(counter)
        self.tokens += other.tokens
        self.batches += other.batches


class _Stop(Exception):
    """Raised by the last hook of a batch to skip the rest of the forward pass (never leaves this module)."""


@dataclass
class _BatchIndex:
    """Host-side row selections of one batch, moved to each device once."""

    rows: int
    valid: torch.Tensor | None
    update: ReservoirUpdate
    per_device: dict[torch.device, tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def on(self, device: torch.device) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        found = self.per_device.get(device)
        if found is None:
            valid = None if self.valid is None else self.valid.to(device, non_blocking=True)
            sampled = self.update.rows if self.valid is None else self.valid[self.update.rows]
            found = (valid, sampled.to(device, non_blocking=True), self.update.slots.to(device, non_blocking=True))
            self.per_device[device] = found
        return found


def split_batch(batch: Any) -> tuple[tuple[Any, ...], dict[str, Any], torch.Tensor]:
    """``(args, kwargs, mask)`` of a loader batch; ``mask`` is a CPU bool ``(batch, positions)`` tensor.

    A mapping is passed as keyword arguments (its ``attention_mask``, when present, is the mask; the token tensor is
    ``input_ids``, else its first tensor); a tensor is the first positional argument; a tuple or list is the
    positional arguments (its first tensor gives the shape). Without a mask every token counts.

    :raises GuardchainError: ``GC-GEOM-DATA`` for any other batch, or a mask whose shape differs from the tokens'.
    """
    if isinstance(batch, Mapping):
        kwargs = dict(batch)
        tokens = kwargs.get("input_ids")
        if not isinstance(tokens, torch.Tensor):
            tokens = next((v for v in kwargs.values() if isinstance(v, torch.Tensor)), None)
        args: tuple[Any, ...] = ()
        mask = kwargs.get("attention_mask")
    elif isinstance(batch, torch.Tensor):
        args, kwargs, tokens, mask = (batch,), {}, batch, None
    elif isinstance(batch, tuple | list):
        args, kwargs, mask = tuple(batch), {}, None
        tokens = next((v for v in batch if isinstance(v, torch.Tensor)), None)
    else:
        tokens = None
    if not isinstance(tokens, torch.Tensor) or tokens.dim() < 2:
        raise geometry_error(
            GeometryErrorCode.DATA,
            f"a batch must be a mapping with input_ids, a (batch, positions) tensor, or a tuple of tensors; got "
            f"{type(batch).__name__}",
        )
    shape = tuple(tokens.shape[:2])
    if mask is None:
        return args, kwargs, torch.ones(shape, dtype=torch.bool)
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != shape:
        found = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise geometry_error(
            GeometryErrorCode.DATA, f"attention_mask has shape {found}, the tokens {shape}", expected=str(shape)
        )
    return args, kwargs, mask.detach().to("cpu") != 0


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    return value


def _accepts_use_cache(model: torch.nn.Module) -> bool:
    config = getattr(model, "config", None)
    if getattr(config, "use_cache", None) is None:
        return False
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return "use_cache" in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _activation(ref: SiteRef, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list):
        index = int(ref.details.get("tuple_index", 0))
        found = value[index] if len(value) > index else None
        if isinstance(found, torch.Tensor):
            return found
    raise geometry_error(
        GeometryErrorCode.ACTIVATION, f"site {ref.site!r} ({ref.module_path}): no tensor in a {type(value).__name__}"
    )


def _input_of(ref: SiteRef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    kwarg = ref.details.get("input_kwarg")
    if isinstance(kwarg, str) and isinstance(kwargs.get(kwarg), torch.Tensor):
        return kwargs[kwarg]
    position = int(ref.details.get("input_arg", 0))
    if len(args) > position and isinstance(args[position], torch.Tensor):
        return args[position]
    if isinstance(kwargs.get("hidden_states"), torch.Tensor):
        return kwargs["hidden_states"]
    found = next((v for v in kwargs.values() if isinstance(v, torch.Tensor)), None)
    if found is None:
        raise geometry_error(
            GeometryErrorCode.ACTIVATION, f"site {ref.site!r} ({ref.module_path}): the module received no tensor"
        )
    return found


class Collector:
    """Streams batches through ``model`` into a :class:`CollectionState`.

    :param model: the model (a ``torch.nn.Module``), called as ``model(*args, **kwargs)`` per batch, with
        ``use_cache=False`` when its config has a cache.
    :param sites: resolved sites (from an adapter's ``resolve_sites``, or :mod:`guardchain.geometry.sites`).
    :param routers: router modules to count (may be empty).
    :param sample_size: ``k`` of the shared token sample; 0 keeps none.
    :param seed: seeds the sample's keys.
    :param skip_positions: the first ``s`` unmasked tokens of every sequence are left out of the statistics (the
        model still sees them).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        sites: Sequence[SiteRef],
        routers: Sequence[RouterRef] = (),
        *,
        sample_size: int,
        seed: int,
        skip_positions: int = 0,
    ) -> None:
        self.model = model
        self.skip_positions = skip_positions
        self.state = CollectionState(
            sites=[SiteState(ref) for ref in sites],
            reservoir=TokenReservoir(sample_size, seed) if sample_size > 0 else None,
            routers={r.module_path: RouterCounter(r.top_k, r.experts) for r in routers},
            router_refs={r.module_path: r for r in routers},
        )
        self._pending: set[int] = set()
        self._batch: _BatchIndex | None = None
        self._use_cache = _accepts_use_cache(model)

    def _modules(self) -> list[tuple[torch.nn.Module, str]]:
        paths = [s.ref.module_path for s in self.state.sites] + list(self.state.routers)
        found = []
        for path in paths:
            try:
                found.append((self.model.get_submodule(path) if path else self.model, path))
            except AttributeError as exc:
                raise geometry_error(GeometryErrorCode.SITE, f"the model has no module {path!r}") from exc
        return found

    def _fired(self, hook_id: int) -> None:
        self._pending.discard(hook_id)
        if not self._pending:
            raise _Stop

    def _absorb(self, state: SiteState, value: torch.Tensor) -> None:
        batch = self._batch
        if batch is None:  # the model ran outside collect(): not ours to record
            return
        ref = state.ref
        if not value.is_floating_point() or value.dim() < 2:
            raise geometry_error(
                GeometryErrorCode.ACTIVATION,
                f"site {ref.site!r}: expected a floating (batch, positions, hidden) tensor, found "
                f"{value.dtype} {tuple(value.shape)}",
            )
        dim = int(value.shape[-1])
        flat = value.detach().reshape(-1, dim)
        if flat.shape[0] != batch.rows:
            raise geometry_error(
                GeometryErrorCode.ACTIVATION,
                f"site {ref.site!r}: {flat.shape[0]} activation rows for {batch.rows} tokens (shape "
                f"{tuple(value.shape)})",
            )
        valid, sampled, slots = batch.on(flat.device)
        rows = flat if valid is None else flat.index_select(0, valid)
        if state.covariance is None:
            state.covariance = CovarianceAccumulator(dim, flat.device)
        elif state.covariance.dim != dim:
            raise geometry_error(
                GeometryErrorCode.ACTIVATION,
                f"site {ref.site!r}: hidden size changed from {state.covariance.dim} to {dim}",
            )
        state.covariance.update(rows)
        reservoir = self.state.reservoir
        if reservoir is not None and len(batch.update):
            if state.rows is None:
                state.rows = torch.zeros((reservoir.size, dim), dtype=torch.float32, device=flat.device)
            state.rows.index_copy_(0, slots, flat.index_select(0, sampled).to(torch.float32))

    def _site_hook(self, hook_id: int, state: SiteState) -> Callable[..., None]:
        if state.ref.hook is HookPoint.OUTPUT:

            def output_hook(_module: torch.nn.Module, _args: Any, output: Any) -> None:
                self._absorb(state, _activation(state.ref, output))
                self._fired(hook_id)

            return output_hook

        def input_hook(_module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self._absorb(state, _input_of(state.ref, args, kwargs))
            self._fired(hook_id)

        return input_hook

    def _router_hook(self, hook_id: int, ref: RouterRef) -> Callable[..., None]:
        counter = self.state.routers[ref.module_path]
        site = SiteRef(
            f"{ref.module_path}.output", ref.module_path, HookPoint.OUTPUT, ref.block, {"tuple_index": ref.index}
        )

        def router_hook(_module: torch.nn.Module, _args: Any, output: Any) -> None:
            batch = self._batch
            if batch is not None:
                logits = _activation(site, output).detach()
                flat = logits.reshape(-1, logits.shape[-1])
                if flat.shape[0] != batch.rows:
                    raise geometry_error(
                        GeometryErrorCode.ACTIVATION,
                        f"router {ref.module_path!r}: {flat.shape[0]} logit rows for {batch.rows} tokens",
                    )
                valid = batch.on(flat.device)[0]
                counter.update(flat if valid is None else flat.index_select(0, valid))
            self._fired(hook_id)

        return router_hook

    def _register(self) -> list[RemovableHandle]:
        handles: list[RemovableHandle] = []
        modules = self._modules()
        try:
            for hook_id, state in enumerate(self.state.sites):
                module = modules[hook_id][0]
                hook = self._site_hook(hook_id, state)
                if state.ref.hook is HookPoint.OUTPUT:
                    handles.append(module.register_forward_hook(hook))
                else:
                    handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
            offset = len(self.state.sites)
            for j, ref in enumerate(self.state.router_refs.values()):
                handles.append(modules[offset + j][0].register_forward_hook(self._router_hook(offset + j, ref)))
        except BaseException:
            for handle in handles:
                handle.remove()
            raise
        return handles

    def collect(
        self,
        batches: Iterable[Any],
        *,
        device: torch.device | None = None,
        max_tokens: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> CollectionState:
        """Run every batch (until ``max_tokens`` unmasked tokens were seen: whole batches, so the last may
        overshoot) and return the state.

        :param device: where batch tensors are moved; default the device of the model's first parameter.
        :param progress: called with ``(batches run, tokens seen)`` after each batch (tokens counted by the
            statistics: unmasked and not skipped).
        :raises GuardchainError: ``GC-GEOM-DATA``, ``GC-GEOM-ACTIVATION``, ``GC-GEOM-SITE``,
            ``GC-GEOM-SITE-SILENT``.
        """
        if device is None:
            first = next(self.model.parameters(), None)
            device = first.device if first is not None else torch.device("cpu")
        n_hooks = len(self.state.sites) + len(self.state.routers)
        handles = self._register()
        state = self.state
        try:
            for batch in batches:
                if max_tokens is not None and state.tokens >= max_tokens:
                    break
                args, kwargs, mask = split_batch(batch)
                if self.skip_positions:
                    mask = mask & (mask.cumsum(dim=1) > self.skip_positions)
                flat_mask = mask.reshape(-1)
                n_valid = int(flat_mask.sum())
                if n_valid == 0:
                    continue
                valid = None if n_valid == flat_mask.numel() else torch.nonzero(flat_mask).flatten()
                update = (
                    state.reservoir.offer(n_valid)
                    if state.reservoir is not None
                    else ReservoirUpdate(torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64))
                )
                self._batch = _BatchIndex(rows=int(flat_mask.numel()), valid=valid, update=update)
                self._pending = set(range(n_hooks))
                args = tuple(_to_device(a, device) for a in args)
                kwargs = {k: _to_device(v, device) for k, v in kwargs.items()}
                if self._use_cache and "use_cache" not in kwargs:
                    kwargs["use_cache"] = False
                self._run(args, kwargs)
                if self._pending:
                    missing = [self._hook_name(i) for i in sorted(self._pending)]
                    raise geometry_error(
                        GeometryErrorCode.SITE_SILENT,
                        f"{', '.join(missing)} never ran during the forward pass, so nothing was collected there",
                    )
                state.tokens += n_valid
                state.batches += 1
                if progress is not None:
                    progress(state.batches, state.tokens)
        finally:
            self._batch = None
            for handle in handles:
                handle.remove()
        return state

    def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            with torch.no_grad():
                self.model(*args, **kwargs)
        except _Stop:
            return
        except GuardchainError:
            raise
        except Exception as exc:
            raise geometry_error(
                GeometryErrorCode.DATA,
                f"the model cannot be called on a batch ({sorted(kwargs) or 'positional arguments'}): "
                f"{describe_exception(exc)}",
                cause=exc,
            ) from exc

    def _hook_name(self, hook_id: int) -> str:
        if hook_id < len(self.state.sites):
            ref = self.state.sites[hook_id].ref
            return f"site {ref.site!r} ({ref.module_path})"
        return f"router {list(self.state.routers)[hook_id - len(self.state.sites)]!r}"
