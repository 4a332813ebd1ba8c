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
``W <- W * exp(kappa_f tau_f - l_sigma)``, recorded as an applied action (and in the run's correction ledger);
the other violations (stable-rank changes, shrinkage, which a scalar cannot fix) are warnings; non-finite matrices
fail. Monitor mode proposes the same actions without applying them and never fails.

Cost: per measured matrix ``O(j m n)`` for ``j`` Lanczos steps (see :mod:`guardchain.guards.linalg`), the matrices
spread over up to 4 threads; on SmolLM2-135M (210 attention and MLP matrices) about 1.3-1.6 s at ``prepare`` and
1.0-1.5 s after int8 on a shared 2-core CPU, ~0 for matrices the edit did not touch. No forward passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from guardchain.core.context import RunContext
from guardchain.core.handles import ModelHandle
from guardchain.core.results import Finding, GuardAction, GuardMode, GuardReport, GuardStatus
from guardchain.guards.codes import FindingCode
from guardchain.guards.common import (
    build_report,
    finding,
    finite_or_none,
    parameter,
    progress,
    require,
    resolve_adapter,
    torch_model,
)
from guardchain.guards.runstate import run_state
from guardchain.guards.spectral_config import SpectralConfig
from guardchain.guards.stats import benjamini_hochberg, simes, two_sided_p
from guardchain.guards.tiers import SpectralPreset, preset
from guardchain.guards.weights import MatrixInput, MatrixRecord, matrices_in, measure_all

NAME = "spectral"


@dataclass(frozen=True)
class MatrixChange:
    """One matrix compared with its own baseline (log ratios after the deadband, z-scores, p-value)."""

    name: str
    family: str
    finite: bool
    changed: bool
    log_sigma: float
    log_srank: float
    raw_log_sigma: float
    raw_log_srank: float
    z_sigma: float
    z_srank: float
    p: float
    sigma_base: float
    sigma: float
    steps: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "family": self.family,
            "finite": self.finite,
            "log_sigma_ratio": finite_or_none(self.log_sigma),
            "log_srank_ratio": finite_or_none(self.log_srank),
            "raw_log_sigma_ratio": finite_or_none(self.raw_log_sigma),
            "raw_log_srank_ratio": finite_or_none(self.raw_log_srank),
            "z_sigma": finite_or_none(self.z_sigma),
            "z_srank": finite_or_none(self.z_srank),
            "p": self.p,
            "sigma_base": finite_or_none(self.sigma_base),
            "sigma": finite_or_none(self.sigma),
            "lanczos_steps": self.steps,
        }


