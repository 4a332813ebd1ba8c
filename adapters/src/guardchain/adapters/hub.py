"""The one place that downloads from the Hugging Face hub (only reached when ``GUARDCHAIN_ALLOW_NETWORK=1``).

Tests replace :func:`fetch_hub_model` (``monkeypatch.setattr(hub, "fetch_hub_model", ...)``) to point it at a local
``save_pretrained`` directory; :mod:`guardchain.adapters.loading` calls it through this module so that the
replacement is seen.
"""

from __future__ import annotations

from pathlib import Path

from guardchain.adapters.errors import HFErrorCode, hf_error

#: Files a checkpoint needs: configs, tokenizer files, safetensors weights (never pickles, unless no safetensors).
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "merges.txt", "vocab.*"]


def fetch_hub_model(repo_id: str, *, revision: str | None, cache_dir: Path) -> Path:
    """Download ``repo_id`` (at ``revision``) into ``cache_dir`` and return the local checkpoint directory.

    Downloads configs, tokenizer files and ``*.safetensors`` weights; only when a repository has no safetensors
    weights are ``*.bin`` files fetched (transformers then loads them with ``torch.load(weights_only=True)``).

    :param repo_id: hub id ``org/name``.
    :param revision: branch, tag or commit; ``None`` = the default branch.
    :param cache_dir: the hub cache directory (``<cache root>/hub``).
    :returns: the directory holding ``config.json`` and the weights (``.../snapshots/<commit>``).
    :raises GuardchainError: ``GC-HF-LOAD-FAILED`` when the hub cannot be reached or refuses the download (no
        connection, unknown repository or revision, gated model), with the cause attached.
    """
    try:
        from huggingface_hub import snapshot_download

        path = Path(
            snapshot_download(repo_id, revision=revision, cache_dir=str(cache_dir), allow_patterns=ALLOW_PATTERNS)
        )
        if not any(path.glob("*.safetensors")):
            path = Path(
                snapshot_download(
                    repo_id, revision=revision, cache_dir=str(cache_dir), allow_patterns=[*ALLOW_PATTERNS, "*.bin"]
                )
            )
    except Exception as exc:
        cause = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise hf_error(
            HFErrorCode.LOAD_FAILED,
            f"cannot download {repo_id!r}"
            + (f" at revision {revision!r}" if revision else "")
            + f" from the Hugging Face hub: {cause[:400]}",
            hint="network access is on (GUARDCHAIN_ALLOW_NETWORK); check the connection, the id and the revision, "
            "or pass a local save_pretrained directory",
            cause=exc,
        ) from exc
    return path
