"""Registration module of guardchain-metrics (entry point ``metrics``): light, no torch at import.

Factories are ``"module:attr"`` strings, imported (with torch) only when a chain uses the metric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guardchain.core import PLUGIN_API_VERSION, hookimpl

if TYPE_CHECKING:
    from pathlib import Path

    from guardchain.core.specs import Registrar
    from guardchain.core.views import ResultView

GUARDCHAIN_PLUGIN_API = PLUGIN_API_VERSION


@hookimpl
def guardchain_register_metrics(registrar: Registrar) -> None:
    """Register ``ppl``, ``accuracy`` and ``llc``."""
    registrar.register(
        "ppl",
        summary="Token-weighted perplexity over token windows; per-window mean NLL (nats/token) for pairing.",
        config_model="guardchain.metrics.config:PplConfig",
        factory="guardchain.metrics.perplexity:Perplexity",
        docs="value = exp(sum_i w_i l_i / sum_i w_i) with l_i the mean NLL of window i (nats/token) and w_i its "
        "scored tokens; per_unit = l_i, unit_weights = w_i, so exp of the weighted mean paired difference is the "
        "perplexity ratio. Masked LMs give pseudo-perplexity (details.mode). Needs TokenWindows and the "
        "adapter's token_logprobs.",
    )
    registrar.register(
        "accuracy",
        summary="Fraction of labelled texts whose arg-max class is the label; per-example 1/0 for pairing.",
        config_model="guardchain.metrics.config:AccuracyConfig",
        factory="guardchain.metrics.accuracy:Accuracy",
        docs="Texts are truncated to max_length content tokens; the adapter's class_logits adds special tokens. "
        "uncertainty = sqrt(p(1-p)/n). Needs LabeledTexts (jsonl or hf_datasets with label_field).",
    )
    registrar.register(
        "llc",
        summary="Local learning coefficient by vmapped SGLD (Lau et al. 2023); per-chain estimates, traces and plot.",
        config_model="guardchain.metrics.llc.config:LlcConfig",
        factory="guardchain.metrics.llc.metric:LocalLearningCoefficient",
        docs="lambda_hat = n*beta * (mean minibatch loss over the SGLD draws - L0), per chain, with SGLD steps "
        "w <- w - (eps/2)[n*beta grad L_B(w) + gamma (w - w*)] + sqrt(eps) N(0, I) from the model's weights w*. "
        "Causal-LM loss on the chain's TokenWindows; L0 over every batch at w*; n*beta defaults to n/ln n with n "
        "the number of windows. value = mean over healthy chains, uncertainty = std(ddof=1)/sqrt(chains); "
        "per_unit = per-chain estimates; artifacts llc/traces.json and llc/traces.png. `sites` / `params` "
        "restrict sampling to some weights. Python API: guardchain.metrics.llc.estimate_llc(model, loader, ...).",
    )


@hookimpl
def guardchain_render_result(
    kind: str, name: str, distribution: str | None, result: dict[str, Any], artifacts: dict[str, Path]
) -> ResultView | None:
    """Draw ``ppl``, ``accuracy`` and ``llc`` results in the HTML report (:mod:`guardchain.metrics.render`)."""
    if kind != "metric" or distribution not in {"guardchain-metrics", None}:
        return None
    from guardchain.metrics.render import render_metric  # only when a report is drawn

    return render_metric(name, result, artifacts)
