"""Hugging Face ``datasets``: a dataset saved with ``save_to_disk`` (offline), or the hub (network opted in).

Network access is off unless ``GUARDCHAIN_ALLOW_NETWORK`` is ``1`` / ``true`` / ``yes`` / ``on``; the check comes
before ``datasets`` is imported, so a chain that would download fails with ``GC-DATA-NETWORK-DISABLED`` whether or
not the extra is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guardchain.core.errors import GuardchainError
from guardchain.core.network import ENV_ALLOW_NETWORK, network_allowed
from guardchain.data.codes import DataErrorCode
from guardchain.data.config import HfDatasetsConfig
from guardchain.data.records import Located

NETWORK_VARIABLE = ENV_ALLOW_NETWORK


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise GuardchainError.single(
            DataErrorCode.MISSING_EXTRA,
            "the 'hf_datasets' dataset needs the Hugging Face 'datasets' package, which is not installed",
            hint="pip install 'guardchain-data[hf]'",
            cause=exc,
        ) from exc
    return datasets


def _open(config: HfDatasetsConfig) -> tuple[Any, str]:
    """The dataset split (a ``datasets.Dataset``) and a description of where it came from."""
    if config.local_path is None and not network_allowed():
        raise GuardchainError.single(
            DataErrorCode.NETWORK_DISABLED,
            f"hf_datasets would download {config.name!r} from the Hugging Face hub, but network access is off",
            hint=f"set {NETWORK_VARIABLE}=1, or save the dataset once with save_to_disk and set local_path",
        )
    datasets = _import_datasets()
    if config.local_path is not None:
        path = Path(config.local_path)
        if not path.is_dir():
            raise GuardchainError.single(DataErrorCode.NOT_FOUND, f"no saved dataset at {config.local_path!r}")
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if config.split not in loaded:
                raise GuardchainError.single(
                    DataErrorCode.NOT_FOUND,
                    f"the saved dataset at {config.local_path!r} has no split {config.split!r}",
                    expected="one of: " + ", ".join(sorted(loaded)),
                )
            loaded = loaded[config.split]
        return loaded, f"hf_datasets: {path.name} (saved, split {config.split})"
    loaded = datasets.load_dataset(config.name, config.config, split=config.split, revision=config.revision)
    subset = f"/{config.config}" if config.config else ""
    return loaded, f"hf_datasets: {config.name}{subset} (split {config.split})"


def hf_records(config: HfDatasetsConfig) -> tuple[list[Located], tuple[str, ...], str]:
    """The rows of the configured split, reduced to the columns the dataset uses.

    :returns: ``(records, class names, source)``; the class names come from a ``ClassLabel`` label column
        (empty otherwise) and serve as default ``label_names``.
    :raises GuardchainError: ``GC-DATA-NETWORK-DISABLED``, ``GC-DATA-MISSING-EXTRA``, ``GC-DATA-NOT-FOUND``,
        ``GC-DATA-INVALID-RECORD`` (a configured column is missing).
    """
    dataset, source = _open(config)
    wanted = [c for c in (config.field, config.label_field, config.id_field) if c is not None]
    columns = list(dataset.column_names)
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise GuardchainError.single(
            DataErrorCode.INVALID_RECORD,
            f"{source} has no column(s) {', '.join(map(repr, missing))}",
            expected="one of: " + ", ".join(columns),
        )
    names: tuple[str, ...] = ()
    if config.label_field is not None:
        feature = dataset.features[config.label_field]
        names = tuple(str(n) for n in getattr(feature, "names", None) or ())
    table = dataset.select_columns(list(dict.fromkeys(wanted))).to_dict()
    rows = [dict(zip(table, values, strict=True)) for values in zip(*table.values(), strict=True)]
    return [(f"{source} row {n}", row) for n, row in enumerate(rows)], names, source
