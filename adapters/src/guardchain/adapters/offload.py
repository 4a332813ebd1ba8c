"""Models larger than one device: load with accelerate's ``device_map``, then make every weight a real tensor.

accelerate places a model's modules on devices by ``device_map`` (``"auto"`` fills the devices in ``max_memory``
in order: GPUs, then ``cpu``, then ``disk``). Modules that do not fit are *offloaded*: their parameters become
``meta`` tensors and a hook loads the real values from a weights map (RAM for ``cpu``, files for ``disk``) for each
forward pass and drops them afterwards. Every capability that reads or writes weights between forward passes
(an edit's ``param.copy_``, a guard's spectra, the weights digest, snapshots for the rollback) would then see
``meta`` tensors with no values.

:func:`materialize_offloaded` therefore turns each offloaded parameter back into an ordinary tensor, once, right
after loading:

* ``disk``-offloaded parameters become **file-backed** CPU tensors: the values are written to a file in the
  offload folder, which is memory-mapped shared (``torch.from_file(shared=True)``) and unlinked at once. The
  pages live in the page cache, which the kernel writes back and evicts under memory pressure, so they do not
  count against RAM the way anonymous memory does; an in-place edit writes through the same mapping. Nothing is
  left on disk after the process ends, whatever way it ends.
* ``cpu``-offloaded parameters (a model spread over GPUs and the CPU) become plain CPU tensors.

The offloaded modules then *execute on the CPU* (their accelerate hook is replaced by one that moves inputs to the
CPU and outputs back to the input's device), instead of streaming their weights to an accelerator per forward
pass. Parameters placed on GPUs keep their places. Tied parameters (GPT-2's ``wte`` / ``lm_head``) stay one
``Parameter`` object. The numbers are the ones the same modules give on the CPU without a ``device_map``.

Snapshots of file-backed parameters (the rollback's copies) are file-backed too (:meth:`OffloadStore.clone`), so
rolling back an edit of an offloaded model does not need the offloaded weights' size in RAM.
"""

from __future__ import annotations

import os
import shutil
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from guardchain.adapters.errors import HFErrorCode, hf_error
from guardchain.adapters.refs import fresh_folder

#: Attribute of a model holding its :class:`OffloadStore` (``None`` or absent: nothing offloaded).
STORE_ATTRIBUTE = "_guardchain_offload"


@dataclass
class OffloadStore:
    """Where the file-backed tensors of one loaded model are mapped from.

    :ivar folder: a folder of this process's own inside the configured offload folder; each file in it is
        unlinked as soon as it is mapped, and the folder is removed when the store is garbage-collected.
    :ivar names: the parameters (distinct names) that are file-backed.
    :ivar placements: module name prefix -> device, as accelerate placed them (``model.hf_device_map``).
    """

    folder: Path
    names: set[str] = field(default_factory=set)
    placements: dict[str, str] = field(default_factory=dict)
    _count: int = 0

    @classmethod
    def create(cls, root: Path) -> OffloadStore:
        """A new store in a fresh sub-folder of ``root`` (created if needed).

        :raises GuardchainError: ``GC-HF-LOAD-FAILED`` when ``root`` cannot be created or written.
        """
        hint = "set offload_folder to a writable folder on a disk with room for the offloaded weights"
        store = cls(fresh_folder(root, f"guardchain-offload-{os.getpid()}-", "the offload folder", hint))
        weakref.finalize(store, shutil.rmtree, store.folder, True)
        return store

    def clone(self, tensor: torch.Tensor) -> torch.Tensor:
        """A file-backed copy of ``tensor`` (CPU, same dtype and shape, contiguous), bit for bit.

        :raises GuardchainError: ``GC-HF-LOAD-FAILED`` when the offload folder is full or not writable.
        """
        source = tensor.detach().to("cpu").contiguous()
        self._count += 1
        path = self.folder / f"{self._count:06d}-{uuid.uuid4().hex[:8]}.bin"
        nbytes = source.numel() * source.element_size()
        try:
            with path.open("wb") as handle:
                if nbytes:
                    handle.write(source.reshape(-1).view(torch.uint8).numpy().data)
            if nbytes == 0:
                return source.clone()
            mapped = torch.from_file(str(path), shared=True, size=source.numel(), dtype=source.dtype)
        except OSError as exc:
            raise hf_error(
                HFErrorCode.LOAD_FAILED,
                f"cannot write offloaded weights to {str(self.folder)!r}: {exc}",
                hint="offload_folder needs room for the offloaded weights (and their rollback copies)",
                cause=exc,
            ) from exc
        finally:
            path.unlink(missing_ok=True)  # the mapping keeps the pages; the name is not needed
        return mapped.view(source.shape)


