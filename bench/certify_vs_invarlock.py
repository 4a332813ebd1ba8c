"""Wall time and perplexity ratio of ``guardchain certify`` against InvarLock 0.3.7's ``certify``.

What it measures: both tools certify the same edit (int8 round-to-nearest, symmetric, one scale per output row of
every attention and MLP ``nn.Linear`` weight; embeddings and the LM head untouched) of the same local LLaMA-architecture
checkpoint, scored on the same 128-token windows. Each run is one ``subprocess.run`` timed with
``time.perf_counter`` (cold process: imports, model loads, windows, baseline + subject evaluation, guards, report).
Runs are interleaved (ours, theirs, ours, theirs, ...). Printed: the median wall time of each tool, the ratio
ours / theirs, and the two perplexity ratios PPL(subject, final) / PPL(baseline, final) with their difference.

The exact commands (``M`` = model directory, ``W`` = work directory of one run):

    guardchain certify --baseline M --edit quant_rtn --edit-config bits=8 --profile dev --preset W/../guardchain.yaml
        --out W --format json
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
    bench/.venvs/invarlock-0.3.7/bin/invarlock certify --baseline M --subject M --adapter auto --profile ci
        --tier balanced --preset W/../invarlock_preset.yaml --edit-config W/../invarlock_edit.yaml --out W/runs
        --cert-out W/cert

Identical windows: InvarLock's ``local_jsonl`` makes one window per line (preview = the first ``preview_n`` lines,
final = the next ``final_n``, each truncated to ``seq_len`` tokens); guardchain cuts windows from documents and
shuffles them with its seed. So every line is written to hold between ``seq_len`` and ``2 * seq_len - 1`` tokens
(exactly one guardchain window: its first ``seq_len`` tokens), guardchain reads the lines in file order with
``pool_factor: null``, and InvarLock reads the same lines reordered by guardchain's own choice rule
(``rng = default_rng(seed); rng.permutation(n); order = rng.permutation(n)``), so both final sets are the same texts.
Window counts are InvarLock's balanced-tier floors (50,000 tokens, >= 180 windows per arm): 200 + 200 windows for
both tools.

Run ``python3 bench/certify_vs_invarlock.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venvs" / "invarlock-0.3.7"
WHEEL_DIR = BENCH / ".venvs" / "dl"
RESULTS = BENCH / "results"
TINY_GPT2_TOKENIZER = REPO / "adapters" / "src" / "guardchain" / "adapters" / "assets" / "tiny-gpt2"
FORBIDDEN = ("gpt", "opt", "phi", "neox")  # InvarLock 0.3.7 routes such paths to a hub tokenizer
INVARLOCK_DEPS = (
    "torch==2.13.0",
    "transformers==5.23.0",
    "tokenizers",
    "safetensors",
    "datasets",
    "requests",
    "typer",
    "click",
    "pandas",
    "scikit-learn",
    "pydantic>=2",
    "rich",
    "pyyaml",
    "markdown",
    "psutil",
    "hypothesis",
    "jsonschema",
)
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def log(message: str) -> None:
    """Progress on stderr (stdout carries only the table)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def ensure_invarlock() -> Path:
    """Create the InvarLock 0.3.7 venv once (idempotent); return its ``invarlock`` executable.

    The venv sees the system site-packages (the same CPU torch 2.13.0 and transformers 5.23.0 as guardchain) and
    gets the missing runtime dependencies; the wheel declares Python >= 3.12, so it is installed without deps and
    without the Python check (it runs on 3.11).
    """
    exe = VENV / "bin" / "invarlock"
    if exe.exists():
        return exe
    log(f"creating {VENV}")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "pip"), "install", "-q"]
    subprocess.run([*pip, *INVARLOCK_DEPS], check=True)
    WHEEL_DIR.mkdir(parents=True, exist_ok=True)
    download = ["download", "-q", "--no-deps", "--python-version", "3.12", "--only-binary=:all:"]
    subprocess.run([str(VENV / "bin" / "pip"), *download, "invarlock==0.3.7", "-d", str(WHEEL_DIR)], check=True)
    wheel = next(WHEEL_DIR.glob("invarlock-0.3.7-*.whl"))
    subprocess.run([*pip, "--no-deps", "--ignore-requires-python", str(wheel)], check=True)
    return exe


