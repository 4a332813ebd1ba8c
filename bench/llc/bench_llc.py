"""guardchain's LLC estimator side by side with canonical-interp 0.2.7, devinterp 1.3.2 and devinterp 2.0.1.

Every tool runs the same four problems (problems.py) at identical settings: 8 chains, 2000 draws after 500 burn-in
steps, minibatches of 256 in order, nβ = n/ln n = 147.7, ε and γ per problem, seed 0, MSE, one torch thread. Each
(problem, tool configuration) runs in a fresh process (worker.py) in the tool's own interpreter: guardchain in this
Python, each peer in its venv under .venvs/ (setup_venvs.sh creates them). Configurations are interleaved and their
order rotates per repeat; timings are medians over the repeats with the min-max spread. A process calls the library
twice (``--calls``): call 1 includes compilation (reported as compile overhead = call 1 − call 2), call 2 is warm.

Prints, per problem: λ̂ ± sem per configuration, pooled over every master seed run (``--seeds``: each seed gives 8
independent chains, so S seeds give 8·S), agreement with guardchain:compiled (z = Δ/sqrt(sem_a² + sem_b²), agree iff
|z| < 2), warm CPU-seconds and wall-seconds of the timing seed, and guardchain's speed-up over each peer
configuration and over the fastest peer configuration. Raw records go to results/raw-<timestamp>.jsonl, the summary
to results/summary-<timestamp>.json; ``--summarize`` pools the records of several raw files (a timing run under the
machine lock and a separate agreement run, for instance).

    bash bench/llc/setup_venvs.sh            # once (CPU torch first, then the peer)
    python3 bench/llc/bench_llc.py --repeats 3
    python3 bench/llc/bench_llc.py --problems linreg --configs guardchain:compiled canonical:default --repeats 3
    python3 bench/llc/bench_llc.py --repeats 0 --seeds 1 2 3 4 5 --configs guardchain:compiled canonical:eager
    python3 bench/llc/bench_llc.py --summarize bench/llc/results/raw-*.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import problems  # noqa: E402

#: tool -> interpreter (None: this one).
INTERPRETERS: dict[str, Path | None] = {
    "guardchain": None,
    "canonical": HERE / ".venvs" / "canonical" / "bin" / "python",
    "devinterp1": HERE / ".venvs" / "devinterp1" / "bin" / "python",
    "devinterp2": HERE / ".venvs" / "devinterp2" / "bin" / "python",
}
#: (tool, config): guardchain eager / compiled (mode auto = default on CPU) with MALA off, so that it does the same
#: sampler work as the peers, and compiled with its default diagnostics (MALA every 100 steps); canonical eager,
#: compiled in its default reduce-overhead mode and in torch's default mode; the two devinterps (no compile).
CONFIGS = (
    ("guardchain", "eager"),
    ("guardchain", "compiled"),
    ("guardchain", "compiled-diag"),
    ("canonical", "eager"),
    ("canonical", "reduce-overhead"),
    ("canonical", "default"),
    ("devinterp1", "eager"),
    ("devinterp2", "eager"),
)
PEER_TOOLS = ("canonical", "devinterp1", "devinterp2")


def run_worker(
    tool: str, config: str, problem: str, args: argparse.Namespace, seeds: list[int], calls: int
) -> dict[str, Any]:
    python = INTERPRETERS[tool] or Path(sys.executable)
    cmd = [str(python), str(HERE / "worker.py"), "--tool", tool, "--config", config, "--problem", problem]
    cmd += ["--root", str(args.root), "--calls", str(calls), "--threads", str(args.threads)]
    cmd += ["--chains", str(args.chains), "--draws", str(args.draws), "--burnin", str(args.burnin)]
    cmd += ["--seeds", *map(str, seeds)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout * len(seeds))
    if done.returncode != 0:
        return {"tool": tool, "config": config, "problem": problem, "error": done.stderr[-3000:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _call_seed(record: dict[str, Any], call: dict[str, Any]) -> int:
    seed = call.get("seed", record.get("settings", {}).get("seed", 0))
    return int(seed if not isinstance(seed, list) else seed[0])


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (problem, tool:config): timings (medians and spreads over the timing records: ``phase`` absent or
    ``timing``) and the estimate pooled over seeds: the per-chain λ̂ of the last call of each distinct seed (calls
    with one seed repeat one estimate), all chains together: mean, std (ddof 1), sem = std/√(chains)."""
    out: dict[str, Any] = {}
    for record in records:
        if "error" in record:
            continue
        key = f"{record['tool']}:{record['config']}"
        entry = out.setdefault(record["problem"], {}).setdefault(
            key, {"warm_cpu": [], "warm_wall": [], "first_wall": [], "first_cpu": [], "per_seed": {}}
        )
        calls = record["calls"]
        for call in calls:
            per_seed = entry["per_seed"].setdefault(_call_seed(record, call), {})
            per_seed.update({k: call[k] for k in ("llc_per_chain", "llc_mean", "llc_sem", "library_llc")})
        if record.get("phase", "timing") != "timing":
            continue
        warm = calls[-1]
        entry["warm_cpu"].append(warm["cpu_s"])
        entry["warm_wall"].append(warm["wall_s"])
        entry["first_wall"].append(calls[0]["wall_s"])
        entry["first_cpu"].append(calls[0]["cpu_s"])
    for per_problem in out.values():
        for entry in per_problem.values():
            for name in ("warm_cpu", "warm_wall", "first_wall", "first_cpu"):
                values = entry[name]
                entry[f"{name}_median"] = _median(values)
                entry[f"{name}_spread"] = [min(values), max(values)] if values else None
            entry["compile_wall_median"] = entry["first_wall_median"] - entry["warm_wall_median"]
            seeds = sorted(entry["per_seed"])
            chains = [v for seed in seeds for v in entry["per_seed"][seed]["llc_per_chain"]]
            std = statistics.stdev(chains) if len(chains) > 1 else math.nan
            entry["estimate"] = {
                "seeds": seeds,
                "chains": len(chains),
                "llc_mean": statistics.fmean(chains),
                "llc_std": std,
                "llc_sem": std / math.sqrt(len(chains)),
                "library_llc": statistics.fmean(entry["per_seed"][seed]["library_llc"] for seed in seeds),
            }
    return out


