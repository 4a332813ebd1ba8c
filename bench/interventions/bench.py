"""Per-call overhead of guardchain-interventions' collect, add and interchange vs a plain forward, pyvene, nnsight.

One worker process per peer runs, on the same model and batch, interleaved in rotating order over many repeats:
a plain forward, raw torch hooks (the floor), guardchain's calls and the peer's calls. Each worker runs inside the
peer's venv (``bench/interventions/.venvs/<peer>``, made by ``setup_venvs.sh``: CPU torch 2.13.0, transformers
5.23.0, the peer, and guardchain-core / -adapters / -interventions editable), so plain, ours and the peer share one
interpreter, one model object and one batch. The driver (this file without ``--worker``) prints a table and writes
``bench/interventions/results/overhead.json``.

Model: ``GPT2LMHeadModel(GPT2Config(n_layer=4, n_embd=256, n_head=4, vocab_size=8192))``, random init, seed 0, eval,
one torch thread, ``torch.set_grad_enabled(False)`` for every case. Site: block 2's output. Cases:

* ``collect_all`` every position, ``collect_last`` the last position (returned ``(B, P, D)``);
* ``add_last``: ``h[:, -1] += v``;
* ``interchange_last``: ``h_base[:, -1] = h_source[:, -1]`` (includes the source run).

Before timing, every case's result is checked against raw torch hooks: collected tensors equal, logits within 1e-5.

Usage::

    python3 bench/interventions/bench.py                       # both peers, shapes 1x16 and 8x128
    python3 bench/interventions/bench.py --peers pyvene --repeats 30 --shapes 8x128
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PEERS = ("pyvene", "nnsight")
LAYER = 2


# --------------------------------------------------------------------------------------------------------------
# worker (runs inside a peer's venv)
# --------------------------------------------------------------------------------------------------------------


def _build_model() -> Any:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=4, n_embd=256, n_head=4, vocab_size=8192, n_positions=256, bos_token_id=0, eos_token_id=0
    )
    return GPT2LMHeadModel(config).eval()


def _raw_cases(model: Any, ids: Any, src: Any, v: Any) -> dict[str, Callable[[], Any]]:
    """Plain forward and raw torch hooks: the ground truth and the floor."""
    block = model.transformer.h[LAYER]

    def plain() -> Any:
        return model(ids).logits

    def collect(last: bool) -> Callable[[], Any]:
        def run() -> Any:
            seen: dict[str, Any] = {}
            handle = block.register_forward_hook(
                lambda _m, _a, out: seen.__setitem__("x", (out[:, -1:] if last else out).clone())
            )
            try:
                model(ids)
            finally:
                handle.remove()
            return seen["x"]

        return run

    def add_last() -> Any:
        def hook(_m: Any, _a: Any, out: Any) -> Any:
            out = out.clone()
            out[:, -1] += v
            return out

        handle = block.register_forward_hook(hook)
        try:
            return model(ids).logits
        finally:
            handle.remove()

    def interchange_last() -> Any:
        seen: dict[str, Any] = {}
        handle = block.register_forward_hook(lambda _m, _a, out: seen.__setitem__("s", out[:, -1].clone()))
        try:
            model(src)
        finally:
            handle.remove()

        def hook(_m: Any, _a: Any, out: Any) -> Any:
            out = out.clone()
            out[:, -1] = seen["s"]
            return out

        handle = block.register_forward_hook(hook)
        try:
            return model(ids).logits
        finally:
            handle.remove()

    return {
        "plain": plain,
        "raw.collect_all": collect(False),
        "raw.collect_last": collect(True),
        "raw.add_last": add_last,
        "raw.interchange_last": interchange_last,
    }


def _our_cases(model: Any, ids: Any, src: Any, v: Any) -> dict[str, Callable[[], Any]]:
    from guardchain.adapters.adapters import GPT2Adapter
    from guardchain.core.handles import ModelHandle
    from guardchain.interventions import Add, Collect, Interchange, IntervenedModel, Units

    adapter = GPT2Adapter()
    handle = ModelHandle(model=model, adapter="hf_gpt2", ref="bench")
    site = f"blocks[{LAYER}].output"

    def collect(units: Any) -> Callable[[], Any]:
        collector = Collect()
        im = IntervenedModel.from_sites(adapter, handle, [(site, collector, units)])

        def run() -> Any:
            collector.clear()
            im(ids)
            return collector.last(site)

        return run

    add = IntervenedModel.from_sites(adapter, handle, [(site, Add(v), Units(positions=[-1]))])
    swap = IntervenedModel.from_sites(adapter, handle, [(site, Interchange(), Units(positions=[-1]))])
    return {
        "ours.collect_all": collect(Units()),
        "ours.collect_last": collect(Units(positions=[-1])),
        "ours.add_last": lambda: add(ids).logits,
        "ours.interchange_last": lambda: swap(ids, sources=[src]).logits,
    }


def _pyvene_cases(model: Any, ids: Any, src: Any, v: Any) -> dict[str, Callable[[], Any]]:
    import pyvene as pv

    batch, length = ids.shape

    def collect(locations: Any) -> Callable[[], Any]:
        config = {
            "layer": LAYER,
            "component": "block_output",
            "intervention": pv.CollectIntervention(keep_last_dim=True),
        }
        pvm = pv.IntervenableModel(config, model=model)

        def run() -> Any:
            return pvm(base={"input_ids": ids}, unit_locations={"base": locations})[0][-1][0]

        return run

    add = pv.IntervenableModel(
        {"layer": LAYER, "component": "block_output", "intervention_type": pv.AdditionIntervention}, model=model
    )
    swap = pv.IntervenableModel(
        {"layer": LAYER, "component": "block_output", "intervention_type": pv.VanillaIntervention}, model=model
    )
    last = length - 1
    return {
        "peer.collect_all": collect([[list(range(length))] * batch]),
        "peer.collect_last": collect(last),
        "peer.add_last": lambda: (
            add(base={"input_ids": ids}, unit_locations={"base": last}, source_representations=v)[1].logits
        ),
        "peer.interchange_last": lambda: (
            swap(base={"input_ids": ids}, sources=[{"input_ids": src}], unit_locations={"sources->base": last})[
                1
            ].logits
        ),
    }


def _nnsight_cases(model: Any, ids: Any, src: Any, v: Any) -> dict[str, Callable[[], Any]]:
    from nnsight import NNsight

    wrapped = NNsight(model)

    def collect_all() -> Any:
        with wrapped.trace(ids):
            out = wrapped.transformer.h[LAYER].output.save()
        return out

    def collect_last() -> Any:
        with wrapped.trace(ids):
            out = wrapped.transformer.h[LAYER].output[:, -1:].save()
        return out

    def add_last() -> Any:
        with wrapped.trace(ids):
            wrapped.transformer.h[LAYER].output[:, -1] += v
            logits = wrapped.output.logits.save()
        return logits

    def interchange_last() -> Any:
        # NNsight on a bare module cannot batch two invokes in one trace: a source trace, then a base trace.
        with wrapped.trace(src):
            source = wrapped.transformer.h[LAYER].output[:, -1].save()
        with wrapped.trace(ids):
            wrapped.transformer.h[LAYER].output[:, -1] = source
            logits = wrapped.output.logits.save()
        return logits

    return {
        "peer.collect_all": collect_all,
        "peer.collect_last": collect_last,
        "peer.add_last": add_last,
        "peer.interchange_last": interchange_last,
    }


def _check(cases: dict[str, Callable[[], Any]]) -> dict[str, str]:
    """Every case against the raw-hook ground truth: 'ok' or what differs."""
    import torch

    truth = {
        "collect_all": cases["raw.collect_all"](),
        "collect_last": cases["raw.collect_last"](),
        "add_last": cases["raw.add_last"](),
        "interchange_last": cases["raw.interchange_last"](),
    }
    verdicts: dict[str, str] = {}
    for name, run in cases.items():
        if name == "plain" or name.startswith("raw."):
            continue
        kind = name.split(".", 1)[1]
        try:
            got = run()
        except Exception as exc:  # a peer failing is a finding, not a crash of the bench
            verdicts[name] = f"raised {type(exc).__name__}: {exc}"[:200]
            continue
        expected = truth[kind]
        if tuple(got.shape) != tuple(expected.shape):
            verdicts[name] = f"shape {tuple(got.shape)} != {tuple(expected.shape)}"
        elif kind.startswith("collect"):
            verdicts[name] = "ok" if torch.equal(got, expected) else "values differ"
        else:
            diff = float((got - expected).abs().max())
            verdicts[name] = "ok" if diff <= 1e-5 else f"max |diff| {diff:.2e}"
    return verdicts


def _intrinsic(model: Any, ids: Any, v: Any, n: int = 300) -> dict[str, float]:
    """guardchain's own work per call, timed alone (median of ``n``): attaching and removing the hooks, and the
    hook callback on one site activation of this shape. Uses the private ``_hook`` of IntervenedModel."""
    import torch

    from guardchain.adapters.adapters import GPT2Adapter
    from guardchain.core.handles import ModelHandle
    from guardchain.interventions import Add, Collect, IntervenedModel, Units
    from guardchain.interventions.model import _Window

    handle = ModelHandle(model=model, adapter="hf_gpt2", ref="bench")
    activation = torch.randn(*ids.shape, 256)
    out: dict[str, float] = {}
    for label, intervention, units in (
        ("collect_all", Collect(), Units()),
        ("collect_last", Collect(), Units(positions=[-1])),
        ("add_last", Add(v), Units(positions=[-1])),
    ):
        im = IntervenedModel.from_sites(GPT2Adapter(), handle, [(f"blocks[{LAYER}].output", intervention, units)])
        callback = im._hook(im.bindings[0], None, _Window(None), "prompt")
        attach, hook = [], []
        for _ in range(n):
            t0 = time.perf_counter()
            im.attach().remove()
            t1 = time.perf_counter()
            callback(activation)
            t2 = time.perf_counter()
            attach.append((t1 - t0) * 1e3)
            hook.append((t2 - t1) * 1e3)
            if isinstance(intervention, Collect):
                intervention.clear()
        out[label] = statistics.median(attach) + statistics.median(hook)
    return out


def _summary(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median_ms": statistics.median(values), "p25_ms": q[0], "p75_ms": q[2], "min_ms": min(values)}


def worker(peer: str, shapes: list[tuple[int, int]], repeats: int, warmup: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    model = _build_model()
    out: dict[str, Any] = {"peer": peer, "versions": _versions(peer), "shapes": {}}
    for batch, length in shapes:
        generator = torch.Generator().manual_seed(batch * 1000 + length)
        ids = torch.randint(0, 8192, (batch, length), generator=generator)
        src = torch.randint(0, 8192, (batch, length), generator=generator)
        v = torch.randn(256, generator=generator)
        cases = _raw_cases(model, ids, src, v)
        cases.update(_our_cases(model, ids, src, v))
        cases.update(_pyvene_cases(model, ids, src, v) if peer == "pyvene" else _nnsight_cases(model, ids, src, v))
        verdicts = _check(cases)
        names = [n for n in cases if verdicts.get(n, "ok") == "ok" or n == "plain" or n.startswith("raw.")]
        wall: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        load_before = os.getloadavg()
        started = time.perf_counter()
        for r in range(warmup + repeats):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                c0, t0 = time.thread_time(), time.perf_counter()
                cases[name]()
                t1, c1 = time.perf_counter(), time.thread_time()
                if r >= warmup:
                    wall[name].append((t1 - t0) * 1e3)
                    cpu[name].append((c1 - c0) * 1e3)
        rows = {}
        for clock, times in (("cpu", cpu), ("wall", wall)):
            plain = times["plain"]
            for name, values in times.items():
                deltas = [t - p for t, p in zip(values, plain, strict=True)]
                rows.setdefault(name, {})[clock] = {
                    **_summary(values),
                    "delta_median_ms": statistics.median(deltas),
                    "delta_pct": 100 * statistics.median(deltas) / statistics.median(plain),
                    "ratio_of_medians": statistics.median(values) / statistics.median(plain),
                }
        out["shapes"][f"{batch}x{length}"] = {
            "repeats": repeats,
            "warmup": warmup,
            "checks": verdicts,
            "cases": rows,
            "intrinsic_ms": _intrinsic(model, ids, v),
            "cpu_ms": cpu,
            "wall_ms": wall,
            "wall_s": time.perf_counter() - started,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        }
    return out


def _versions(peer: str) -> dict[str, str]:
    from importlib.metadata import version

    names = ["torch", "transformers", "guardchain-interventions", "pyvene" if peer == "pyvene" else "nnsight"]
    return {n: version(n) for n in names}


# --------------------------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------------------------


def _venv_python(peer: str) -> Path | None:
    python = HERE / ".venvs" / peer / "bin" / "python"
    if not (HERE / ".venvs" / peer / ".ready").exists():
        done = subprocess.run(["bash", str(HERE / "setup_venvs.sh"), peer], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"[{peer}] venv setup failed; skipped:\n{done.stderr[-2000:]}", file=sys.stderr)
            return None
    return python


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| run | shape | case | CPU median ms (p25–p75) | CPU Δ ms | CPU Δ % | CPU Δ of minima % | wall median ms"
        " (p25–p75) | wall Δ ms | wall Δ % | check |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        peer = result["peer"]
        for shape, data in result["shapes"].items():
            for name, row in data["cases"].items():
                label = name.replace("peer.", f"{peer}.")
                check = "—" if name == "plain" or name.startswith("raw.") else data["checks"].get(name, "?")
                c, w = row["cpu"], row["wall"]
                plain_min = data["cases"]["plain"]["cpu"]["min_ms"]
                min_pct = 100 * (c["min_ms"] - plain_min) / plain_min
                lines.append(
                    f"| {peer} | {shape} | {label} | {c['median_ms']:.2f} ({c['p25_ms']:.2f}–{c['p75_ms']:.2f}) | "
                    f"{c['delta_median_ms']:+.2f} | {c['delta_pct']:+.1f} | {min_pct:+.1f} | {w['median_ms']:.2f} "
                    f"({w['p25_ms']:.2f}–{w['p75_ms']:.2f}) | {w['delta_median_ms']:+.2f} | {w['delta_pct']:+.1f} | "
                    f"{check} |"
                )
            for name, verdict in data["checks"].items():
                if verdict != "ok":
                    label = name.replace("peer.", f"{peer}.")
                    lines.append(f"| {peer} | {shape} | {label} | — | — | — | — | — | — | — | {verdict} |")
    return "\n".join(lines)


def _noise(results: list[dict[str, Any]]) -> str:
    out = []
    for result in results:
        for shape, data in result["shapes"].items():
            cpu, wall = data["cases"]["plain"]["cpu"], data["cases"]["plain"]["wall"]
            cpu_iqr = (cpu["p75_ms"] - cpu["p25_ms"]) / cpu["median_ms"] * 100
            wall_iqr = (wall["p75_ms"] - wall["p25_ms"]) / wall["median_ms"] * 100
            intrinsic = ", ".join(
                f"{k} {v * 1e3:.0f} µs ({100 * v / cpu['median_ms']:.3f}% of the plain forward)"
                for k, v in data["intrinsic_ms"].items()
            )
            out.append(
                f"{result['peer']} {shape}: plain forward CPU median {cpu['median_ms']:.2f} ms (IQR {cpu_iqr:.1f}%), "
                f"wall {wall['median_ms']:.2f} ms (IQR {wall_iqr:.1f}%); load average {data['loadavg_before'][0]:.2f}"
                f" -> {data['loadavg_after'][0]:.2f}; {data['repeats']} repeats in {data['wall_s']:.0f} s; "
                f"guardchain's own work per call (attach + hook + remove, timed alone): {intrinsic}"
            )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", nargs="+", default=list(PEERS), choices=PEERS)
    parser.add_argument("--shapes", nargs="+", default=["1x16", "8x128"], help="BATCHxTOKENS")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--worker", choices=PEERS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "overhead.json")
    parser.add_argument("--from-json", type=Path, help="print the tables of a saved run instead of measuring")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        print(_table(saved), _noise(saved), sep="\n\n")
        return 0
    shapes = [tuple(int(x) for x in s.lower().split("x")) for s in args.shapes]
    if args.worker:
        print(json.dumps(worker(args.worker, shapes, args.repeats, args.warmup)))  # type: ignore[arg-type]
        return 0
    results = []
    for peer in args.peers:
        python = _venv_python(peer)
        if python is None:
            continue
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        cmd = [str(python), str(Path(__file__).resolve()), "--worker", peer, "--repeats", str(args.repeats)]
        cmd += ["--warmup", str(args.warmup), "--shapes", *args.shapes]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        if done.returncode != 0:
            print(f"[{peer}] worker failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(_table(results))
    print()
    print(_noise(results))
    for result in results:
        print(f"{result['peer']} run versions: {result['versions']}")
    print(f"\nraw timings: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
