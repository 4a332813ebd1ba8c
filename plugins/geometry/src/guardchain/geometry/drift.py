"""Geometry drift: the same sites of a baseline and a subject (an edited model) on the same tokens.

Per site ``s`` (``B`` = baseline, ``S`` = subject):

- ``d_pr_ratio = d_pr(S, s) / d_pr(B, s)`` (and the same ratio for the chosen per-unit statistic);
- ``linear_cka`` = linear CKA between ``B``'s and ``S``'s sample rows at ``s`` (Kornblith et al. 2019): the rows
  are the *same tokens* because the seeded bottom-k sample depends only on the seed and the token count, so the
  two runs must have seen the same windows with the same seed and sample size (checked: equal sampled token
  indices); 1 = the edit changed the representation at most by a rotation and a scale;
- ``layer_cosine_sim`` = mean cosine between ``B``'s and ``S``'s activation of each sampled token;
- ``feature_subspace_novelty`` between the two top-``k`` covariance eigenbases (0 = same principal subspace).

``summary()`` gives the geometric mean of the ``d_pr`` ratios and the smallest / mean CKA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from guardchain.geometry import formulas
from guardchain.geometry.codes import GeometryErrorCode, geometry_error
from guardchain.geometry.results import GeometryResult, PathFor, Row, as_table, jsonable, number, write_csv, write_json


@dataclass
class DriftResult:
    """Per-site drift rows (module docstring) and the statistic they compare.

    :ivar rows: one row per site, in site order.
    :ivar stat: the per-unit statistic also compared (``d_pr`` by default).
    :ivar labels: ``{"baseline": ..., "subject": ...}``.
    """

    rows: list[Row]
    stat: str = "d_pr"
    labels: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, float | int | None]:
        """``sites``, ``d_pr_ratio_geomean`` (``exp`` of the mean log ratio), ``d_pr_ratio_min`` / ``_max``,
        ``linear_cka_min`` / ``_mean``, ``feature_subspace_novelty_max`` (JSON-ready; ``None`` when undefined)."""
        ratios = np.array([number(r["d_pr_ratio"]) for r in self.rows])
        cka = np.array([number(r["linear_cka"]) for r in self.rows])
        novelty = np.array([number(r["feature_subspace_novelty"]) for r in self.rows])

        def finite(values: np.ndarray, reduce: str) -> float:
            kept = values[np.isfinite(values)]
            return float(getattr(np, reduce)(kept)) if kept.size else math.nan

        positive = ratios[np.isfinite(ratios) & (ratios > 0)]
        summary: dict[str, float | int | None] = jsonable(
            {
                "sites": len(self.rows),
                "d_pr_ratio_geomean": float(np.exp(np.mean(np.log(positive)))) if positive.size else math.nan,
                "d_pr_ratio_min": finite(ratios, "min"),
                "d_pr_ratio_max": finite(ratios, "max"),
                "linear_cka_min": finite(cka, "min"),
                "linear_cka_mean": finite(cka, "mean"),
                "feature_subspace_novelty_max": finite(novelty, "max"),
            }
        )
        return summary

    def table(self) -> object:
        """The rows as a pandas ``DataFrame`` (a list without pandas)."""
        return as_table(self.rows)

    def write(self, path_for: PathFor) -> dict[str, str]:
        """``drift.json`` (rows, summary, labels) and ``drift.csv``; returns ``kind -> name``."""
        write_json(path_for("drift.json"), {"labels": self.labels, "summary": self.summary(), "rows": self.rows})
        write_csv(path_for("drift.csv"), self.rows)
        return {"drift": "drift.json", "drift_csv": "drift.csv"}


def comparable(baseline: GeometryResult, subject: GeometryResult) -> list[str]:
    """Why ``baseline`` and ``subject`` cannot be compared site by site (empty when they can)."""
    reasons: list[str] = []
    if baseline.sites != subject.sites:
        reasons.append(f"different sites ({baseline.sites} vs {subject.sites})")
    seen = (baseline.metadata.get("tokens_observed"), subject.metadata.get("tokens_observed"))
    if seen[0] != seen[1]:
        reasons.append(f"different token counts ({seen[0]} vs {seen[1]})")
    if baseline.samples and subject.samples and not np.array_equal(baseline.sample_tokens, subject.sample_tokens):
        reasons.append("different sampled tokens (other windows, seed or sample size)")
    return reasons


def compare(baseline: GeometryResult, subject: GeometryResult, *, stat: str = "d_pr") -> DriftResult:
    """Per-site drift of ``subject`` against ``baseline`` (module docstring).

    CKA and cosine need both samples; without them they are NaN. Subspace novelty needs both eigenbases.

    :raises GuardchainError: ``GC-GEOM-BASELINE`` when the two results are not comparable (:func:`comparable`).
    """
    reasons = comparable(baseline, subject)
    if reasons:
        raise geometry_error(
            GeometryErrorCode.BASELINE,
            "the baseline and subject geometry cannot be compared: " + "; ".join(reasons),
            hint="run both models on the same windows with the same sites, seed and sample_size",
        )
    rows: list[Row] = []
    stats: Sequence[str] = ("d_pr",) if stat == "d_pr" else ("d_pr", stat)
    for b_row, s_row in zip(baseline.metrics, subject.metrics, strict=True):
        site = str(b_row["site"])
        row: Row = {"site": site, "layer": b_row.get("layer"), "hidden_dim": b_row.get("hidden_dim")}
        for name in stats:
            before, after = number(b_row.get(name)), number(s_row.get(name))
            row[f"{name}_baseline"] = before
            row[f"{name}_subject"] = after
            row[f"{name}_ratio"] = after / before if before != 0 and math.isfinite(before) else math.nan
        x, y = baseline.samples.get(site), subject.samples.get(site)
        row["linear_cka"] = row["layer_cosine_sim"] = math.nan
        if x is not None and y is not None:
            row["linear_cka"] = formulas.linear_cka(x, y)
            row["layer_cosine_sim"] = formulas.layer_cosine_sim(x, y)
        u, v = baseline.vectors.get(site), subject.vectors.get(site)
        row["feature_subspace_novelty"] = (
            formulas.subspace_novelty(u, v) if u is not None and v is not None else math.nan
        )
        rows.append(row)
    labels = {
        "baseline": str(baseline.metadata.get("model_id", "")),
        "subject": str(subject.metadata.get("model_id", "")),
    }
    return DriftResult(rows=rows, stat=stat, labels=labels)
