"""Spectral kernels shared by ``spectral`` and ``rmt``: top singular values by Golub-Kahan-Lanczos (resolved down
to twice the Marchenko-Pastur edge of :mod:`guardchain.guards.mp`), stable rank, and a cheap change sketch.

Cost model (``W`` is ``m x n``, ``k = min(m, n)``):

* :func:`top_singular_values` with Lanczos: ``j`` steps cost ``2 j`` matrix-vector products, ``O(j m n)`` flops and
  one pass over ``W``'s memory per product, plus ``O(j^2 (m + n))`` for full reorthogonalisation; on SmolLM2-135M's
  attention and MLP matrices ``j`` averages about 17 from a cold start (more for matrices with many outliers) and
  about 13 warm-started after int8 quantization. An exact SVD (``O(m n k)``) is used only for matrices with
  ``k <= exact_max_dim``.
* :func:`sketch`: one matrix-vector product and one norm, ``O(m n)``, about 4x cheaper than hashing the bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from guardchain.guards.mp import OUTLIER_FLOOR, mp_edge, outlier_count

#: Weight of the random part of a warm start vector (relative to the unit warm vector).
WARM_MIX = 0.3


@dataclass(frozen=True)
class Spectrum:
    """The top of one matrix's singular spectrum.

    :ivar sigma1: largest singular value.
    :ivar values: singular values, descending, every one above ``OUTLIER_FLOOR * mp_edge`` and at least
        ``sigma1`` (complete above that level: no singular value above it is missing).
    :ivar fro2: squared Frobenius norm ``sum_ij W_ij^2``.
    :ivar v1: unit top right singular vector (float32, CPU), or ``None`` from the exact path.
    :ivar steps: Lanczos steps taken (0 for the exact path).
    :ivar shape: ``(m, n)``.
    """

    sigma1: float
    values: tuple[float, ...]
    fro2: float
    v1: torch.Tensor | None
    steps: int
    shape: tuple[int, int]

    @property
    def stable_rank(self) -> float:
        """``||W||_F^2 / sigma_1^2`` (Rudelson & Vershynin 2007): between 1 and rank(W); scale-invariant."""
        return self.fro2 / self.sigma1**2 if self.sigma1 > 0 else 0.0

    @property
    def edge(self) -> float:
        """The MP bulk edge for this matrix's shape and moment-fitted scale (:func:`mp_edge`)."""
        return mp_edge(self.shape[0], self.shape[1], self.fro2)

    def outliers(self, margin: float) -> int:
        """Singular values above ``(1 + margin) * edge`` (:func:`guardchain.guards.mp.outlier_count`)."""
        return outlier_count(self.values, self.edge, margin)


_PROBES: dict[tuple[int, str, torch.dtype], torch.Tensor] = {}


