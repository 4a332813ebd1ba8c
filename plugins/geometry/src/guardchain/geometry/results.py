"""What a geometry analysis returns, and its files (numpy only; no torch).

The files are the reference package's (representation-geometry 0.1.0), so a user of it finds the same names:

================================ ===========================================================================
``metrics.json`` / ``.csv``      one row per site: ``model_key``, ``model_label``, ``layer`` (the block index),
                                 ``num_layers``, ``layer_norm_depth``, ``tokens_observed``, ``hidden_dim``, the
                                 spectrum and sample families; plus ``site``, ``module_path``, ``hook``
``novelty.json`` / ``.csv``      one row per consecutive pair of sites: ``layer``, ``transition`` (``"0->1"``),
                                 ``novelty_k``, ``feature_subspace_novelty``, ``linear_cka``,
                                 ``layer_cosine_sim``; plus ``from_site``, ``to_site``
``router.json`` / ``.csv``       one row per router (MoE models): ``layer`` (the router's *block* index),
                                 ``router_entropy``, ``router_entropy_norm``, ``load_imbalance``,
                                 ``most_used_expert``, ``top_expert_load``, ``routed_assignments``; plus
                                 ``module``, ``num_experts``, ``top_k``
``diagnostics/<name>.json|csv``  e.g. ``normalization_ablation``: one row per site and variant
``eigenvalues.npz``              covariance eigenvalues per site, descending, float64; keys ``layer_00`` … (the
                                 block index) or ``site_00`` … (the site's position, when sites share a block);
                                 ``metadata.json`` maps keys to sites
``metadata.json``                the reference's fields (``artifact_schema_version`` "0.1", ``model_id``,
                                 ``model_class``, ``max_tokens``, ``tokens_observed``, ``batches_observed``,
                                 ``num_blocks``, ``layers``, ``hook_point``, ``hook_targets``, ``sample_limit``,
                                 ``novelty_k``, ``metrics``, ``diagnostics``, ``input_device``, ``runtime_sec``,
                                 ``save_mode``, ``run_name``, ``tokenizer``, ``dataset``, ``model_config``,
                                 ``software``, ``run_metadata``) plus the sample's seed and size
``samples.npz``                  guardchain's addition, for drift: ``tokens`` (the sampled tokens' stream
                                 indices), ``sites``, ``sample_000`` … ``(n, d)`` float32 token-aligned rows and
                                 ``vectors_000`` … ``(d, k)`` top covariance eigenvectors per site
================================ ===========================================================================

JSON files write NaN as ``null``. The reference's ``save_mode`` chose CSV or JSON; both are written here.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ARTIFACT_SCHEMA_VERSION = "0.1"
Row = dict[str, Any]
PathFor = Callable[[str], Path]


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into Python values and NaN / ±inf into ``None``."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Path):
        return str(value)
    return value


def number(value: Any) -> float:
    """A row value as a float (``None`` -> NaN)."""
    return math.nan if value is None else float(value)


def write_json(path: Path, payload: Any) -> None:
    """Pretty, NaN-free JSON."""
    path.write_text(json.dumps(jsonable(payload), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_csv(path: Path, rows: Sequence[Row]) -> None:
    """Rows as CSV; the header is every key in first-seen order; NaN and ``None`` are empty cells."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in jsonable(row).items()})


