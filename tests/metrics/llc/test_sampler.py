"""The vmapped sampler against a naive per-chain SGLD, the seed scheme, parameter subsets, data formats, errors."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from guardchain.core.errors import GuardchainError
from guardchain.metrics.codes import MetricErrorCode
from guardchain.metrics.llc import LlcSampler, default_nbeta, estimate_llc
from guardchain.metrics.llc.noise import batch_order

from .conftest import DUMMY_DATA, mlp, mlp_data, monomial_expectation, potential_loss

# The small MLPs here are untrained on purpose: a negative λ̂ is expected and its warning is noise, and so is the
# trend check's "cannot judge" for runs of two chains.
pytestmark = [pytest.mark.filterwarnings("ignore:llc negative"), pytest.mark.filterwarnings("ignore:llc trend")]


def documented_chain_seed(seed, chain):
    """The scheme the noise module documents, re-derived here: SeedSequence(seed, spawn_key=(0, chain))."""
    return int(np.random.SeedSequence(seed, spawn_key=(0, chain)).generate_state(1, dtype=np.uint64)[0]) >> 1


def naive_sgld(model, batches, *, chains, steps, seed, eps, gamma, nbeta):
    """Per-chain SGLD with plain autograd on a copy of the model: losses ``[chains, steps]``."""
    w0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    d = w0.numel()
    block = min(64, max(1, 2**20 // d))
    out = np.empty((chains, steps))
    for c in range(chains):
        replica = copy.deepcopy(model)
        params = list(replica.parameters())
        generator = torch.Generator().manual_seed(documented_chain_seed(seed, c))
        noise = None
        for i in range(steps):
            if i % block == 0:
                noise = torch.randn((block, d), generator=generator, dtype=w0.dtype)
            x, y = batches[i % len(batches)]
            loss = F.mse_loss(replica(x), y)
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                w = torch.cat([p.reshape(-1) for p in params])
                g = torch.cat([q.reshape(-1) for q in grads])
                w = w - eps / 2 * (nbeta * g + gamma * (w - w0)) + math.sqrt(eps) * noise[i % block]
                for p, part in zip(params, w.split([p.numel() for p in params]), strict=True):
                    p.copy_(part.view(p.shape))
            out[c, i] = loss.item()
    return out


def test_vmapped_chains_equal_a_naive_per_chain_sgld():
    model, (x, y) = mlp(), mlp_data()
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)]
    eps, gamma, nbeta, steps = 1e-3, 2.0, 30.0, 70  # 70 steps: a second noise block, and the batches cycle
    result = estimate_llc(
        model, batches, loss="mse", chains=3, draws=steps, burnin=0, epsilon=eps, gamma=gamma, nbeta=nbeta, seed=5,
        dtype="float64", mala_every=0,
    )  # fmt: skip
    reference = naive_sgld(model, batches, chains=3, steps=steps, seed=5, eps=eps, gamma=gamma, nbeta=nbeta)
    np.testing.assert_allclose(result.loss_trace, reference, rtol=1e-10, atol=1e-12)
    l0 = np.mean([F.mse_loss(model(bx), by).item() for bx, by in batches])
    assert result.init_loss == pytest.approx(l0, rel=1e-12)
    np.testing.assert_allclose(result.llc_per_chain, nbeta * (reference.mean(axis=1) - l0), rtol=1e-9)


def test_results_do_not_depend_on_how_chains_are_batched():
    model, data = mlp(), mlp_data()
    common = dict(loss="mse", batch_size=16, draws=40, burnin=5, epsilon=1e-3, seed=11, dtype="float64", mala_every=7)
    whole = estimate_llc(model, data, chains=5, **common)
    for split in ({"chains_per_call": 1}, {"chains_per_call": 2}, {"devices": ("cpu", "cpu")}):
        other = estimate_llc(model, data, chains=5, **common, **split)
        np.testing.assert_allclose(other.loss_trace, whole.loss_trace, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(other.diagnostics.acceptance, whole.diagnostics.acceptance, rtol=1e-9, atol=1e-12)
    fewer = estimate_llc(model, data, chains=2, **common)
    np.testing.assert_allclose(fewer.loss_trace, whole.loss_trace[:2], rtol=1e-12, atol=1e-14)


def test_the_master_seed_decides_the_noise():
    model, data = mlp(), mlp_data()
    common = dict(loss="mse", batch_size=16, chains=2, draws=20, burnin=0, epsilon=1e-3, dtype="float64")
    a, b, c = (estimate_llc(model, data, seed=s, **common) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.loss_trace, b.loss_trace)
    assert not np.allclose(a.loss_trace[:, 1:], c.loss_trace[:, 1:])
    assert not np.allclose(a.loss_trace[0, 1:], a.loss_trace[1, 1:])  # chains differ from one another


def test_the_model_is_left_untouched_and_its_modes_restored():
    model = mlp()
    model.train()
    model[1].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    estimate_llc(model, mlp_data(), loss="mse", chains=2, draws=10, burnin=0, epsilon=1e-2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and model[0].training and not model[1].training


class TwoPart(torch.nn.Module):
    """K(a, b) = a² + b⁴ with separate parameters, so that either can be frozen."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x):
        return self.a**2 + self.b**4


