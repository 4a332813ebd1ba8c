"""The public Python API: :func:`estimate_llc` for any ``torch.nn.Module`` and data, and :class:`LlcSampler` to
run several estimates (a grid, a second warm call) on one pre-collated data set and one compiled step.

Estimator (Lau et al. 2023, arXiv 2308.12108, eq. 10): per chain ``c``

    λ̂_c = nβ·( (1/D)·Σ_{draws t} L_{B_t}(w_t^c) − L0 )

with ``L_{B_t}`` the minibatch mean loss recorded at step ``t`` (pre-step parameters), ``D`` draws after the
burn-in, and **L0 = the mean over the L0 batches of each batch's mean loss at w*** (by default every pre-collated
batch, i.e. one pass over the data: the same statistic the cycled draws average, evaluated at w*; canonical-interp
computes it the same way). The estimate is the mean of λ̂_c over the healthy chains; ``llc_std`` is their
standard deviation with ``ddof = 1`` and ``llc_sem = llc_std/√c``. ``nβ`` defaults to ``n/ln n`` with ``n`` the
number of rows in the data (:func:`default_nbeta`). A non-finite L0 (given or computed) or a non-finite loss at w*
is ``GC-METRIC-LLC-LOSS``; an estimate that is not finite is never returned as one (``GC-METRIC-LLC-DIVERGED``).
With ``step_check_chains`` the first chains are re-run at ε/2 (:mod:`~guardchain.metrics.llc.stepcheck`).

The model runs in eval mode while sampling (dropout off; the posterior is over a deterministic loss) and its own
parameters are never modified: chains live in separate tensors and the model is called through
``torch.func.functional_call``.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from pydantic import ValidationError

from guardchain.core.errors import GuardchainError, Problem
from guardchain.metrics.codes import MetricErrorCode
from guardchain.metrics.llc.config import SamplerSettings
from guardchain.metrics.llc.data import Batches, LossFn, Unpack, collate, default_nbeta, resolve_loss
from guardchain.metrics.llc.diagnostics import Diagnostics, diagnose
from guardchain.metrics.llc.noise import batch_order
from guardchain.metrics.llc.sgld import ChunkTrace, ParamLayout, SGLDKernel, select_parameters
from guardchain.metrics.llc.stepcheck import StepCheck, assess, fine_schedule

Floats = npt.NDArray[np.float64]

#: Settings an :meth:`LlcSampler.estimate` call may change; the others shape the pre-collated data and kernels.
RUN_SETTINGS = frozenset(
    {
        "chains",
        "draws",
        "burnin",
        "steps_between_draws",
        "epsilon",
        "gamma",
        "nbeta",
        "seed",
        "chains_per_call",
        "shuffle",
        "mala_every",
        "explode_threshold",
        "min_acceptance",
        "step_check_chains",
        "step_tolerance",
    }
)
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: vmap falls back to a per-chain loop for ops without a batching rule (CPU flash attention, for one) and warns on
#: every call; the results are still right.
_FALLBACK_WARNING = r"There is a performance drop because we have not yet implemented the batching rule"

__all__ = ["LlcResult", "LlcSampler", "default_nbeta", "estimate_llc", "validate_settings"]


def validate_settings(values: dict[str, Any], base: SamplerSettings | None = None) -> SamplerSettings:
    """:class:`SamplerSettings` from keyword values (over ``base``).

    :raises GuardchainError: ``GC-METRIC-LLC-SETTINGS``, one problem per invalid or unknown key.
    """
    merged = {**(base.model_dump() if base is not None else {}), **values}
    try:
        return SamplerSettings.model_validate(merged)
    except ValidationError as exc:
        problems = [
            Problem(MetricErrorCode.LLC_SETTINGS, f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
            for err in exc.errors()
        ]
        raise GuardchainError(problems) from exc


@dataclass(frozen=True)
class LlcResult:
    """One LLC estimate (module docstring for the formulas).

    :ivar llc_mean: mean λ̂ over the healthy chains (dimensionless).
    :ivar llc_std: their standard deviation, ``ddof = 1`` (NaN for one chain).
    :ivar llc_sem: ``llc_std/√c`` (NaN for one chain).
    :ivar llc_per_chain: ``[C]`` λ̂ per chain (NaN for a diverged one).
    :ivar loss_trace: ``[C, steps]`` minibatch loss at every step, burn-in included.
    :ivar draw_steps: ``[D]`` the steps averaged into λ̂.
    :ivar init_loss: L0 (the loss's units, e.g. nats/token).
    :ivar init_loss_source: how L0 was obtained, in words (which batches).
    :ivar nbeta: nβ used; ``nbeta_source`` says whether given or ``n/ln n``.
    :ivar n_samples: rows in the data (``n``); ``n_batches`` pre-collated batches.
    :ivar sampled_params: names of the parameters that moved; ``n_params`` their element count ``d``.
    :ivar loss: the loss's name.
    :ivar settings: the settings of this run (seed and nβ resolved).
    :ivar diagnostics: chain health (:mod:`~guardchain.metrics.llc.diagnostics`).
    :ivar timings: wall seconds: ``setup`` (collation, kernels, L0: once per sampler) and ``sampling``.
    """

    llc_mean: float
    llc_std: float
    llc_sem: float
    llc_per_chain: Floats
    loss_trace: Floats
    draw_steps: npt.NDArray[np.int64]
    init_loss: float
    init_loss_source: str
    nbeta: float
    nbeta_source: str
    n_samples: int
    n_batches: int
    sampled_params: tuple[str, ...]
    n_params: int
    loss: str
    settings: SamplerSettings
    diagnostics: Diagnostics
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary without arrays or timings (deterministic under a seed)."""
        s = self.settings
        return {
            "llc_mean": self.llc_mean,
            "llc_std": self.llc_std,
            "llc_std_ddof": 1,
            "llc_sem": self.llc_sem,
            "llc_per_chain": [float(x) for x in self.llc_per_chain],
            "init_loss": self.init_loss,
            "init_loss_source": self.init_loss_source,
            "nbeta": self.nbeta,
            "nbeta_source": self.nbeta_source,
            "n_samples": self.n_samples,
            "n_batches": self.n_batches,
            "n_params": self.n_params,
            "n_param_tensors": len(self.sampled_params),
            "loss": self.loss,
            "recorded_loss": "minibatch mean loss at the pre-step parameters of each step",
            "chains": s.chains,
            "draws": s.draws,
            "burnin": s.burnin,
            "steps_between_draws": s.steps_between_draws,
            "epsilon": s.epsilon,
            "gamma": s.gamma,
            "seed": s.seed,
            "dtype": s.dtype,
            "shuffle": s.shuffle,
            "compile": s.compile,
            "mala_every": s.mala_every,
            "step_check_chains": s.step_check_chains,
            "step_tolerance": s.step_tolerance,
            "diagnostics": self.diagnostics.summary(),
        }

    def traces_payload(self) -> dict[str, Any]:
        """Everything needed to recompute λ̂ and redraw the plot, JSON-ready (NaN kept as NaN)."""
        d = self.diagnostics
        return {
            "llc_per_chain": [float(x) for x in self.llc_per_chain],
            "init_loss": self.init_loss,
            "nbeta": self.nbeta,
            "burnin": self.settings.burnin,
            "steps_between_draws": self.settings.steps_between_draws,
            "draw_steps": [int(x) for x in self.draw_steps],
            "loss_trace": [[float(x) for x in row] for row in self.loss_trace],
            "mala_steps": [int(x) for x in d.mala_steps],
            "mala_acceptance": [[float(x) for x in row] for row in d.acceptance],
            "distance_from_init": [[float(x) for x in row] for row in d.distance],
            "distance_trace": [[float(x) for x in row] for row in d.distance_trace],
            "escape_bound": [float(x) for x in d.escape_bound],
        }

    def plot(self, path: str | Path) -> Path:
        """Save the trace plot (:func:`guardchain.metrics.llc.plot.plot_traces`) to ``path``."""
        from guardchain.metrics.llc.plot import plot_traces

        return plot_traces(self, Path(path))


def _device_of(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _check_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise GuardchainError.single(MetricErrorCode.LLC_DEVICE, f"not a device: {name!r} ({exc})") from exc
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise GuardchainError.single(
                MetricErrorCode.LLC_DEVICE, f"device {name!r} is not available ({count} CUDA device(s))"
            )
    elif device.type not in ("cpu", "meta") and not hasattr(torch, device.type):
        raise GuardchainError.single(MetricErrorCode.LLC_DEVICE, f"device type {device.type!r} is not available")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def compile_mode_for(device: torch.device, settings: SamplerSettings) -> str | None:
    """The ``torch.compile`` mode for ``device``: ``None`` when not compiling; ``auto`` means ``default`` on CPU
    (CUDA graphs do not exist there, and canonical-interp's ``reduce-overhead`` default measured slower than eager
    on a 2561-parameter MLP) and ``reduce-overhead`` on CUDA."""
    if not settings.compile:
        return None
    if settings.compile_mode != "auto":
        return settings.compile_mode
    return "reduce-overhead" if device.type == "cuda" else "default"


#: ``fuse_steps`` auto: :data:`AUTO_FUSE_STEPS` steps per compiled graph up to this many sampled parameters, else 1.
AUTO_FUSE_MAX_PARAMS = 1 << 16
AUTO_FUSE_STEPS = 8


def fuse_steps_for(d: int, settings: SamplerSettings, *, compiled: bool) -> int:
    """Steps per fused block (``sgld.py``): ``fuse_steps`` if given; auto: 1 in eager mode, and when compiling
    :data:`AUTO_FUSE_STEPS` for ``d ≤`` :data:`AUTO_FUSE_MAX_PARAMS` sampled parameters (per-step overhead
    dominates a small model's step), else 1 (a large model's step is compute-bound, and unrolling would multiply
    its compile time)."""
    if settings.fuse_steps is not None:
        return settings.fuse_steps
    if not compiled:
        return 1
    return AUTO_FUSE_STEPS if d <= AUTO_FUSE_MAX_PARAMS else 1


@contextmanager
def _eval_mode(models: Sequence[torch.nn.Module]) -> Iterator[None]:
    saved = [[(m, m.training) for m in model.modules()] for model in models]
    try:
        for model in models:
            model.eval()
        yield
    finally:
        for flags in saved:
            for module, training in flags:
                module.training = training


class LlcSampler:
    """Pre-collated data, resolved parameters and one SGLD kernel per device, ready for several estimates.

    :param model: any ``torch.nn.Module``; never modified.
    :param data: a ``DataLoader`` or any iterable of batches, or tensors ``X`` / ``(X, Y)`` (cut into
        ``batch_size`` rows). Iterated once here; later steps cycle the stored batches.
    :param loss: ``"auto"`` (cross-entropy for integer targets, MSE for floating), ``"mse"``,
        ``"cross_entropy"``, ``"causal_lm"`` or a callable ``(outputs, targets) -> scalar`` batch-mean loss.
    :param unpack: ``batch -> (inputs, targets)`` (default :func:`~guardchain.metrics.llc.data.default_unpack`).
    :param settings: a :class:`SamplerSettings`; keyword ``overrides`` are validated on top of it.
    :raises GuardchainError: ``GC-METRIC-LLC-*`` for bad settings, model, parameters, data, loss or devices.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        data: Any,
        *,
        loss: str | LossFn = "auto",
        unpack: Unpack | None = None,
        settings: SamplerSettings | None = None,
        **overrides: Any,
    ) -> None:
        started = time.perf_counter()
        if not isinstance(model, torch.nn.Module):
            raise GuardchainError.single(
                MetricErrorCode.LLC_MODEL, f"llc needs a torch.nn.Module, got {type(model).__name__}"
            )
        self.settings = validate_settings(overrides, settings)
        s = self.settings
        self.model = model
        self.dtype = _DTYPES[s.dtype]
        names = s.devices or (str(_device_of(model)),)
        self.devices = [_check_device(name) for name in names]
        sampled, frozen = select_parameters(model, s.params)
        params = dict(model.named_parameters())
        self.layout = ParamLayout(
            tuple(sampled), tuple(params[n].shape for n in sampled), tuple(params[n].numel() for n in sampled)
        )
        primary = self.devices[0]
        self.batches: dict[torch.device, Batches] = {
            primary: collate(data, unpack=unpack, batch_size=s.batch_size, device=primary, dtype=self.dtype)
        }
        self.loss_fn, self.loss_name = resolve_loss(loss, self.batches[primary])
        # One kernel per entry of `devices` (threads never share a module: functional_call swaps its tensors);
        # the model itself serves the first entry on its own device, the others get a deep copy.
        self.kernels: list[SGLDKernel] = []
        home, used_home = _device_of(model), False
        for device in self.devices:
            reuse = device == home and not used_home
            used_home = used_home or reuse
            replica = model if reuse else copy.deepcopy(model).to(device)
            values = {n: p.detach().to(device=device, dtype=self.dtype) for n, p in replica.named_parameters()}
            frozen_values = {n: values[n] for n in frozen}
            for name, buffer in replica.named_buffers():
                if buffer.is_floating_point():
                    frozen_values[name] = buffer.detach().to(device=device, dtype=self.dtype)
            w0 = self.layout.flatten(values)
            self.kernels.append(
                SGLDKernel(
                    replica,
                    self.layout,
                    w0,
                    frozen_values,
                    self.loss_fn,
                    compile_mode_for(device, s),
                    fuse_steps=fuse_steps_for(self.layout.d, s, compiled=s.compile),
                )
            )
            if device not in self.batches:
                self.batches[device] = self.batches[primary].to(device)
        self.n_samples = self.batches[primary].n_samples
        self.n_batches = len(self.batches[primary])
        with self._sampling():
            self.init_loss, self.init_loss_source, self.init_loss_batches = self._init_loss()
        self.setup_seconds = time.perf_counter() - started

    @contextmanager
    def _sampling(self) -> Iterator[None]:
        with _eval_mode([k.model for k in self.kernels]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_FALLBACK_WARNING)
            yield

    def _init_loss(self) -> tuple[float, str, int]:
        s = self.settings
        if s.init_loss is not None:
            if not math.isfinite(s.init_loss):
                raise GuardchainError.single(
                    MetricErrorCode.LLC_LOSS,
                    f"the given L0 (init_loss) is not finite: {s.init_loss}",
                    hint="pass a finite init_loss, or leave it null to compute L0 at w*",
                )
            return float(s.init_loss), "given", 0
        kernel = self.kernels[0]
        batches = self.batches[self.devices[0]]
        k = min(s.init_loss_batches or len(batches), len(batches))
        values = [float(kernel.batch_loss(*batches.items[i])) for i in range(k)]
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            raise GuardchainError.single(
                MetricErrorCode.LLC_LOSS,
                f"the loss at w* is not finite on L0 batch(es) {bad[:5]} (first: {values[bad[0]]})",
                hint="check the model's weights and the data (a NaN or inf weight, an overflowing dtype)",
            )
        l0 = float(np.mean(values))
        source = (
            f"mean of the per-batch mean losses at w* over batches 0..{k - 1} "
            f"({'all' if k == len(batches) else f'the first {k} of'} {len(batches)} pre-collated batches)"
        )
        return l0, source, k

    def estimate(
        self, *, raise_if_all_diverged: bool = True, emit_warnings: bool = True, **overrides: Any
    ) -> LlcResult:
        """Run the chains with this sampler's settings, updated by ``overrides`` (keys of :data:`RUN_SETTINGS`);
        with ``step_check_chains`` also the step-size check (:mod:`~guardchain.metrics.llc.stepcheck`).

        :raises GuardchainError: ``GC-METRIC-LLC-SETTINGS`` for a bad or structural override,
            ``GC-METRIC-LLC-LOSS`` when the loss at w* of the first step's batch is not finite,
            ``GC-METRIC-LLC-DIVERGED`` when no finite estimate exists (every chain diverged, exploded or escaped,
            or their mean overflowed), unless ``raise_if_all_diverged`` is false (λ̂ is then NaN or inf).
        """
        structural = sorted(set(overrides) - RUN_SETTINGS)
        if structural:
            raise GuardchainError.single(
                MetricErrorCode.LLC_SETTINGS,
                f"{structural} cannot change between estimates of one sampler (they shape its data and kernels)",
                hint="build a new LlcSampler",
            )
        s = validate_settings(overrides, self.settings)
        nbeta = s.nbeta if s.nbeta is not None else default_nbeta(self.n_samples)
        nbeta_source = "given" if s.nbeta is not None else f"n/ln(n), n = {self.n_samples} samples"
        seed = 0 if s.seed is None else s.seed
        s = s.model_copy(update={"seed": seed, "nbeta": nbeta})
        steps = s.burnin + s.draws * s.steps_between_draws
        order = batch_order(self.n_batches, steps, seed, shuffle=s.shuffle)
        draw_steps = s.burnin + np.arange(s.draws, dtype=np.int64) * s.steps_between_draws + s.steps_between_draws - 1
        started = time.perf_counter()
        with self._sampling():
            traces = self._run_chains(s, order, nbeta, seed)
        losses = np.concatenate([t.losses for t in traces], axis=0)
        self._check_loss_at_w0(losses, order)
        w0 = self.kernels[0].w0.double()
        common: dict[str, Any] = {
            "init_loss": self.init_loss,
            "nbeta": nbeta,
            "d": self.layout.d,
            "moved": np.concatenate([t.moved for t in traces]),
            "mala_steps": traces[0].mala_steps,
            "acceptance": np.concatenate([t.acceptance for t in traces], axis=0),
            "distance": np.concatenate([t.distance for t in traces], axis=0),
            "explode_threshold": s.explode_threshold,
            "min_acceptance": s.min_acceptance,
            "distance_trace": np.concatenate([t.distance_trace for t in traces], axis=0),
            "epsilon": s.epsilon,
            "gamma": s.gamma,
            "roundoff": float(torch.finfo(self.dtype).eps) / 2,
            "w0_sq": float(w0.dot(w0)),
            "step_tolerance": s.step_tolerance,
        }
        step_check: StepCheck | None = None
        if s.step_check_chains:
            # the check's verdict needs λ̂ over the healthy chains first: a silent pass of the checks, then the
            # step-size run, then the reported pass with its verdict
            first = diagnose(losses, draw_steps, emit=False, **common)
            with self._sampling():
                step_check = self._step_check(s, order, draw_steps, nbeta, seed, first)
        sampling_seconds = time.perf_counter() - started
        diagnostics = diagnose(losses, draw_steps, step_check=step_check, emit=emit_warnings, **common)
        mean, std, sem = _aggregate(diagnostics)
        if raise_if_all_diverged and not math.isfinite(mean):
            healthy = len(diagnostics.healthy)
            reason = (
                f"all {s.chains} chains diverged, exploded or escaped"
                if not healthy
                else f"the mean over the {healthy} healthy chains is not finite ({mean})"
            )
            raise GuardchainError.single(
                MetricErrorCode.LLC_DIVERGED,
                f"{reason} at epsilon={s.epsilon:g}, gamma={s.gamma:g}, nbeta={nbeta:g}",
                hint="lower epsilon, raise gamma, or run grid_search",
            )
        return LlcResult(
            llc_mean=mean,
            llc_std=std,
            llc_sem=sem,
            llc_per_chain=np.array([c.llc for c in diagnostics.chains], dtype=np.float64),
            loss_trace=losses,
            draw_steps=draw_steps,
            init_loss=self.init_loss,
            init_loss_source=self.init_loss_source,
            nbeta=nbeta,
            nbeta_source=nbeta_source,
            n_samples=self.n_samples,
            n_batches=self.n_batches,
            sampled_params=self.layout.names,
            n_params=self.layout.d,
            loss=self.loss_name,
            settings=s,
            diagnostics=diagnostics,
            timings={"setup": self.setup_seconds, "sampling": sampling_seconds},
        )

    def _check_loss_at_w0(self, losses: Floats, order: npt.NDArray[np.int64]) -> None:
        """Step 0 of every chain is at w*: a non-finite loss there is the data's or the model's, not a divergence.

        :raises GuardchainError: ``GC-METRIC-LLC-LOSS``.
        """
        if losses.shape[1] and not np.isfinite(losses[:, 0]).any():
            raise GuardchainError.single(
                MetricErrorCode.LLC_LOSS,
                f"the loss at w* is not finite on batch {int(order[0])} ({losses[0, 0]}), the first step's batch",
                hint="check the data and the model's weights; L0 was computed on other batches",
            )

    def _step_check(
        self,
        s: SamplerSettings,
        order: npt.NDArray[np.int64],
        draw_steps: npt.NDArray[np.int64],
        nbeta: float,
        seed: int,
        first: Diagnostics,
    ) -> StepCheck:
        """Re-run chains ``0 … step_check_chains − 1`` at ε/2 on the first device (same Brownian path)."""
        chains = list(range(s.step_check_chains))
        fine_order, fine_draws = fine_schedule(order, draw_steps)
        kernel = self.kernels[0]
        per_call = s.chains_per_call or len(chains)
        traces = [
            kernel.run(
                self.batches[kernel.device],
                fine_order,
                chains[start : start + per_call],
                seed=seed,
                epsilon=s.epsilon / 2,
                gamma=s.gamma,
                nbeta=nbeta,
                mala_every=0,
                refined=True,
            )
            for start in range(0, len(chains), per_call)
        ]
        mean, _, sem = _aggregate(first)
        return assess(
            chains,
            epsilon=s.epsilon,
            llc_per_chain=np.array([c.llc for c in first.chains], dtype=np.float64),
            healthy=first.healthy,
            llc_mean=mean,
            llc_sem=sem,
            fine_losses=np.concatenate([t.losses for t in traces], axis=0),
            fine_draws=fine_draws,
            init_loss=self.init_loss,
            nbeta=nbeta,
            tolerance=s.step_tolerance,
        )

    def _run_chains(
        self, s: SamplerSettings, order: npt.NDArray[np.int64], nbeta: float, seed: int
    ) -> list[ChunkTrace]:
        groups = [g.tolist() for g in np.array_split(np.arange(s.chains), len(self.devices)) if g.size]
        per_call = s.chains_per_call or s.chains

        def run_group(kernel: SGLDKernel, chain_ids: list[int]) -> list[ChunkTrace]:
            batches = self.batches[kernel.device]
            return [
                kernel.run(
                    batches,
                    order,
                    chain_ids[start : start + per_call],
                    seed=seed,
                    epsilon=s.epsilon,
                    gamma=s.gamma,
                    nbeta=nbeta,
                    mala_every=s.mala_every,
                )
                for start in range(0, len(chain_ids), per_call)
            ]

        pairs = list(zip(self.kernels, groups, strict=False))
        if len(pairs) == 1:
            return run_group(*pairs[0])
        with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
            futures = [pool.submit(run_group, kernel, ids) for kernel, ids in pairs]
            return [trace for future in futures for trace in future.result()]


def _aggregate(diagnostics: Diagnostics) -> tuple[float, float, float]:
    """(mean, std with ddof 1, sem) of λ̂_c over the healthy chains (NaN where undefined or not finite)."""
    kept = np.array([c.llc for c in diagnostics.chains if c.healthy], dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(kept.mean()) if kept.size else math.nan
        std = float(kept.std(ddof=1)) if kept.size > 1 else math.nan
    sem = std / math.sqrt(kept.size) if kept.size > 1 else math.nan
    return mean, std, sem


def estimate_llc(
    model: torch.nn.Module,
    data: Any,
    *,
    loss: str | LossFn = "auto",
    unpack: Unpack | None = None,
    settings: SamplerSettings | None = None,
    plot: str | Path | None = None,
    **overrides: Any,
) -> LlcResult:
    """Estimate the local learning coefficient of ``model`` at its current parameters w*.

    ``overrides`` are :class:`~guardchain.metrics.llc.config.SamplerSettings` fields (``chains``, ``draws``,
    ``burnin``, ``steps_between_draws``, ``epsilon``, ``gamma``, ``nbeta``, ``batch_size``, ``seed``, ``dtype``,
    ``devices``, ``params``, ``compile``, ``init_loss``, ``mala_every``, ...). With ``plot`` the trace plot is
    saved there (needs matplotlib). See :class:`LlcSampler` for ``data``, ``loss`` and ``unpack``.

    Example::

        result = estimate_llc(model, loader, loss="mse", chains=8, draws=2000, burnin=500, epsilon=1e-4, gamma=1.0)
        result.llc_mean, result.llc_sem, result.diagnostics.checks

    :raises GuardchainError: ``GC-METRIC-LLC-*`` codes (README).
    """
    sampler = LlcSampler(model, data, loss=loss, unpack=unpack, settings=settings, **overrides)
    result = sampler.estimate()
    if plot is not None:
        result.plot(plot)
    return result
