"""``spectral``: each weight matrix's top singular value and stable rank against **its own** baseline.

For every 2-D weight matrix ``W`` of the configured families (``attn``, ``ffn``, ``embed``, ``other``; tied
matrices once):

* ``sigma_1`` by Golub-Kahan-Lanczos (:func:`guardchain.guards.linalg.top_singular_values`; exact SVD only for
  matrices whose smaller side is at most ``exact_max_dim``), warm-started after the edit from the baseline's top
  right singular vector; a matrix whose value sketch equals the baseline's is not re-measured;
* the stable rank ``srank = ||W||_F^2 / sigma_1^2`` (Rudelson & Vershynin 2007);
* log ratios ``l_sigma = ln(sigma_1 / sigma_1,base)`` and ``l_srank = ln(srank / srank_base)``; a ratio with
  ``|l| <= deadband`` counts as 0 (numerical jitter of the estimator; the report keeps the raw ratios too);
* z-scores against the family's null scale from the tier table, ``z = l / tau_f`` (``tau_f`` = the spread of
  ``l`` under int8 round-to-nearest, the benign reference edit; ``docs/guards/calibration.md``). Unlike
  InvarLock 0.3.7, which standardises ``sigma_1`` by the *family mean of the baseline*, a matrix that was already
  an outlier in the baseline has ``z = 0`` on a null edit.

Multiple testing: per matrix ``p = min(1, 2 min(p_sigma, p_srank))`` with ``p = erfc(|z| / sqrt 2)``
(Bonferroni over the two statistics); per family Simes' combination (Simes 1986); across families the
Benjamini-Hochberg step-up at ``alpha`` (Benjamini & Hochberg 1995). A matrix is a **violation** when its family
is selected and ``|z_sigma| > kappa_f`` or ``|z_srank| > kappa_f``; a non-finite matrix always is (fail closed).

Decision: more than ``max_caps`` violations fails (``SPECTRAL-CAPS-EXCEEDED``; nothing corrected). Otherwise in
gate mode every ``sigma_1`` blow-up (``z_sigma > kappa_f``) is **rescaled** back to its cap,
``W <- W * exp(kappa_f tau_f - l_sigma)``, recorded as an applied action and announced to the runner first
(``context.will_change_weights``);
the other violations (stable-rank changes, shrinkage, which a scalar cannot fix) are warnings; non-finite matrices
fail. Monitor mode proposes the same actions without applying them and never fails.

Measurement and decision are separate: this module measures (torch) and records the evidence; the decision is the
pure function :func:`guardchain.guards.spectral_decide.build_report`, which ``guardchain verify`` re-runs on the
recorded evidence (:func:`guardchain.guards.spectral_decide.verify_report`).

Cost: per measured matrix ``O(j m n)`` for ``j`` Lanczos steps (see :mod:`guardchain.guards.linalg`), the matrices
spread over up to 4 threads; on SmolLM2-135M (210 attention and MLP matrices) about 1.3-1.6 s at ``prepare`` and
1.0-1.5 s after int8 on a shared 2-core CPU, ~0 for matrices the edit did not touch. No forward passes.
"""

from __future__ import annotations

from typing import Any

import torch

from guardchain.core.context import RunContext
from guardchain.core.handles import ModelHandle
from guardchain.core.results import GuardMode, GuardReport
from guardchain.guards.common import parameter, progress, require, resolve_adapter, torch_model
from guardchain.guards.reporting import finite_or_none
from guardchain.guards.spectral_config import SpectralConfig
from guardchain.guards.spectral_decide import SpectralEvidence, build_report, thresholds
from guardchain.guards.weights import MatrixInput, MatrixRecord, matrices_in, measure_all

NAME = "spectral"


class SpectralGuard:
    """The ``spectral`` guard (see the module docstring)."""

    def __init__(self, config: SpectralConfig | None = None) -> None:
        self.config = config if config is not None else SpectralConfig()
        self.mode = GuardMode(self.config.mode)
        self.thresholds = thresholds(self.config)
        self._baseline: dict[str, MatrixRecord] | None = None
        self._report: GuardReport | None = None

    def prepare(self, baseline: ModelHandle, context: RunContext) -> None:
        """Measure ``sigma_1``, ``||W||_F`` and the top right singular vector of every matrix in scope."""
        model = torch_model(baseline)
        structure = resolve_adapter(baseline, context).describe(baseline)
        matrices = matrices_in(structure, self.config.families)
        report = progress(context)
        inputs = [
            MatrixInput(name, family, tensor)
            for name, family, _ in matrices
            if (tensor := parameter(model, name)) is not None
        ]
        records = measure_all(
            context,
            inputs,
            exact_max_dim=self.config.exact_max_dim,
            report=lambda done, total: report("spectral: baseline matrices", done, total),
        )
        self._baseline = {r.name: r for r in records}
        self._report = None

    def after_edit(self, subject: ModelHandle, context: RunContext) -> None:
        """Measure every matrix the edit changed, decide (:mod:`guardchain.guards.spectral_decide`), and in gate mode
        apply the caps the decision applies, after announcing them to the runner."""
        require(self._baseline is not None, "spectral.after_edit called before prepare")
        assert self._baseline is not None
        model = torch_model(subject)
        report = progress(context)
        inputs: list[MatrixInput] = []
        skipped: list[str] = []
        for name, base in self._baseline.items():
            tensor = parameter(model, name)
            if tensor is None or tuple(tensor.shape) != base.shape:
                skipped.append(name)  # the invariants guard names shape changes and missing parameters
                continue
            inputs.append(MatrixInput(name, base.family, tensor, base))
        current = measure_all(
            context,
            inputs,
            exact_max_dim=self.config.exact_max_dim,
            report=lambda done, total: report("spectral: subject matrices", done, total),
        )
        counts: dict[str, dict[str, int]] = {}
        changed: list[dict[str, Any]] = []
        for record in current:
            counts.setdefault(record.family, {"count": 0})["count"] += 1
            if not record.reused:
                changed.append(_evidence(self._baseline[record.name], record))
        evidence = SpectralEvidence.model_validate({"families": counts, "matrices": changed, "skipped": skipped})
        decided = build_report(evidence, self.config)
        caps = [action for action in decided.actions if action.applied]
        if caps:
            context.will_change_weights(action.target for action in caps)
            with torch.no_grad():
                for action in caps:
                    tensor = parameter(model, action.target)
                    assert tensor is not None
                    tensor.mul_(action.parameters["scale"])
        self._report = decided

    def finalize(self, context: RunContext) -> GuardReport:
        """The report of the last ``after_edit``."""
        require(self._report is not None, "spectral.finalize called before after_edit")
        assert self._report is not None
        return self._report


def _evidence(base: MatrixRecord, current: MatrixRecord) -> dict[str, Any]:
    """The evidence of one changed matrix (:class:`~guardchain.guards.spectral_decide.MatrixEvidence`)."""
    b = base.spectrum
    c = current.spectrum if current.finite else None
    return {
        "name": base.name,
        "family": base.family,
        "sigma_base": finite_or_none(b.sigma1) if b is not None else None,
        "sigma": finite_or_none(c.sigma1) if c is not None else None,
        "srank_base": finite_or_none(b.stable_rank) if b is not None else None,
        "srank": finite_or_none(c.stable_rank) if c is not None else None,
        "lanczos_steps": c.steps if c is not None else 0,
    }
