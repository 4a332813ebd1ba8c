"""Token windows: the evaluation units that datasets produce and metrics consume.

A dataset plugin tokenizes its text with the model's tokenizer and cuts it into windows; a metric scores each
window; pairing (``guardchain.certify.statistics``) matches baseline and subject windows by id. The type lives in
the kernel so that data and metric plugins share it without depending on each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Split = Literal["preview", "final"]


@dataclass(frozen=True)
class TokenWindows:
    """Non-overlapping token windows, each tagged *preview* or *final*.

    :ivar ids: stable, unique window ids (``"<document>:<start token>"``), the pairing key.
    :ivar tokens: token ids per window; every window has exactly ``seq_len`` tokens unless the text was shorter.
    :ivar splits: ``"preview"`` or ``"final"`` per window.
    :ivar seq_len: tokens per window.
    :ivar stride: tokens between the starts of consecutive candidate windows (``>= seq_len``: no overlap).
    :ivar seed: the seed that chose and ordered the windows.
    :ivar dataset_sha256: SHA-256 of the text the windows were cut from.
    :ivar tokenizer_sha256: SHA-256 of the tokenizer that produced the ids.
    :ivar source: human-readable description of the data source.
    """

    ids: tuple[str, ...]
    tokens: tuple[tuple[int, ...], ...]
    splits: tuple[Split, ...]
    seq_len: int
    stride: int
    seed: int
    dataset_sha256: str
    tokenizer_sha256: str
    source: str = ""
    details: dict[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.tokens) != n or len(self.splits) != n:
            raise ValueError(f"ids, tokens and splits must align ({n}, {len(self.tokens)}, {len(self.splits)})")
        if len(set(self.ids)) != n:
            raise ValueError("window ids must be unique")
        if any(s not in ("preview", "final") for s in self.splits):
            raise ValueError("every split is 'preview' or 'final'")
        if self.stride < self.seq_len:
            raise ValueError("stride < seq_len would make windows overlap")

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, split: Split) -> TokenWindows:
        """The windows of one split, in order."""
        keep = [i for i, s in enumerate(self.splits) if s == split]
        return TokenWindows(
            ids=tuple(self.ids[i] for i in keep),
            tokens=tuple(self.tokens[i] for i in keep),
            splits=tuple(self.splits[i] for i in keep),
            seq_len=self.seq_len,
            stride=self.stride,
            seed=self.seed,
            dataset_sha256=self.dataset_sha256,
            tokenizer_sha256=self.tokenizer_sha256,
            source=self.source,
            details=dict(self.details),
        )

    @property
    def n_tokens(self) -> int:
        """Total number of tokens over all windows."""
        return sum(len(t) for t in self.tokens)

    def digest(self) -> str:
        """SHA-256 over ids, splits and token ids: equal digests mean byte-identical windows."""
        h = hashlib.sha256()
        for window_id, split, tokens in zip(self.ids, self.splits, self.tokens, strict=True):
            h.update(f"{window_id}|{split}|{len(tokens)}|".encode())
            h.update(b"".join(t.to_bytes(4, "little", signed=False) for t in tokens))
        return h.hexdigest()


@dataclass(frozen=True)
class LabeledTexts:
    """Texts with class labels, for classification metrics (accuracy).

    :ivar ids: stable, unique example ids, the pairing key.
    :ivar texts: the raw texts (the metric tokenizes them with the model's tokenizer).
    :ivar labels: integer class labels, ``0 <= label < n_labels``.
    :ivar dataset_sha256: SHA-256 of the examples as loaded.
    :ivar label_names: optional names of the classes, indexed by label.
    """

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    labels: tuple[int, ...]
    dataset_sha256: str
    label_names: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.texts) != n or len(self.labels) != n:
            raise ValueError("ids, texts and labels must align")
        if len(set(self.ids)) != n:
            raise ValueError("example ids must be unique")
        if any(label < 0 for label in self.labels):
            raise ValueError("labels are non-negative integers")

    def __len__(self) -> int:
        return len(self.ids)


def right_padded(
    sequences: Sequence[Sequence[int]], pad_id: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Token sequences as one right-padded matrix, the layout every adapter method takes.

    Row ``b`` holds its tokens in columns ``0 .. len_b - 1`` and ``pad_id`` after them; ``T`` is the longest
    sequence (at least 1). Vectorized: the tokens are concatenated once and scattered through the boolean mask
    (row-major order puts each row's tokens in its leading columns).

    :returns: ``ids`` int64 ``(B, T)`` and ``mask`` bool ``(B, T)``, true on tokens.
    """
    lengths = np.fromiter((len(r) for r in sequences), dtype=np.int64, count=len(sequences))
    width = max(1, int(lengths.max(initial=0)))
    mask = np.arange(width, dtype=np.int64)[None, :] < lengths[:, None]
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    if int(lengths.sum()):
        ids[mask] = np.concatenate([np.asarray(r, dtype=np.int64) for r in sequences])
    return ids, mask


def pad_token_id(tokenizer: Any) -> int:
    """The tokenizer's padding id, or 0 when it has none (padded positions are masked out anyway)."""
    value = getattr(tokenizer, "pad_token_id", None)
    return int(value) if isinstance(value, int) else 0