def store_of(model: torch.nn.Module) -> OffloadStore | None:
    """The model's :class:`OffloadStore`, or ``None`` when nothing of it is offloaded."""
    store = getattr(model, STORE_ATTRIBUTE, None)
    return store if isinstance(store, OffloadStore) else None


def _placement(placements: dict[str, str], module_name: str) -> str:
    """The device accelerate placed ``module_name`` on: the entry of the longest matching prefix."""
    best, device = -1, "cpu"
    for prefix, placed in placements.items():
        matches = prefix == "" or module_name == prefix or module_name.startswith(prefix + ".")
        if matches and len(prefix) > best:
            best, device = len(prefix), str(placed)
    return device


def _offload_hook(module: torch.nn.Module) -> Any:
    """The module's accelerate hook that offloads its weights (``offload=True`` with a weights map), or ``None``."""
    hook = getattr(module, "_hf_hook", None)
    hooks = getattr(hook, "hooks", None) or ([hook] if hook is not None else [])
    for candidate in hooks:
        if getattr(candidate, "offload", False) and getattr(candidate, "weights_map", None) is not None:
            return candidate
    return None


def materialize_offloaded(model: torch.nn.Module, store: OffloadStore) -> OffloadStore | None:
    """Give every offloaded parameter of an accelerate-dispatched ``model`` real values (see the module docstring).

    :param store: the store whose folder was given to ``from_pretrained`` as ``offload_folder``; whatever
        accelerate wrote there is deleted once the values are mapped.
    :returns: ``store`` (also set as ``model._guardchain_offload``), or ``None`` when nothing was offloaded (then
        nothing is changed).
    :raises GuardchainError: ``GC-HF-LOAD-FAILED`` when an offloaded value cannot be found or written.
    """
    from accelerate.hooks import (  # type: ignore[import-untyped]
        AlignDevicesHook,
        add_hook_to_module,
        remove_hook_from_module,
    )

    modules = dict(model.named_modules())
    offloaded = {name: hook for name, module in modules.items() if (hook := _offload_hook(module)) is not None}
    if not offloaded:
        return None
    placements = {str(k): str(v) for k, v in (getattr(model, "hf_device_map", None) or {}).items()}
    store.placements = placements
    # every spelling of each parameter object, so that a tied parameter is materialised once, in all its places
    spellings: dict[int, list[tuple[str, str]]] = {}
    first_name: dict[int, str] = {}
    for full_name, param in model.named_parameters(remove_duplicate=False):
        owner, _, local = full_name.rpartition(".")
        spellings.setdefault(id(param), []).append((owner, local))
        first_name.setdefault(id(param), full_name)
    for key, places in spellings.items():
        param = modules[places[0][0]]._parameters[places[0][1]]
        assert param is not None
        if param.device.type != "meta":
            continue
        value = None
        for owner, local in places:
            hook = offloaded.get(owner)
            if hook is None:
                continue
            try:
                value = hook.weights_map[local]
                break
            except KeyError:
                continue
        if value is None:
            raise hf_error(
                HFErrorCode.LOAD_FAILED,
                f"parameter {first_name[key]!r} was offloaded but accelerate's weights map has no value for it",
            )
        value = value.detach().to(param.dtype)
        on_disk = _placement(placements, places[0][0]) == "disk"
        tensor = store.clone(value) if on_disk else value.to("cpu").clone()
        replacement = torch.nn.Parameter(tensor, requires_grad=param.requires_grad)
        for owner, local in places:
            modules[owner]._parameters[local] = replacement
        if on_disk:
            store.names.add(first_name[key])
    for name in offloaded:
        module = modules[name]
        remove_hook_from_module(module)
        add_hook_to_module(module, AlignDevicesHook(execution_device=torch.device("cpu"), io_same_device=True))
    for leftover in store.folder.iterdir():  # accelerate's own offload files (.bin checkpoints): now unused
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
    setattr(model, STORE_ATTRIBUTE, store)
    return store


def offload_summary(model: torch.nn.Module) -> dict[str, Any] | None:
    """Provenance of a dispatched model: ``{"device_map": {prefix: device}, "file_backed": n}``, or ``None``."""
    placements = getattr(model, "hf_device_map", None)
    if placements is None:
        return None
    store = store_of(model)
    return {
        "device_map": {str(k): str(v) for k, v in placements.items()},
        "file_backed_parameters": len(store.names) if store is not None else 0,
    }
