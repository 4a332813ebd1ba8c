"""guardchain's metrics: token-weighted perplexity and classification accuracy.

Capabilities (kind ``metric``, registered by :mod:`guardchain.metrics.plugin`): ``ppl`` over
:class:`guardchain.core.windows.TokenWindows` and ``accuracy`` over :class:`guardchain.core.windows.LabeledTexts`.
Both return per-unit values (per window, per example) so that a baseline and a subject can be paired with
:func:`guardchain.core.statistics.paired_comparison`. The model is reached only through the run context's adapter
(``token_logprobs``, ``class_logits``), so the metrics work with any adapter that implements them.
"""

__version__ = "0.1.0"
