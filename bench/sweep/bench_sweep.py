"""Four separate ``guardchain certify`` runs against one baseline vs the same four edits as one ``guardchain sweep``.

The peer is guardchain itself as it is used without a sweep: a user choosing a quantization of SmolLM2-135M
certifies each candidate separately, so every run starts a process, loads the baseline and evaluates it again.
The sweep runs the same four certifications in one worker that loads the baseline once (restoring it bit for bit
between cells) and evaluates it once (the baseline cache). Both arms print each run's wall time and peak RSS;
the script prints the ratio sweep / separate (goal: <= 0.65) and checks that every verdict and every ratio (and
its interval) is identical, float for float.

Arms, each a cold process timed with ``time.perf_counter`` around ``os.wait4`` (peak RSS = the process's or, for
the sweep, its largest worker's, from the kernel's rusage of the waited process tree):

* ``separate``: for each edit ``guardchain certify --baseline M --edit quant_rtn --edit-config ... --profile P
  --out W/separate-<i> --format json`` with ``GUARDCHAIN_CACHE_DIR`` set to a fresh empty folder per run (so
  no run can reuse another's baseline evaluation, whatever the default of ``certify`` is);
* ``sweep``: ``guardchain sweep W/sweep.yaml --out W/sweep --jobs J --cache-dir W/sweep-cache --format json``
  with a fresh cache folder (the baseline is evaluated once, inside the sweep).

The load average before and after each arm is printed (the machine is shared: run it under
``flock /tmp/bench.lock`` and say how busy it was)::

    flock /tmp/bench.lock python3 bench/sweep/bench_sweep.py                      # SmolLM2-135M, dev profile
    flock /tmp/bench.lock python3 bench/sweep/bench_sweep.py --model tiny-gpt2    # a quick check of the script

Results: ``bench/sweep/results/<model>-jobs<J>.json`` (every run, the summary); the certificates, the sweep folder and
the logs under ``--work`` (default ``/tmp/guardchain-bench-sweep/<model>``, emptied first).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: The four candidate quantizations (quant_rtn settings); group 64 divides SmolLM2's 576 and 1536 input columns.
EDITS: tuple[dict[str, Any], ...] = (
    {"bits": 8},
    {"bits": 8, "group_size": 64},
    {"bits": 6},
    {"bits": 6, "group_size": 64},
)
GOAL = 0.65


def run_timed(command: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run ``command`` to completion; wall seconds, exit code, peak RSS (MiB) of its process tree, stdout."""
    with log.open("w") as err, (log.with_suffix(".out")).open("w") as out:
        began = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "command": command,
        "wall_s": round(wall, 2),
        "exit": process.returncode,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "stdout": log.with_suffix(".out").read_text(),
    }


