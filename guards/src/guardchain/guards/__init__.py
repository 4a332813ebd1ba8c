"""guardchain's guards: ``invariants``, ``spectral``, ``rmt`` and ``variance``, with one tier table.

Capabilities (kind ``guard``, registered by :mod:`guardchain.guards.plugin`), one module per guard with its
pydantic config beside it: :mod:`.invariants` / :mod:`.invariants_config`, :mod:`.spectral` /
:mod:`.spectral_config`, :mod:`.rmt` / :mod:`.rmt_config`, :mod:`.variance` / :mod:`.variance_config`. Thresholds
come from :mod:`.tiers`. Shared machinery: :mod:`.linalg` (spectral kernels), :mod:`.weights` (spectra of the
weight matrices, memoised and threaded), :mod:`.stats` (p-values, BH, paired bootstrap), :mod:`.capture` (one
hooked forward per window set, streaming sums per site), :mod:`.runstate` (per-run memo and correction ledger),
:mod:`.common` (adapter, windows, reports). Importing this package imports neither torch nor pydantic.
"""

__version__ = "0.1.0"