def _fmt(value: float, width: int, spread: list[float] | None = None) -> str:
    if math.isnan(value):
        return f"{'-':>{width}}" + (" " * 14 if spread is not None else "")
    text = f"{value:{width}.2f}"
    return text + (f" [{spread[0]:5.2f}-{spread[1]:5.2f}]" if spread else "")


def report(summary: dict[str, Any], ours: tuple[str, ...]) -> str:
    lines = []
    for problem, entries in summary.items():
        known = problems.KNOWN_LAMBDA[problem]
        lines.append(f"\n## {problem} (known λ: {known if known is not None else 'n/a'})")
        lines.append(
            f"{'tool:config':28} {'seeds':>5} {'λ̂ ± sem (pooled)':>18} {'lib λ̂':>8} {'z':>6} {'agree':>6} "
            f"{'warm CPU-s':>22} {'warm wall-s':>22} {'compile s':>9}"
        )
        reference = entries.get("guardchain:compiled") or next(iter(entries.values()))
        ref = reference["estimate"]
        for key, e in entries.items():
            est = e["estimate"]
            z = (est["llc_mean"] - ref["llc_mean"]) / math.hypot(est["llc_sem"], ref["llc_sem"])
            if e is reference:
                agree, z_text = "-", "-"
            elif key.split(":")[0] == "guardchain":
                agree, z_text = "same", "-"  # same tool and seeds: the same noise, not an independent estimate
            else:
                agree, z_text = ("yes" if abs(z) < 2 else "NO"), f"{z:+.2f}"
            cpu, wall = e["warm_cpu_spread"], e["warm_wall_spread"]
            lines.append(
                f"{key:28} {len(est['seeds']):5d} {est['llc_mean']:9.3f} ± {est['llc_sem']:6.3f} "
                f"{est['library_llc']:8.3f} {z_text:>6} {agree:>6} {_fmt(e['warm_cpu_median'], 7, cpu)} "
                f"{_fmt(e['warm_wall_median'], 7, wall)} {_fmt(e['compile_wall_median'], 9)}"
            )
        peers = {k: e for k, e in entries.items() if k.split(":")[0] in PEER_TOOLS and e["warm_cpu"]}
        for mine in ours:
            if mine not in entries or not peers or not entries[mine]["warm_cpu"]:
                continue
            m = entries[mine]
            ratios = ", ".join(
                f"{k} {e['warm_cpu_median'] / m['warm_cpu_median']:.1f}x" for k, e in sorted(peers.items())
            )
            fastest_key = min(peers, key=lambda k: peers[k]["warm_cpu_median"])
            fastest = peers[fastest_key]["warm_cpu_median"] / m["warm_cpu_median"]
            fastest_wall_key = min(peers, key=lambda k: peers[k]["warm_wall_median"])
            fastest_wall = peers[fastest_wall_key]["warm_wall_median"] / m["warm_wall_median"]
            lines.append(f"speed-up of {mine} (warm CPU-s): {ratios}")
            lines.append(
                f"  over the fastest peer configuration: {fastest:.2f}x CPU ({fastest_key}), {fastest_wall:.2f}x wall "
                f"({fastest_wall_key})"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (0: agreement seeds only)")
    parser.add_argument("--problems", nargs="+", default=list(problems.PROBLEMS), choices=problems.PROBLEMS)
    parser.add_argument("--configs", nargs="+", default=[f"{t}:{c}" for t, c in CONFIGS])
    parser.add_argument("--root", type=Path, default=HERE / "results")
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--burnin", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="master seed of the timing runs (every tool)")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[],
        help="agreement seeds: after the timing runs, one process per (problem, configuration) runs each of these "
        "master seeds once (not timed); λ̂ is pooled over every seed run",
    )
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--setup", action="store_true", help="run setup_venvs.sh first")
    parser.add_argument("--summarize", nargs="+", type=Path, help="only summarize these raw-*.jsonl files")
    args = parser.parse_args()
    if args.summarize:
        saved = [json.loads(line) for path in args.summarize for line in path.read_text().splitlines() if line]
        ours = tuple(sorted({f"{r['tool']}:{r['config']}" for r in saved if r["tool"] == "guardchain"}))
        print(report(summarize(saved), ours))
        return 0
    if args.setup:
        subprocess.run(["bash", str(HERE / "setup_venvs.sh")], check=True)
    configs = [tuple(c.split(":", 1)) for c in args.configs]
    missing = [t for t, _ in configs if INTERPRETERS[t] is not None and not INTERPRETERS[t].exists()]  # type: ignore[union-attr]
    if missing:
        print(f"missing venvs for {sorted(set(missing))}: run bench/llc/setup_venvs.sh", file=sys.stderr)
        return 2
    for problem in args.problems:
        problems.ensure(args.root, problem)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw_path = args.root / f"raw-{stamp}.jsonl"
    records: list[dict[str, Any]] = []

    def run(tool: str, config: str, problem: str, seeds: list[int], calls: int, repeat: int | None) -> None:
        started = time.time()
        record = run_worker(tool, config, problem, args, seeds, calls)
        record["phase"] = "agreement" if repeat is None else "timing"
        record["repeat"] = repeat
        tag = f"seeds {seeds[0]}..{seeds[-1]}" if repeat is None else f"repeat {repeat}"
        records.append(record)
        with raw_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        status = record.get("error", "").splitlines()[-1:] if "error" in record else "ok"
        print(f"[{tag}] {problem:7} {tool}:{config:16} {time.time() - started:7.1f}s {status}", flush=True)

    for repeat in range(args.repeats):
        for p_index, problem in enumerate(args.problems):
            shift = (repeat + p_index) % len(configs)
            for tool, config in configs[shift:] + configs[:shift]:
                run(tool, config, problem, [args.seed], args.calls, repeat)
    if args.seeds:
        for problem in args.problems:
            for tool, config in configs:
                run(tool, config, problem, args.seeds, 1, None)
    summary = summarize(records)
    ours = tuple(f"{t}:{c}" for t, c in configs if t == "guardchain")
    text = report(summary, ours)
    print(text)
    payload = {"settings": vars(args) | {"root": str(args.root)}, "summary": summary, "report": text}
    (args.root / f"summary-{stamp}.json").write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