class SpectralGuard:
    """The ``spectral`` guard (see the module docstring)."""

    def __init__(self, config: SpectralConfig | None = None) -> None:
        self.config = config if config is not None else SpectralConfig()
        self.mode = GuardMode(self.config.mode)
        resolved = preset("spectral", self.config.tier, self.config.overrides())
        assert isinstance(resolved, SpectralPreset)
        self.thresholds = resolved
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
        """Compare every matrix with its baseline; in gate mode cap the blow-ups (see the module docstring)."""
        require(self._baseline is not None, "spectral.after_edit called before prepare")
        assert self._baseline is not None
        t = self.thresholds
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
        changes = [self._compare(self._baseline[c.name], c) for c in current]
        families = sorted({c.family for c in changes})
        family_p = {
            f: (
                0.0
                if any(not c.finite for c in changes if c.family == f)
                else simes([c.p for c in changes if c.family == f])
            )
            for f in families
        }
        selected = benjamini_hochberg(family_p, t.alpha)
        violations = [c for c in changes if not c.finite or (c.family in selected and self._exceeds(c))]
        findings, actions = self._decide(violations, model, context)
        self._report = self._build(changes, violations, findings, actions, family_p, selected, skipped)

    def finalize(self, context: RunContext) -> GuardReport:
        """The report of the last ``after_edit``."""
        require(self._report is not None, "spectral.finalize called before after_edit")
        assert self._report is not None
        return self._report

    # -- statistics -------------------------------------------------------------------------------------------

    def _compare(self, base: MatrixRecord, current: MatrixRecord) -> MatrixChange:
        t = self.thresholds
        family = base.family
        b = base.spectrum
        c = current.spectrum
        if b is None or c is None or not current.finite:
            sigma_base = b.sigma1 if b is not None else math.nan
            nan = math.nan
            return MatrixChange(
                base.name, family, False, True, nan, nan, nan, nan, math.inf, math.inf, 0.0, sigma_base, nan, 0
            )
        log_sigma = _log_ratio(c.sigma1, b.sigma1, t.deadband)
        log_srank = _log_ratio(c.stable_rank, b.stable_rank, t.deadband)
        raw_sigma = _log_ratio(c.sigma1, b.sigma1, 0.0)
        raw_srank = _log_ratio(c.stable_rank, b.stable_rank, 0.0)
        z_sigma = log_sigma / t.sigma_scale[family]  # type: ignore[index]
        z_srank = log_srank / t.srank_scale[family]  # type: ignore[index]
        p = min(1.0, 2.0 * min(two_sided_p(z_sigma), two_sided_p(z_srank)))
        return MatrixChange(
            base.name,
            family,
            True,
            not current.reused,
            log_sigma,
            log_srank,
            raw_sigma,
            raw_srank,
            z_sigma,
            z_srank,
            p,
            b.sigma1,
            c.sigma1,
            0 if current.reused else c.steps,
        )

    def _kappa(self, family: str) -> float:
        return float(self.thresholds.kappa[family])  # type: ignore[index]

    def _exceeds(self, change: MatrixChange) -> bool:
        kappa = self._kappa(change.family)
        return abs(change.z_sigma) > kappa or abs(change.z_srank) > kappa

    # -- decision and correction ------------------------------------------------------------------------------

    def _decide(
        self, violations: list[MatrixChange], model: torch.nn.Module, context: RunContext
    ) -> tuple[list[Finding], list[GuardAction]]:
        t = self.thresholds
        mode = self.mode
        over_budget = len(violations) > t.max_caps
        findings: list[Finding] = []
        actions: list[GuardAction] = []
        corrected: set[str] = set()
        if over_budget:
            findings.append(
                finding(
                    FindingCode.SPEC_BUDGET,
                    GuardStatus.FAIL,
                    mode,
                    f"{len(violations)} matrices violate their caps, more than max_caps={t.max_caps}: not corrected",
                    "model",
                    violations=len(violations),
                    max_caps=t.max_caps,
                )
            )
        for change in violations:
            if not change.finite:
                findings.append(
                    finding(
                        FindingCode.SPEC_NONFINITE,
                        GuardStatus.FAIL,
                        mode,
                        f"{change.name} is not finite: its spectrum is undefined",
                        change.name,
                    )
                )
                continue
            kappa = self._kappa(change.family)
            tau = float(t.sigma_scale[change.family])  # type: ignore[index]
            if change.z_sigma > kappa:
                cap = kappa * tau
                scale = math.exp(cap - change.log_sigma)
                apply = mode == GuardMode.GATE and not over_budget
                if apply:
                    tensor = parameter(model, change.name)
                    assert tensor is not None
                    with torch.no_grad():
                        tensor.mul_(scale)
                    corrected.add(change.name)
                actions.append(
                    GuardAction(
                        kind="spectral_cap",
                        target=change.name,
                        applied=apply,
                        parameters={"scale": scale, "log_sigma_ratio": change.log_sigma, "cap_log_ratio": cap},
                        reason=f"sigma_1 grew by {math.exp(change.log_sigma):.4g}x (z={change.z_sigma:.3g} > "
                        f"kappa={kappa:g}); rescaled to the cap exp({cap:.3g})",
                    )
                )
                verb = "rescaled to its cap" if apply else "would be rescaled to its cap"
                findings.append(
                    finding(
                        FindingCode.SPEC_SIGMA,
                        GuardStatus.FAIL if over_budget else GuardStatus.WARN,
                        mode,
                        f"{change.name}: sigma_1 x{math.exp(change.log_sigma):.4g} vs its baseline "
                        f"(z={change.z_sigma:.3g}); {verb}",
                        change.name,
                        log_sigma_ratio=change.log_sigma,
                        z_sigma=change.z_sigma,
                        scale=scale,
                    )
                )
            else:
                code = FindingCode.SPEC_SIGMA if abs(change.z_sigma) > kappa else FindingCode.SPEC_SRANK
                findings.append(
                    finding(
                        code,
                        GuardStatus.FAIL if over_budget else GuardStatus.WARN,
                        mode,
                        f"{change.name}: sigma_1 x{math.exp(change.log_sigma):.4g}, stable rank "
                        f"x{math.exp(change.log_srank):.4g} vs its baseline (z={change.z_sigma:.3g}, "
                        f"{change.z_srank:.3g}); not correctable by rescaling",
                        change.name,
                        log_sigma_ratio=change.log_sigma,
                        log_srank_ratio=change.log_srank,
                        z_sigma=change.z_sigma,
                        z_srank=change.z_srank,
                    )
                )
        if corrected:
            run_state(context).record_corrections(context, corrected)
        return findings, actions

    def _build(
        self,
        changes: list[MatrixChange],
        violations: list[MatrixChange],
        findings: list[Finding],
        actions: list[GuardAction],
        family_p: dict[str, float],
        selected: set[str],
        skipped: list[str],
    ) -> GuardReport:
        t = self.thresholds
        finite = [c for c in changes if c.finite]

        def top(values: list[float]) -> float:
            return max((abs(v) for v in values), default=0.0)

        families: dict[str, dict[str, object]] = {}
        measurements: dict[str, float] = {
            "matrices": len(changes),
            "changed": sum(1 for c in changes if c.changed),
            "violations": len(violations),
            "caps_applied": sum(1 for a in actions if a.applied),
            "max_abs_z_sigma": top([c.z_sigma for c in finite]),
            "max_abs_z_srank": top([c.z_srank for c in finite]),
            "max_abs_log_sigma_ratio": top([c.log_sigma for c in finite]),
            "max_abs_log_srank_ratio": top([c.log_srank for c in finite]),
            "nonfinite": len(changes) - len(finite),
        }
        for family in sorted(family_p):
            members = [c for c in changes if c.family == family]
            good = [c for c in members if c.finite]
            ranked = sorted(good, key=lambda c: -max(abs(c.z_sigma), abs(c.z_srank)))
            families[family] = {
                "count": len(members),
                "changed": sum(1 for c in members if c.changed),
                "p_simes": family_p[family],
                "selected": family in selected,
                "max_abs_z_sigma": top([c.z_sigma for c in good]),
                "max_abs_z_srank": top([c.z_srank for c in good]),
                "violations": sum(1 for c in violations if c.family == family),
                "kappa": t.kappa[family],  # type: ignore[index]
                "sigma_scale": t.sigma_scale[family],  # type: ignore[index]
                "srank_scale": t.srank_scale[family],  # type: ignore[index]
                "top": [c.as_dict() for c in ranked[:3]],
            }
            measurements[f"{family}.max_abs_z_sigma"] = families[family]["max_abs_z_sigma"]  # type: ignore[assignment]
            measurements[f"{family}.max_abs_z_srank"] = families[family]["max_abs_z_srank"]  # type: ignore[assignment]
        return build_report(
            NAME,
            self.mode,
            findings,
            actions=actions,
            measurements=measurements,
            details={
                "tier": self.config.tier,
                "thresholds": t.model_dump(mode="json"),
                "families": families,
                "violations": [c.name for c in violations],
                "matrices": [c.as_dict() for c in changes if c.changed],
                "skipped": skipped,
                "estimator": {
                    "method": "golub-kahan-lanczos",
                    "tol": 1e-5,
                    "exact_max_dim": self.config.exact_max_dim,
                    "warm_start": "baseline top right singular vector",
                },
            },
        )


def _log_ratio(value: float, base: float, deadband: float) -> float:
    if base <= 0.0 or value <= 0.0:
        return 0.0 if value == base else math.copysign(math.inf, value - base)
    ratio = math.log(value / base)
    return 0.0 if abs(ratio) <= deadband else ratio