def test_weight_restricted_llc_samples_only_the_named_parameters():
    nbeta, gamma, eps, burnin, draws = 1000.0, 1.0, 1e-4, 300, 1500
    common = dict(loss=potential_loss, nbeta=nbeta, gamma=gamma, epsilon=eps, chains=64, draws=draws, burnin=burnin)
    only_a = estimate_llc(TwoPart(), DUMMY_DATA, params=("a",), dtype="float64", mala_every=0, **common)
    assert only_a.sampled_params == ("a",) and only_a.n_params == 1
    # b frozen at 0: K = a² exactly, so the AR(1) formula of the anchor's section 3 is the exact expectation.
    a = nbeta * 2 + gamma
    rho = 1 - eps * a / 2
    steps = np.arange(burnin, burnin + draws)
    exact = nbeta * 2 / (2 * a * (1 - eps * a / 4)) * float(np.mean(1 - rho ** (2 * steps)))
    assert abs(only_a.llc_mean - exact) < 4 * only_a.llc_sem
    only_b = estimate_llc(TwoPart(), DUMMY_DATA, params=("b",), dtype="float64", mala_every=0, **common)
    quartic = monomial_expectation(nbeta, gamma, 2)
    assert abs(only_b.llc_mean - quartic) < 4 * only_b.llc_sem + 0.05 * quartic


def test_parameter_patterns_names_prefixes_and_globs():
    model, data = mlp(), mlp_data()
    common = dict(loss="mse", batch_size=16, chains=1, draws=3, burnin=0, mala_every=0)
    assert LlcSampler(model, data, params=("0",), **common).layout.names == ("0.weight", "0.bias")
    assert LlcSampler(model, data, params=("*.bias",), **common).layout.names == ("0.bias", "2.bias")
    assert LlcSampler(model, data, params=("2.weight",), **common).layout.d == 10
    with pytest.raises(GuardchainError) as caught:
        LlcSampler(model, data, params=("nope",), **common)
    assert caught.value.code == MetricErrorCode.LLC_PARAMS


def test_a_dataloader_and_tensors_give_the_same_estimate():
    model, (x, y) = mlp(), mlp_data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    common = dict(loss="mse", chains=2, draws=15, burnin=3, epsilon=1e-3, dtype="float64")
    from_loader = estimate_llc(model, loader, **common)
    from_tensors = estimate_llc(model, (x, y), batch_size=16, **common)
    np.testing.assert_array_equal(from_loader.loss_trace, from_tensors.loss_trace)
    assert from_loader.n_samples == 48 and from_loader.n_batches == 3
    assert from_loader.nbeta == pytest.approx(default_nbeta(48))
    assert from_loader.nbeta_source == "n/ln(n), n = 48 samples"


class KeywordModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(7, 4)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, tokens, scale):
        return self.head(self.embed(tokens).mean(dim=1) * scale)


