"""The per-layer plot (matplotlib, optional)."""

from __future__ import annotations

import sys

import pytest

from guardchain.core.errors import GuardchainError
from guardchain.diagnostics import DiagnosticReport, plot_report
from guardchain.diagnostics.codes import DiagnosticsErrorCode


def sample() -> DiagnosticReport:
    return DiagnosticReport(
        method_name="DFA",
        residual_norms=(7.7, 97.0, 2.1e5, 2.1e5, 2.1e5),
        bp_grad_norms=(1.7e-2, 2.6e-3, 5.0e-6, 5.0e-6, 5.1e-6),
        per_layer_stability=(0.4, -0.01, 0.02, 0.03, 0.01),
        grad_token_median=(1e-3, 2e-4, 4e-7, 4e-7, 4e-7),
        headline_acc=0.877,
        frozen_baseline_acc=0.574,
    )


def test_the_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_report(sample(), tmp_path / "nested" / "diagnostics.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_without_matplotlib_a_plot_is_a_coded_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(GuardchainError) as caught:
        plot_report(sample(), tmp_path / "x.png")
    assert caught.value.code == DiagnosticsErrorCode.PLOT
