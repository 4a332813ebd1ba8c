"""The plots: what each figure draws, the files, and the coded error without matplotlib."""

from __future__ import annotations

import sys

import pytest

from guardchain.core.errors import GuardchainError
from guardchain.geometry import analyze, compare, d_pr_figure, save_plots, spectra_figure
from guardchain.geometry.metric import window_batches

pytest.importorskip("matplotlib")


@pytest.fixture
def result(load_tiny, make_windows):
    adapter, handle = load_tiny("gpt2")
    batches = list(window_batches(make_windows(n=6).tokens, 3, 0))
    return analyze(handle, batches, adapter=adapter, sites=["blocks[*].input", "blocks[1].output"], sample_size=32)


def test_the_spectra_figure_draws_one_normalised_spectrum_per_site(result):
    axes = spectra_figure(result).axes[0]
    lines = axes.get_lines()
    assert [line.get_label() for line in lines] == result.sites
    assert axes.get_xscale() == axes.get_yscale() == "log"
    for line, key in zip(lines, result.eigenvalues, strict=True):
        shares = result.eigenvalues[key] / result.eigenvalues[key].sum()
        assert line.get_ydata()[0] == pytest.approx(shares[0])
        assert list(line.get_xdata()[:3]) == [1, 2, 3]


def test_the_d_pr_figure_shows_each_statistic_and_the_baseline(result):
    axes = d_pr_figure(result).axes[0]
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert set(lines) == {"d_pr", "d_entropy", "stable_rank"}
    assert list(lines["d_pr"].get_ydata()) == pytest.approx(result.site_values("d_pr"))
    assert [t.get_text() for t in axes.get_xticklabels()] == ["0", "1", "1"]
    with_drift = d_pr_figure(result, compare(result, result)).axes[0]
    labels = [line.get_label() for line in with_drift.get_lines()]
    assert labels[0] == "d_pr (baseline)" and "d_pr (subject)" in labels


def test_save_plots_writes_two_pngs(result, tmp_path):
    written = save_plots(result, lambda name: tmp_path / name)
    assert written == {"plot_spectra": "spectra.png", "plot_d_pr": "d_pr.png"}
    for name in written.values():
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_without_matplotlib_plots_are_a_coded_error_and_a_chain_step_skips_them(
    result, monkeypatch, geo_registry, load_tiny, geo_context, windows
):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(GuardchainError) as caught:
        result.save(tmp_dir := geo_context().out_dir / "api", plot=True)
    assert caught.value.code == "GC-GEOM-PLOT"
    assert not (tmp_dir / "spectra.png").exists()
    monkeypatch.setattr("guardchain.geometry.metric.matplotlib_available", lambda: False)
    adapter, handle = load_tiny("gpt2")
    metric = geo_registry.create("metric", "geometry", {"sample_size": 16}).instance
    step = metric.compute(handle, windows, geo_context(adapter, handle))
    assert "matplotlib" in step.details["plot_skipped"]
    assert "plot_spectra" not in step.details["artifacts"]
