"""The stable codes of guardchain-guards: error codes (bad input, raised) and finding codes (what a guard noticed,
reported in :class:`~guardchain.core.results.Finding`). Both are documented in the member's README; a test keeps
the three in step. Codes never change meaning and are never reused.
"""

from __future__ import annotations

from enum import StrEnum


class GuardErrorCode(StrEnum):
    """Codes of expected failures, raised as the first problem of a :class:`~guardchain.core.errors.GuardchainError`."""

    ADAPTER_MISSING = "GC-GUARD-ADAPTER-MISSING"
    LIFECYCLE = "GC-GUARD-LIFECYCLE"
    DATA = "GC-GUARD-DATA"
    SITE = "GC-GUARD-SITE"


DESCRIPTIONS: dict[GuardErrorCode, str] = {
    GuardErrorCode.ADAPTER_MISSING: "The guard needs the model's adapter (structure, sites, scoring) but the run "
    "context has none and the handle's adapter name is not registered.",
    GuardErrorCode.LIFECYCLE: "A lifecycle method was called out of order: `after_edit` before `prepare`, or "
    "`finalize` before `after_edit`.",
    GuardErrorCode.DATA: "`context.data` is neither `None` nor token windows with a preview split, or its preview "
    "windows are too few or too short for the guard's calibration / held-out windows.",
    GuardErrorCode.SITE: "A configured site resolves to no module, its activation is not a floating tensor of "
    "shape (batch, positions, features), or (variance repair) no down-projection matrix produces it.",
}


class FindingCode(StrEnum):
    """Codes of findings; the guard that emits each is the prefix."""

    # invariants
    INV_PARAM_MISSING = "INVARIANTS-PARAM-MISSING"
    INV_PARAM_ADDED = "INVARIANTS-PARAM-ADDED"
    INV_SHAPE = "INVARIANTS-SHAPE-CHANGED"
    INV_DTYPE = "INVARIANTS-DTYPE-CHANGED"
    INV_NONFINITE = "INVARIANTS-NONFINITE"
    INV_TIE_BROKEN = "INVARIANTS-TIE-BROKEN"
    INV_OUT_OF_SCOPE = "INVARIANTS-OUT-OF-SCOPE"
    INV_LOGITS = "INVARIANTS-LOGITS-NONFINITE"
    # spectral
    SPEC_SIGMA = "SPECTRAL-SIGMA-CAP"
    SPEC_SRANK = "SPECTRAL-SRANK-CAP"
    SPEC_NONFINITE = "SPECTRAL-NONFINITE"
    SPEC_BUDGET = "SPECTRAL-CAPS-EXCEEDED"
    # rmt
    RMT_EDGE = "RMT-EDGE-RISK"
    RMT_OUTLIERS = "RMT-OUTLIER-COUNT"
    RMT_NONFINITE = "RMT-NONFINITE"
    # variance
    VAR_DRIFT = "VARIANCE-DRIFT"
    VAR_REPAIRED = "VARIANCE-REPAIRED"
    VAR_REJECTED = "VARIANCE-REPAIR-REJECTED"
    VAR_NONFINITE = "VARIANCE-NONFINITE"


FINDING_DESCRIPTIONS: dict[FindingCode, str] = {
    FindingCode.INV_PARAM_MISSING: "A parameter of the baseline is gone from the subject (target: its name).",
    FindingCode.INV_PARAM_ADDED: "The subject has a parameter the baseline did not have.",
    FindingCode.INV_SHAPE: "A parameter's shape changed.",
    FindingCode.INV_DTYPE: "A parameter's dtype changed.",
    FindingCode.INV_NONFINITE: "A parameter or floating buffer holds NaN or ±inf (measurements: count of "
    "non-finite elements).",
    FindingCode.INV_TIE_BROKEN: "Parameters tied in the baseline neither share storage nor hold equal values.",
    FindingCode.INV_OUT_OF_SCOPE: "A parameter changed that is neither a target of the edit's plan (nor tied to "
    "one) nor corrected by an earlier guard of this run.",
    FindingCode.INV_LOGITS: "The subject's log-probabilities on the fixed probe batch are not finite.",
    FindingCode.SPEC_SIGMA: "A matrix's top singular value moved beyond its family cap relative to its own baseline "
    "(|z| > kappa, |log ratio| > deadband, family selected by Benjamini-Hochberg).",
    FindingCode.SPEC_SRANK: "A matrix's stable rank moved beyond its family cap relative to its own baseline.",
    FindingCode.SPEC_NONFINITE: "A matrix in scope is not finite; its spectrum cannot be measured (fails closed).",
    FindingCode.SPEC_BUDGET: "More violations than `max_caps`: too much damage to cap, nothing was corrected.",
    FindingCode.RMT_EDGE: "A family's activation edge risk rose beyond (1 + epsilon) times its baseline.",
    FindingCode.RMT_OUTLIERS: "A family's count of weight singular values beyond the Marchenko-Pastur edge changed "
    "by more than its tolerance.",
    FindingCode.RMT_NONFINITE: "Activations or weights were not finite, so edge risk / outliers are undefined.",
    FindingCode.VAR_DRIFT: "A site's activation variance drifted beyond `max_drift` (log standard-deviation ratio) "
    "and was not repaired.",
    FindingCode.VAR_REPAIRED: "Drifting sites were rescaled (accepted by the paired predictive check) and no "
    "drift remains beyond `max_drift`.",
    FindingCode.VAR_REJECTED: "Proposed scales did not pass the paired predictive check and were not applied.",
    FindingCode.VAR_NONFINITE: "A site's activations were not finite.",
}
