"""Configuration of the ``llc`` metric (pydantic only, no torch: the registration module points here).

:class:`SamplerSettings` holds what the SGLD estimator needs whatever the model (the Python API
:func:`guardchain.metrics.llc.estimator.estimate_llc` validates its keyword arguments with it);
:class:`LlcConfig` adds what the chain step needs to turn a model handle and token windows into batches.
Units: ``epsilon`` is the SGLD step size in squared parameter units per step, ``gamma`` the localization strength
per squared parameter unit, ``nbeta`` (nβ) an inverse temperature times a sample count (dimensionless).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SamplingDtype = Literal["float32", "float64", "bfloat16", "float16"]
CompileMode = Literal["auto", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


class SamplerSettings(BaseModel):
    """Settings of the SGLD estimator of the local learning coefficient (Lau et al. 2023, arXiv 2308.12108).

    One step: ``w ← w − (ε/2)·[nβ·∇L_B(w) + γ·(w − w*)] + √ε·ξ``, ``ξ ~ N(0, I)``; ``L_B`` is the mean loss of
    the step's minibatch ``B``, recorded at the pre-step parameters. Steps ``0 .. burnin−1`` are burn-in; then
    every ``steps_between_draws``-th step is a draw (draw ``k`` is step ``burnin + k·s + s − 1``), as in
    devinterp 1.x and canonical-interp. ``λ̂_c = nβ·(mean of chain c's draw losses − L0)``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    chains: int = Field(default=4, ge=1, le=4096, description="Independent SGLD chains.")
    draws: int = Field(default=200, ge=1, le=10_000_000, description="Recorded draws per chain (after burn-in).")
    burnin: int = Field(default=100, ge=0, le=10_000_000, description="SGLD steps before the first draw.")
    steps_between_draws: int = Field(default=1, ge=1, le=100_000, description="SGLD steps per draw (thinning).")
    epsilon: float = Field(
        default=1e-4, gt=0, le=10.0, allow_inf_nan=False, description="Step size ε (the SGLD learning rate)."
    )
    gamma: float = Field(
        default=1.0, ge=0, le=1e9, allow_inf_nan=False, description="Localization strength γ around w*."
    )
    nbeta: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Inverse temperature nβ; null: n/ln(n) with n the number of samples (rows) in the data.",
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Rows per minibatch when the data are tensors or token windows; a loader's own batches "
        "are used as they come. Null: 32 for tensors, 8 windows for the chain step.",
    )
    shuffle: bool = Field(
        default=False,
        description="Permute the order of the pre-collated batches every epoch (seeded); false cycles them in "
        "order, as a non-shuffling DataLoader does.",
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        description="Master seed of the per-chain noise; null: 0 in the Python API, the chain's seed in a chain.",
    )
    dtype: SamplingDtype = Field(
        default="float32", description="Dtype of the chains' parameters and of the forward pass."
    )
    devices: tuple[str, ...] = Field(
        default=(),
        description="Devices to spread the chains over (contiguous groups, one thread each); empty: the model's.",
    )
    chains_per_call: int | None = Field(
        default=None,
        ge=1,
        description="Chains advanced by one vmapped call (bounds memory); null: all chains of a device at once.",
    )
    params: tuple[str, ...] = Field(
        default=(),
        description="Weight-restricted LLC: parameter names, module-path prefixes or fnmatch patterns of the "
        "parameters that move; empty: every floating-point parameter.",
    )
    init_loss: float | None = Field(
        default=None,
        description="L0 given by the caller; null: computed at w* on the L0 batches. A non-finite value is "
        "refused with GC-METRIC-LLC-LOSS.",
    )
    init_loss_batches: int | None = Field(
        default=None,
        ge=1,
        description="L0 = mean of the per-batch mean losses at w* over the first k pre-collated batches; null: "
        "all of them (one pass over the data).",
    )
    compile: bool = Field(default=False, description="torch.compile the fused SGLD step.")
    compile_mode: CompileMode = Field(
        default="auto",
        description="torch.compile mode; auto: 'default' on CPU, 'reduce-overhead' (CUDA graphs) on CUDA.",
    )
    fuse_steps: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="With uniform batches: SGLD steps unrolled into one compiled graph (one dispatch per k steps; "
        "same math and noise); null: auto (compiled: 8 for at most 65 536 sampled parameters, else 1; eager: 1).",
    )
    mala_every: int = Field(
        default=100,
        ge=0,
        description="Estimate the MALA acceptance probability of the SGLD transition every k-th step (one extra "
        "forward and backward at the proposal on the same batch); 0: off.",
    )
    explode_threshold: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="A chain explodes when nβ·(mean loss of its last 10 % of draws − L0) exceeds this; null: "
        "d/2 + 10·sqrt(d/2) for d sampled parameters (the largest possible λ plus ten equilibrium standard "
        "deviations of a regular model).",
    )
    min_acceptance: float = Field(
        default=0.5, ge=0, le=1, description="Warn when a chain's mean MALA acceptance is below this."
    )
    step_check_chains: int = Field(
        default=0,
        ge=0,
        le=4096,
        description="Re-run the first k chains at ε/2 on the same Brownian path (2·k chains' worth of extra steps) "
        "and report λ̂(ε) − λ̂(ε/2) with its standard error and the extrapolated 2·λ̂(ε/2) − λ̂(ε); 0: off, else "
        "2 … chains.",
    )
    step_tolerance: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Flag the step size when its estimated relative bias exceeds this: the step-size check's "
        "2·(λ̂(ε) − λ̂(ε/2))/λ̂, and the localization step's own εγ/(4 − εγ).",
    )

    @model_validator(mode="after")
    def _step_check_chains(self) -> SamplerSettings:
        if self.step_check_chains and not 2 <= self.step_check_chains <= self.chains:
            raise ValueError(
                f"step_check_chains must be 0 or between 2 and chains ({self.chains}), got {self.step_check_chains}"
            )
        return self


class LlcConfig(SamplerSettings):
    """``llc`` as a chain step: SGLD on the handle's model with the causal language-model loss on token windows.

    Windows of the chosen split are cut into batches of ``batch_size`` windows (right-padded); the loss of a batch
    is the mean next-token cross-entropy (nats/token) over its scored positions; ``n`` (for the default nβ) is
    the number of windows.
    """

    split: Literal["preview", "final", "all"] = Field(
        default="all", description="Which windows form the data: 'preview', 'final' or 'all'."
    )
    sites: tuple[str, ...] = Field(
        default=(),
        description="Adapter site strings (e.g. 'blocks[1].mlp.output'); the parameters of the modules they "
        "resolve to are sampled (together with `params`). Empty with empty `params`: every parameter.",
    )
    max_windows: int | None = Field(
        default=None, ge=1, description="Use only the first k windows of the split (null: all)."
    )
    plot: bool = Field(default=True, description="Write llc/traces.png (needs matplotlib, the 'plot' extra).")
    save_traces: bool = Field(default=True, description="Write llc/traces.json with every chain's loss trace.")