def test_dict_batches_custom_unpack_and_auto_loss():
    torch.manual_seed(0)
    model = KeywordModel()
    generator = torch.Generator().manual_seed(0)
    batches = [
        {"tokens": torch.randint(0, 7, (8, 5), generator=generator), "label": torch.randint(0, 3, (8,))}
        for _ in range(3)
    ]
    result = estimate_llc(
        model,
        batches,
        unpack=lambda b: ({"tokens": b["tokens"], "scale": 1.0}, b["label"]),
        chains=2,
        draws=5,
        burnin=0,
        epsilon=1e-4,
    )
    assert result.loss == "cross_entropy"  # integer targets
    with torch.no_grad():
        l0 = np.mean([F.cross_entropy(model(b["tokens"], 1.0), b["label"]).item() for b in batches])
    assert result.init_loss == pytest.approx(l0, rel=1e-6)
    assert estimate_llc(mlp(), mlp_data(), chains=1, draws=2, burnin=0).loss == "mse"  # floating targets


def test_init_loss_given_or_over_the_first_batches():
    model, data = mlp(), mlp_data()
    common = dict(loss="mse", batch_size=16, chains=2, draws=5, burnin=0)
    given = estimate_llc(model, data, init_loss=0.5, **common)
    assert given.init_loss == 0.5 and given.init_loss_source == "given"
    first = estimate_llc(model, data, init_loss_batches=1, **common)
    with torch.no_grad():
        assert first.init_loss == pytest.approx(F.mse_loss(model(data[0][:16]), data[1][:16]).item(), rel=1e-6)
    assert "batches 0..0 (the first 1 of 3" in first.init_loss_source
    assert "all 3" in estimate_llc(model, data, **common).init_loss_source


def test_batch_order_cycles_or_permutes_every_epoch():
    assert batch_order(3, 7, 0, shuffle=False).tolist() == [0, 1, 2, 0, 1, 2, 0]
    shuffled = batch_order(4, 12, 9, shuffle=True)
    assert all(sorted(shuffled[i : i + 4].tolist()) == [0, 1, 2, 3] for i in range(0, 12, 4))
    assert shuffled.tolist() == batch_order(4, 12, 9, shuffle=True).tolist()
    assert shuffled.tolist() != batch_order(4, 12, 10, shuffle=True).tolist()


def test_several_estimates_on_one_sampler_and_structural_overrides_refused():
    sampler = LlcSampler(mlp(), mlp_data(), loss="mse", batch_size=16, chains=2, draws=10, burnin=0)
    first, second = sampler.estimate(epsilon=1e-3), sampler.estimate(epsilon=2e-3, gamma=5.0)
    assert first.settings.epsilon == 1e-3 and second.settings.gamma == 5.0
    assert not np.array_equal(first.loss_trace, second.loss_trace)
    with pytest.raises(GuardchainError) as caught:
        sampler.estimate(dtype="float64")
    assert caught.value.code == MetricErrorCode.LLC_SETTINGS


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"chains": 0}, MetricErrorCode.LLC_SETTINGS),
        ({"epsilon": -1.0}, MetricErrorCode.LLC_SETTINGS),
        ({"not_a_setting": 1}, MetricErrorCode.LLC_SETTINGS),
        ({"devices": ("cuda:7",)}, MetricErrorCode.LLC_DEVICE),
        ({"loss": "hinge"}, MetricErrorCode.LLC_SETTINGS),
        ({"loss": lambda out, y: (out - y) ** 2}, MetricErrorCode.LLC_LOSS),
        ({"epsilon": math.inf}, MetricErrorCode.LLC_SETTINGS),
        ({"gamma": math.nan}, MetricErrorCode.LLC_SETTINGS),
        ({"nbeta": math.inf}, MetricErrorCode.LLC_SETTINGS),
        ({"explode_threshold": math.inf}, MetricErrorCode.LLC_SETTINGS),
        ({"chains": 3, "step_check_chains": 1}, MetricErrorCode.LLC_SETTINGS),
        ({"chains": 3, "step_check_chains": 4}, MetricErrorCode.LLC_SETTINGS),
    ],
)
def test_bad_input_raises_a_coded_error(kwargs, code):
    kwargs = {"loss": "mse", "batch_size": 16, **kwargs}
    with pytest.raises(GuardchainError) as caught:
        estimate_llc(mlp(), mlp_data(), chains=kwargs.pop("chains", 1), draws=2, burnin=0, **kwargs)
    assert caught.value.code == code


