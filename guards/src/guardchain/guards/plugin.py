"""Registration module of guardchain-guards (entry point ``guards``): light, no torch and no pydantic model at
import. Config models and factories are ``"module:attr"`` references, imported only when a chain uses a guard.

The canonical chain is ``invariants, spectral, rmt, variance, invariants``: the second ``invariants`` sees the
other guards' corrections. Each guard registers a verifier (``*_decide:verify_report``, torch-free) that
``guardchain verify`` calls to re-derive the guard's report from its recorded evidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guardchain.core import PLUGIN_API_VERSION, hookimpl

if TYPE_CHECKING:
    from guardchain.core.specs import Registrar

GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION

_COMMON = (
    "Modes: gate (may correct, may fail) / monitor (reports only). Tiers: balanced / conservative / aggressive "
    "(guardchain.guards.tiers, calibrated in docs/guards/calibration.md)."
)


@hookimpl
def guardchain_register_guards(registrar: Registrar) -> None:
    """Register ``invariants``, ``spectral``, ``rmt`` and ``variance``."""
    registrar.register(
        "invariants",
        summary="Shapes, dtypes, finiteness, weight tying, edit scope and finite probe logits survive the edit.",
        config_model="guardchain.guards.invariants_config:InvariantsConfig",
        verifier="guardchain.guards.invariants_decide:verify_report",
        factory="guardchain.guards.invariants:InvariantsGuard",
        docs="Fails naming the parameter: INVARIANTS-PARAM-MISSING/-ADDED, -SHAPE-CHANGED, -DTYPE-CHANGED, "
        "-NONFINITE, -TIE-BROKEN, -OUT-OF-SCOPE (SHA-256 of bytes outside the plan's targets and guard "
        "corrections), -LOGITS-NONFINITE. " + _COMMON,
    )
    registrar.register(
        "spectral",
        summary="Top singular value and stable rank of each weight matrix vs its own baseline; caps blow-ups.",
        config_model="guardchain.guards.spectral_config:SpectralConfig",
        verifier="guardchain.guards.spectral_decide:verify_report",
        factory="guardchain.guards.spectral:SpectralGuard",
        docs="z = ln(ratio) / tau_f per family; Simes per family, Benjamini-Hochberg across families; violation "
        "|z| > kappa_f; more than max_caps fails; gate mode rescales sigma_1 blow-ups to the cap. " + _COMMON,
    )
    registrar.register(
        "rmt",
        summary="Marchenko-Pastur checks: activation edge risk per family and weight singular values beyond the edge.",
        config_model="guardchain.guards.rmt_config:RMTConfig",
        verifier="guardchain.guards.rmt_decide:verify_report",
        factory="guardchain.guards.rmt:RMTGuard",
        docs="(a) r = sigma_max(standardised activations) / (sqrt T + sqrt d), family max within (1 + epsilon) of "
        "baseline; (b) per family, count of weight singular values above (1 + margin) s (sqrt m + sqrt n). " + _COMMON,
    )
    registrar.register(
        "variance",
        summary="Activation-variance drift per site; bounded rescaling applied only if held-out NLL improves.",
        config_model="guardchain.guards.variance_config:VarianceConfig",
        verifier="guardchain.guards.variance_decide:verify_report",
        factory="guardchain.guards.variance:VarianceGuard",
        docs="drift = 1/2 ln(var / var_base) per site (default blocks[*].mlp.output); |drift| > max_drift fails "
        "unless a repair (paired BCa check on held-out preview windows) removes it. " + _COMMON,
    )


if TYPE_CHECKING:
    from typing import Any

    from guardchain.core.views import ResultView


@hookimpl
def guardchain_render_result(
    kind: str, name: str, distribution: str | None, result: dict[str, Any]
) -> ResultView | None:
    """Draw this member's guard reports in the HTML report (:mod:`guardchain.guards.render`)."""
    if kind != "guard" or distribution not in {"guardchain-guards", None}:
        return None
    from guardchain.guards.render import render_guard  # only when a report is drawn

    return render_guard(name, result)
