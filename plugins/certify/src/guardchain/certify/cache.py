"""The baseline cache: a baseline's per-window evaluation, stored once and reused by every certification against it.

A certification evaluates its baseline on the preview and final windows before anything else. Many
certifications share a baseline (a sweep over bits and group sizes, a re-run), so the results are cached,
**content-addressed**: the key is the SHA-256 of the canonical JSON of everything that decides the numbers
(:func:`cache_inputs`):

* the baseline's weights digest (``weights_sha256``) — not its name or path;
* the windows' digest (ids, splits and token ids: the dataset, its settings, the seed and the tokenizer
  together) — or, for a dataset whose result has no digest, its fingerprint with its name and settings;
* the adapter (qualified name, validated config) and the device it ran on; the metric (qualified name, its
  distribution's version) and its validated config per split; the seed;
* the versions of the libraries that change numbers: torch, transformers, tokenizers, numpy, guardchain-core,
  and the adapter's and the metric's distributions.

Two certifications that agree on all of it get bit-identical baseline results, so a cached result is exactly a
fresh one; the certificate records the key, its inputs and whether it was a hit (``baseline_cache``), and
``verify`` checks both alike.

Storage (``$GUARDCHAIN_CACHE_DIR``, default ``~/.cache/guardchain/baseline``)::

    entries/<key[:2]>/<key>.json    {"format", "key", "sha256" of the results, "results": {split: MetricResult}}
    locks/<key>.lock                held (flock) while one process evaluates that key

* **Atomic**: an entry is written to a temporary file in the same folder and renamed into place; a reader sees
  the whole entry or none. An entry that fails its own checksum or schema is treated as absent and removed.
* **Concurrent**: :meth:`BaselineCache.claim` takes an exclusive ``flock`` per key, so of several processes
  (sweep workers, Ray actors on one node, two shells) wanting the same baseline one evaluates and the others
  wait and read its entry. A process that dies releases its lock (the kernel drops it).
* **Bounded**: after each write, least-recently-used entries (by modification time, which every hit refreshes)
  are removed until the total is at most ``max_bytes`` (``$GUARDCHAIN_CACHE_MAX_MB``, default 512 MiB).
* **Shared**: processes on several machines share it through a shared folder (NFS, a mounted volume) given as
  ``$GUARDCHAIN_CACHE_DIR`` or ``--cache-dir``; ``flock`` over NFS needs NFSv4 (or lockd) to exclude.
* ``guardchain cache clear`` removes every entry; ``--no-cache`` bypasses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardchain.core.errors import ErrorCode, GuardchainError
from guardchain.core.files import write_atomic

ENV_DIR = "GUARDCHAIN_CACHE_DIR"
ENV_MAX_MB = "GUARDCHAIN_CACHE_MAX_MB"
DEFAULT_DIR = "~/.cache/guardchain/baseline"
DEFAULT_MAX_BYTES = 512 << 20
ENTRY_FORMAT = 1
#: An entry larger than this is not a baseline evaluation guardchain wrote (it is skipped, never parsed).
MAX_ENTRY_BYTES = 256 << 20


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, no NaN: the form the key and the checksums are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def cache_key(inputs: Mapping[str, Any]) -> str:
    """SHA-256 hex of :func:`canonical_json` of the key's inputs (see :func:`cache_inputs`)."""
    return hashlib.sha256(canonical_json(dict(inputs)).encode()).hexdigest()


