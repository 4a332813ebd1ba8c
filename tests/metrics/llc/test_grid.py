"""Grid search over (ε, γ, nβ): the table, the flags per point and the recommendation rule."""

from __future__ import annotations

import math

import pytest

from guardchain.core.errors import GuardchainError
from guardchain.metrics.codes import MetricErrorCode
from guardchain.metrics.llc import grid_search

from .conftest import linreg_problem


@pytest.fixture(scope="module")
def grid():
    model, x, y = linreg_problem()
    # ε·(nβ·h + γ) ≈ 300·ε: 1e-5 relaxes too slowly for 400 steps (a trend), 1e-4 and 1e-3 are stable, 2e-2
    # diverges. Eight chains give the trend check (a t-test across chains) its power.
    return grid_search(
        model, (x, y), loss="mse", batch_size=1024, epsilons=(1e-5, 1e-4, 1e-3, 2e-2), gammas=(1.0, 10.0),
        chains=8, draws=300, burnin=100, mala_every=20,
    )  # fmt: skip


def test_one_record_per_point_with_its_flags(grid):
    assert len(grid.records) == 8
    points = [(r["epsilon"], r["gamma"]) for r in grid.records[:4]]
    assert points == [(1e-5, 1.0), (1e-4, 1.0), (1e-3, 1.0), (2e-2, 1.0)]
    diverged = [r for r in grid.records if r["epsilon"] == 2e-2]
    assert all("diverged" in r["checks"] and not r["stable"] and r["healthy_chains"] == 0 for r in diverged)
    assert all(math.isnan(r["llc_mean"]) for r in diverged)
    slow = [r for r in grid.records if r["epsilon"] == 1e-5]
    assert all("trend" in r["checks"] for r in slow)


def test_the_recommendation_is_the_largest_stable_step(grid):
    stable = [r for r in grid.records if r["stable"]]
    assert stable, grid.records
    best = grid.recommended
    assert best is not None and best["stable"] and best["recommended"]
    assert best["epsilon"] == max(r["epsilon"] for r in stable) == 1e-3
    assert sum(r["recommended"] for r in grid.records) == 1
    assert abs(best["llc_mean"] - 5.0) < 1.0  # d/2 with d = 10, plus the +8 % bias at ε = 1e-3


def test_the_table_is_a_dataframe_when_pandas_is_installed(grid):
    pd = pytest.importorskip("pandas")
    table = grid.table()
    assert isinstance(table, pd.DataFrame) and len(table) == 8
    assert {"epsilon", "gamma", "nbeta", "llc_mean", "llc_sem", "mala_acceptance", "checks", "stable"} <= set(table)


def test_without_pandas_the_table_is_a_list_of_records(grid, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)
    table = grid.table()
    assert isinstance(table, list) and table[0]["epsilon"] == 1e-5


def test_an_empty_axis_is_refused():
    model, x, y = linreg_problem()
    with pytest.raises(GuardchainError) as caught:
        grid_search(model, (x, y), loss="mse", epsilons=())
    assert caught.value.code == MetricErrorCode.LLC_SETTINGS