def test_bad_model_and_bad_data_raise_coded_errors():
    with pytest.raises(GuardchainError) as caught:
        estimate_llc(lambda x: x, mlp_data())
    assert caught.value.code == MetricErrorCode.LLC_MODEL
    with pytest.raises(GuardchainError) as caught:
        estimate_llc(mlp(), [], loss="mse")
    assert caught.value.code == MetricErrorCode.LLC_DATA
    with pytest.raises(GuardchainError) as caught:
        estimate_llc(mlp(), [("a", "b", "c")], loss="mse")
    assert caught.value.code == MetricErrorCode.LLC_DATA
    with pytest.raises(GuardchainError) as caught:  # a batch the model cannot take
        estimate_llc(mlp(), [(torch.zeros(4, 9, dtype=torch.float64), torch.zeros(4, 2))], loss="mse")
    assert caught.value.code == MetricErrorCode.LLC_DATA
    with pytest.raises(GuardchainError) as caught:
        default_nbeta(1)
    assert caught.value.code == MetricErrorCode.LLC_SETTINGS


@pytest.mark.heavy
def test_the_compiled_step_matches_the_eager_one():
    model, data = mlp(torch.float32), mlp_data(dtype=torch.float32)
    common = dict(loss="mse", batch_size=16, chains=3, draws=60, burnin=5, epsilon=1e-3, seed=3, mala_every=0)
    eager = estimate_llc(model, data, **common)
    sampler = LlcSampler(model, data, compile=True, **common)
    compiled = sampler.estimate()
    np.testing.assert_allclose(compiled.loss_trace, eager.loss_trace, rtol=2e-4, atol=1e-6)
    again = sampler.estimate(epsilon=2e-3)  # new (ε, γ, nβ) reuse the compiled step: same graph, new scalars
    assert again.settings.epsilon == 2e-3 and np.isfinite(again.llc_mean)


@pytest.mark.parametrize("l0", [math.nan, math.inf, -math.inf])
def test_a_non_finite_given_initial_loss_is_a_coded_error(l0):
    """Before: status ok with λ̂ NaN (or -inf) and every chain 'healthy'."""
    with pytest.raises(GuardchainError) as caught:
        estimate_llc(mlp(), mlp_data(), loss="mse", batch_size=16, chains=2, draws=5, burnin=0, init_loss=l0)
    assert caught.value.code == MetricErrorCode.LLC_LOSS and "init_loss" in caught.value.problems[0].message


def test_a_non_finite_loss_at_w_star_is_a_coded_error():
    model = mlp()
    with torch.no_grad():
        model[0].weight[0, 0] = math.nan
    with pytest.raises(GuardchainError) as caught:
        estimate_llc(model, mlp_data(), loss="mse", batch_size=16, chains=2, draws=5, burnin=0)
    assert caught.value.code == MetricErrorCode.LLC_LOSS and "L0 batch(es) [0, 1, 2]" in str(caught.value)
    # L0 given, so no L0 batch is evaluated: the first step is at w*, and its non-finite loss names the data
    # (before: every chain "diverged", GC-METRIC-LLC-DIVERGED with advice to lower epsilon)
    x, y = mlp_data()
    y[3, 0] = math.nan
    with pytest.raises(GuardchainError) as caught:
        estimate_llc(mlp(), (x, y), loss="mse", batch_size=16, chains=2, draws=5, burnin=0, init_loss=1.0)
    assert caught.value.code == MetricErrorCode.LLC_LOSS and "batch 0" in str(caught.value)