def compile_guardchain() -> None:
    """Write the bytecode of every installed guardchain package once, before any timed run.

    pip compiles a wheel's modules when it installs it (InvarLock's venv has them), but not an editable install's,
    and with ``PYTHONDONTWRITEBYTECODE`` set (this machine sets it) Python never writes them either: every
    guardchain run would compile its ~200 modules from source again (about 0.15 s). Compiling them here puts both
    tools on the same footing, as a user without that variable gets after their first run.
    """
    import compileall

    import guardchain

    for root in guardchain.__path__:
        compileall.compile_dir(root, quiet=1)


def check_model_path(path: Path) -> None:
    """Refuse model paths that InvarLock 0.3.7 would send to a hub tokenizer."""
    bad = [word for word in FORBIDDEN if word in str(path).lower()]
    if bad:
        raise SystemExit(f"model path {path} contains {bad}: InvarLock 0.3.7 mishandles it; use --models-dir")


def prepare_model(kind: str, models_dir: Path) -> Path:
    """Materialise the checkpoint: ``smol`` (SmolLM2-135M, guardchain's safetensors cache) or ``tiny-llama``."""
    target = models_dir / ("smol-135m" if kind == "smol" else "tiny-llama")
    check_model_path(target)
    if (target / "config.json").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    if kind == "smol":
        caches = sorted((Path.home() / ".cache" / "guardchain" / "gguf").glob("SmolLM2-135M-Instruct*"))
        if not caches:
            log("converting smollm2-135m once through guardchain's adapter")
            code = (
                "from guardchain.core.registry import Registry;from guardchain.core.kinds import CapabilityKind;"
                "r=Registry.discover();a=r.create(CapabilityKind.ADAPTER,'hf_llama',{});a.load('smollm2-135m')"
            )
            subprocess.run([sys.executable, "-c", code], check=True)
            caches = sorted((Path.home() / ".cache" / "guardchain" / "gguf").glob("SmolLM2-135M-Instruct*"))
        for item in caches[-1].iterdir():
            if item.name != "guardchain-gguf.json":
                (target / item.name).symlink_to(item)
        return target
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=4096,
        hidden_size=128,
        intermediate_size=352,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    LlamaForCausalLM(config).save_pretrained(target)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TINY_GPT2_TOKENIZER / name, target / name)
    return target


def source_text() -> str:
    """A long local text: guardchain's bundled KJV excerpt, then Python's pydoc topics."""
    from pydoc_data.topics import topics

    kjv = REPO / "plugins" / "data" / "src" / "guardchain" / "data" / "corpora" / "kjv_validation.txt"
    parts = [kjv.read_text(encoding="utf-8")] if kjv.exists() else []
    parts.extend(topics[key] for key in sorted(topics))
    return "\n".join(parts)


def write_windows(model: Path, seq_len: int, n_preview: int, n_final: int, seed: int, work: Path) -> dict[str, Any]:
    """Write the two JSONL files (guardchain order, InvarLock order) holding the same ``n`` window texts."""
    import numpy as np
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    needed = n_preview + n_final
    text = " ".join(source_text().split())
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    lines: list[str] = []
    seen: set[tuple[int, ...]] = set()
    start, chunk = 0, seq_len + 24
    while len(lines) < needed and start + chunk < len(offsets):
        piece = text[offsets[start][0] : offsets[start + chunk][0]].strip()
        start += chunk
        plain = tokenizer(piece, add_special_tokens=False)["input_ids"]
        special = tokenizer(piece)["input_ids"]
        key = tuple(plain[:seq_len])
        if seq_len <= len(plain) < 2 * seq_len and special[:seq_len] == plain[:seq_len] and key not in seen:
            seen.add(key)
            lines.append(piece)
    if len(lines) < needed:
        raise SystemExit(f"only {len(lines)} windows of {seq_len} tokens in the local text, {needed} needed")
    rng = np.random.default_rng(seed)
    rng.permutation(needed)  # guardchain's visit order (drawn first, unused with one window per document)
    order = rng.permutation(needed)
    ours = work / "windows_guardchain.jsonl"
    theirs = work / "windows_invarlock.jsonl"
    ours.write_text("".join(json.dumps({"text": t}) + "\n" for t in lines), encoding="utf-8")
    theirs.write_text("".join(json.dumps({"text": lines[int(i)]}) + "\n" for i in order), encoding="utf-8")
    return {"guardchain": ours, "invarlock": theirs, "n": needed}


