"""One tool on one problem, ``--calls`` times in one process; prints one JSON line.

Runs in the tool's own interpreter: the system Python for guardchain, a venv under ``.venvs/`` for each peer.
With ``--seeds`` the calls are repeated for every master seed in turn (one compilation serves them all); each
call's record carries its seed. Times only the library call (wall: ``perf_counter``; CPU: ``process_time`` of this
process, so inductor's compile subprocesses are not counted): call 1 includes any compilation, later calls are
warm. λ̂ is recomputed the same way for every tool from the library's own loss trace: draws only (steps ``burnin …
burnin+draws−1``), common L0 = the mean per-batch MSE over the 4 minibatches at w*, ddof 1; the library's own
value is reported beside it.

    python worker.py --tool canonical --config reduce-overhead --problem linreg --root results
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

if not hasattr(itertools, "batched"):  # canonical-interp 0.2.7 imports itertools.batched (Python 3.12+)

    def _batched(iterable: Any, n: int) -> Any:
        iterator = iter(iterable)
        while chunk := tuple(itertools.islice(iterator, n)):
            yield chunk

    itertools.batched = _batched  # type: ignore[attr-defined]

import numpy as np  # noqa: E402
import problems  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def _loader(x: torch.Tensor, y: torch.Tensor) -> torch.utils.data.DataLoader[Any]:
    dataset = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(dataset, batch_size=problems.BATCH, shuffle=False)


def run_guardchain(config: str, model: Any, x: Any, y: Any, common: dict[str, Any]) -> tuple[Any, float]:
    from guardchain.metrics.llc import estimate_llc

    result = estimate_llc(
        model,
        _loader(x, y),
        loss="mse",
        chains=common["chains"],
        draws=common["draws"],
        burnin=common["burnin"],
        epsilon=common["epsilon"],
        gamma=common["gamma"],
        nbeta=common["nbeta"],
        seed=common["seed"],
        compile=config.startswith("compiled"),
        mala_every=100 if config.endswith("diag") else 0,
    )
    return result.loss_trace[:, common["burnin"] :], result.llc_mean


def run_canonical(config: str, model: Any, x: Any, y: Any, common: dict[str, Any]) -> tuple[Any, float]:
    from canonical_interp import LLCEstimator

    estimator = LLCEstimator(
        draws=common["draws"],
        chains=common["chains"],
        burnin_steps=common["burnin"],
        learning_rate=common["epsilon"],
        localization=common["gamma"],
        nbeta=common["nbeta"],
    )
    compile_arg: bool | str = {"eager": False, "default": True, "reduce-overhead": "reduce-overhead"}[config]
    value = estimator.estimate_llc(
        model, _loader(x, y), criterion_fn=F.mse_loss, compile=compile_arg, seed=common["seed"], show_progress=False
    )
    return estimator.get_metrics()["losses"].numpy(), float(value)


def run_devinterp1(config: str, model: Any, x: Any, y: Any, common: dict[str, Any]) -> tuple[Any, float]:
    from devinterp.optim.sgld import SGLD
    from devinterp.slt.sampler import estimate_learning_coeff_with_summary

    def evaluate(m: Any, batch: Any) -> Any:
        return F.mse_loss(m(batch[0]), batch[1])

    summary = estimate_learning_coeff_with_summary(
        model,
        _loader(x, y),
        evaluate=evaluate,
        sampling_method=SGLD,
        optimizer_kwargs={"lr": common["epsilon"], "localization": common["gamma"], "nbeta": common["nbeta"]},
        num_draws=common["draws"],
        num_chains=common["chains"],
        num_burnin_steps=common["burnin"],
        num_steps_bw_draws=1,
        seed=common["seed"],
        device="cpu",
        verbose=False,
    )
    return np.asarray(summary["loss/trace"]), float(summary["llc/mean"])


def run_devinterp2(config: str, model: Any, x: Any, y: Any, common: dict[str, Any]) -> tuple[Any, float]:
    from datasets import Dataset
    from devinterp.slt.llc import llc

    ids = Dataset.from_dict({"input_ids": [[i, i] for i in range(problems.N)]}).with_format("torch")

    def loss_fn(m: Any, input_ids: Any) -> Any:  # rows are looked up by index: (batch, 1) per-sample MSE
        index = input_ids[:, 0]
        return ((m(x[index]) - y[index]) ** 2).mean(dim=1, keepdim=True)

    with tempfile.TemporaryDirectory() as tmp:
        out = llc(
            model,
            ids,
            {},
            lr=common["epsilon"],
            n_beta=common["nbeta"],
            loss_fn=loss_fn,
            num_chains=common["chains"],
            num_draws=common["draws"],
            batch_size=problems.BATCH,
            num_burnin_steps=common["burnin"],
            num_init_loss_batches=problems.N // problems.BATCH,
            init_seed=common["seed"],
            localization=common["gamma"],
            shuffle=False,
            output_path=str(Path(tmp) / "samples.zarr"),
        )
        trace = np.asarray(out["loss_trace"].values)
        value = float(out["llc_mean"].values)
    return trace[:, common["burnin"] :], value


RUNNERS = {
    "guardchain": run_guardchain,
    "canonical": run_canonical,
    "devinterp1": run_devinterp1,
    "devinterp2": run_devinterp2,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tool", choices=sorted(RUNNERS), required=True)
    parser.add_argument("--config", default="eager")
    parser.add_argument("--problem", choices=problems.PROBLEMS, required=True)
    parser.add_argument("--root", type=Path, default=HERE / "results")
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--burnin", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", help="several master seeds in turn (default: --seed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, x, y = problems.load(problems.problem_path(args.root, args.problem))
    l0 = problems.full_data_loss(model, x, y)
    common = {
        "chains": args.chains,
        "draws": args.draws,
        "burnin": args.burnin,
        "nbeta": problems.nbeta(),
        "seed": args.seed,
        **problems.SETTINGS[args.problem],
    }
    calls = []
    for seed in args.seeds or [args.seed]:
        common["seed"] = seed
        for _ in range(args.calls):
            wall, cpu = time.perf_counter(), time.process_time()
            draws, library_value = RUNNERS[args.tool](args.config, model, x, y, common)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            draws = np.asarray(draws, dtype=np.float64)
            per_chain = common["nbeta"] * (draws.mean(axis=1) - l0)
            std = float(per_chain.std(ddof=1))
            calls.append(
                {
                    "seed": seed,
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "llc_mean": float(per_chain.mean()),
                    "llc_std": std,
                    "llc_sem": std / math.sqrt(per_chain.size),
                    "llc_per_chain": [float(v) for v in per_chain],
                    "library_llc": library_value,
                    "draws_shape": list(draws.shape),
                }
            )
    common["seed"] = args.seeds or args.seed
    record = {
        "tool": args.tool,
        "config": args.config,
        "problem": args.problem,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "threads": args.threads,
        "settings": common,
        "l0": l0,
        "calls": calls,
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
