"""How the HTML report shows a ``geometry`` result (``guardchain_render_result``), as declarative charts of
:mod:`guardchain.core.views`. numpy only (no torch): the report imports it without loading a model.

* the effective dimension per site — ``d_pr = (Σλ)² / Σλ²`` (participation ratio), ``d_entropy = exp(H(λ/Σλ))``
  and the stable rank ``Σλ / λ_1`` of the site's token covariance (the result's per-site rows);
* the covariance spectra — each site's eigenvalues ``λ_k / Σλ`` against their rank on a log scale, read from the
  run's ``eigenvalues.npz`` and ``metadata.json`` (the files the result names in ``details.artifacts``); at most
  :data:`MAX_SPECTRA` sites (evenly spread over the depth) and :data:`MAX_RANKS` ranks each (log-spaced, the head
  kept whole), so that a 30-layer model stays a light page;
* after an edit (``details.drift``): d_pr of baseline and subject per site, and the linear CKA and cosine between
  their activations of the same sampled tokens;
* novelty between consecutive sites (subspace novelty, linear CKA).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from guardchain.core import views as fmt
from guardchain.core.views import Chart, ResultView, Rule, Series, Table, Text

Block = Chart | Table | Text
MAX_SPECTRA = 8
MAX_RANKS = 160
#: the largest file read, in bytes (the report treats files as untrusted input)
MAX_FILE_BYTES = 256 << 20
METRIC_COLUMNS = ("d_pr", "d_entropy", "stable_rank", "k90", "k95", "top1_share", "tokens_observed", "hidden_dim")


def _map(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (results are untrusted JSON)."""
    return value if isinstance(value, Mapping) else {}