def dump_yaml(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as YAML (JSON is valid YAML 1.2, and both tools read it)."""
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def write_presets(
    model: Path, windows: dict[str, Any], seq_len: int, n_preview: int, n_final: int, seed: int, work: Path
) -> None:
    """guardchain's preset, InvarLock's preset and InvarLock's edit overlay (section 12 of the anchor).

    InvarLock's scope ``all`` takes every module with >= 100 weights, so also ``lm_head`` (and with it the tied
    embedding); ``plan.max_modules`` = 7 x layers keeps only the attention and MLP projections (``lm_head`` comes
    last in module order), the same matrices as guardchain's scope ``all``.
    """
    layers = int(json.loads((model / "config.json").read_text(encoding="utf-8"))["num_hidden_layers"])
    dump_yaml(
        work / "guardchain.yaml",
        {
            "dataset": "jsonl",
            "dataset_config": {
                "path": str(windows["guardchain"]),
                "field": "text",
                "seq_len": seq_len,
                "stride": seq_len,
                "n_preview": n_preview,
                "n_final": n_final,
                "pool_factor": None,
            },
            "metric": "ppl",
            "edit": "quant_rtn",
            "edit_config": {"bits": 8, "scope": "all"},
            "seed": seed,
        },
    )
    dump_yaml(
        work / "invarlock_preset.yaml",
        {
            "dataset": {
                "provider": "local_jsonl",
                "path": str(windows["invarlock"]),
                "text_field": "text",
                "seq_len": seq_len,
                "stride": seq_len,
                "preview_n": n_preview,
                "final_n": n_final,
                "seed": 42,
            },
            "eval": {"metric": {"kind": "ppl_causal"}},
            "edit": {"name": "noop"},
            "auto": {"tier": "balanced", "probes": 0},
            "guards": {"order": ["invariants", "spectral", "rmt", "variance", "invariants"]},
        },
    )
    dump_yaml(
        work / "invarlock_edit.yaml",
        {
            "edit": {
                "name": "quant_rtn",
                "plan": {
                    "bitwidth": 8,
                    "per_channel": True,
                    "clamp_ratio": 0.0,
                    "scope": "all",
                    "seed": 42,
                    "max_modules": 7 * layers,
                },
            }
        },
    )


def timed(command: list[str], env: dict[str, str], log_path: Path) -> tuple[float, int]:
    """Run ``command`` once; return (wall seconds, exit code); stdout and stderr go to ``log_path``."""
    with log_path.open("w", encoding="utf-8") as sink:
        begin = time.perf_counter()
        done = subprocess.run(command, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=log_path.parent)
        return time.perf_counter() - begin, done.returncode


def run_guardchain(model: Path, work: Path, index: int) -> dict[str, Any]:
    """One timed ``guardchain certify``; the ratio is ``primary_metric.final.ratio`` of certificate.json."""
    out = work / f"guardchain-{index}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    # the venv's own interpreter, not whatever `guardchain` is on PATH: the bench runs from `python` alone
    command = [sys.executable, "-m", "guardchain.core", "certify", "--baseline", str(model), "--edit", "quant_rtn"]
    command += ["--edit-config", "bits=8", "--no-cache"]  # both tools evaluate the baseline each time
    command += ["--profile", "dev", "--preset", str(work / "guardchain.yaml"), "--out", str(out), "--format", "json"]
    wall, code = timed(command, {**os.environ, **OFFLINE_ENV}, work / f"guardchain-{index}.log")
    cert_path = out / "certificate.json"
    ratio = None
    verdict = None
    modules = None
    if cert_path.exists():
        cert = json.loads(cert_path.read_text(encoding="utf-8"))
        ratio = float(cert["primary_metric"]["final"]["ratio"])
        modules = len(cert["edit"]["plan"]["details"].get("out_axis", {}))
        verdict = (
            cert.get("verdict", {}).get("status") if isinstance(cert.get("verdict"), dict) else cert.get("verdict")
        )
    return {
        "tool": "guardchain",
        "wall_s": wall,
        "exit_code": code,
        "ratio": ratio,
        "verdict": verdict,
        "edited_matrices": modules,
    }


def find_invarlock_cert(root: Path) -> dict[str, Any] | None:
    """The evaluation certificate (a JSON with ``primary_metric.ratio_vs_baseline``) under ``root``."""
    for path in sorted(root.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        metric = data.get("primary_metric") if isinstance(data, dict) else None
        if isinstance(metric, dict) and "ratio_vs_baseline" in metric:
            return data
    return None


def run_invarlock(exe: Path, model: Path, work: Path, index: int) -> dict[str, Any]:
    """One timed InvarLock ``certify``; the ratio is ``primary_metric.ratio_vs_baseline`` of its certificate."""
    out = work / f"invarlock-{index}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [str(exe), "certify", "--baseline", str(model), "--subject", str(model), "--adapter", "auto"]
    command += ["--profile", "ci", "--tier", "balanced", "--preset", str(work / "invarlock_preset.yaml")]
    command += ["--edit-config", str(work / "invarlock_edit.yaml"), "--out", str(out / "runs")]
    command += ["--cert-out", str(out / "cert")]
    env = {**os.environ, **OFFLINE_ENV, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    wall, code = timed(command, env, work / f"invarlock-{index}.log")
    cert = find_invarlock_cert(out / "cert") or find_invarlock_cert(out)
    ratio = None
    verdict = None
    modules = None
    if cert is not None:
        modules = len((cert.get("structure") or {}).get("bitwidths") or {})
        ratio = float(cert["primary_metric"]["ratio_vs_baseline"])
        validation = cert.get("validation") or {}
        verdict = "PASS" if validation and all(bool(v) for v in validation.values()) else "FAIL"
    return {
        "tool": "invarlock",
        "wall_s": wall,
        "exit_code": code,
        "ratio": ratio,
        "verdict": verdict,
        "edited_matrices": modules,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per tool, the wall-time ratio and the perplexity-ratio difference."""

    def pick(tool: str) -> list[dict[str, Any]]:
        return [r for r in runs if r["tool"] == tool]

    ours, theirs = pick("guardchain"), pick("invarlock")
    wall_ours = statistics.median(r["wall_s"] for r in ours)
    wall_theirs = statistics.median(r["wall_s"] for r in theirs)
    ratio_ours = next((r["ratio"] for r in ours if r["ratio"] is not None), None)
    ratio_theirs = next((r["ratio"] for r in theirs if r["ratio"] is not None), None)
    diff = None if ratio_ours is None or ratio_theirs is None else ratio_ours - ratio_theirs
    # Each interleaved pair ran back to back under about the same machine load, so the spread of the per-pair
    # ratios shows how much of the median ratio is load drift (the goal is still judged on the medians).
    by_index = {r["index"]: r for r in theirs}
    pair_ratios = [r["wall_s"] / by_index[r["index"]]["wall_s"] for r in ours if r["index"] in by_index]
    return {
        "wall_s": {"guardchain": wall_ours, "invarlock": wall_theirs},
        "wall_ratio_ours_over_theirs": wall_ours / wall_theirs,
        "pair_wall_ratios": pair_ratios,
        "ppl_ratio": {"guardchain": ratio_ours, "invarlock": ratio_theirs},
        "ppl_ratio_difference": diff,
        "goals": {
            "wall_at_most_half": wall_ours <= 0.5 * wall_theirs,
            "ratios_within_1e-3": diff is not None and abs(diff) <= 1e-3,
        },
    }