def guardchain() -> list[str]:
    return [sys.executable, "-m", "guardchain.core"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="baseline (default smollm2-135m; tiny-gpt2 is quick)")
    parser.add_argument("--profile", default="dev", choices=["dev", "ci", "release"])
    parser.add_argument("--jobs", type=int, default=1, help="sweep workers (default 1: the fair, one-model case)")
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/guardchain-bench-sweep"), help="work folder (emptied first)"
    )
    args = parser.parse_args()

    work = args.work / args.model
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("GUARDCHAIN_CACHE")}
    cores = os.cpu_count()
    print(f"model {args.model}, profile {args.profile}, {len(EDITS)} edits, {cores} CPU cores", flush=True)

    separate = []
    load_before = os.getloadavg()
    for index, config in enumerate(EDITS):
        command = [*guardchain(), "certify", "--baseline", args.model, "--edit", "quant_rtn", "--profile", args.profile]
        for key, value in config.items():
            command += ["--edit-config", f"{key}={value}"]
        command += ["--out", str(work / f"separate-{index}"), "--format", "json"]
        env = base_env | {"GUARDCHAIN_CACHE_DIR": str(work / f"separate-cache-{index}")}
        run = run_timed(command, env, work / f"separate-{index}.log")
        separate.append(run)
        print(f"  separate {index} {config}: {run['wall_s']:.1f} s, exit {run['exit']}, {run['peak_rss_mib']} MiB")
    load_between = os.getloadavg()

    sweep_file = work / "sweep.json"
    sweep = {
        "name": f"bench-{args.model}",
        "baselines": [args.model],
        "edits": [{"edit": "quant_rtn", "config": c} for c in EDITS],
        "profile": args.profile,
    }
    sweep_file.write_text(json.dumps(sweep, indent=2) + "\n")
    command = [*guardchain(), "sweep", str(sweep_file), "--out", str(work / "sweep"), "--jobs", str(args.jobs)]
    command += ["--cache-dir", str(work / "sweep-cache"), "--format", "json"]
    swept = run_timed(command, base_env, work / "sweep.log")
    load_after = os.getloadavg()
    print(f"  sweep --jobs {args.jobs}: {swept['wall_s']:.1f} s, exit {swept['exit']}, {swept['peak_rss_mib']} MiB")

    rows = json.loads(swept["stdout"])["cells"] if swept["stdout"].strip().startswith("{") else []
    compared = []
    for index, config in enumerate(EDITS):
        certificate = json.loads(separate[index]["stdout"]) if separate[index]["stdout"].strip() else {}
        final = (certificate.get("primary_metric") or {}).get("final") or {}
        row = next((r for r in rows if r["edit_config"] == config), None)
        same = (
            row is not None
            and row["verdict"] == certificate.get("verdict")
            and (row["ratio"], row["ci_low"], row["ci_high"])
            == (final.get("ratio"), final.get("ci_low"), final.get("ci_high"))
        )
        compared.append(
            {
                "edit": config,
                "separate": {
                    "verdict": certificate.get("verdict"),
                    "ratio": final.get("ratio"),
                    "ci_high": final.get("ci_high"),
                },
                "sweep": None
                if row is None
                else {"verdict": row["verdict"], "ratio": row["ratio"], "ci_high": row["ci_high"]},
                "identical": same,
            }
        )

    total_separate = sum(r["wall_s"] for r in separate)
    ratio = swept["wall_s"] / total_separate if total_separate else float("nan")
    print()
    print(f"{'edit':28} {'separate verdict / ratio':32} {'sweep verdict / ratio':32} same")
    for item in compared:
        left = item["separate"]
        right = item["sweep"] or {}
        print(
            f"{json.dumps(item['edit']):28} {left['verdict']!s:5} {left['ratio']!r:26} "
            f"{right.get('verdict')!s:5} {right.get('ratio')!r:26} {item['identical']}"
        )
    print()
    peak = max(r["peak_rss_mib"] for r in separate)
    identical = all(c["identical"] for c in compared)
    print(f"separate: {total_separate:.1f} s in {len(separate)} runs (peak RSS max {peak} MiB)")
    print(f"sweep:    {swept['wall_s']:.1f} s in one run (peak RSS {swept['peak_rss_mib']} MiB, --jobs {args.jobs})")
    print(f"ratio sweep / separate: {ratio:.3f}x (goal <= {GOAL}); verdicts and ratios identical: {identical}")
    print(
        f"load average (1, 5, 15 min): before {load_before}, between {load_between}, after {load_after}; {cores} cores"
    )

    results = HERE / "results"
    results.mkdir(exist_ok=True)
    record = {
        "model": args.model,
        "profile": args.profile,
        "jobs": args.jobs,
        "cores": cores,
        "load_average": {"before": load_before, "between": load_between, "after": load_after},
        "separate": [{k: v for k, v in r.items() if k != "stdout"} for r in separate],
        "sweep": {k: v for k, v in swept.items() if k != "stdout"},
        "ratio": round(ratio, 4),
        "goal": GOAL,
        "compared": compared,
    }
    (results / f"{args.model}-jobs{args.jobs}.json").write_text(json.dumps(record, indent=2) + "\n")
    ok = all(c["identical"] for c in compared) and all(r["exit"] in (0, 1) for r in [*separate, swept])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
