"""Rollback and identity of weights: snapshot, bit-identical restore, and the weights digest.

"Parameters" are ``model.named_parameters()`` with duplicates removed: a tied parameter (GPT-2's ``wte`` and
``lm_head``) is one ``Parameter`` object reachable under several names and is listed once, under the first name
torch reaches it by. Buffers (rotary frequencies, position ids) are not weights and are neither snapshotted nor
hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from guardchain.adapters.errors import HFErrorCode, hf_error
from guardchain.adapters.offload import OffloadStore, store_of


def distinct_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """``named_parameters()`` without duplicates, also dropping a second ``Parameter`` object that is an identical
    view of storage already listed (same data pointer, dtype, shape and strides)."""
    seen: set[tuple[int, torch.dtype, tuple[int, ...], tuple[int, ...]]] = set()
    out: list[tuple[str, torch.nn.Parameter]] = []
    for name, param in model.named_parameters():
        key = (param.data_ptr(), param.dtype, tuple(param.shape), tuple(param.stride()))
        if param.data_ptr() != 0 and key in seen:
            continue
        seen.add(key)
        out.append((name, param))
    return out


def n_parameters(model: torch.nn.Module) -> int:
    """Number of scalar parameters, each tied parameter counted once."""
    return sum(p.numel() for _, p in distinct_parameters(model))


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 hex digest of every parameter, in sorted name order.

    For each distinct parameter (see the module docstring), sorted by name, the hash is fed
    ``f"{name}|{dtype}|{shape}|"`` (UTF-8; ``dtype`` like ``float32``, ``shape`` comma-separated, e.g. ``50,32``)
    and then the parameter's raw bytes in C order (``.detach().cpu().contiguous().view(torch.uint8)``, native
    byte order). Equal digests mean bit-identical weights under identical names.
    """
    hasher = hashlib.sha256()
    for name, param in sorted(distinct_parameters(model), key=lambda item: item[0]):
        dtype = str(param.dtype).removeprefix("torch.")
        shape = ",".join(str(d) for d in param.shape)
        hasher.update(f"{name}|{dtype}|{shape}|".encode())
        raw = param.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        hasher.update(raw.numpy().data)  # a memoryview: no extra copy
    return hasher.hexdigest()


@dataclass(frozen=True)
class WeightSnapshot:
    """Copies of some distinct parameters, by name (opaque to callers; pass it back to ``restore``).

    :ivar tensors: parameter name -> a detached clone (same device, dtype and shape).
    """

    tensors: dict[str, torch.Tensor]

    @property
    def nbytes(self) -> int:
        """Memory held by the copies, in bytes."""
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


#: ``snapshot_storage: auto`` puts a snapshot on disk from this size on (bytes of CPU tensors).
DISK_SNAPSHOT_BYTES = 64 << 20


def snapshot(
    model: torch.nn.Module,
    names: Collection[str] | None = None,
    *,
    storage: str = "memory",
    disk_root: Path | None = None,
) -> WeightSnapshot:
    """Clone the distinct parameters ``names`` (all when ``None``); tied ones once, so tying survives
    :func:`restore`.

    A name may be any spelling torch reaches a parameter by (``lm_head.weight`` for GPT-2's tied ``wte``): it is
    mapped to the distinct parameter it shares storage with.

    :param storage: ``memory`` (clones in RAM), ``disk`` (file-backed clones of CPU tensors, see
        :meth:`.offload.OffloadStore.clone`), or ``auto`` (disk when the CPU tensors exceed
        :data:`DISK_SNAPSHOT_BYTES`). Copies of disk-offloaded parameters are file-backed in every case.
    :param disk_root: where file-backed copies are written (and unlinked at once); required for disk storage.
    :raises GuardchainError: ``GC-HF-SNAPSHOT-MISMATCH`` naming parameters the model does not have.
    """
    distinct = distinct_parameters(model)
    if names is None:
        chosen = distinct
    else:
        canonical = _canonical_names(model, distinct)
        unknown = sorted(set(names) - set(canonical))
        if unknown:
            raise hf_error(
                HFErrorCode.SNAPSHOT_MISMATCH,
                f"cannot snapshot {len(unknown)} parameter(s) the model does not have: " + ", ".join(unknown[:5]),
            )
        wanted = {canonical[name] for name in names}
        chosen = [(name, p) for name, p in distinct if name in wanted]
    store = store_of(model)
    cpu_bytes = sum(p.numel() * p.element_size() for _, p in chosen if p.device.type == "cpu")
    to_disk = storage == "disk" or (storage == "auto" and cpu_bytes > DISK_SNAPSHOT_BYTES)
    disk = OffloadStore.create(disk_root) if to_disk and disk_root is not None else None
    with torch.no_grad():
        # copies of file-backed (disk-offloaded) parameters are file-backed too: a rollback of an offloaded model
        # never needs the offloaded weights' size in RAM
        return WeightSnapshot(
            {
                name: store.clone(p)
                if store is not None and name in store.names
                else disk.clone(p)
                if disk is not None and p.device.type == "cpu"
                else p.detach().clone()
                for name, p in chosen
            }
        )


def _canonical_names(model: torch.nn.Module, distinct: list[tuple[str, torch.nn.Parameter]]) -> dict[str, str]:
    """Every name torch reaches a parameter by -> the name :func:`distinct_parameters` lists it under."""
    by_storage = {
        (p.data_ptr(), p.dtype, tuple(p.shape), tuple(p.stride())): name for name, p in distinct if p.data_ptr() != 0
    }
    by_object = {id(p): name for name, p in distinct}
    out: dict[str, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        key = (param.data_ptr(), param.dtype, tuple(param.shape), tuple(param.stride()))
        out[name] = by_object.get(id(param)) or by_storage.get(key, name)
    return out


def restore(model: torch.nn.Module, saved: Any) -> None:
    """Copy a :class:`WeightSnapshot` back into the model's parameters in place (``copy_`` under ``no_grad``).

    Only the parameters the snapshot holds are written; the others are left as they are. The parameter objects
    are kept (so optimizers, hooks and tying keep working); each restored parameter is bit-identical to the moment
    of the snapshot.

    :raises GuardchainError: ``GC-HF-SNAPSHOT-MISMATCH`` if ``saved`` is not a snapshot of this model's
        parameters (a name it lacks, another shape or dtype); nothing is changed then.
    """
    if not isinstance(saved, WeightSnapshot):
        raise hf_error(
            HFErrorCode.SNAPSHOT_MISMATCH,
            f"restore() expects the object snapshot() returned, got {type(saved).__name__}",
        )
    params = dict(distinct_parameters(model))
    problems = sorted(set(saved.tensors) - set(params))
    problems += [
        name
        for name in sorted(set(params) & set(saved.tensors))
        if params[name].shape != saved.tensors[name].shape or params[name].dtype != saved.tensors[name].dtype
    ]
    if problems:
        raise hf_error(
            HFErrorCode.SNAPSHOT_MISMATCH,
            f"the snapshot does not match the model's parameters ({len(problems)} differ: "
            + ", ".join(problems[:5])
            + (" ..." if len(problems) > 5 else "")
            + ")",
            hint="restore a snapshot taken from this model; an edit must modify parameters in place",
        )
    with torch.no_grad():
        for name, tensor in saved.tensors.items():
            params[name].copy_(tensor)