def as_table(rows: Sequence[Row]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        return list(rows)
    return pd.DataFrame(list(rows))


@dataclass
class GeometryResult:
    """Every table, spectrum and sample of one analysis.

    :ivar metrics: one row per site (see the module docstring).
    :ivar novelty: one row per consecutive pair of sites.
    :ivar router: one row per router module (empty for a dense model).
    :ivar diagnostics: diagnostic name -> rows.
    :ivar eigenvalues: key (``layer_00`` / ``site_00``) -> covariance eigenvalues, descending, float64.
    :ivar eigenvalue_sites: key -> site string.
    :ivar samples: site -> ``(n, d)`` float32 sample rows, token-aligned across sites (ordered by token).
    :ivar sample_tokens: ``(n,)`` stream indices of the sampled tokens.
    :ivar vectors: site -> ``(d, k)`` top-``k`` covariance eigenvectors (columns, by descending eigenvalue).
    :ivar metadata: the run's metadata (the reference's fields and guardchain's).
    """

    metrics: list[Row]
    novelty: list[Row] = field(default_factory=list)
    router: list[Row] = field(default_factory=list)
    diagnostics: dict[str, list[Row]] = field(default_factory=dict)
    eigenvalues: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    eigenvalue_sites: dict[str, str] = field(default_factory=dict)
    samples: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    sample_tokens: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    vectors: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def sites(self) -> list[str]:
        """The sites, in collection order."""
        return [str(row["site"]) for row in self.metrics]

    def site_values(self, stat: str) -> list[float]:
        """One metric per site, in site order (NaN where undefined)."""
        return [number(row.get(stat)) for row in self.metrics]

    def table(self, name: str = "metrics") -> Any:
        """``metrics``, ``novelty``, ``router`` or a diagnostic as a pandas ``DataFrame`` (a list of rows without
        pandas)."""
        tables = {"metrics": self.metrics, "novelty": self.novelty, "router": self.router, **self.diagnostics}
        if name not in tables:
            raise KeyError(f"no table {name!r}; tables: {', '.join(tables)}")
        return as_table(tables[name])

    def to_dict(self) -> dict[str, Any]:
        """The tables and metadata as JSON-ready values (no arrays)."""
        payload: dict[str, Any] = jsonable(
            {
                "metrics": self.metrics,
                "novelty": self.novelty,
                "router": self.router,
                "diagnostics": self.diagnostics,
                "metadata": self.metadata,
            }
        )
        return payload

    def write(self, path_for: PathFor, *, samples: bool = True) -> dict[str, str]:
        """Write every file of the module docstring through ``path_for(name) -> Path``; returns ``kind -> name``."""
        written: dict[str, str] = {}

        def both(kind: str, stem: str, rows: Sequence[Row]) -> None:
            write_json(path_for(f"{stem}.json"), rows)
            write_csv(path_for(f"{stem}.csv"), rows)
            written[kind] = f"{stem}.json"
            written[f"{kind}_csv"] = f"{stem}.csv"

        both("metrics", "metrics", self.metrics)
        if self.novelty:
            both("novelty", "novelty", self.novelty)
        if self.router:
            both("router", "router", self.router)
        for name, rows in self.diagnostics.items():
            both(name, f"diagnostics/{name}", rows)
        eigenvalues: dict[str, Any] = dict(self.eigenvalues)
        np.savez(path_for("eigenvalues.npz"), **eigenvalues)
        written["eigenvalues"] = "eigenvalues.npz"
        if samples and self.samples:
            arrays: dict[str, Any] = {"tokens": self.sample_tokens, "sites": np.array(self.sites)}
            for i, site in enumerate(self.sites):
                arrays[f"sample_{i:03d}"] = self.samples[site]
                if site in self.vectors:
                    arrays[f"vectors_{i:03d}"] = self.vectors[site]
            np.savez(path_for("samples.npz"), **arrays)
            written["samples"] = "samples.npz"
        metadata = dict(self.metadata)
        metadata["eigenvalue_keys"] = dict(self.eigenvalue_sites)
        metadata["files"] = [*sorted(written.values()), "metadata.json"]
        write_json(path_for("metadata.json"), metadata)
        written["metadata"] = "metadata.json"
        return written

    def save(self, directory: str | Path, *, samples: bool = True, plot: bool = False) -> dict[str, Path]:
        """Write the files into ``directory`` (created); ``plot`` adds ``spectra.png`` and ``d_pr.png``.

        :returns: kind -> path.
        :raises GuardchainError: ``GC-GEOM-PLOT`` when ``plot`` is set and matplotlib is missing.
        """
        root = Path(directory)

        def path_for(name: str) -> Path:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            return path

        written = self.write(path_for, samples=samples)
        if plot:
            from guardchain.geometry.plot import save_plots

            written.update(save_plots(self, path_for))
        return {kind: root / name for kind, name in written.items()}

    @classmethod
    def load(cls, directory: str | Path) -> GeometryResult:
        """Read a result written by :meth:`save` (``samples.npz`` optional; NaN comes back from ``null``).

        :raises FileNotFoundError: when ``metrics.json`` or ``metadata.json`` is missing.
        """
        root = Path(directory)

        def rows(name: str) -> list[Row]:
            path = root / name
            return list(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else []

        metadata = json.loads((root / "metadata.json").read_text(encoding="utf-8"))
        result = cls(
            metrics=rows("metrics.json"),
            novelty=rows("novelty.json"),
            router=rows("router.json"),
            diagnostics={p.stem: rows(f"diagnostics/{p.name}") for p in sorted((root / "diagnostics").glob("*.json"))},
            metadata=metadata,
            eigenvalue_sites=dict(metadata.get("eigenvalue_keys", {})),
        )
        with np.load(root / "eigenvalues.npz") as eig:
            result.eigenvalues = {k: np.asarray(eig[k], dtype=np.float64) for k in eig.files}
        if (root / "samples.npz").is_file():
            with np.load(root / "samples.npz") as stored:
                result.sample_tokens = np.asarray(stored["tokens"], dtype=np.int64)
                for i, site in enumerate(str(s) for s in stored["sites"]):
                    result.samples[site] = np.asarray(stored[f"sample_{i:03d}"], dtype=np.float32)
                    if f"vectors_{i:03d}" in stored.files:
                        result.vectors[site] = np.asarray(stored[f"vectors_{i:03d}"], dtype=np.float64)
        return result
