"""Cut documents into seeded, non-overlapping, deduplicated token windows.

The rule, exactly (``rng = numpy.random.default_rng(seed)``; ``needed = n_preview + n_final``):

1. **Visit order.** ``visit = rng.permutation(n_documents)`` (always drawn, so the stream below does not depend
   on the sampling mode).
2. **Candidates.** Each visited document is tokenized without special tokens; its candidate windows start at
   tokens ``0, stride, 2·stride, …`` and hold exactly ``seq_len`` tokens (a short tail is dropped; a document
   shorter than ``seq_len`` gives none). ``stride >= seq_len``, so windows never overlap.
3. **Document-level sampling.** With ``pool_factor`` set, documents are visited in ``visit`` order and the visit
   stops after the first document at which both the number of documents visited and the number of *distinct*
   candidate token sequences seen so far reach ``pool_factor · needed`` (the first keeps the windows spread over
   many documents, the second gives the choice room). With ``pool_factor=None``, or when the documents run out,
   every document is tokenized. Tokenizing in chunks is only an optimisation: the stopping document does not
   depend on the chunk size.
4. **Deduplication.** The candidates of the visited documents are put in canonical order (document position in
   the dataset as loaded, then start token) and a window whose token sequence equals an earlier one's is dropped
   (the first is kept). Sequences are compared through a 128-bit BLAKE2b digest of their int64 bytes.
5. **Choice.** ``order = rng.permutation(n_candidates)``; the first ``n_preview`` windows of that order form the
   ``preview`` split and the next ``n_final`` the ``final`` split (disjoint by construction). Fewer than
   ``needed`` candidates raise ``GC-DATA-TOO-FEW-WINDOWS``.

A window's id is ``"<document id>:<start token>"``. The same documents, tokenizer, settings and seed give the
same windows byte for byte (:meth:`guardchain.core.windows.TokenWindows.digest`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from guardchain.core.errors import GuardchainError
from guardchain.core.windows import Split, TokenWindows
from guardchain.data.codes import DataErrorCode
from guardchain.data.documents import Document, require_unique_ids
from guardchain.data.tokenization import Encoder, TokenIds

_FIRST_CHUNK = 8
_MAX_CHUNK = 256


@dataclass(frozen=True)
class WindowSpec:
    """The settings of one windowing.

    :ivar seq_len: tokens per window (>= 2).
    :ivar stride: tokens between consecutive candidate starts in a document (>= ``seq_len``).
    :ivar n_preview: windows in the ``preview`` split.
    :ivar n_final: windows in the ``final`` split.
    :ivar seed: seed of the visit order and of the choice.
    :ivar pool_factor: stop tokenizing once ``pool_factor · needed`` documents were visited and as many distinct
        candidates seen; ``None`` tokenizes every document.
    """

    seq_len: int
    stride: int
    n_preview: int
    n_final: int
    seed: int
    pool_factor: int | None = 4

    def __post_init__(self) -> None:
        if self.seq_len < 2:
            raise ValueError("seq_len must be at least 2")
        if self.stride < self.seq_len:
            raise ValueError(f"stride ({self.stride}) < seq_len ({self.seq_len}) would make windows overlap")
        if self.n_preview < 0 or self.n_final < 0 or self.needed < 1:
            raise ValueError("n_preview and n_final are non-negative and not both zero")
        if self.pool_factor is not None and self.pool_factor < 1:
            raise ValueError("pool_factor is at least 1")

    @property
    def needed(self) -> int:
        """``n_preview + n_final``."""
        return self.n_preview + self.n_final


@dataclass(frozen=True)
class _Candidates:
    """The candidate windows of one document: ``windows[k]`` starts at token ``starts[k]``."""

    position: int
    starts: npt.NDArray[np.int64]
    windows: npt.NDArray[np.int64]
    keys: tuple[bytes, ...]


def candidate_windows(tokens: TokenIds, seq_len: int, stride: int) -> tuple[npt.NDArray[np.int64], TokenIds]:
    """The non-overlapping candidate windows of one document.

    :param tokens: the document's token ids, shape ``(n_tokens,)``.
    :param seq_len: tokens per window.
    :param stride: tokens between consecutive starts (>= ``seq_len``).
    :returns: ``(starts, windows)``: shapes ``(n_windows,)`` and ``(n_windows, seq_len)``, with
        ``n_windows = max(0, (n_tokens - seq_len) // stride + 1)``.
    """
    n_tokens = int(tokens.shape[0])
    if n_tokens < seq_len:
        return np.zeros(0, dtype=np.int64), np.zeros((0, seq_len), dtype=np.int64)
    starts = np.arange(0, n_tokens - seq_len + 1, stride, dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(tokens, seq_len)[starts]
    return starts, np.ascontiguousarray(windows, dtype=np.int64)


def _key(window: TokenIds) -> bytes:
    return hashlib.blake2b(window.tobytes(), digest_size=16).digest()


def _visit(documents: Sequence[Document], encode: Encoder, spec: WindowSpec, visit: TokenIds) -> list[_Candidates]:
    """Tokenize documents in ``visit`` order until the sampling rule says stop (step 3 of the module rule)."""
    target = None if spec.pool_factor is None else spec.pool_factor * spec.needed
    seen: set[bytes] = set()
    visited: list[_Candidates] = []
    chunk = _FIRST_CHUNK
    cursor = 0
    while cursor < len(visit):
        positions = [int(p) for p in visit[cursor : cursor + chunk]]
        cursor += len(positions)
        chunk = min(2 * chunk, _MAX_CHUNK)
        for position, tokens in zip(positions, encode([documents[p].text for p in positions]), strict=True):
            starts, windows = candidate_windows(tokens, spec.seq_len, spec.stride)
            keys = tuple(_key(row) for row in windows)
            seen.update(keys)
            visited.append(_Candidates(position, starts, windows, keys))
            if target is not None and len(visited) >= target and len(seen) >= target:
                return visited
    return visited


def cut_windows(
    documents: Sequence[Document],
    encode: Encoder,
    spec: WindowSpec,
    *,
    dataset_sha256: str,
    tokenizer_sha256: str,
    source: str,
) -> TokenWindows:
    """Apply the module's rule to ``documents``.

    :param documents: the dataset's documents as loaded (ids unique).
    :param encode: tokenizes texts to content-token ids (no special tokens).
    :param spec: window length, stride, split sizes, seed and sampling.
    :param dataset_sha256: digest of ``documents`` (recorded in the result).
    :param tokenizer_sha256: digest of the tokenizer behind ``encode`` (recorded in the result).
    :param source: human-readable description of the data source.
    :raises GuardchainError: ``GC-DATA-TOO-FEW-WINDOWS`` (available and needed counts in the message),
        ``GC-DATA-DUPLICATE-ID``.
    """
    require_unique_ids((d.id for d in documents), what="documents")
    rng = np.random.default_rng(spec.seed)
    visit = rng.permutation(len(documents)).astype(np.int64)
    visited = sorted(_visit(documents, encode, spec, visit), key=lambda c: c.position)

    kept: set[bytes] = set()
    pool: list[tuple[int, int, TokenIds]] = []
    n_raw = 0
    for candidates in visited:
        n_raw += len(candidates.keys)
        for key, start, window in zip(candidates.keys, candidates.starts, candidates.windows, strict=True):
            if key not in kept:
                kept.add(key)
                pool.append((candidates.position, int(start), window))

    if len(pool) < spec.needed:
        raise GuardchainError.single(
            DataErrorCode.TOO_FEW_WINDOWS,
            f"{source} has {len(pool)} distinct windows of {spec.seq_len} tokens (stride {spec.stride}) in "
            f"{len(documents)} document(s), but n_preview + n_final = {spec.needed} are needed",
            hint="lower seq_len, n_preview or n_final, or add text",
        )

    order = rng.permutation(len(pool))[: spec.needed]
    chosen = [pool[int(i)] for i in order]
    preview: Split = "preview"
    final: Split = "final"
    splits = (preview,) * spec.n_preview + (final,) * spec.n_final
    return TokenWindows(
        ids=tuple(f"{documents[position].id}:{start}" for position, start, _ in chosen),
        tokens=tuple(tuple(window.tolist()) for _, _, window in chosen),
        splits=splits,
        seq_len=spec.seq_len,
        stride=spec.stride,
        seed=spec.seed,
        dataset_sha256=dataset_sha256,
        tokenizer_sha256=tokenizer_sha256,
        source=source,
        details={
            "n_documents": len(documents),
            "n_documents_tokenized": len(visited),
            "n_windows_cut": n_raw,
            "n_candidates": len(pool),
            "n_duplicates": n_raw - len(pool),
            "sampling": "exhaustive" if spec.pool_factor is None else f"documents (pool_factor={spec.pool_factor})",
        },
    )
