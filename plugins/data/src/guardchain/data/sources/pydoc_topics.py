"""Python's own reference prose: ``pydoc_data.topics`` (part of the standard library, always available)."""

from __future__ import annotations

import platform

from guardchain.data.documents import Document


def pydoc_documents() -> tuple[list[Document], str]:
    """One document per help topic, ids = topic names in sorted order (e.g. ``"assert"``, ``"for"``).

    The text is the interpreter's own, so it (and the dataset digest) changes between Python versions; the
    source description names the version. About 80 topics, ~465 KB, ~65k words on Python 3.11.

    :returns: ``(documents, source description)``.
    """
    from pydoc_data.topics import topics

    documents = [Document(name, topics[name]) for name in sorted(topics)]
    return documents, f"pydoc_data.topics (Python {platform.python_version()})"
