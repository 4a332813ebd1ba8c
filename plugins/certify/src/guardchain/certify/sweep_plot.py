"""The sweep's plot: quality against compression, one point per certified cell, the Pareto front drawn.

x is the edit's ``bits`` setting (the compression: fewer is smaller), y the upper end of the BCa interval of the
final perplexity ratio, PPL(subject) / PPL(baseline) — the number the ``primary_ratio_ci_upper`` gate bounds
(lower is better; 1 is the baseline's quality). A cell is on the Pareto front when no other cell of its baseline
has at most its bits and a lower upper bound with one of the two strictly better; the front is drawn as a step
line per baseline. PASS cells are filled circles, FAIL cells crosses; each tier's ratio threshold is a dashed
line. Cells without a ``bits`` setting or without an interval are listed under the plot, not drawn.

matplotlib is an optional extra (``pip install matplotlib``); without it the sweep writes no plot and says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from guardchain.certify.outdir import OwnedDir

PLOT_NAME = "quality_vs_bits.png"


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points of ``(bits, upper)`` pairs, both to be minimised, sorted by bits.

    A point is dominated when another has ``bits' <= bits`` and ``upper' <= upper`` with one strictly smaller;
    equal points are kept once.
    """
    front: list[tuple[float, float]] = []
    best = float("inf")
    for bits, upper in sorted(set(points)):
        if upper < best:
            front.append((bits, upper))
            best = upper
    return front


def plot_quality_vs_bits(rows: Sequence[dict[str, Any]], root: OwnedDir, *, title: str) -> str:
    """Draw :data:`PLOT_NAME` into the sweep folder; returns its name, or why there is no plot."""
    drawable = [r for r in rows if r["status"] == "done" and r["bits"] is not None and r["ci_high"] is not None]
    if not drawable:
        return "no plot: no certified cell has both a bits setting and a ratio interval"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install matplotlib)"
    figure, axes = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    baselines = sorted({str(r["baseline"]) for r in drawable})
    colours = plt.get_cmap("tab10")
    for index, baseline in enumerate(baselines):
        colour = colours(index % 10)
        mine = [r for r in drawable if r["baseline"] == baseline]
        for verdict, marker in (("PASS", "o"), ("FAIL", "x")):
            chosen = [r for r in mine if r["verdict"] == verdict]
            if chosen:
                axes.scatter(
                    [r["bits"] for r in chosen],
                    [r["ci_high"] for r in chosen],
                    marker=marker,
                    s=48,
                    color=colour,
                    label=f"{baseline} {verdict}",
                    zorder=3,
                )
        front = pareto_front([(float(r["bits"]), float(r["ci_high"])) for r in mine])
        axes.step(
            [b for b, _ in front],
            [u for _, u in front],
            where="post",
            color=colour,
            alpha=0.6,
            linewidth=1.5,
            label=f"{baseline} Pareto front",
        )
        at_bits: dict[float, int] = {}
        for row in sorted(mine, key=lambda r: (r["bits"], r["ci_high"])):
            label = _settings_label(row)
            if label:  # labels of cells with equal bits are stacked, not drawn over each other
                rank = at_bits[row["bits"]] = at_bits.get(row["bits"], -1) + 1
                axes.annotate(
                    label,
                    (row["bits"], row["ci_high"]),
                    textcoords="offset points",
                    xytext=(7, -6 + 10 * rank),
                    fontsize=7,
                    color=colour,
                )
    for tier, threshold in sorted(_thresholds(drawable).items()):
        axes.axhline(threshold, linestyle="--", color="grey", linewidth=1)
        axes.annotate(
            f"{tier} ratio gate {threshold:g}",
            (0.01, threshold),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            xytext=(0, 3),
            textcoords="offset points",
            color="grey",
        )
    axes.set_xlabel("bits per weight (edit setting)")
    axes.set_ylabel("upper end of the 95% CI of PPL ratio (subject / baseline)")
    axes.set_title(f"{title}: quality against compression ({len(drawable)} cells)")
    axes.set_xticks(sorted({r["bits"] for r in drawable}))
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, loc="upper right")
    left_out = len(rows) - len(drawable)
    if left_out:
        figure.text(
            0.01, 0.01, f"{left_out} cell(s) not drawn (no bits setting, no interval, or not certified)", fontsize=7
        )
    figure.tight_layout()
    target = root.reserve(PLOT_NAME)
    figure.savefig(target)
    plt.close(figure)
    return PLOT_NAME


def _settings_label(row: dict[str, Any]) -> str:
    """The settings that tell cells of equal bits apart (``group_size=32``), short."""
    other = {k: v for k, v in row["edit_config"].items() if k != "bits"}
    return ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(other.items()))[:40]


def _thresholds(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Tier -> the ``primary_ratio_ci_upper`` gate's threshold, as the certificates recorded it."""
    return {str(r["tier"]): float(r["ratio_limit"]) for r in rows if isinstance(r.get("ratio_limit"), int | float)}