def _probe(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    key = (n, str(device), dtype)
    probe = _PROBES.get(key)
    if probe is None:
        generator = torch.Generator().manual_seed(0x5EED + n)
        probe = torch.randn(n, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)
        _PROBES[key] = probe
    return probe


def sketch(tensor: torch.Tensor) -> bytes:
    """A cheap fingerprint of a tensor's values: ``||T||_F`` and ``T2 r`` for a fixed Gaussian ``r``, where ``T2`` is
    ``T`` viewed as ``(shape[0], -1)``.

    Different sketches prove different values. Equal sketches are used only to skip re-measuring *continuous*
    statistics (singular values, activations): a change small enough to leave every row's float dot product with
    ``r`` and the norm bit-identical cannot move those statistics measurably. Bit identity, where it matters (the
    invariants guard), is checked with SHA-256.
    """
    flat = tensor.detach()
    flat = flat.reshape(1, -1) if flat.dim() < 2 else flat.reshape(flat.shape[0], -1)
    if not flat.dtype.is_floating_point:
        flat = flat.to(torch.float32)
    probe = _probe(flat.shape[1], flat.device, flat.dtype)
    parts = torch.cat([torch.linalg.vector_norm(flat).reshape(1), flat @ probe]).to(torch.float64).cpu()
    return bytes(parts.numpy().tobytes()) + repr((tuple(tensor.shape), str(tensor.dtype))).encode()


def sketch_is_finite(value_sketch: bytes) -> bool | None:
    """``True`` when the sketch's norm is finite, which proves every element finite (NaN and inf propagate into a
    norm); ``None`` when it is not, since finite values can overflow it (then ask :func:`is_finite`)."""
    norm = float(np.frombuffer(value_sketch[:8], dtype=np.float64)[0])
    return True if math.isfinite(norm) else None


def is_finite(tensor: torch.Tensor) -> bool:
    """Whether every element is finite, in one reduction: a sum is finite exactly when no element is NaN or infinite
    (IEEE-754: NaN and inf propagate through addition), unless finite values overflow, which the exact fallback
    catches."""
    if not tensor.dtype.is_floating_point or tensor.numel() == 0:
        return True
    if bool(torch.isfinite(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


def count_nonfinite(tensor: torch.Tensor) -> int:
    """Number of NaN / infinite elements."""
    if not tensor.dtype.is_floating_point:
        return 0
    return int((~torch.isfinite(tensor)).sum())


def top_singular_values(
    matrix: torch.Tensor,
    *,
    v0: torch.Tensor | None = None,
    exact_max_dim: int = 128,
    tol: float = 1e-5,
    count_tol: float = 1e-3,
    seed: int = 0,
    resolve_outliers: bool = True,
) -> Spectrum:
    """Top singular values of ``matrix`` down to ``OUTLIER_FLOOR`` times its MP edge, and its top right vector.

    Golub-Kahan-Lanczos bidiagonalisation with full reorthogonalisation (Golub & Kahan 1965; Golub & Van Loan,
    *Matrix Computations*, 4th ed., section 10.4): after ``j`` steps ``W V_j = U_j B_j`` with ``B_j`` upper
    bidiagonal; the singular values of ``B_j`` (Ritz values) approach ``W``'s largest from below, and the residual
    of the ``i``-th Ritz triple is ``beta_j |p_i[j]|`` (``p_i`` the left singular vector of ``B_j``). It stops when
    ``sigma_1``'s residual is below ``tol * sigma_1``, every Ritz value above the floor has residual below
    ``count_tol`` times itself, and the next Ritz value plus its residual stays below the floor (so none is
    missing). Matrices whose smaller side is at most ``exact_max_dim``, and runs that would need that many steps,
    use an exact SVD instead.

    :param v0: start vector (length ``n``), e.g. the baseline's top right singular vector; default a seeded
        Gaussian vector.
    :param resolve_outliers: ``False`` resolves ``sigma_1`` only (``values`` then holds just it).
    """
    if matrix.dim() != 2:
        raise ValueError(f"a 2-D matrix is needed, got shape {tuple(matrix.shape)}")
    w = matrix.detach()
    if not w.dtype.is_floating_point or w.dtype in (torch.float16, torch.bfloat16):
        w = w.to(torch.float32)
    m, n = int(w.shape[0]), int(w.shape[1])
    fro2 = float(torch.linalg.vector_norm(w, dtype=torch.float64) ** 2)
    floor = OUTLIER_FLOOR * mp_edge(m, n, fro2) if resolve_outliers else math.inf
    k = min(m, n)
    if k <= exact_max_dim:
        return _exact(w, fro2, floor)
    max_steps = min(k, max(64, k // 2))
    work = torch.float64 if w.dtype == torch.float64 else torch.float32
    v_basis = torch.zeros(max_steps + 1, n, dtype=work, device=w.device)
    u_basis = torch.zeros(max_steps, m, dtype=work, device=w.device)
    alpha = torch.zeros(max_steps, dtype=torch.float64)
    beta = torch.zeros(max_steps, dtype=torch.float64)
    start = torch.randn(n, generator=torch.Generator().manual_seed(seed + n), dtype=torch.float32)
    if v0 is not None and v0.numel() == n and bool(torch.isfinite(v0).all()) and float(v0.norm()) > 0.0:
        # mostly the warm vector, plus a seeded random part so that no other singular direction is missing from
        # the Krylov space (a start orthogonal to a singular vector never finds its value)
        warm = v0.detach().to(torch.float32).cpu()
        start = warm / warm.norm() + WARM_MIX * start / start.norm()
    v_basis[0] = (start / start.norm()).to(device=w.device, dtype=work)
    w_work = w.to(work)
    b_prev = 0.0
    steps = 0
    for j in range(max_steps):
        u = w_work @ v_basis[j]
        if j > 0:
            u -= b_prev * u_basis[j - 1]
            u, a = _orthogonalize(u, u_basis[:j])
        else:
            a = float(u.norm())
        if a == 0.0:
            steps = j
            break
        u_basis[j] = u / a
        alpha[j] = a
        v, b_prev = _orthogonalize(w_work.T @ u_basis[j] - a * v_basis[j], v_basis[: j + 1])
        beta[j] = b_prev
        steps = j + 1
        if b_prev == 0.0:
            break  # invariant subspace: the Ritz values are exact
        v_basis[j + 1] = v / b_prev
        if steps >= 6 and steps % 2 == 0 and _converged(alpha, beta, steps, floor, tol, count_tol):
            break
    else:
        return _exact(w, fro2, floor)  # did not converge within max_steps: fall back to the exact answer
    bidiagonal = torch.diag(alpha[:steps]) + torch.diag(beta[: steps - 1], 1)
    _, ritz, right_h = torch.linalg.svd(bidiagonal)
    v1 = (right_h[0].to(work).to(w.device) @ v_basis[:steps]).to(torch.float32).cpu()
    values = _above(ritz, floor)
    return Spectrum(sigma1=float(ritz[0]), values=values, fro2=fro2, v1=v1 / v1.norm(), steps=steps, shape=(m, n))


def _orthogonalize(x: torch.Tensor, basis: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Classical Gram-Schmidt against ``basis`` (orthonormal rows), repeated once when the first pass removed most of
    ``x`` (the Daniel-Gragg-Kaufman-Stewart 1976 criterion, ``||x'|| < ||x|| / sqrt 2``); returns ``x`` and its norm."""
    before = float(x.norm())
    x = x - basis.T @ (basis @ x)
    after = float(x.norm())
    if after < 0.7071 * before:
        x = x - basis.T @ (basis @ x)
        after = float(x.norm())
    return x, after


def _converged(alpha: torch.Tensor, beta: torch.Tensor, steps: int, floor: float, tol: float, count_tol: float) -> bool:
    """Ritz values and residuals from the tridiagonal ``B B^T`` (its eigenvectors are ``B``'s left singular vectors),
    by LAPACK's tridiagonal eigensolver: ``O(j^2)`` per check instead of a dense SVD."""
    from scipy.linalg import eigh_tridiagonal

    a = alpha[:steps].numpy()
    b = beta[: steps - 1].numpy()
    diagonal = a**2
    diagonal[:-1] += b**2
    off = b * a[1:]
    values, vectors = eigh_tridiagonal(diagonal, off)
    order = values.argsort()[::-1]
    ritz = np.sqrt(np.clip(values[order], 0.0, None))
    residual = float(beta[steps - 1]) * np.abs(vectors[-1, order])
    if residual[0] > tol * ritz[0]:
        return False
    if math.isinf(floor):
        return True
    above = int((ritz > floor).sum())
    if steps < 2 * above + 8:
        return False  # too few Krylov directions beyond the outliers found so far: more may be hiding
    if bool((residual[:above] > count_tol * ritz[:above]).any()):
        return False
    return float(ritz[above] + residual[above]) < floor


def _above(values: torch.Tensor, floor: float) -> tuple[float, ...]:
    keep = [float(v) for v in values if float(v) > floor]
    return tuple(keep) if keep else (float(values[0]),)


def _exact(w: torch.Tensor, fro2: float, floor: float) -> Spectrum:
    values = torch.linalg.svdvals(w.to(torch.float64) if w.dtype == torch.float64 else w.to(torch.float32))
    m, n = int(w.shape[0]), int(w.shape[1])
    return Spectrum(sigma1=float(values[0]), values=_above(values, floor), fro2=fro2, v1=None, steps=0, shape=(m, n))


def top_eigenvalue_psd(
    gram: torch.Tensor, *, v0: torch.Tensor | None = None, tol: float = 1e-6
) -> tuple[float, torch.Tensor]:
    """Largest eigenvalue and its unit eigenvector of a symmetric positive semi-definite ``d x d`` matrix.

    For a PSD matrix the singular values are the eigenvalues, so this is :func:`top_singular_values`'s Lanczos run
    on ``gram`` itself (``O(j d^2)`` for ``j`` steps); exact for ``d <= 128``.
    """
    spectrum = top_singular_values(gram, v0=v0, exact_max_dim=128, tol=tol, resolve_outliers=False)
    if spectrum.v1 is not None:
        return spectrum.sigma1, spectrum.v1
    _, vectors = torch.linalg.eigh(gram.to(torch.float64))
    return spectrum.sigma1, vectors[:, -1].to(torch.float32).cpu()
