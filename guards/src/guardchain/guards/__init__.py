"""guardchain's guards: ``invariants``, ``spectral``, ``rmt`` and ``variance``, with one tier table.

Capabilities (kind ``guard``, registered by :mod:`guardchain.guards.plugin`), three modules per guard: the
measurement (torch; :mod:`.spectral`), the decision and the verifier (pure, torch-free; :mod:`.spectral_decide`),
and the pydantic config (:mod:`.spectral_config`) — likewise for ``invariants``, ``rmt`` and ``variance``.
Thresholds come from :mod:`.tiers` and nowhere else (:mod:`.config_base` derives the configs' override fields from
it). Shared machinery: :mod:`.linalg` (spectral kernels), :mod:`.mp` (Marchenko-Pastur formulas),
:mod:`.weights` (spectra of the weight matrices, memoised and threaded), :mod:`.stats` (p-values, BH, paired
bootstrap), :mod:`.capture` (one hooked forward per window set, streaming sums per site), :mod:`.runstate`
(per-run memo), :mod:`.common` (adapter, windows), :mod:`.reporting` (findings and reports), :mod:`.verifying`
(the verifier contract). Importing this package imports neither torch nor pydantic.
"""

__version__ = "0.1.0"
