"""The formulas: closed-form identities, and parity with the reference formulas written out here (anchor note
geometry.md, section 3) on fixed eigenvalue vectors and samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from guardchain.geometry import formulas

# ---------------------------------------------------------------------------------------------------------------
# Identities


@pytest.mark.parametrize("d", [1, 2, 7, 64, 300])
def test_an_isotropic_spectrum_has_every_dimension(d):
    m = formulas.spectrum_metrics(np.full(d, 3.7))
    assert m["d_pr"] == pytest.approx(d, rel=1e-12)
    assert m["d_entropy"] == pytest.approx(d, rel=1e-12)
    assert m["stable_rank"] == pytest.approx(d, rel=1e-12)
    assert m["d_pr_norm"] == pytest.approx(1.0) and m["d_entropy_norm"] == pytest.approx(1.0)


@pytest.mark.parametrize("d", [1, 5, 300])
def test_one_non_zero_eigenvalue_is_one_dimension(d):
    values = np.zeros(d)
    values[d // 2] = 2.5
    m = formulas.spectrum_metrics(values)
    assert m["d_pr"] == m["d_entropy"] == m["stable_rank"] == pytest.approx(1.0)
    assert m["k90"] == m["k95"] == 1
    assert m["top1_share"] == pytest.approx(1.0)


def test_a_zero_spectrum_is_undefined():
    m = formulas.spectrum_metrics(np.zeros(5))
    assert math.isnan(m["d_pr"]) and math.isnan(m["stable_rank"])
    assert m["k90"] == m["k95"] == -1


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(1, 400), elements=st.floats(0, 1e6)).filter(lambda a: a.sum() > 1e-3))
def test_stable_rank_is_at_most_the_participation_ratio_which_is_at_most_d(values):
    m = formulas.spectrum_metrics(values)
    d = values.size
    assert 1 - 1e-9 <= m["stable_rank"] <= m["d_pr"] * (1 + 1e-9)
    assert m["d_pr"] <= d * (1 + 1e-9)
    assert 1 <= m["k90"] <= m["k95"] <= d


def _orthogonal(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def test_linear_cka_of_a_sample_with_itself_is_one_and_invariant_to_rotation_and_scale():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 8)) @ rng.normal(size=(8, 8))
    y = np.tanh(x @ rng.normal(size=(8, 12)))
    assert formulas.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    base = formulas.linear_cka(x, y)
    assert 0 < base < 1
    assert formulas.linear_cka(x @ _orthogonal(8, 2), y) == pytest.approx(base, rel=1e-10)
    assert formulas.linear_cka(x, 7.5 * (y @ _orthogonal(12, 3))) == pytest.approx(base, rel=1e-10)
    assert formulas.linear_cka(0.01 * x, y) == pytest.approx(base, rel=1e-10)


def test_linear_cka_gram_and_feature_forms_agree():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(10, 30)), rng.normal(size=(10, 40))  # fewer rows than features: Gram form
    xc, yc = x - x.mean(0), y - y.mean(0)
    feature_form = np.sum((xc.T @ yc) ** 2) / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert formulas.linear_cka(x, y) == pytest.approx(feature_form, rel=1e-10)


def test_subspace_novelty_is_zero_for_one_subspace_and_one_for_orthogonal_ones():
    q = _orthogonal(16, 5)
    u = q[:, :4]
    assert formulas.subspace_novelty(u, u) == pytest.approx(0.0, abs=1e-7)
    assert formulas.subspace_novelty(u, u @ _orthogonal(4, 6)) == pytest.approx(0.0, abs=1e-7)  # same span
    assert formulas.subspace_novelty(u, q[:, 4:8]) == pytest.approx(1.0, abs=1e-12)
    half = np.concatenate([q[:, :2], q[:, 4:6]], axis=1)  # shares 2 of 4 directions
    assert formulas.subspace_novelty(u, half) == pytest.approx(0.5, abs=1e-7)
    assert math.isnan(formulas.subspace_novelty(u, np.eye(8)[:, :2]))  # different ambient dimension


def test_layer_cosine_of_a_sample_with_itself_is_one():
    x = np.random.default_rng(7).normal(size=(20, 6))
    assert formulas.layer_cosine_sim(x, x) == pytest.approx(1.0)
    assert formulas.layer_cosine_sim(x, -2 * x) == pytest.approx(-1.0)


# ---------------------------------------------------------------------------------------------------------------
# Parity with the reference formulas (anchor section 3), written out independently


def reference_spectrum(values: np.ndarray) -> dict:
    lam = np.sort(np.clip(np.asarray(values, float), 0, None))[::-1]
    d = len(lam)
    total = lam.sum()
    p = lam / total
    cumulative = np.cumsum(p)

    def k_at(threshold):
        for i, c in enumerate(cumulative):
            if c >= threshold:
                return i + 1
        return d

    out = {
        "d_pr": total**2 / sum(v * v for v in lam),
        "d_entropy": math.exp(-sum(q * math.log(q) for q in p if q > 0)),
        "stable_rank": total / lam[0],
        "top1_share": p[:1].sum(),
        "top10_share": p[:10].sum(),
        "top32_share": p[:32].sum(),
        "k90": k_at(0.90),
        "k95": k_at(0.95),
    }
    out["d_pr_norm"] = out["d_pr"] / d
    out["d_entropy_norm"] = out["d_entropy"] / d
    hi = min(200, d)
    if hi > 15:
        ranks = np.arange(10, hi)
        logs = np.log(lam[10:hi] + 1e-30)
        out["log_spectrum_slope_10_200"] = np.polyfit(ranks, logs, 1)[0]
        out["loglog_spectrum_slope_10_200"] = np.polyfit(np.log(ranks + 1), logs, 1)[0]
    else:
        out["log_spectrum_slope_10_200"] = out["loglog_spectrum_slope_10_200"] = math.nan
    return out


def reference_sample(x: np.ndarray) -> dict:
    xc = x - x.mean(axis=0)
    sigma = np.linalg.svd(xc, compute_uv=False)
    sigma = sigma[sigma > 1e-10]
    w = sigma / sigma.sum()
    s2 = sigma**2
    n = x.shape[0]
    cosines = []
    for i in range(n):
        for j in range(n):
            if i != j:
                cosines.append(x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j])))
    out = {
        "sv_effective_rank": math.exp(-sum(v * math.log(v) for v in w)),
        "sv_stable_rank": s2.sum() / s2[0],
        "sv_participation_ratio": s2.sum() ** 2 / (s2**2).sum(),
        "cos_sim_mean": np.mean(cosines),
        "cos_sim_std": np.std(cosines, ddof=1),
    }
    for k in (4, 8, 16, 32):
        out[f"ve_{k}"] = s2[:k].sum() / s2.sum()
    return out


FIXED_SPECTRA = {
    "power_law_256": 1.0 / np.arange(1, 257) ** 1.3,
    "exponential_64": np.exp(-0.1 * np.arange(64)),
    "random_768": np.random.default_rng(11).gamma(0.5, size=768),
    "short_12": np.array([5.0, 4, 3, 2, 1, 0.5, 0.25, 0.1, 0.05, 0.0, 0.0, 0.0]),
    "unsorted_with_negatives": np.array([0.3, -1e-9, 2.0, 0.7, 1.1, -3e-12, 0.01] * 5),
}


@pytest.mark.parametrize("name", sorted(FIXED_SPECTRA))
def test_spectrum_metrics_equal_the_reference_formulas(name):
    values = FIXED_SPECTRA[name]
    ours = formulas.spectrum_metrics(values)
    expected = reference_spectrum(values)
    assert set(ours) == set(formulas.SPECTRUM_KEYS) == set(expected)
    for key, want in expected.items():
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(ours[key]), key
        elif key in ("k90", "k95"):
            assert ours[key] == want, key
        else:
            assert ours[key] == pytest.approx(want, rel=1e-9, abs=1e-12), key


def test_the_power_law_exponent_is_recovered_by_the_log_log_slope_only():
    m = formulas.spectrum_metrics(1.0 / np.arange(1, 401) ** 1.3)
    assert m["loglog_spectrum_slope_10_200"] == pytest.approx(-1.3, rel=1e-9)
    assert m["log_spectrum_slope_10_200"] != pytest.approx(-1.3, rel=0.5)  # semi-log: a rate per rank


FIXED_SAMPLES = {
    "low_rank_plus_noise": np.random.default_rng(3).normal(size=(60, 5)) @ np.random.default_rng(4).normal(size=(5, 24))
    + 0.05 * np.random.default_rng(5).normal(size=(60, 24)),
    "offset_gaussian": np.random.default_rng(6).normal(loc=2.0, size=(40, 48)),
    "wide_few_rows": np.random.default_rng(8).normal(size=(12, 40)),
}


@pytest.mark.parametrize("name", sorted(FIXED_SAMPLES))
def test_sample_metrics_equal_the_reference_formulas(name):
    x = FIXED_SAMPLES[name]
    ours = formulas.sample_metrics(x)
    expected = reference_sample(x)
    assert set(ours) == set(formulas.SAMPLE_KEYS) == set(expected)
    for key, want in expected.items():
        assert ours[key] == pytest.approx(want, rel=1e-9, abs=1e-12), key


def test_sample_metrics_of_one_row_are_undefined():
    assert all(math.isnan(v) for v in formulas.sample_metrics(np.ones((1, 4))).values())


def test_novelty_metrics_equal_the_reference_formulas():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(30, 10))
    y = x @ rng.normal(size=(10, 10)) + rng.normal(size=(30, 10))
    n = 25
    xc, yc = x[:n] - x[:n].mean(0), y[:n] - y[:n].mean(0)
    cka = np.linalg.norm(xc.T @ yc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert formulas.linear_cka(x[:n], y) == pytest.approx(cka, rel=1e-10)  # cut to the shorter side
    cosine = np.mean([x[t] @ y[t] / (np.linalg.norm(x[t]) * np.linalg.norm(y[t])) for t in range(30)])
    assert formulas.layer_cosine_sim(x, y) == pytest.approx(cosine, rel=1e-12)
    u = np.linalg.qr(rng.normal(size=(10, 4)))[0]
    v = np.linalg.qr(rng.normal(size=(10, 6)))[0]
    s = np.linalg.svd(u.T @ v[:, :4], compute_uv=False)
    assert formulas.subspace_novelty(u, v) == pytest.approx(np.mean(np.sqrt(1 - np.minimum(s, 1) ** 2)), rel=1e-10)


def test_the_normalization_ablation_equals_the_reference_variants():
    # more rows than features: a full-rank spectrum (the tail of a rank-deficient one is rounding noise, whose log
    # differs between LAPACK builds)
    x = np.random.default_rng(12).normal(loc=2.0, size=(80, 48)) * np.linspace(0.5, 3.0, 48)
    rows = {r["variant"]: r for r in formulas.normalization_ablation(x)}
    assert list(rows) == list(formulas.NORMALIZATION_VARIANTS)
    variants = {
        "raw": x,
        "token_l2": x / np.linalg.norm(x, axis=1, keepdims=True),
        "token_rms": x / np.sqrt((x**2).mean(axis=1, keepdims=True)),
        "feature_standardized": (x - x.mean(0)) / x.std(0, ddof=1),
    }
    for name, transformed in variants.items():
        centred = transformed - transformed.mean(0)
        expected = reference_spectrum(np.linalg.svd(centred, compute_uv=False) ** 2)
        for key in ("d_pr", "d_entropy", "stable_rank", "k90", "log_spectrum_slope_10_200"):
            assert rows[name][key] == pytest.approx(expected[key], rel=1e-9), (name, key)
    assert formulas.normalization_ablation(x[:1]) == []
    with pytest.raises(ValueError):
        formulas.normalize_rows(x, "bogus")


def test_router_metrics_equal_the_reference_formulas():
    counts = np.array([10, 0, 30, 60])
    load = counts / 100
    entropy = -sum(p * math.log(p) for p in load if p > 0)
    m = formulas.router_metrics(counts)
    assert m["router_entropy"] == pytest.approx(entropy)
    assert m["router_entropy_norm"] == pytest.approx(entropy / math.log(4))
    assert m["load_imbalance"] == pytest.approx(0.6 / 0.25)
    assert (m["most_used_expert"], m["top_expert_load"], m["routed_assignments"]) == (3, 0.6, 100)
    uniform = formulas.router_metrics(np.full(8, 5))
    assert uniform["router_entropy_norm"] == pytest.approx(1.0) and uniform["load_imbalance"] == pytest.approx(1.0)
