"""Documents as loaded, and the content digests that identify them in provenance.

A *document* is the unit a text source yields (a file, a Python help topic, a Bible chapter, a JSONL record);
windows never cross a document boundary. Digests frame every field with its byte length, so no two different
document lists can share a digest by moving text between ids and texts or between neighbouring documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from guardchain.core.errors import GuardchainError
from guardchain.data.codes import DataErrorCode

_DOCUMENTS_HEADER = b"guardchain-data/documents/v1\n"
_EXAMPLES_HEADER = b"guardchain-data/labeled-examples/v1\n"


@dataclass(frozen=True)
class Document:
    """One document.

    :ivar id: stable id, unique within the dataset; window ids are ``"<id>:<start token>"``.
    :ivar text: the document's text exactly as read (no normalization).
    """

    id: str
    text: str


def _framed(value: str) -> bytes:
    data = value.encode("utf-8")
    return str(len(data)).encode("ascii") + b":" + data


def documents_sha256(documents: Iterable[Document]) -> str:
    """SHA-256 hex digest over the documents in order: a header, then ``len:id len:text`` per document.

    :param documents: the documents exactly as the dataset loaded them.
    :returns: 64 lowercase hex characters.
    """
    digest = hashlib.sha256(_DOCUMENTS_HEADER)
    for document in documents:
        digest.update(_framed(document.id))
        digest.update(_framed(document.text))
    return digest.hexdigest()


def examples_sha256(ids: Sequence[str], texts: Sequence[str], labels: Sequence[int], names: Sequence[str]) -> str:
    """SHA-256 hex digest over labelled examples: a header, the label names, then ``id label text`` per example.

    :param ids: example ids, in order.
    :param texts: example texts, aligned with ``ids``.
    :param labels: integer labels, aligned with ``ids``.
    :param names: class names indexed by label (may be empty).
    """
    digest = hashlib.sha256(_EXAMPLES_HEADER)
    digest.update(_framed("\x1f".join(names)))
    for example_id, text, label in zip(ids, texts, labels, strict=True):
        digest.update(_framed(example_id))
        digest.update(_framed(str(label)))
        digest.update(_framed(text))
    return digest.hexdigest()


def require_unique_ids(ids: Iterable[str], *, what: str) -> None:
    """Raise ``GC-DATA-DUPLICATE-ID`` naming the first id that occurs twice.

    :param ids: the ids to check.
    :param what: how to name the items in the message (``"documents"``, ``"examples"``).
    """
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise GuardchainError.single(
                DataErrorCode.DUPLICATE_ID,
                f"two {what} have the id {item!r}",
                hint="ids are the pairing key of baseline and subject results and must be unique",
            )
        seen.add(item)