def _num(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _rows(value: Any) -> list[Mapping[str, Any]]:
    return [r for r in value if isinstance(r, Mapping)] if isinstance(value, list) else []


def render_geometry(result: Mapping[str, Any], artifacts: Mapping[str, Path]) -> ResultView | None:
    """The view of a ``geometry`` result (``None`` when it has no per-site rows)."""
    d = result.get("details")
    if not isinstance(d, Mapping):
        return None
    rows = _rows(d.get("metrics"))
    if not rows:
        return None
    stat = str(d.get("stat") or "d_pr")
    summary = (
        f"mean {stat} {fmt.number(result.get('value'))} over {len(rows)} site(s); "
        f"{fmt.number(d.get('tokens_observed'))} "
        f"tokens observed, sample of {fmt.number((d.get('sample') or {}).get('tokens'))}"
    )
    sites = [str(r.get("site")) for r in rows]
    index = [float(i) for i in range(len(rows))]
    blocks: list[Block] = [
        Chart(
            kind="bar",
            title="Effective dimension per site",
            x_label="site",
            y_label="effective dimensions",
            y_unit="dimensions",
            categories=sites,
            series=[
                Series(name="d_pr (participation ratio)", x=index, y=[_num(r.get("d_pr")) for r in rows]),
                Series(name="d_entropy", x=index, y=[_num(r.get("d_entropy")) for r in rows]),
                Series(name="stable rank Σλ/λ₁", x=index, y=[_num(r.get("stable_rank")) for r in rows]),
            ],
            caption="From the eigenvalues λ of each site's token covariance (float64, streamed).",
        )
    ]
    spectra = _spectra_chart(d, artifacts)
    if spectra is not None:
        blocks.append(spectra)
    drift = d.get("drift")
    if isinstance(drift, Mapping):
        blocks += _drift_blocks(drift, d.get("baseline_step"))
    columns = [c for c in METRIC_COLUMNS if any(c in r for r in rows)]
    blocks.append(
        Table(
            title="Per site",
            columns=["site", *columns],
            rows=[[str(r.get("site")), *(r.get(c) for c in columns)] for r in rows],
        )
    )
    novelty = _rows(d.get("novelty"))
    if novelty:
        blocks.append(
            Table(
                title="Between consecutive sites",
                columns=["from", "to", "subspace novelty", "linear CKA", "cosine"],
                rows=[
                    [
                        str(n.get("from_site")),
                        str(n.get("to_site")),
                        n.get("feature_subspace_novelty"),
                        n.get("linear_cka"),
                        n.get("layer_cosine_sim"),
                    ]
                    for n in novelty
                ],
            )
        )
    return ResultView(title="geometry: representation geometry per site", summary=summary, blocks=blocks)


def _load_json(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _spectra(d: Mapping[str, Any], artifacts: Mapping[str, Path]) -> dict[str, np.ndarray] | None:
    """Site -> eigenvalues (descending), from the files the result names; ``None`` when they are not there."""
    named = _map(d.get("artifacts"))
    eig_path = artifacts.get(str(named.get("eigenvalues")))
    metadata = _load_json(artifacts.get(str(named.get("metadata"))))
    keys = metadata.get("eigenvalue_keys") if isinstance(metadata, dict) else None
    if eig_path is None or not isinstance(keys, dict):
        return None
    try:
        if eig_path.stat().st_size > MAX_FILE_BYTES:
            return None
        with np.load(eig_path, allow_pickle=False) as archive:
            return {str(keys[k]): np.asarray(archive[k], dtype=np.float64) for k in archive.files if k in keys}
    except (OSError, ValueError, KeyError):
        return None


def _ranks(n: int) -> list[int]:
    """Ranks to draw of a spectrum of ``n``: every rank up to 32, then log-spaced, the last kept; at most MAX_RANKS."""
    if n <= MAX_RANKS:
        return list(range(n))
    head = list(range(min(32, n)))
    tail = np.unique(np.geomspace(33, n, MAX_RANKS - len(head)).astype(int) - 1)
    return head + [int(i) for i in tail if i >= 32]


def _spectra_chart(d: Mapping[str, Any], artifacts: Mapping[str, Path]) -> Chart | Text | None:
    spectra = _spectra(d, artifacts)
    if spectra is None:
        return (
            Text(text="The eigenvalues file is not in the run folder; no spectrum plot.")
            if d.get("artifacts")
            else None
        )
    sites = list(spectra)
    if len(sites) > MAX_SPECTRA:
        picks = sorted({round(i * (len(sites) - 1) / (MAX_SPECTRA - 1)) for i in range(MAX_SPECTRA)})
        sites = [sites[i] for i in picks]
    series = []
    for site in sites:
        values = spectra[site]
        total = float(values[values > 0].sum()) if values.size else 0.0
        if total <= 0:
            continue
        ranks = _ranks(values.size)
        series.append(
            Series(
                name=site,
                x=[float(r + 1) for r in ranks],
                y=[float(values[r]) / total if values[r] > 0 else None for r in ranks],
            )
        )
    if not series:
        return None
    shown = (
        "" if len(sites) == len(spectra) else f" {len(sites)} of {len(spectra)} sites, evenly spread over the depth."
    )
    return Chart(
        kind="line",
        title="Covariance spectrum per site",
        x_label="eigenvalue rank k",
        y_label="λ_k / Σλ",
        series=series,
        log_y=True,
        caption="Each site's covariance eigenvalues as a share of the total variance, largest first." + shown,
    )


def _drift_blocks(drift: Mapping[str, Any], baseline: Any) -> list[Block]:
    rows = _rows(drift.get("rows"))
    if not rows:
        return []
    sites = [str(r.get("site")) for r in rows]
    index = [float(i) for i in range(len(rows))]
    where = f" (baseline: step {baseline})" if baseline else ""
    return [
        Chart(
            kind="bar",
            title="d_pr before and after the edit",
            x_label="site",
            y_label="d_pr",
            y_unit="dimensions",
            categories=sites,
            series=[
                Series(name="baseline", x=index, y=[_num(r.get("d_pr_baseline")) for r in rows]),
                Series(name="subject", x=index, y=[_num(r.get("d_pr_subject")) for r in rows]),
            ],
            caption=f"Participation ratio of the same sites on the same sampled tokens{where}.",
        ),
        Chart(
            kind="line",
            title="Similarity of activations before and after the edit",
            x_label="site index",
            y_label="similarity",
            series=[
                Series(name="linear CKA", x=index, y=[_num(r.get("linear_cka")) for r in rows]),
                Series(name="mean cosine", x=index, y=[_num(r.get("layer_cosine_sim")) for r in rows]),
            ],
            rules=[Rule(y=1.0, label="identical")],
            caption="1 means the edit left the site's activations unchanged (sites in order: "
            + ", ".join(_short(sites))
            + ").",
        ),
    ]


def _short(sites: Sequence[str]) -> list[str]:
    return list(sites) if len(sites) <= 6 else [*sites[:3], "…", *sites[-2:]]
