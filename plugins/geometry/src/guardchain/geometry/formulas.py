"""The geometry formulas, in float64, with the reference package's names.

The names and definitions follow representation-geometry 0.1.0 (Vidit Gupta, github.com/Vidit-01/
representation-geometry, ``metrics.py``, ``diagnostics.py``, ``moe.py``) so that numbers are comparable; the
formulas themselves are the textbook ones cited below. Every function takes numpy arrays or torch tensors and
returns plain Python floats / ints; NaN (and ``-1`` for the ``k`` metrics) marks an undefined value. Spectra are
vectors (numpy); factorizations and products of samples run in torch float64 on the sample's device.

Spectrum family (eigenvalues ``λ`` of a covariance, clamped at 0 and sorted ``λ_1 ≥ … ≥ λ_d``; ``T = Σ λ_i``;
``p_i = λ_i / T``):

- ``d_pr = T² / Σ λ_i²``, the participation ratio (Gao et al. 2017, *A theory of multineuronal dimensionality*);
  ``d_pr_norm = d_pr / d``;
- ``d_entropy = exp(−Σ_{p_i>0} p_i ln p_i)``, the entropy (Roy–Vetterli 2007) effective dimension;
  ``d_entropy_norm = d_entropy / d``;
- ``stable_rank = T / λ_1``;
- ``top{1,10,32}_share = Σ_{i≤k} p_i``;
- ``k90`` / ``k95``: the smallest ``k`` with ``Σ_{i≤k} p_i ≥ 0.90`` / ``0.95`` (left search on the cumulative sum);
- ``log_spectrum_slope_10_200``: ordinary-least-squares slope of ``ln(λ_i + 1e-30)`` against the **0-based** rank
  ``i`` for ``10 ≤ i < min(200, d)`` (only when ``min(200, d) > 15``): a *semi-log* decay rate per rank, the
  reference's quantity under its name;
- ``loglog_spectrum_slope_10_200``: the same fit of ``ln(λ_i + 1e-30)`` against ``ln(i + 1)`` (the 1-based rank),
  i.e. the exponent ``−α`` of a power law ``λ_r ∝ r^−α`` over ranks 11…200.

Sample family (rows ``X`` of a token sample, ``Xc = X −`` column mean, ``σ`` the singular values of ``Xc`` above
1e-10): ``sv_effective_rank = exp(−Σ w_i ln w_i)`` with ``w_i = σ_i / Σ σ_j`` (Roy–Vetterli on ``σ``, not ``σ²``),
``sv_stable_rank = Σσ² / σ_1²``, ``sv_participation_ratio = (Σσ²)² / Σσ⁴``, ``cos_sim_mean`` / ``cos_sim_std``
(mean and unbiased std of the off-diagonal pairwise cosines of the *uncentred* rows) and
``ve_k = Σ_{i≤k} σ_i² / Σσ²`` for ``k ∈ {4, 8, 16, 32}``.

Novelty between two sites: ``feature_subspace_novelty`` (mean sine of the principal angles between two top-``k``
eigenvector bases, Björck & Golub 1973), ``linear_cka`` (Kornblith et al. 2019, *Similarity of neural network
representations revisited*) and ``layer_cosine_sim`` (mean cosine of token-aligned rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import get_args

import numpy as np
import numpy.typing as npt
import torch

from guardchain.geometry.config import SampleStat, SpectrumStat

Floats = npt.NDArray[np.float64]

#: the names, in order, are the config's (one declaration: the Literal types a chain file is validated against)
SPECTRUM_KEYS: tuple[str, ...] = get_args(SpectrumStat)
SAMPLE_KEYS: tuple[str, ...] = get_args(SampleStat)
VE_COMPONENTS: tuple[int, ...] = tuple(int(k.removeprefix("ve_")) for k in SAMPLE_KEYS if k.startswith("ve_"))
NORMALIZATION_VARIANTS: tuple[str, ...] = ("raw", "token_l2", "token_rms", "feature_standardized")
#: the rank range ``[lo, hi)`` of the slope fits and the smallest ``hi`` that allows one
SLOPE_RANKS = (10, 200)
SLOPE_MIN_HI = 16
_TINY = 1e-30
_SV_FLOOR = 1e-10
_NORM_FLOOR = 1e-12


def _ols_slope(x: Floats, y: Floats) -> float:
    xc = x - x.mean()
    return float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))


def spectrum_metrics(eigenvalues: npt.ArrayLike) -> dict[str, float | int]:
    """The spectrum family of the module docstring for one set of covariance eigenvalues (any order)."""
    values = np.sort(np.maximum(np.asarray(eigenvalues, dtype=np.float64).ravel(), 0.0))[::-1]
    dim = int(values.size)
    total = float(values.sum())
    if dim == 0 or not total > 0.0:
        out: dict[str, float | int] = {key: math.nan for key in SPECTRUM_KEYS}
        out["k90"] = out["k95"] = -1
        return out
    p = values / total
    nonzero = p[p > 0]
    cumulative = np.cumsum(p)
    d_pr = total**2 / float(np.dot(values, values))
    d_entropy = float(np.exp(-np.dot(nonzero, np.log(nonzero))))
    out = {
        "d_pr": d_pr,
        "d_pr_norm": d_pr / dim,
        "d_entropy": d_entropy,
        "d_entropy_norm": d_entropy / dim,
        "stable_rank": total / float(values[0]),
        "top1_share": float(cumulative[0]),
        "top10_share": float(cumulative[min(10, dim) - 1]),
        "top32_share": float(cumulative[min(32, dim) - 1]),
        "k90": min(int(np.searchsorted(cumulative, 0.90)) + 1, dim),
        "k95": min(int(np.searchsorted(cumulative, 0.95)) + 1, dim),
    }
    lo, hi = SLOPE_RANKS[0], min(SLOPE_RANKS[1], dim)
    if hi >= SLOPE_MIN_HI:
        ranks = np.arange(lo, hi, dtype=np.float64)
        log_values = np.log(values[lo:hi] + _TINY)
        out["log_spectrum_slope_10_200"] = _ols_slope(ranks, log_values)
        out["loglog_spectrum_slope_10_200"] = _ols_slope(np.log(ranks + 1.0), log_values)
    else:
        out["log_spectrum_slope_10_200"] = out["loglog_spectrum_slope_10_200"] = math.nan
    return out


Array = npt.ArrayLike | torch.Tensor


def _tensor(values: Array) -> torch.Tensor:
    # The factorizations run in torch (float64, on the input's device): numpy's threaded OpenBLAS is an order of
    # magnitude slower on a shared CPU, and a GPU sample stays on the GPU.
    if isinstance(values, torch.Tensor):
        return values.detach().to(torch.float64)
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    norms: torch.Tensor = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return x / norms.clamp_min(_NORM_FLOOR)


def _centred(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(dim=0, keepdim=True)


def sample_metrics(sample: Array) -> dict[str, float]:
    """The sample family of the module docstring for rows ``sample`` of shape ``(n, d)``."""
    x = _tensor(sample)
    empty = {key: math.nan for key in SAMPLE_KEYS}
    if x.dim() != 2 or x.shape[0] < 2:
        return empty
    sigma = torch.linalg.svdvals(_centred(x))
    sigma = sigma[sigma > _SV_FLOOR]
    if sigma.numel() == 0:
        return empty
    w = sigma / sigma.sum()
    squared = sigma**2
    total = float(squared.sum())
    unit = _unit_rows(x)
    cosines = unit @ unit.T
    off_diagonal = cosines[~torch.eye(x.shape[0], dtype=torch.bool, device=x.device)]
    out = {
        "sv_effective_rank": float(torch.exp(-torch.dot(w, torch.log(w)))),
        "sv_stable_rank": total / float(squared[0]),
        "sv_participation_ratio": total**2 / float(torch.dot(squared, squared)),
        "cos_sim_mean": float(off_diagonal.mean()),
        "cos_sim_std": float(off_diagonal.std(correction=1)),
    }
    for k in VE_COMPONENTS:
        out[f"ve_{k}"] = float(squared[:k].sum()) / total
    return out


def subspace_novelty(left: Array, right: Array) -> float:
    """Mean sine of the principal angles between the column spans of two orthonormal bases ``(d, k)``.

    ``k`` is the smaller column count; 0 for the same subspace, 1 for orthogonal ones; NaN when the bases live in
    spaces of different dimension or ``k = 0``.
    """
    u, v = _tensor(left), _tensor(right)
    k = min(u.shape[1], v.shape[1])
    if k == 0 or u.shape[0] != v.shape[0]:
        return math.nan
    s = torch.linalg.svdvals(u[:, :k].T @ v[:, :k].to(u.device)).clamp(-1.0, 1.0)
    return float(torch.sqrt((1.0 - s**2).clamp_min(0.0)).mean())


def linear_cka(x: Array, y: Array) -> float:
    """Linear CKA ``‖Xcᵀ Yc‖_F² / (‖Xcᵀ Xc‖_F ‖Ycᵀ Yc‖_F)`` of token-aligned rows (the first ``min(n_x, n_y)``).

    1 for ``X = Y``; invariant to orthogonal maps and isotropic scaling of either side; NaN for fewer than 2 rows
    or a constant side. Uses the ``n × n`` Gram form (``tr(Kx Ky)``) when rows are fewer than features.
    """
    a, b = _tensor(x), _tensor(y)
    n = min(a.shape[0], b.shape[0])
    if n < 2:
        return math.nan
    a, b = _centred(a[:n]), _centred(b[:n].to(a.device))
    if n < max(a.shape[1], b.shape[1]):
        ka, kb = a @ a.T, b @ b.T
        numerator = float((ka * kb).sum())
        denominator = math.sqrt(float((ka * ka).sum()) * float((kb * kb).sum()))
    else:
        numerator = float(((a.T @ b) ** 2).sum())
        denominator = math.sqrt(float(((a.T @ a) ** 2).sum()) * float(((b.T @ b) ** 2).sum()))
    return numerator / denominator if denominator > 0 else math.nan


def layer_cosine_sim(x: Array, y: Array) -> float:
    """Mean over token-aligned rows of ``cos(x_t, y_t)`` (uncentred); NaN when the widths differ or no row."""
    a, b = _tensor(x), _tensor(y)
    n = min(a.shape[0], b.shape[0])
    if n < 1 or a.shape[1] != b.shape[1]:
        return math.nan
    return float((_unit_rows(a[:n]) * _unit_rows(b[:n].to(a.device))).sum(dim=1).mean())


def normalize_rows(sample: Array, variant: str) -> torch.Tensor:
    """One normalization of the ablation diagnostic (float64 tensor).

    ``raw``: unchanged; ``token_l2``: ``x / max(‖x‖₂, 1e-12)`` per row; ``token_rms``:
    ``x / max(sqrt(mean_j x_j²), 1e-12)`` per row; ``feature_standardized``: ``(x − μ_j) / max(σ_j, 1e-12)`` per
    column ``j`` with the unbiased standard deviation ``σ_j``.

    :raises ValueError: for an unknown variant.
    """
    x = _tensor(sample)
    if variant == "raw":
        return x
    if variant == "token_l2":
        return _unit_rows(x)
    if variant == "token_rms":
        return x / torch.sqrt((x**2).mean(dim=1, keepdim=True)).clamp_min(_NORM_FLOOR)
    if variant == "feature_standardized":
        std = x.std(dim=0, correction=1, keepdim=True) if x.shape[0] > 1 else torch.zeros_like(x[:1])
        return _centred(x) / std.clamp_min(_NORM_FLOOR)
    raise ValueError(f"unknown normalization variant {variant!r}; expected one of {NORMALIZATION_VARIANTS}")


def sample_spectrum(sample: Array) -> Floats:
    """``λ = σ²`` of the column-centred rows (the unnormalised covariance spectrum of a sample, rank ≤ n − 1)."""
    sigma = torch.linalg.svdvals(_centred(_tensor(sample)))
    spectrum: Floats = (sigma**2).to("cpu").numpy()
    return spectrum


def normalization_ablation(
    sample: Array, variants: Sequence[str] = NORMALIZATION_VARIANTS
) -> list[dict[str, float | int | str]]:
    """The spectrum family of each variant's sample spectrum, one row per variant (none for fewer than 2 rows)."""
    x = _tensor(sample)
    if x.dim() != 2 or x.shape[0] < 2:
        return []
    rows: list[dict[str, float | int | str]] = []
    for variant in variants:
        row: dict[str, float | int | str] = {"variant": variant}
        row.update(spectrum_metrics(sample_spectrum(normalize_rows(x, variant))))
        rows.append(row)
    return rows


def router_metrics(counts: npt.ArrayLike) -> dict[str, float | int]:
    """Load statistics of one router from its per-expert top-``k`` assignment counts ``(E,)``.

    ``load_e = count_e / Σ count``; ``router_entropy = −Σ load_e ln load_e`` (nats); ``router_entropy_norm =
    router_entropy / ln E``; ``load_imbalance = max_e load_e / (1/E)``; ``most_used_expert = argmax load``;
    ``top_expert_load = max load``; ``routed_assignments = Σ count``.
    """
    c = np.asarray(counts, dtype=np.int64)
    experts = int(c.size)
    total = int(c.sum())
    load = c / max(total, 1)
    nonzero = load[load > 0]
    entropy = float(-np.dot(nonzero, np.log(nonzero))) if nonzero.size else 0.0
    return {
        "router_entropy": entropy,
        "router_entropy_norm": entropy / math.log(experts) if experts > 1 else math.nan,
        "load_imbalance": float(load.max() * experts) if experts else math.nan,
        "most_used_expert": int(load.argmax()) if experts else -1,
        "top_expert_load": float(load.max()) if experts else math.nan,
        "routed_assignments": total,
        "num_experts": experts,
    }
