"""Known answers for the spectral kernels: Lanczos against a full SVD, the Marchenko-Pastur edge on Gaussian noise,
the BBP transition of a planted rank-one spike, stable rank, sketches and finiteness."""

from __future__ import annotations

import math

import pytest
import torch

from guardchain.guards.linalg import (
    count_nonfinite,
    is_finite,
    sketch,
    top_eigenvalue_psd,
    top_singular_values,
)
from guardchain.guards.mp import OUTLIER_FLOOR, bbp_threshold, mp_edge


def gaussian(m: int, n: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(m, n, generator=torch.Generator().manual_seed(seed))


def spiked(m: int, n: int, theta: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-variance noise plus ``theta u v^T`` (unit u, v); returns the matrix and v."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(m, generator=g)
    v = torch.randn(n, generator=g)
    u, v = u / u.norm(), v / v.norm()
    return torch.randn(m, n, generator=g) + theta * torch.outer(u, v), v


@pytest.mark.parametrize(("m", "n"), [(300, 700), (700, 300), (400, 400)])
def test_lanczos_matches_the_full_svd_above_the_floor(m: int, n: int) -> None:
    # a decaying spectrum with a few large singular values (like trained weights)
    g = torch.Generator().manual_seed(m + n)
    left, _ = torch.linalg.qr(torch.randn(m, min(m, n), generator=g))
    right, _ = torch.linalg.qr(torch.randn(n, min(m, n), generator=g))
    sigma = torch.cat([torch.tensor([40.0, 30.0, 25.0, 22.0]), torch.linspace(8.0, 0.1, min(m, n) - 4)])
    w = left @ torch.diag(sigma) @ right.T
    exact = torch.linalg.svdvals(w.double())
    spectrum = top_singular_values(w, exact_max_dim=16)
    assert spectrum.steps > 0, "took the Lanczos path"
    assert spectrum.sigma1 == pytest.approx(float(exact[0]), rel=1e-6)
    floor = OUTLIER_FLOOR * mp_edge(m, n, float((exact**2).sum()))
    expected = [float(v) for v in exact if float(v) > floor]
    assert len(spectrum.values) == len(expected)
    for got, want in zip(spectrum.values, expected, strict=True):
        assert got == pytest.approx(want, rel=1e-3)
    v1 = spectrum.v1
    assert v1 is not None
    assert float((w @ v1).norm()) == pytest.approx(spectrum.sigma1, rel=1e-4)


def test_a_warm_start_after_a_small_edit_converges_in_fewer_steps() -> None:
    w = gaussian(600, 900, seed=1)  # a flat spectrum: sigma_1 converges slowly from a random start
    cold = top_singular_values(w)
    edited = w + 1e-3 * gaussian(600, 900, seed=2)
    warm = top_singular_values(edited, v0=cold.v1, resolve_outliers=False)
    again = top_singular_values(edited, resolve_outliers=False)
    assert warm.steps < again.steps
    assert warm.sigma1 == pytest.approx(again.sigma1, rel=1e-6)
    # resolving the outliers too, the warm start gives the same answer as a cold one
    full = top_singular_values(edited, v0=cold.v1)
    assert full.values == pytest.approx(top_singular_values(edited).values, rel=1e-5)


def test_the_exact_path_for_small_matrices() -> None:
    w = gaussian(50, 80, seed=3)
    spectrum = top_singular_values(w, exact_max_dim=128)
    assert spectrum.steps == 0 and spectrum.v1 is None
    assert spectrum.sigma1 == pytest.approx(float(torch.linalg.svdvals(w)[0]), rel=1e-6)


@pytest.mark.parametrize(("m", "n"), [(500, 500), (300, 900), (900, 300)])
def test_the_mp_edge_of_gaussian_noise(m: int, n: int) -> None:
    for seed in range(3):
        w = gaussian(m, n, seed, scale=0.37)  # the fitted scale makes the edge scale-free
        spectrum = top_singular_values(w)
        edge = spectrum.edge
        assert edge == pytest.approx(0.37 * (math.sqrt(m) + math.sqrt(n)), rel=0.01)
        # finite-size fluctuations of the top singular value are O(n^(-2/3)) relative (Tracy-Widom)
        assert abs(spectrum.sigma1 / edge - 1) < 0.03


def test_a_gaussian_matrix_has_no_outliers_at_the_nominal_rate() -> None:
    """50 Gaussian matrices: not one outlier at the tiers' margin 1.0, nor at the edge itself + 5% (the largest
    singular value lies within 3% of the edge: Tracy-Widom fluctuations are O(n^(-2/3)))."""
    spectra = [top_singular_values(gaussian(200, 300, seed)) for seed in range(50)]
    assert sum(s.outliers(1.0) for s in spectra) == 0
    assert all(s.sigma1 < 1.05 * s.edge for s in spectra)


def test_a_planted_spike_above_the_bbp_threshold_is_found_and_below_it_is_not() -> None:
    m, n = 600, 900
    critical = bbp_threshold(m, n, 1.0)
    edge = math.sqrt(m) + math.sqrt(n)
    for factor in (1.6, 2.5):
        theta = factor * critical
        w, v = spiked(m, n, theta, seed=int(10 * factor))
        spectrum = top_singular_values(w)
        predicted = math.sqrt((theta**2 + m) * (theta**2 + n)) / theta  # Benaych-Georges & Nadakuditi 2012
        assert spectrum.sigma1 == pytest.approx(predicted, rel=0.04)  # finite-size effects near the threshold
        assert spectrum.sigma1 > 1.05 * spectrum.edge, "separated from the bulk"
        assert spectrum.v1 is not None and float(spectrum.v1 @ v) ** 2 > 0.3
    big = 6 * critical  # its singular value sqrt((36 c^2 + m)(36 c^2 + n)) / (6 c) is 3.1 x the edge
    w, _ = spiked(m, n, big, seed=7)
    assert top_singular_values(w).outliers(1.0) == 1
    for factor in (0.5, 0.8):
        w, _ = spiked(m, n, factor * critical, seed=int(10 * factor))
        spectrum = top_singular_values(w)
        assert abs(spectrum.sigma1 / edge - 1) < 0.02, "below the threshold the spike hides in the bulk"
        assert spectrum.outliers(1.0) == 0


def test_stable_rank_known_answers() -> None:
    eye = torch.eye(200)
    assert top_singular_values(eye, exact_max_dim=0).stable_rank == pytest.approx(200.0, rel=1e-5)
    u = torch.randn(300, 1, generator=torch.Generator().manual_seed(0))
    rank_one = u @ torch.randn(1, 400, generator=torch.Generator().manual_seed(1))
    assert top_singular_values(rank_one).stable_rank == pytest.approx(1.0, rel=1e-5)
    w = gaussian(300, 400, seed=2)
    assert top_singular_values(3 * w).stable_rank == pytest.approx(top_singular_values(w).stable_rank, rel=1e-5)


def test_top_eigenvalue_of_a_psd_matrix() -> None:
    a = gaussian(300, 200, seed=4)
    gram = (a.T @ a).double()
    value, vector = top_eigenvalue_psd(gram)
    exact = torch.linalg.eigvalsh(gram)
    assert value == pytest.approx(float(exact[-1]), rel=1e-6)
    assert float((gram.float() @ vector).norm()) == pytest.approx(value, rel=1e-4)


def test_sketch_detects_changes_and_is_stable() -> None:
    w = gaussian(64, 48, seed=5)
    assert sketch(w) == sketch(w.clone())
    changed = w.clone()
    changed[3, 7] += 1e-3
    assert sketch(changed) != sketch(w)
    assert sketch(w.reshape(48, 64)) != sketch(w), "the shape is part of the sketch"


def test_finiteness() -> None:
    w = gaussian(10, 10, seed=6)
    assert is_finite(w) and count_nonfinite(w) == 0
    w[2, 3] = float("nan")
    w[4, 4] = float("inf")
    assert not is_finite(w) and count_nonfinite(w) == 2
    huge = torch.full((4, 4), 3e38)  # finite values whose sum overflows
    assert is_finite(huge)


def test_outlier_margins_below_the_resolved_floor_are_refused() -> None:
    with pytest.raises(ValueError, match="floor"):
        top_singular_values(gaussian(200, 200, seed=0)).outliers(0.5)
