"""The report from its definitions: verdict strings byte for byte, strict thresholds, order of the reasons, the two
growth statistics, serialization and the text rendering."""

from __future__ import annotations

import json

import pytest

from guardchain.core.errors import GuardchainError
from guardchain.core.results import MetricVerdict
from guardchain.diagnostics import DiagnosticReport, DiagnosticThresholds
from guardchain.diagnostics.codes import DiagnosticsErrorCode

HEALTHY = {
    "residual_norms": (4.0, 6.0, 9.0),
    "bp_grad_norms": (1e-3, 5e-4, 2e-4),
    "per_layer_stability": (0.9, 0.05, 0.1),
}


def report(**changes) -> DiagnosticReport:
    values = {**HEALTHY, **changes}
    n = len(values["residual_norms"])
    if n != 3:  # pad the other per-layer arrays to the layer count
        values["bp_grad_norms"] = changes.get("bp_grad_norms", (1e-3,) * n)
        values["per_layer_stability"] = changes.get("per_layer_stability", (0.0,) * n)
    return DiagnosticReport(method_name="m", **values)


def test_the_verdict_strings_are_the_references_byte_for_byte():
    assert report().verdict == "trustworthy"
    everything = report(
        residual_norms=(1.0, 100.0, 101.0),
        bp_grad_norms=(1e-3, 1e-6, 1e-9),
        per_layer_stability=(0.1, 0.95, 0.2),
        headline_acc=0.5,
        frozen_baseline_acc=0.5,
    )
    expected = (
        "needs walk-back: residual stream exploded; BP grad at numerical floor; BP grad direction is "
        "drift-dominated; deep blocks fail to beat frozen-random baseline"
    )
    assert everything.verdict.encode() == expected.encode()
    assert everything.reasons == (
        "residual stream exploded",
        "BP grad at numerical floor",
        "BP grad direction is drift-dominated",
        "deep blocks fail to beat frozen-random baseline",
    )
    assert report(bp_grad_norms=(1.0, 1.0, 0.0)).verdict == "needs walk-back: BP grad at numerical floor"
    two = report(per_layer_stability=(0.0, 0.31, 0.0), headline_acc=0.5, frozen_baseline_acc=0.49)
    assert (
        two.verdict
        == "needs walk-back: BP grad direction is drift-dominated; deep blocks fail to beat frozen-random baseline"
    )


def test_the_metric_verdict_carries_the_label_and_the_reasons():
    assert report().metric_verdict() == MetricVerdict(passed=True, label="trustworthy", reasons=())
    failing = report(bp_grad_norms=(1.0, 1.0, 1e-8)).metric_verdict()
    assert failing == MetricVerdict(
        passed=False, label="needs walk-back: BP grad at numerical floor", reasons=("BP grad at numerical floor",)
    )


def test_a_value_exactly_at_a_threshold_does_not_fire():
    t = DiagnosticThresholds()
    at = report(
        residual_norms=(1.0, 50.0, 50.0),  # per-block growth exactly 50
        bp_grad_norms=(1.0, 1.0, t.grad_norm_floor),
        per_layer_stability=(1.0, 0.30, 0.30),
        headline_acc=0.75,
        frozen_baseline_acc=0.5,
        thresholds=DiagnosticThresholds(frozen_margin_pp=25.0),  # margin exactly 25 pp
    )
    assert (at.growth, at.bp_grad_norms[-1], at.cross_batch_stability, at.frozen_margin_pp) == (50.0, 1e-7, 0.3, 25.0)
    assert at.fired == {"residual_explosion": False, "grad_floor": False, "drift": False, "frozen_margin": False}
    assert at.verdict == "trustworthy"
    over = report(
        residual_norms=(1.0, 50.000001, 50.000001),
        bp_grad_norms=(1.0, 1.0, 0.9999999e-7),
        per_layer_stability=(0.0, 0.3000001, 0.0),
        headline_acc=0.75,
        frozen_baseline_acc=0.5,
        thresholds=DiagnosticThresholds(frozen_margin_pp=25.000001),
    )
    assert all(over.fired.values())


def test_growth_is_the_largest_single_block_ratio_and_the_first_statistic_is_reported_beside_it():
    r = report(residual_norms=(0.5, 10.0, 20.0, 30.0))  # per block 20, 2, 1.5; from the first 60
    assert r.block_growth == (20.0, 2.0, 1.5)
    assert (r.growth_per_block, r.growth_from_first) == (20.0, 60.0)
    assert not r.residual_exploded  # the per-block statistic decides by default
    first = report(residual_norms=(0.5, 10.0, 20.0, 30.0), growth_statistic="from_first")
    assert first.residual_exploded and first.growth == 60.0
    explosion = first.to_dict()["diagnostics"]["residual_explosion"]
    assert explosion["statistic"] == "from_first"
    assert (explosion["per_block_exceeds"], explosion["from_first_exceeds"]) == (False, True)