def table(runs: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The side-by-side table printed on stdout."""
    rows = [f"{'run':<14}{'wall s':>10}{'exit':>6}{'ppl ratio':>12}{'matrices':>10}  verdict"]
    for r in runs:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.6f}"
        rows.append(
            f"{r['tool'] + ' #' + str(r['index']):<14}{r['wall_s']:>10.1f}{r['exit_code']:>6}{ratio:>12}"
            f"{r['edited_matrices']!s:>10}  {r['verdict']}"
        )
    wall, ppl = summary["wall_s"], summary["ppl_ratio"]

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    rows += [
        "",
        f"{'':<28}{'guardchain':>12}{'InvarLock':>12}{'ours/theirs':>13}{'ours-theirs':>13}",
        f"{'median wall time (s)':<28}{wall['guardchain']:>12.1f}{wall['invarlock']:>12.1f}"
        f"{summary['wall_ratio_ours_over_theirs']:>13.3f}{'':>13}",
        "per-pair wall ratios (ours/theirs): " + " ".join(f"{x:.3f}" for x in summary["pair_wall_ratios"]),
        f"{'ppl ratio subject/baseline':<28}{fmt(ppl['guardchain'], '.6f'):>12}{fmt(ppl['invarlock'], '.6f'):>12}"
        f"{'':>13}{fmt(summary['ppl_ratio_difference'], '+.2e'):>13}",
        f"goals: wall <= 0.5x theirs: {summary['goals']['wall_at_most_half']}; "
        f"|ratio difference| <= 1e-3: {summary['goals']['ratios_within_1e-3']}",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Parse options, prepare model, windows and presets, run the interleaved pairs, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        choices=("tiny-llama", "smol"),
        default="tiny-llama",
        help="tiny-llama: random-init 4-layer LlamaForCausalLM (d 128, tiny GPT-2 BPE 4,096); "
        "smol: SmolLM2-135M (guardchain's dequantised safetensors cache)",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path("/tmp/bench-models"),
        help="where model directories are made; must not contain gpt/opt/phi/neox",
    )
    parser.add_argument("--pairs", type=int, default=2, help="interleaved (guardchain, InvarLock) pairs")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--n-preview", type=int, default=200, help="InvarLock's balanced floors need 200 + 200")
    parser.add_argument("--n-final", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="guardchain's seed (decides its window order)")
    args = parser.parse_args(argv)

    exe = ensure_invarlock()
    compile_guardchain()
    model = prepare_model(args.model, args.models_dir.resolve())
    work = RESULTS / f"work-{args.model}"
    work.mkdir(parents=True, exist_ok=True)
    windows = write_windows(model, args.seq_len, args.n_preview, args.n_final, args.seed, work)
    write_presets(model, windows, args.seq_len, args.n_preview, args.n_final, args.seed, work)
    log(f"model {model}, {windows['n']} windows of {args.seq_len} tokens, work dir {work}")

    runs: list[dict[str, Any]] = []
    for index in range(1, args.pairs + 1):
        for tool in ("guardchain", "invarlock"):
            log(f"{tool} #{index} ...")
            run = run_guardchain(model, work, index) if tool == "guardchain" else run_invarlock(exe, model, work, index)
            run["index"] = index
            runs.append(run)
            log(f"{tool} #{index}: {run['wall_s']:.1f} s, exit {run['exit_code']}, ratio {run['ratio']}")
    summary = summarise(runs)
    print(table(runs, summary))
    record = {
        "model": args.model,
        "model_dir": str(model),
        "seq_len": args.seq_len,
        "n_preview": args.n_preview,
        "n_final": args.n_final,
        "seed": args.seed,
        "cpu_count": os.cpu_count(),
        "runs": runs,
        "summary": summary,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "certify_vs_invarlock.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
