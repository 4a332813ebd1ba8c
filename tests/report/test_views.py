"""The renderer hook from the report's side: a third-party metric drawing its own view, the generic view of a result
nobody draws, a failing renderer named on the page, hostile text escaped, and the page self-contained."""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

import pytest

from guardchain.core import hookimpl
from guardchain.core.config import validate_chain
from guardchain.core.registry import Registry
from guardchain.core.runner import ChainRunner
from guardchain.core.views import Chart, ResultView, Rule, Series
from guardchain.report.build import build_page
from guardchain.report.page import CSP, MARKER

FAKE_CHAIN = {
    "name": "third-party",
    "model": {"ref": "fake:1"},
    "data": {"dataset": "fake_text"},
    "steps": [
        {"guard": "fake_norm"},
        {"edit": "fake_scale"},
        {"metric": "fake_score", "id": "score"},
    ],
}


def acme_view(kind, name, result):
    """A third party's renderer: its metric's per-window scores as bars, with their mean."""
    if kind != "metric" or name != "fake_score":
        return None
    scores = result["per_unit"]
    return ResultView(
        title="Acme score per window",
        summary=f"mean {result['value']:.3f}",
        blocks=[
            Chart(
                kind="bar",
                title="Acme: score of every window",
                x_label="window",
                y_label="score",
                y_unit="nats/token",
                categories=result["unit_ids"],
                series=[Series(name="score", x=list(range(len(scores))), y=scores)],
                rules=[Rule(y=result["value"], label="mean")],
            )
        ],
    )


def plugin(name, impl):
    module = types.ModuleType(name)
    module.GUARDCHAIN_PLUGIN_API = 1
    module.guardchain_render_result = hookimpl(impl)
    return module


@pytest.fixture
def fake_run(fakes_module, tmp_path) -> Path:
    registry = Registry.from_plugins({"fakes": fakes_module})
    out = tmp_path / "run"
    record = ChainRunner(registry).run(validate_chain(FAKE_CHAIN, registry), out_dir=out)
    assert record.status == "ok" and (out / "run.json").is_file()
    return out


def svg_names(page: str) -> list[str]:
    return re.findall(r'<svg[^>]* role="img"[^>]* aria-label="([^"]*)"', page)


def test_a_third_party_metric_draws_its_own_view(fakes_module, fake_run):
    with_view = build_page(fake_run, Registry.from_plugins({"fakes": fakes_module, "acme": plugin("acme", acme_view)}))
    assert "Acme score per window" in with_view
    assert "Acme: score of every window" in svg_names(with_view)
    assert "Wall time per step" in svg_names(with_view)

    generic = build_page(fake_run, Registry.from_plugins({"fakes": fakes_module}))
    assert "Acme" not in generic
    assert "fake_score (metric)" in generic  # the generic view: key numbers and the per-unit values
    assert "fake_score: value per unit" in svg_names(generic)
    assert "fake_norm (guard)" in generic  # the guard's report, drawn under the edit step that carried it


def test_a_failing_renderer_is_named_next_to_the_generic_view(fakes_module, fake_run):
    def broken(kind, name, result):
        if name == "fake_score":
            raise ZeroDivisionError("the renderer's bug")
        return None

    page = build_page(fake_run, Registry.from_plugins({"fakes": fakes_module, "buggy": plugin("buggy", broken)}))
    assert "GC-HOOK-FAILED" in page and "the renderer&#x27;s bug" in page
    assert "showing the generic view" in page and "fake_score (metric)" in page


def test_text_from_results_is_escaped_and_the_page_is_self_contained(fakes_module, fake_run):
    record = json.loads((fake_run / "run.json").read_text())
    hostile = '<script>alert("x")</script><img src="https://example.com/x.png">'
    record["chain"] = hostile
    record["steps"][-1]["result"]["units"] = hostile
    record["steps"][-1]["result"]["details"] = {"note": hostile, "url": "https://example.com"}
    (fake_run / "run.json").write_text(json.dumps(record))
    page = build_page(fake_run, Registry.from_plugins({"fakes": fakes_module}))
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page
    assert page.startswith("<!doctype html>\n" + MARKER)
    assert f'content="{CSP}"'.replace("'", "&#x27;") in page  # the browser refuses any request the page could make
    assert not re.search(r"""\b(?:src|href)=["'](?!#)""", page)  # no resource to fetch, links only within the page


def test_without_a_registry_every_result_gets_the_generic_view(fake_run):
    page = build_page(fake_run, None)
    assert "fake_score (metric)" in page and "Run status" in page


def test_drawing_a_report_imports_no_torch(runs):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from guardchain.core.registry import Registry, RegistrySettings\n"
        "from guardchain.report.build import build_page\n"
        "registry = Registry.discover(RegistrySettings())\n"
        f"for folder in {[str(runs[k]) for k in ('int2', 'everything', 'llc')]!r}:\n"
        "    build_page(Path(folder), registry)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
