"""The reports of real runs, opened in headless Chromium as a person would see them: no console error, no request
beyond the file itself, the verdict, every gate and every plot found by its accessible name; screenshots saved."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

CERTIFICATE_CHARTS = [
    "Per-window change in loss (final windows)",
    "Baseline vs subject loss per window",
    "Wall time per stage",
    "Wall time per guard (prepare, after edit, finalize)",
    "σ_max per attn matrix, before and after",
    "Stable rank per attn matrix, before and after",
    "σ_max per ffn matrix, before and after",
    "Stable rank per ffn matrix, before and after",
    "Change per matrix in standard units",
    "Weight singular values beyond the MP edge, per family",
    "Top singular value over the MP edge, per changed matrix",
    "Activation edge risk per site",
    "Activation variance drift per site",
]
LLC_CHARTS = ["SGLD loss traces per chain", "λ̂ per chain", "Wall time per step"]
EVERYTHING_CHARTS = [
    "Loss per window",
    "Effective dimension per site",
    "Covariance spectrum per site",
    "d_pr before and after the edit",
    "Similarity of activations before and after the edit",
    "σ_max per attn matrix, before and after",
    "Activation variance drift per site",
    "Residual-stream norm per layer",
    "Backprop gradient norm per layer",
    "Cross-batch gradient-direction similarity per layer",
    "Wall time per step",
]


def write_report(gc, run: Path) -> Path:
    done = gc("report", str(run))
    assert done.returncode == 0, done.stderr
    return run / "report.html"


def check_page(opened, report: Path, charts: list[str], shot: Path) -> None:
    page = opened.page
    assert opened.console == [], opened.console
    assert opened.requests == [report.resolve().as_uri()], opened.requests
    figures = page.locator("svg[role=img]")
    assert figures.count() >= len(charts)
    for index in range(figures.count()):
        assert figures.nth(index).get_attribute("aria-label"), "a plot without an accessible name"
    for name in charts:
        assert page.get_by_role("img", name=name, exact=True).first.is_visible(), name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


@pytest.mark.parametrize(("run", "verdict"), [("int8", "PASS"), ("int2", "FAIL (edit rolled back)")])
def test_certificate_report_in_chromium(gc, runs, open_report, shots_dir, run, verdict):
    report = write_report(gc, runs[run])
    opened = open_report(report)
    page = opened.page
    heading = page.get_by_role("heading", level=1)
    assert re.fullmatch(rf"Verdict\s*{re.escape(verdict)}", heading.inner_text().strip()), heading.inner_text()
    certificate = json.loads((runs[run] / "certificate.json").read_text())
    for gate in certificate["gates"]:
        row = page.get_by_role("row", name=re.compile(re.escape(gate["name"])))
        assert row.first.is_visible(), gate["name"]
        expected = "pass" if gate["passed"] else "FAIL"
        assert expected in row.first.inner_text()
    check_page(opened, report, CERTIFICATE_CHARTS, shots_dir / f"certificate-{run}.png")
    if run == "int2":
        findings = page.get_by_role("cell", name="SPECTRAL-SIGMA-CAP", exact=True)
        assert findings.count() >= 1


def test_chain_reports_in_chromium(gc, runs, open_report, shots_dir):
    for run, charts in (("llc", LLC_CHARTS), ("everything", EVERYTHING_CHARTS)):
        report = write_report(gc, runs[run])
        opened = open_report(report)
        heading = opened.page.get_by_role("heading", level=1).inner_text()
        assert re.fullmatch(r"Run status\s*ok", heading.strip()), heading
        check_page(opened, report, charts, shots_dir / f"chain-{run}.png")
    page = opened.page
    assert page.get_by_role("cell", name="blocks[0].output", exact=True).first.is_visible()  # collect's records


def test_dark_theme_and_print(gc, runs, open_report, shots_dir):
    report = write_report(gc, runs["int8"])
    background = "getComputedStyle(document.documentElement).backgroundColor"
    bar = "getComputedStyle(document.querySelector('.gc-s0')).fill"
    light = open_report(report, "light")
    dark = open_report(report, "dark")
    assert light.page.evaluate(background) == "rgb(255, 255, 255)"
    assert dark.page.evaluate(background) == "rgb(13, 17, 23)"
    assert light.page.evaluate(bar) != dark.page.evaluate(bar)  # the series colours follow the theme
    dark.page.screenshot(path=str(shots_dir / "certificate-int8-dark.png"))
    dark.page.emulate_media(media="print")
    assert dark.page.evaluate(background) == "rgb(255, 255, 255)"  # print is light whatever the system's theme
    assert dark.page.locator("nav.toc").is_hidden()
    assert dark.console == [] and light.console == []
