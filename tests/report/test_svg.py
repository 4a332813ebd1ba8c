"""The SVG drawing of the kernel's charts: nice ticks, scales, thinning, text alternatives, escaping."""

from __future__ import annotations

import itertools
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardchain.core.views import Band, Chart, Rule, Series
from guardchain.report import svg


@given(
    st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
    st.floats(1e-6, 1e9, allow_nan=False, allow_infinity=False),
)
def test_nice_domains_cover_the_data_with_whole_nice_steps(lo, span):
    hi = lo + span
    d_lo, d_hi, step = svg.nice_domain(lo, hi)
    assert d_lo <= lo and d_hi >= hi
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-9) for m in (1, 2, 2.5, 5, 10))
    ticks = svg.linear_ticks(d_lo, d_hi, step)
    assert 2 <= len(ticks) <= 14
    assert all(math.isclose(b - a, step, rel_tol=1e-6, abs_tol=1e-9 * abs(b)) for a, b in itertools.pairwise(ticks))


def test_tick_labels_show_the_decimals_the_step_needs():
    assert [svg.tick_label(v, 0.25) for v in (0.0, 0.25, -0.5)] == ["0", "0.25", "\u22120.50"]
    assert svg.tick_label(2e-5, 1e-5) == "2.00e\u22125"
    assert svg.tick_label(3_000_000.0, 1e6) == "3.00e6"
    assert svg.log_ticks(1e-7, 1.0) == [10.0**k for k in range(-7, 1)]


def chart(**overrides):
    base = {
        "kind": "line",
        "title": "Loss <per> step",
        "x_label": "step",
        "y_label": "loss",
        "y_unit": "nats/token",
        "series": [Series(name="chain <0>", x=[0, 1, 2, 3, 4], y=[3.0, 2.5, None, 2.0, 1.8])],
    }
    return Chart(**(base | overrides))


def test_the_svg_is_an_image_with_a_name_a_description_and_escaped_text():
    drawn = svg.chart_svg(chart(bands=[Band(start=0, end=1, label="burn-in")], rules=[Rule(y=2.2, label="L0")]), "c1")
    assert (
        'role="img"' in drawn and 'aria-label="Loss &lt;per&gt; step"' in drawn and 'aria-describedby="c1-d"' in drawn
    )
    description = re.search(r'<desc id="c1-d">(.*?)</desc>', drawn).group(1)
    assert "Line chart" in description and "loss (nats/token)" in description and "burn-in 0 to 1" in description
    assert "chain &lt;0&gt;" in drawn and "<0>" not in drawn
    assert drawn.count("<polyline") == 2  # the None splits the line in two
    assert 'class="gc-band"' in drawn and 'class="gc-rule"' in drawn


def test_points_map_onto_the_plot_area():
    layout = svg._Layout(chart(), diagonal=False)
    assert layout.x(layout.x_lo) == pytest.approx(layout.left)
    assert layout.x(layout.x_hi) == pytest.approx(svg.WIDTH - layout.right)
    assert layout.y(layout.y_lo) == pytest.approx(layout.plot_bottom) and layout.y(layout.y_hi) == pytest.approx(
        layout.top
    )
    assert layout.x_ticks == [0.0, 1.0, 2.0, 3.0, 4.0]  # an index axis gets whole ticks


def test_log_axes_bars_histograms_and_empty_charts():
    log = svg._Layout(chart(log_y=True, series=[Series(name="g", x=[0, 1], y=[1e-6, 0.5])]), diagonal=False)
    assert (log.y_lo, log.y_hi) == (1e-6, 1.0) and log.y(1e-3) == pytest.approx((log.top + log.plot_bottom) / 2)
    bars = svg.chart_svg(
        chart(kind="bar", categories=["a", "b"], series=[Series(name="s", x=[0, 1], y=[1.0, -2.0])]), "c2"
    )
    assert bars.count("</rect>") == 2 and "a — s: 1.00000 nats/token" in bars
    histogram = svg._Layout(chart(kind="histogram", series=[Series(name="h", x=[0.5, 1.5], y=[3, 1])]), diagonal=False)
    assert histogram.x_lo <= 0.0 and histogram.x_hi >= 2.0 and histogram.y_lo == 0.0
    empty = svg.chart_svg(chart(series=[Series(name="none", x=[0.0], y=[None])]), "c3")
    assert "no finite values" in empty


def test_long_lines_are_thinned_and_keep_their_last_point():
    n = 10 * svg.MAX_LINE_POINTS + 7
    points = svg._thin(Series(name="long", x=list(range(n)), y=[float(i) for i in range(n)]))
    assert len(points) <= svg.MAX_LINE_POINTS + 1 and points[-1] == (n - 1, float(n - 1)) and points[0] == (0, 0.0)
