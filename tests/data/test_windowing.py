"""The windowing rule: deterministic, non-overlapping, deduplicated, disjoint splits, clear failure when short."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardchain.core.errors import GuardchainError
from guardchain.data import windowing
from guardchain.data.documents import Document, documents_sha256
from guardchain.data.tokenization import make_encoder
from guardchain.data.windowing import WindowSpec, candidate_windows, cut_windows


def byte_encoder(texts):
    """Token ids = UTF-8 bytes: exact, so expected windows can be written down by hand."""
    return [np.frombuffer(t.encode(), dtype=np.uint8).astype(np.int64) for t in texts]


def cut(documents, encode=byte_encoder, **spec):
    settings_ = {"seq_len": 4, "stride": 4, "n_preview": 2, "n_final": 3, "seed": 0, "pool_factor": None}
    settings_.update(spec)
    return cut_windows(
        documents,
        encode,
        WindowSpec(**settings_),
        dataset_sha256=documents_sha256(documents),
        tokenizer_sha256="0" * 64,
        source="test documents",
    )


def parse(window_id):
    doc, _, start = window_id.rpartition(":")
    return doc, int(start)


DOCS = [Document(f"d{i}", "".join(chr(97 + (i * 7 + j * 3) % 26) for j in range(40 + 5 * i))) for i in range(12)]


def test_candidate_windows_cut_every_stride_and_drop_the_tail():
    tokens = np.arange(11, dtype=np.int64)
    starts, windows = candidate_windows(tokens, 4, 5)
    assert starts.tolist() == [0, 5]
    assert windows.tolist() == [[0, 1, 2, 3], [5, 6, 7, 8]]
    starts, windows = candidate_windows(tokens[:3], 4, 4)
    assert starts.shape == (0,) and windows.shape == (0, 4)
    starts, _ = candidate_windows(tokens[:8], 4, 4)
    assert starts.tolist() == [0, 4]


def test_same_seed_same_windows_byte_for_byte_and_another_seed_differs():
    first = cut(DOCS, seed=3)
    again = cut(DOCS, seed=3)
    assert first.digest() == again.digest()
    assert first == again
    assert cut(DOCS, seed=4).digest() != first.digest()


def test_windows_are_the_documents_tokens_at_their_ids_and_never_overlap():
    windows = cut(DOCS, seq_len=5, stride=7, n_preview=4, n_final=6, seed=1)
    texts = {d.id: d.text.encode() for d in DOCS}
    by_doc: dict[str, list[int]] = {}
    for window_id, tokens in zip(windows.ids, windows.tokens, strict=True):
        doc, start = parse(window_id)
        assert start % 7 == 0
        assert bytes(tokens) == texts[doc][start : start + 5]
        by_doc.setdefault(doc, []).append(start)
    for starts in by_doc.values():
        starts.sort()
        assert all(b - a >= 5 for a, b in itertools.pairwise(starts))
    assert windows.seq_len == 5 and windows.stride == 7
    assert all(len(t) == 5 for t in windows.tokens)


def test_a_repeated_document_yields_no_duplicate_windows_and_the_first_copy_is_kept():
    text = "abcdefghijklmnopqrstuvwx"
    documents = [Document("first", text), Document("copy", text), Document("other", "0123456789ABCDEF")]
    windows = cut(documents, n_preview=3, n_final=7)
    assert len(set(windows.tokens)) == len(windows.tokens) == 10
    assert {parse(i)[0] for i in windows.ids} == {"first", "other"}
    assert windows.details["n_duplicates"] == 6
    assert windows.details["n_candidates"] == 10
    with pytest.raises(GuardchainError) as caught:
        cut(documents, n_preview=3, n_final=8)
    assert caught.value.code == "GC-DATA-TOO-FEW-WINDOWS"


def test_preview_and_final_are_disjoint_and_sized():
    windows = cut(DOCS, n_preview=5, n_final=9)
    preview, final = windows.select("preview"), windows.select("final")
    assert len(preview) == 5 and len(final) == 9
    assert not set(preview.ids) & set(final.ids)
    assert not set(preview.tokens) & set(final.tokens)
    assert windows.splits == ("preview",) * 5 + ("final",) * 9


def test_too_few_windows_says_how_many_are_available_and_needed():
    documents = [Document("a", "abcdefgh"), Document("b", "abc")]
    with pytest.raises(GuardchainError) as caught:
        cut(documents, n_preview=1, n_final=2)
    assert caught.value.code == "GC-DATA-TOO-FEW-WINDOWS"
    message = caught.value.problems[0].message
    assert "has 2 distinct windows" in message and "= 3 are needed" in message


def test_duplicate_document_ids_are_refused():
    with pytest.raises(GuardchainError) as caught:
        cut([Document("a", "abcdefgh"), Document("a", "ijklmnop")], n_preview=0, n_final=1)
    assert caught.value.code == "GC-DATA-DUPLICATE-ID"


def test_document_sampling_stops_early_and_does_not_depend_on_the_chunk_size(monkeypatch):
    many = [Document(f"doc{i}", f"{i:04d}" * 10) for i in range(200)]
    sampled = cut(many, n_preview=2, n_final=3, pool_factor=2)
    # Each document adds one distinct window ("iiii" repeated), so 2 x 5 documents give 2 x 5 candidates.
    assert sampled.details["n_documents_tokenized"] == 10
    exhaustive = cut(many, n_preview=2, n_final=3, pool_factor=None)
    assert exhaustive.details["n_documents_tokenized"] == 200
    monkeypatch.setattr(windowing, "_FIRST_CHUNK", 1)
    monkeypatch.setattr(windowing, "_MAX_CHUNK", 3)
    assert cut(many, n_preview=2, n_final=3, pool_factor=2).digest() == sampled.digest()


def test_sampling_visits_every_document_when_the_pool_stays_small():
    documents = [Document(f"d{i}", "abcdabcd") for i in range(30)]  # every window is "abcd"
    with pytest.raises(GuardchainError) as caught:
        cut(documents, n_preview=0, n_final=2, pool_factor=4)
    assert "has 1 distinct windows" in caught.value.problems[0].message


def test_windowing_with_a_real_tokenizer_matches_its_encoding(bpe_tokenizer):
    from pydoc_data.topics import topics

    documents = [Document(name, topics[name]) for name in sorted(topics)[:20]]
    encode = make_encoder(bpe_tokenizer)
    windows = cut(documents, encode=encode, seq_len=32, stride=48, n_preview=4, n_final=4, pool_factor=2)
    encoded = dict(zip([d.id for d in documents], encode([d.text for d in documents]), strict=True))
    for window_id, tokens in zip(windows.ids, windows.tokens, strict=True):
        doc, start = parse(window_id)
        assert list(tokens) == encoded[doc][start : start + 32].tolist()


def test_the_encoder_adds_no_special_tokens_and_ignores_leftover_truncation(bpe_tokenizer):
    encode = make_encoder(bpe_tokenizer)
    text = "def f(x):\n    return x * 2\n" * 20
    expected = bpe_tokenizer(text, add_special_tokens=False)["input_ids"]
    bpe_tokenizer("warm up", truncation=True, max_length=4)  # leaves truncation set on the Rust backend
    assert encode([text])[0].tolist() == expected
    assert len(expected) > 4


def test_a_spec_with_overlapping_windows_is_refused():
    with pytest.raises(ValueError, match="overlap"):
        WindowSpec(seq_len=8, stride=4, n_preview=1, n_final=1, seed=0)


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="ab", min_size=0, max_size=30), min_size=1, max_size=8),
    seq_len=st.integers(2, 5),
    extra_stride=st.integers(0, 3),
    n_final=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    pool_factor=st.sampled_from([None, 1, 3]),
)
def test_invariants_hold_for_any_documents(texts, seq_len, extra_stride, n_final, seed, pool_factor):
    documents = [Document(f"d{i}", t) for i, t in enumerate(texts)]
    try:
        windows = cut(
            documents,
            seq_len=seq_len,
            stride=seq_len + extra_stride,
            n_preview=1,
            n_final=n_final,
            seed=seed,
            pool_factor=pool_factor,
        )
    except GuardchainError as exc:
        assert exc.code == "GC-DATA-TOO-FEW-WINDOWS"
        return
    assert len(windows) == 1 + n_final
    assert len(set(windows.tokens)) == len(windows)  # deduplicated
    for window_id, tokens in zip(windows.ids, windows.tokens, strict=True):
        doc, start = parse(window_id)
        assert start % (seq_len + extra_stride) == 0
        assert bytes(tokens) == texts[int(doc[1:])].encode()[start : start + seq_len]
