"""The trace plot (matplotlib, optional)."""

from __future__ import annotations

import sys

import pytest

from guardchain.core.errors import GuardchainError
from guardchain.metrics.codes import MetricErrorCode
from guardchain.metrics.llc import estimate_llc

from .conftest import linreg_problem


def small_run(**kwargs):
    model, x, y = linreg_problem()
    return estimate_llc(
        model, (x, y), loss="mse", batch_size=256, chains=3, draws=100, burnin=20, epsilon=1e-4, mala_every=10,
        **kwargs,
    )  # fmt: skip


def test_the_trace_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    result = small_run(plot=tmp_path / "nested" / "traces.png")
    data = (tmp_path / "nested" / "traces.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert result.plot(tmp_path / "again.png").exists()


def test_without_matplotlib_a_plot_request_is_a_coded_error(tmp_path, monkeypatch):
    result = small_run()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(GuardchainError) as caught:
        result.plot(tmp_path / "traces.png")
    assert caught.value.code == MetricErrorCode.LLC_PLOT
