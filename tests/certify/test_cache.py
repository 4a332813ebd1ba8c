"""The baseline cache: content-addressed, atomic, safe under concurrent processes, bounded (LRU), clearable; a
certification that reads its baseline from it gives the same numbers as one that evaluates it, and ``verify``
treats both alike."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from guardchain.certify.baseline import BaselineSlot
from guardchain.certify.cache import BaselineCache, cache_key
from guardchain.certify.certificate import body_digest, leaf_digests
from guardchain.certify.pipeline import certify
from guardchain.certify.request import CertifyPreset, CertifyRequest
from guardchain.certify.verify import verify_certificate
from guardchain.core.errors import GuardchainError
from guardchain.core.registry import Registry

pytestmark = pytest.mark.members

KEY = "a" * 64
VOLATILE = {"run_id", "created_at", "timing", "digest", "leaf_digests", "baseline_cache"}


def stable(certificate: Any) -> dict[str, Any]:
    data = certificate.model_dump(mode="json")
    out = {k: v for k, v in data.items() if k not in VOLATILE}
    if out.get("guard_overhead"):
        out["guard_overhead"] = {
            k: v for k, v in out["guard_overhead"].items() if k not in ("guard_time_s", "guard_share")
        }
    return out


def reseal(data: dict[str, Any]) -> dict[str, Any]:
    data["digest"] = body_digest(data)
    data["leaf_digests"] = leaf_digests(data)
    return data


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


# -- the store ---------------------------------------------------------------------------------------------------


def test_an_entry_round_trips_and_a_damaged_one_is_a_miss_and_removed(tmp_path: Path) -> None:
    cache = BaselineCache(tmp_path)
    results = {"final": {"metric": "ppl", "value": 12.5, "per_unit": [2.5, 2.6]}}
    assert cache.get(KEY) is None
    assert cache.put(KEY, results) and cache.get(KEY) == results
    path = cache.entry_path(KEY)
    assert path.parent.parent.name == "entries" and not list(path.parent.glob(".*"))  # no temporary file left
    path.write_text(path.read_text().replace("12.5", "13.5"))  # the checksum no longer holds
    assert cache.get(KEY) is None and not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert cache.get(KEY) is None and not path.exists()
    assert not cache.put(KEY, {"final": {"value": float("nan")}})  # never cached: JSON cannot hold it
    with pytest.raises(ValueError):
        cache.entry_path("../../etc/passwd")


def test_the_cache_is_bounded_and_evicts_the_least_recently_used(tmp_path: Path) -> None:
    payload = {"final": {"per_unit": [0.1] * 200}}
    probe = BaselineCache(tmp_path / "probe")
    probe.put(KEY, payload)
    size = probe.info().bytes
    cache = BaselineCache(tmp_path / "cache", max_bytes=int(size * 2.5))
    first, second, third = ("1" * 64, "2" * 64, "3" * 64)
    cache.put(first, payload)
    cache.put(second, payload)
    os.utime(cache.entry_path(first), (1_000_000, 1_000_000))
    os.utime(cache.entry_path(second), (1_000_100, 1_000_100))
    assert cache.get(first) is not None  # a hit makes it the most recently used
    cache.put(third, payload)
    assert cache.get(second) is None  # the least recently used went
    assert cache.get(first) is not None and cache.get(third) is not None
    assert cache.info().bytes <= cache.max_bytes and cache.info().entries == 2
    cleared = cache.clear()
    assert cleared.entries == 2 and cache.info().entries == 0


def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    cache = BaselineCache.from_env(environ={"GUARDCHAIN_CACHE_DIR": str(tmp_path), "GUARDCHAIN_CACHE_MAX_MB": "3"})
    assert cache.root == tmp_path and cache.max_bytes == 3 << 20
    assert BaselineCache.from_env(environ={}).root == Path("~/.cache/guardchain/baseline").expanduser()
    with pytest.raises(GuardchainError) as caught:
        BaselineCache.from_env(environ={"GUARDCHAIN_CACHE_MAX_MB": "lots"})
    assert caught.value.code == "GC-CONFIG-VALUE"


def test_concurrent_processes_evaluate_a_key_once_and_all_read_it(tmp_path: Path) -> None:
    """Four processes start together; under the key's lock each evaluates only when the entry is absent."""
    code = textwrap.dedent(
        f"""
        import json, sys, time
        from pathlib import Path
        from guardchain.certify.cache import BaselineCache
        cache = BaselineCache(Path({str(tmp_path / "cache")!r}))
        with cache.claim({KEY!r}):
            found = cache.get({KEY!r})
            if found is None:
                with open({str(tmp_path / "evaluations")!r}, "a") as log:
                    log.write(sys.argv[1] + "\\n")
                time.sleep(0.5)
                found = {{"final": {{"value": 7.25, "by": sys.argv[1]}}}}
                cache.put({KEY!r}, found)
        print(json.dumps(found))
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, str(i)], stdout=subprocess.PIPE, text=True) for i in range(4)
    ]
    outputs = [json.loads(p.communicate(timeout=120)[0]) for p in processes]
    assert all(p.returncode == 0 for p in processes)
    evaluations = (tmp_path / "evaluations").read_text().split()
    assert len(evaluations) == 1
    assert outputs == [{"final": {"value": 7.25, "by": evaluations[0]}}] * 4


def test_the_cache_commands(tmp_path: Path) -> None:
    env = {**os.environ, "GUARDCHAIN_CACHE_DIR": str(tmp_path)}
    BaselineCache(tmp_path).put(KEY, {"final": {"value": 1.0}})

    def run(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "guardchain.core", "cache", *args]
        return subprocess.run(command, capture_output=True, text=True, env={**env, **(extra or {})}, timeout=120)

    info = run("info")
    assert info.returncode == 0 and f"{tmp_path}: 1 entry" in info.stdout
    cleared = run("clear")
    assert cleared.returncode == 0 and "removed 1 entry" in cleared.stdout
    assert BaselineCache(tmp_path).info().entries == 0
    bad = run("info", extra={"GUARDCHAIN_CACHE_MAX_MB": "-1"})
    assert bad.returncode == 2 and "GC-CONFIG-VALUE" in bad.stderr and "Traceback" not in bad.stderr


# -- certifications ----------------------------------------------------------------------------------------------


def request(out: Path, **preset: Any) -> CertifyRequest:
    return CertifyRequest(baseline="tiny-gpt2", preset=CertifyPreset(**{"edit_config": {"bits": 4}, **preset}), out=out)


@pytest.fixture(scope="module")
def certified(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("cached")
    cache = BaselineCache(root / "cache")
    return {
        "fresh": certify(request(root / "fresh"), registry),
        "miss": certify(request(root / "miss"), registry, cache=cache),
        "hit": certify(request(root / "hit"), registry, cache=cache),
        "cache": cache,
        "root": root,
    }


def test_a_cached_baseline_gives_the_same_certificate_numbers_and_says_so(certified, registry) -> None:
    fresh, miss, hit = certified["fresh"], certified["miss"], certified["hit"]
    assert fresh.baseline_cache is None
    assert miss.baseline_cache.hit is False and hit.baseline_cache.hit is True
    assert miss.baseline_cache.key == hit.baseline_cache.key == cache_key(hit.baseline_cache.inputs)
    assert stable(fresh) == stable(miss) == stable(hit)
    assert "baseline_eval_s" in hit.timing
    for certificate in (fresh, miss, hit):
        result = verify_certificate(certificate.model_dump(mode="json"), registry=registry)
        assert result.mismatches == [] and result.unchecked == []
    inputs = hit.baseline_cache.inputs
    assert inputs["weights_sha256"] == hit.provenance.baseline["weights_sha256"]
    assert inputs["data"]["windows_digest"] == hit.provenance.dataset["windows_digest"]
    assert {"torch", "transformers", "guardchain-core", "guardchain-metrics", "guardchain-adapters"} <= set(
        inputs["libraries"]
    )
    assert certified["cache"].info().entries == 1


def test_verify_checks_the_cache_record_against_the_certificate(certified, registry) -> None:
    data = certified["hit"].model_dump(mode="json")
    flipped = copy.deepcopy(data)
    flipped["baseline_cache"]["hit"] = False  # cached or fresh: the same numbers, so a resealed flip is consistent
    assert verify_certificate(reseal(flipped), registry=registry).mismatches == []
    unsealed = copy.deepcopy(data)
    unsealed["baseline_cache"]["hit"] = False
    assert "baseline_cache.hit" in {m.field for m in verify_certificate(unsealed, registry=registry).mismatches}
    forged = copy.deepcopy(data)
    forged["baseline_cache"]["inputs"]["weights_sha256"] = "0" * 64
    fields = {m.field for m in verify_certificate(reseal(forged), registry=registry).mismatches}
    assert {"baseline_cache.key", "baseline_cache.inputs.weights_sha256"} <= fields
    other = copy.deepcopy(data)
    other["baseline_cache"]["inputs"]["data"]["windows_digest"] = "1" * 64
    other["baseline_cache"]["key"] = cache_key(other["baseline_cache"]["inputs"])
    fields = {m.field for m in verify_certificate(reseal(other), registry=registry).mismatches}
    assert fields == {"baseline_cache.inputs.data.windows_digest"}


def test_what_changes_the_numbers_changes_the_key(certified, registry) -> None:
    root, cache = certified["root"], certified["cache"]
    for name, preset in (
        ("batch", {"metric_config": {"batch_size": 4}}),
        ("seed", {"seed": 1}),
        ("windows", {"dataset_config": {"seq_len": 64}}),
    ):
        certificate = certify(request(root / name, **preset), registry, cache=cache)
        assert certificate.baseline_cache is not None and certificate.baseline_cache.hit is False, name
        assert certificate.baseline_cache.key != certified["hit"].baseline_cache.key


def test_a_slot_keeps_one_baseline_loaded_and_restores_it_between_certifications(certified, registry, tmp_path) -> None:
    slot = BaselineSlot()
    pass8 = certify(request(tmp_path / "a", edit_config={"bits": 8}), registry, slot=slot)
    kept = slot.loaded
    assert kept is not None and pass8.verdict == "PASS" and not pass8.rolled_back  # restored though it passed
    assert kept.adapter.weights_digest(kept.handle) == kept.handle.provenance["weights_sha256"]
    fail4 = certify(request(tmp_path / "b"), registry, slot=slot)
    assert slot.loaded is kept and slot.loads == 1  # the same model object, loaded once
    assert stable(fail4) == stable(certified["fresh"])  # the same numbers as a certification that loaded it
    other = certify(request(tmp_path / "c", seed=3), registry, slot=slot)
    assert slot.loads == 2 and slot.loaded is not kept and other.provenance.seeds["python"] == 3
