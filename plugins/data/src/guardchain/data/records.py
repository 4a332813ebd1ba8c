"""Records (JSONL lines, dataset rows) to documents or to labelled examples.

A record is a mapping; one field holds the text, an optional field a stable id, and for classification a field
holds the label. Labels are either all non-negative integers (used as they are) or all strings (mapped to their
index in ``label_names``, by default the sorted distinct strings).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from guardchain.core.errors import GuardchainError
from guardchain.core.windows import LabeledTexts
from guardchain.data.codes import DataErrorCode
from guardchain.data.documents import Document, examples_sha256, require_unique_ids

#: ``(where, record)``: a description of where the record came from (for messages) and the record itself.
Located = tuple[str, Any]


def _invalid(where: str, message: str) -> GuardchainError:
    return GuardchainError.single(DataErrorCode.INVALID_RECORD, f"{where}: {message}")


def _field(where: str, record: Any, name: str) -> Any:
    if not isinstance(record, dict):
        raise _invalid(where, f"expected a JSON object, got {type(record).__name__}")
    if name not in record:
        raise _invalid(where, f"has no field {name!r} (fields: {', '.join(sorted(map(str, record))) or 'none'})")
    return record[name]


def _text(where: str, record: Any, field: str) -> str:
    value = _field(where, record, field)
    if not isinstance(value, str):
        raise _invalid(where, f"field {field!r} holds {type(value).__name__}, expected a string")
    return value


def _ids(records: Sequence[Located], id_field: str | None) -> list[str]:
    if id_field is None:
        return [f"row-{n}" for n in range(len(records))]
    ids = []
    for where, record in records:
        value = _field(where, record, id_field)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _invalid(where, f"id field {id_field!r} holds {type(value).__name__}, expected a string or int")
        ids.append(str(value))
    return ids


def to_documents(records: Sequence[Located], *, field: str, id_field: str | None) -> list[Document]:
    """One document per record.

    :param records: the located records.
    :param field: the field holding the text.
    :param id_field: the field holding the id, or ``None`` for ``"row-<n>"`` (position from 0).
    :raises GuardchainError: ``GC-DATA-INVALID-RECORD``, ``GC-DATA-DUPLICATE-ID``.
    """
    ids = _ids(records, id_field)
    require_unique_ids(ids, what="records")
    return [Document(i, _text(where, record, field)) for i, (where, record) in zip(ids, records, strict=True)]


def to_labeled_texts(
    records: Sequence[Located],
    *,
    field: str,
    label_field: str,
    id_field: str | None,
    label_names: Sequence[str] | None,
    source: str,
) -> LabeledTexts:
    """Labelled examples, one per record.

    :param records: the located records.
    :param field: the field holding the text.
    :param label_field: the field holding the label (all ints >= 0, or all strings).
    :param id_field: the field holding the id, or ``None`` for ``"row-<n>"``.
    :param label_names: class names in the model's label order; ``None`` = sorted distinct string labels (or
        no names for integer labels).
    :param source: human-readable description of the source.
    :raises GuardchainError: ``GC-DATA-INVALID-RECORD`` (wrong types, mixed label types, unknown or out-of-range
        labels), ``GC-DATA-DUPLICATE-ID``.
    """
    ids = _ids(records, id_field)
    require_unique_ids(ids, what="records")
    texts = [_text(where, record, field) for where, record in records]
    raw = [(where, _field(where, record, label_field)) for where, record in records]
    strings = [isinstance(value, str) for _, value in raw]
    for where, value in raw:
        if isinstance(value, bool) or not isinstance(value, str | int) or (isinstance(value, int) and value < 0):
            raise _invalid(where, f"label {value!r} is neither a non-negative integer nor a string")
    if any(strings) and not all(strings):
        where = raw[strings.index(not strings[0])][0]
        raise _invalid(where, "labels mix integers and strings")

    names = tuple(label_names) if label_names is not None else ()
    if raw and strings[0]:
        names = names or tuple(sorted({str(value) for _, value in raw}))
        index = {name: i for i, name in enumerate(names)}
        for where, value in raw:
            if value not in index:
                raise _invalid(where, f"label {value!r} is not one of label_names {list(names)}")
        labels = [index[value] for _, value in raw]
    else:
        labels = [int(value) for _, value in raw]
        if names:
            for where, value in raw:
                if value >= len(names):
                    raise _invalid(where, f"label {value} is out of range for {len(names)} label_names")
    return LabeledTexts(
        ids=tuple(ids),
        texts=tuple(texts),
        labels=tuple(labels),
        dataset_sha256=examples_sha256(ids, texts, labels, names),
        label_names=names,
        source=source,
    )