def record_problems(record: Mapping[str, Any] | None, provenance: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What ``verify`` finds wrong with a certificate's ``baseline_cache`` record: ``(field, message)`` pairs.

    The key must be the SHA-256 of the recorded inputs, and the inputs must name the certificate's own baseline
    weights, windows and seed. A hit and a miss are checked alike: the per-window numbers are re-derived like any
    others, wherever they came from.
    """
    if record is None:
        return []
    out: list[tuple[str, str]] = []
    inputs = record.get("inputs") or {}
    try:
        fresh = cache_key(inputs)
    except (TypeError, ValueError):
        return [("baseline_cache.inputs", "cannot be written as canonical JSON")]
    if record.get("key") != fresh:
        out.append(("baseline_cache.key", "is not the SHA-256 of the recorded inputs"))
    baseline = provenance.get("baseline") or {}
    if inputs.get("weights_sha256") != baseline.get("weights_sha256"):
        out.append(("baseline_cache.inputs.weights_sha256", "is not the baseline's weights digest"))
    windows = (provenance.get("dataset") or {}).get("windows_digest")
    recorded = (inputs.get("data") or {}).get("windows_digest")
    if windows is not None and recorded != windows:
        out.append(("baseline_cache.inputs.data.windows_digest", "is not the digest of the certificate's windows"))
    seeds = provenance.get("seeds") or {}
    if "windows" in seeds and inputs.get("seed") != seeds["windows"]:
        out.append(("baseline_cache.inputs.seed", "is not the run's seed"))
    return out


@dataclass(frozen=True)
class CacheInfo:
    """What a cache holds: ``entries`` files, ``bytes`` in total, under ``root``, bounded by ``max_bytes``."""

    root: Path
    entries: int
    bytes: int
    max_bytes: int


@dataclass(frozen=True)
class BaselineCache:
    """A cache folder (see the module docstring).

    :ivar root: the folder (created on first write).
    :ivar max_bytes: bound on the entries' total size; least-recently-used entries go first.
    """

    root: Path
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_env(
        cls, directory: str | Path | None = None, max_bytes: int | None = None, environ: Mapping[str, str] | None = None
    ) -> BaselineCache:
        """``directory``, else ``$GUARDCHAIN_CACHE_DIR``, else ``~/.cache/guardchain/baseline``; the bound is
        ``max_bytes``, else ``$GUARDCHAIN_CACHE_MAX_MB`` MiB, else 512 MiB.

        :raises GuardchainError: ``GC-CONFIG-VALUE`` for a ``$GUARDCHAIN_CACHE_MAX_MB`` that is not a positive
            integer.
        """
        env = os.environ if environ is None else environ
        root = Path(str(directory or env.get(ENV_DIR) or DEFAULT_DIR)).expanduser()
        if max_bytes is None:
            raw = env.get(ENV_MAX_MB, "").strip()
            if raw:
                if not raw.isdigit() or int(raw) <= 0:
                    raise GuardchainError.single(
                        ErrorCode.CONFIG_VALUE,
                        f"${ENV_MAX_MB} is {raw!r}, not a positive whole number of MiB",
                        path=ENV_MAX_MB,
                    )
                max_bytes = int(raw) << 20
            else:
                max_bytes = DEFAULT_MAX_BYTES
        return cls(root.absolute(), max_bytes)

    # -- entries ------------------------------------------------------------------------------------------------

    def entry_path(self, key: str) -> Path:
        """Where the entry of ``key`` lives."""
        _check_key(key)
        return self.root / "entries" / key[:2] / f"{key}.json"

    @contextlib.contextmanager
    def claim(self, key: str) -> Iterator[None]:
        """Hold the exclusive lock of ``key`` (blocking) for the block: evaluate-then-store happens once.

        :raises GuardchainError: ``GC-OUTPUT-WRITE`` when the cache folder cannot be created.
        """
        _check_key(key)
        locks = self.root / "locks"
        try:
            locks.mkdir(parents=True, exist_ok=True)
            fd = os.open(locks / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise GuardchainError.single(
                ErrorCode.OUTPUT_WRITE,
                f"cannot use the baseline cache {str(self.root)!r}: {exc}",
                hint=f"set ${ENV_DIR} to a writable folder, or run with --no-cache",
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached results of ``key`` (``{split: MetricResult as JSON}``), or ``None``.

        A hit refreshes the entry's modification time (its place in the LRU order). An entry that is unreadable,
        oversized, of another format or key, or whose checksum disagrees is removed and reported as a miss.
        """
        path = self.entry_path(key)
        try:
            if path.stat().st_size > MAX_ENTRY_BYTES:
                raise ValueError("oversized")
            data = json.loads(path.read_text(encoding="utf-8"))
            results = data["results"]
            if (
                data.get("format") != ENTRY_FORMAT
                or data.get("key") != key
                or not isinstance(results, dict)
                or hashlib.sha256(canonical_json(results).encode()).hexdigest() != data.get("sha256")
            ):
                raise ValueError("not an entry of this key")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)
        return results

    def put(self, key: str, results: Mapping[str, Any]) -> bool:
        """Store ``results`` under ``key`` atomically, then evict down to the bound.

        :returns: whether the entry was written (values JSON cannot hold, such as NaN, are never cached; a full
            or read-only disk is not an error: the certification goes on without the cache).
        """
        path = self.entry_path(key)
        try:
            body = canonical_json(dict(results))
        except (TypeError, ValueError):
            return False
        payload = {
            "format": ENTRY_FORMAT,
            "key": key,
            "sha256": hashlib.sha256(body.encode()).hexdigest(),
            "results": json.loads(body),
        }
        try:
            write_atomic(path, (json.dumps(payload, sort_keys=True) + "\n").encode())
        except GuardchainError:  # a cache that cannot be written is a cache miss next time, never a failure
            return False
        self.evict()
        return True

    def evict(self) -> int:
        """Remove least-recently-used entries until the total is at most ``max_bytes``; returns how many went."""
        entries = self._entries()
        total = sum(size for _, size, _ in entries)
        removed = 0
        for path, size, _ in sorted(entries, key=lambda e: e[2]):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
            total -= size
        return removed

    def clear(self) -> CacheInfo:
        """Remove every entry (and idle lock files); returns what was there."""
        before = self.info()
        for path, _, _ in self._entries():
            path.unlink(missing_ok=True)
        for folder in (self.root / "entries", self.root / "locks"):
            if not folder.is_dir():
                continue
            for item in sorted(folder.rglob("*"), key=lambda p: -len(p.parts)):
                if item.is_dir():
                    with contextlib.suppress(OSError):
                        item.rmdir()
                elif item.suffix == ".lock":
                    _remove_idle_lock(item)
        return before

    def info(self) -> CacheInfo:
        """Entries and bytes now in the cache."""
        entries = self._entries()
        return CacheInfo(self.root, len(entries), sum(size for _, size, _ in entries), self.max_bytes)

    def _entries(self) -> list[tuple[Path, int, float]]:
        folder = self.root / "entries"
        out: list[tuple[Path, int, float]] = []
        if not folder.is_dir():
            return out
        for path in folder.glob("*/*.json"):
            try:
                stat = path.stat()
            except OSError:
                continue  # removed by another process meanwhile
            out.append((path, stat.st_size, stat.st_mtime))
        return out


def _check_key(key: str) -> None:
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(f"{key!r} is not a SHA-256 hex key")


def _remove_idle_lock(path: Path) -> None:
    """Remove a lock file nobody holds (a held one stays: its holder is evaluating)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path.unlink(missing_ok=True)
    except OSError:
        pass
    finally:
        os.close(fd)
