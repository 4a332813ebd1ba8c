"""TokenWindows / LabeledTexts invariants."""

from __future__ import annotations

import pytest

from guardchain.core.windows import LabeledTexts, TokenWindows


def windows(**overrides):
    kwargs = dict(
        ids=("d:0", "d:4", "d:8"),
        tokens=((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12)),
        splits=("preview", "final", "final"),
        seq_len=4,
        stride=4,
        seed=0,
        dataset_sha256="a" * 64,
        tokenizer_sha256="b" * 64,
    )
    kwargs.update(overrides)
    return TokenWindows(**kwargs)


def test_select_and_counts():
    w = windows()
    assert len(w) == 3 and w.n_tokens == 12
    final = w.select("final")
    assert final.ids == ("d:4", "d:8") and final.splits == ("final", "final")


def test_digest_is_byte_exact():
    assert windows().digest() == windows().digest()
    assert windows().digest() != windows(tokens=((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 13))).digest()
    assert windows().digest() != windows(splits=("final", "final", "final")).digest()


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"ids": ("a", "a", "b")}, "unique"),
        ({"splits": ("preview", "final")}, "align"),
        ({"splits": ("preview", "test", "final")}, "split"),
        ({"stride": 2}, "overlap"),
    ],
)
def test_invalid_windows(overrides, needle):
    with pytest.raises(ValueError, match=needle):
        windows(**overrides)


def test_labeled_texts():
    data = LabeledTexts(ids=("a", "b"), texts=("x", "y"), labels=(0, 1), dataset_sha256="c" * 64)
    assert len(data) == 2
    with pytest.raises(ValueError, match="align"):
        LabeledTexts(ids=("a",), texts=("x", "y"), labels=(0,), dataset_sha256="")
    with pytest.raises(ValueError, match="non-negative"):
        LabeledTexts(ids=("a",), texts=("x",), labels=(-1,), dataset_sha256="")


def test_network_switch():
    from guardchain.core.network import network_allowed

    assert not network_allowed({})
    assert not network_allowed({"GUARDCHAIN_ALLOW_NETWORK": "0"})
    assert all(network_allowed({"GUARDCHAIN_ALLOW_NETWORK": v}) for v in ("1", "TRUE", " yes ", "on"))
