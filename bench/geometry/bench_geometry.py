"""Wall time, tokens/s and peak RSS of guardchain's ``geometry`` collection vs representation-geometry 0.1.0 and a
plain forward, on the same model and tokens.

Every mode runs in a fresh worker process (peak RSS is per process) inside ``bench/geometry/.venv-ref``: a venv with
``--system-site-packages`` (the same CPU torch 2.13.0, transformers and the editable guardchain members as the
system python) plus ``representation-geometry==0.1.0`` from PyPI, made on the first run. Modes:

* ``plain``: ``model(**batch)`` for every batch, the output dropped at once (the full forward, LM head included);
* ``trunk``: ``model.transformer(**batch)`` (no LM head): the floor of any collector that skips the head;
* ``reference``: ``representation_geometry.analyze_model(model, batches, max_tokens=N, hook_point="residual_input",
  sample_limit=512)`` (default metrics: spectrum, sample, novelty);
* ``guardchain``: ``guardchain.geometry.analyze(model, batches, sites=["blocks[*].input"], sample_size=512)``
  (spectrum, sample and novelty families; the forward stops inside the last block).

Model: ``GPT2LMHeadModel(GPT2Config(n_layer=4, n_embd=256, n_head=4, vocab_size=50257, n_positions=256))``, random
init, seed 0 (GPT-2's 50k vocabulary: one logits tensor is 8×256×50257×4 B = 411 MB). Tokens: ``--batches`` batches
of 8×256 Zipf(1.2)-distributed ids (seed 0) with an all-ones attention mask, so both collectors see the same tokens.
One torch thread. Each mode runs ``--repeats`` times, interleaved; the table shows the best wall time and its
run's CPU time, and the largest peak RSS. Then the per-layer ``d_pr`` of both collectors (same covariance: they
must agree to float32 accuracy).

Run it alone on the machine (``flock /tmp/bench.lock``)::

    flock /tmp/bench.lock python3 bench/geometry/bench_geometry.py              # 25 batches = 51,200 tokens, 2x
    flock /tmp/bench.lock python3 bench/geometry/bench_geometry.py --batches 5 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-ref"
REFERENCE = "representation-geometry==0.1.0"
MODES = ("plain", "trunk", "reference", "guardchain")
BATCH, SEQ, VOCAB = 8, 256, 50257


# --------------------------------------------------------------------------------------------------------------
# worker: one mode in a fresh process
# --------------------------------------------------------------------------------------------------------------


def _model_and_batches(n_batches: int) -> tuple[Any, list[dict[str, Any]]]:
    import numpy as np
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=4, n_embd=256, n_head=4, vocab_size=VOCAB, n_positions=SEQ)
    model = GPT2LMHeadModel(config).eval()
    rng = np.random.default_rng(0)
    ids = (rng.zipf(1.2, size=(n_batches, BATCH, SEQ)) - 1) % VOCAB
    batches = [
        {"input_ids": torch.from_numpy(b).long(), "attention_mask": torch.ones((BATCH, SEQ), dtype=torch.long)}
        for b in ids
    ]
    return model, batches


def worker(mode: str, n_batches: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    model, batches = _model_and_batches(n_batches)
    tokens = n_batches * BATCH * SEQ
    d_pr: list[float] = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        if mode == "plain":
            for batch in batches:
                model(**batch, use_cache=False)
        elif mode == "trunk":
            for batch in batches:
                model.transformer(**batch, use_cache=False)
        elif mode == "reference":
            from representation_geometry import analyze_model

            result = analyze_model(
                model, batches, max_tokens=tokens, hook_point="residual_input", sample_limit=512, device="cpu"
            )
            d_pr = [float(v) for v in result.metrics["d_pr"]]
        elif mode == "guardchain":
            from guardchain.geometry import analyze

            ours = analyze(model, batches, sites=["blocks[*].input"], sample_size=512, seed=0)
            d_pr = ours.site_values("d_pr")
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_mb, "tokens": tokens, "d_pr": d_pr}


# --------------------------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------------------------


def ensure_venv() -> Path:
    """``bench/geometry/.venv-ref`` with the reference package (made once; ``.ready`` marks it complete)."""
    python = VENV / "bin" / "python"
    if (VENV / ".ready").is_file():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", REFERENCE], check=True)  # numpy, pandas, torch come from the system
    subprocess.run([str(python), "-c", "import representation_geometry, guardchain.geometry"], check=True)
    (VENV / ".ready").touch()
    return python


def run_mode(python: Path, mode: str, n_batches: int) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--worker", mode, "--batches", str(n_batches)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"mode {mode} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _machine_load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=25, help="batches of 8x256 tokens (default 25: 51,200)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per mode, interleaved (best wall time shown)")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench.json")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.batches)))
        return
    python = ensure_venv()
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    print(f"load average before: {_machine_load()}", flush=True)
    for repeat in range(args.repeats):
        order = MODES[repeat % len(MODES) :] + MODES[: repeat % len(MODES)]
        for mode in order:
            runs[mode].append(run_mode(python, mode, args.batches))
            last = runs[mode][-1]
            print(
                f"  {mode:10s} run {repeat + 1}: {last['wall_s']:.2f} s, peak RSS {last['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    print(f"load average after: {_machine_load()}")
    best = {m: min(r, key=lambda x: x["wall_s"]) for m, r in runs.items()}
    peak = {m: max(x["peak_rss_mb"] for x in r) for m, r in runs.items()}
    plain = best["plain"]
    tokens = plain["tokens"]
    print(
        f"\nGPT-2 4x256, vocabulary {VOCAB}, {tokens:,} tokens ({args.batches} batches of {BATCH}x{SEQ}), "
        f"1 torch thread, best of {args.repeats}\n"
    )
    print("| mode | wall s | tokens/s | CPU s | peak RSS MB | wall / plain | Δ RSS vs plain MB |")
    print("|---|---|---|---|---|---|---|")
    for mode in MODES:
        b = best[mode]
        print(
            f"| {mode} | {b['wall_s']:.2f} | {tokens / b['wall_s']:,.0f} | {b['cpu_s']:.2f} | {peak[mode]:.0f} | "
            f"{b['wall_s'] / plain['wall_s']:.3f} | {peak[mode] - peak['plain']:+.0f} |"
        )
    ours, ref = best["guardchain"]["d_pr"], best["reference"]["d_pr"]
    print(
        "\nd_pr per layer (guardchain / reference):",
        ", ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(ours, ref, strict=True)),
    )
    worst = max(abs(a - b) / abs(b) for a, b in zip(ours, ref, strict=True))
    print(f"max relative d_pr difference: {worst:.2e}")
    trunk = best["trunk"]["wall_s"]
    print(
        f"guardchain vs trunk (the head-free floor): {best['guardchain']['wall_s'] / trunk:.3f}x wall, "
        f"{peak['guardchain'] - peak['trunk']:+.0f} MB peak RSS"
    )
    wall_ratio = best["guardchain"]["wall_s"] / plain["wall_s"]
    extra = peak["guardchain"] - peak["plain"]
    print(
        f"goal wall <= 1.1x plain: {wall_ratio:.3f}x {'PASS' if wall_ratio <= 1.1 else 'FAIL'}; "
        f"goal RSS <= plain + 20 MB: {extra:+.0f} MB {'PASS' if extra <= 20 else 'FAIL'}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "batches": args.batches, "repeats": args.repeats}, indent=2))


if __name__ == "__main__":
    main()