def test_a_zero_norm_has_no_ratio_and_cannot_fire():
    r = report(residual_norms=(0.0, 0.0, 3.0))
    assert r.block_growth == (None, None)
    assert r.growth_per_block is None and r.growth_from_first is None
    assert not r.residual_exploded


def test_layer_zero_never_counts_for_drift():
    r = report(per_layer_stability=(1.0, 0.1, 0.2))
    assert (r.stability_layer, r.cross_batch_stability, r.drift_dominated) == (2, 0.2, False)
    none = report(per_layer_stability=(1.0, None, None))
    assert none.cross_batch_stability is None and not none.drift_dominated


def test_without_a_frozen_baseline_d_is_skipped_and_said_so():
    r = report(headline_acc=0.9)
    assert r.frozen_undercut is None and r.fired["frozen_margin"] is None
    assert "  NOT PROVIDED — diagnostic skipped." in r.render().splitlines()
    assert r.to_dict()["diagnostics"]["frozen_margin"]["skipped"] is True


def test_the_text_has_the_reference_sections_in_order():
    r = report(
        residual_norms=(1.0, 100.0, 101.0),
        bp_grad_norms=(1e-3, 1e-6, 1e-9),
        per_layer_stability=(0.1, 0.95, 0.2),
        headline_acc=0.5,
        frozen_baseline_acc=0.49,
        notes="seed 0",
    )
    lines = r.render().splitlines()
    assert lines[0] == lines[-1] == "=" * 72
    assert lines[1] == "FA Diagnostic Protocol Report — method: m"
    assert lines[2] == "Notes: seed 0"
    assert lines[-2] == f"VERDICT: {r.verdict}"
    starts = [next(i for i, line in enumerate(lines) if line.startswith(s)) for s in ("(a)", "(b)", "(c)", "(d)")]
    assert starts == sorted(starts)
    assert lines[starts[0] + 1 : starts[0] + 4] == ["  h_0: 1.000e+00", "  h_1: 1.000e+02", "  h_2: 1.010e+02"]
    assert lines[starts[1] + 1 : starts[1] + 4] == ["  g_0: 1.000e-03", "  g_1: 1.000e-06", "  g_2: 1.000e-09"]
    flags = [line.strip() for line in lines if line.strip().startswith("FLAG:")]
    assert [f.split(" (")[0] for f in flags] == [f"FLAG: {reason}" for reason in r.reasons]
    assert "  margin:       +1.00 pp" in lines
    assert "Notes:" not in report().render()


def test_to_dict_has_the_reference_fields_and_round_trips(tmp_path):
    r = report(
        headline_acc=0.9,
        frozen_baseline_acc=0.8,
        seeds={"batches": 3},
        batch_ids=(("a", "b"), ("c", "d")),
        setup={"loss": "causal_lm"},
        grad_token_median=(1.0, 2.0, 3.0),
    )
    data = json.loads(r.to_json())
    for key in (
        "method_name",
        "notes",
        "residual_norms",
        "bp_grad_norms",
        "stability_layer",
        "cross_batch_stability",
        "headline_acc",
        "frozen_baseline_acc",
        "thresholds",
        "verdict",
    ):
        assert key in data
    assert data["thresholds"] == {
        "grad_norm_floor": 1e-7,
        "residual_explosion_ratio": 50.0,
        "drift_ceiling": 0.3,
        "frozen_margin_pp": 2.0,
    }
    assert data["per_layer"]["block_growth"] == [1.5, 1.5]
    again = DiagnosticReport.from_dict({**data, "artifacts": {"report": "x.json"}})
    assert again == r and again.to_dict() == data


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"headline_acc": 87.0}, "headline_acc must be a fraction"),
        ({"frozen_baseline_acc": 0.5}, "needs a headline accuracy"),
        ({"growth_statistic": "max_ratio"}, "unknown growth statistic"),
        ({"bp_grad_norms": (1.0, 2.0)}, "disagree on the layer count"),
    ],
)
def test_an_inconsistent_report_is_a_coded_error(changes, fragment):
    with pytest.raises(GuardchainError) as caught:
        report(**changes)
    assert caught.value.code == DiagnosticsErrorCode.SETTINGS and fragment in str(caught.value)
