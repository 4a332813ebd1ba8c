"""Issue 15 as a careless or hostile user would meet it: output folders, locks, keys, tampered certificates and
malformed input never lose the user's files, never pass a forgery, never crash with a verdict's exit code."""

from __future__ import annotations

import copy
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from guardchain.certify.certificate import body_digest, leaf_digests
from guardchain.certify.pipeline import certify
from guardchain.certify.request import CertifyPreset, CertifyRequest
from guardchain.certify.verify import verify_certificate
from guardchain.core.errors import GuardchainError
from guardchain.core.registry import Registry

pytestmark = pytest.mark.members


def guardchain(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardchain.core", *args], capture_output=True, text=True, timeout=timeout
    )


def request(out: Path, **preset: object) -> CertifyRequest:
    return CertifyRequest(baseline="tiny-gpt2", preset=CertifyPreset(**{"guards": [], **preset}), out=out)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


@pytest.fixture(scope="module")
def certified(tmp_path_factory, registry) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("hardening") / "cert"
    certify(request(out), registry)
    return out, json.loads((out / "certificate.json").read_text())


def reseal(data: dict) -> dict:
    data["digest"] = body_digest(data)
    data["leaf_digests"] = leaf_digests(data)
    return data


# -- data loss --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["notes.txt", "config.json"])
def test_a_folder_guardchain_does_not_own_is_refused_and_left_untouched(tmp_path, registry, content):
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / content).write_text("the user's own file")
    with pytest.raises(GuardchainError) as caught:
        certify(request(folder), registry)
    assert caught.value.code == "GC-CERT-OUT-NOT-OURS"
    assert sorted(p.name for p in folder.iterdir()) == [content]
    assert (folder / content).read_text() == "the user's own file"


def test_the_cli_refuses_a_model_folder_as_out_with_exit_2(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(b"\0" * 16)
    done = guardchain("certify", "--baseline", "tiny-gpt2", "--out", str(folder))
    assert done.returncode == 2 and "GC-CERT-OUT-NOT-OURS" in done.stderr and "Traceback" not in done.stderr
    assert [p.name for p in folder.iterdir()] == ["weights.safetensors"]


def test_rerunning_into_a_certification_folder_replaces_only_guardchains_files(tmp_path, registry):
    out = tmp_path / "run"
    certify(request(out), registry)
    (out / "my-notes.md").write_text("kept")
    (out / "artifacts").mkdir()
    (out / "artifacts" / "mine.txt").write_text("kept too")
    first = json.loads((out / "certificate.json").read_text())["run_id"]
    certify(request(out), registry)
    assert json.loads((out / "certificate.json").read_text())["run_id"] != first
    assert (out / "my-notes.md").read_text() == "kept"
    assert (out / "artifacts" / "mine.txt").read_text() == "kept too"


def test_a_failed_run_never_leaves_the_previous_certificate_behind(tmp_path, registry):
    out = tmp_path / "run"
    certify(request(out), registry)
    assert (out / "certificate.json").exists()
    bad = request(out, edit_config={"scope": ["nowhere.at.all"]})  # fails in the edit's plan, after loading
    with pytest.raises(GuardchainError):
        certify(bad, registry)
    assert not (out / "certificate.json").exists() and not (out / "certificate.md").exists()
    failure = json.loads((out / "failure.json").read_text())
    assert failure["problems"][0]["code"] == "GC-EDIT-SCOPE-UNKNOWN"


def test_a_failed_run_in_a_new_folder_leaves_nothing(tmp_path, registry):
    out = tmp_path / "new"
    with pytest.raises(GuardchainError):
        certify(request(out, edit_config={"scope": ["nowhere.at.all"]}), registry)
    assert not out.exists()


def test_a_second_run_on_a_locked_folder_fails_fast(tmp_path, registry):
    out = tmp_path / "run"
    certify(request(out), registry)
    fd = os.open(out / ".guardchain" / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds it
        with pytest.raises(GuardchainError) as caught:
            certify(request(out), registry)
        assert caught.value.code == "GC-CERT-OUT-LOCKED"
        assert (out / "certificate.json").exists()  # the holder's files are untouched
    finally:
        os.close(fd)


# -- keys -------------------------------------------------------------------------------------------------------


def _keys(tmp_path: Path) -> dict[str, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    ed = ed25519.Ed25519PrivateKey.generate()
    pkcs8, pem = serialization.PrivateFormat.PKCS8, serialization.Encoding.PEM
    files = {
        "good": ed.private_bytes(pem, pkcs8, serialization.NoEncryption()),
        "public": ed.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
        "encrypted": ed.private_bytes(pem, pkcs8, serialization.BestAvailableEncryption(b"secret")),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
            pem, pkcs8, serialization.NoEncryption()
        ),
        "garbage": b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    }
    out = {}
    for name, data in files.items():
        out[name] = tmp_path / f"{name}.pem"
        out[name].write_bytes(data)
    return out


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("garbage", "GC-CERT-KEY-INVALID"),
        ("rsa", "GC-CERT-KEY-TYPE"),
        ("encrypted", "GC-CERT-KEY-ENCRYPTED"),
        ("public", "GC-CERT-KEY-INVALID"),
        ("missing", "GC-CERT-KEY-NOT-FOUND"),
    ],
)
def test_a_bad_signing_key_is_refused_before_any_model_loads(tmp_path, key, code):
    keys = _keys(tmp_path)
    path = keys.get(key, tmp_path / "missing.pem")
    out = tmp_path / "out"
    done = guardchain("certify", "--baseline", "tiny-gpt2", "--out", str(out), "--sign", str(path))
    assert done.returncode == 2 and code in done.stderr, done.stderr[-2000:]
    assert "loading baseline" not in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_verify_refuses_a_private_key_as_pubkey_and_names_a_missing_file(tmp_path, certified):
    keys = _keys(tmp_path)
    out, _ = certified
    private = guardchain("verify", str(out), "--pubkey", str(keys["good"]))
    assert private.returncode == 2 and "GC-CERT-KEY-PRIVATE" in private.stderr
    missing = guardchain("verify", str(out), "--pubkey", str(tmp_path / "nope.pub"))
    assert missing.returncode == 2 and "GC-CERT-KEY-NOT-FOUND" in missing.stderr and "not found" in missing.stderr


def test_a_signature_is_intact_only_when_checked_and_cannot_be_stripped_or_replaced(tmp_path, registry):
    from guardchain.certify.signing import load_public_key, load_signing_key

    keys = _keys(tmp_path)
    out = tmp_path / "signed"
    certify(request(out), registry, signing_key=load_signing_key(keys["good"]))
    data = json.loads((out / "certificate.json").read_text())
    trusted = load_public_key(str(keys["public"]))
    checked = verify_certificate(data, public_key_hex=trusted)
    assert checked.mismatches == [] and checked.signature == "verified"
    unchecked = verify_certificate(data)
    assert unchecked.mismatches == [] and unchecked.signature == "unchecked" and unchecked.unchecked
    done = guardchain("verify", str(out))
    assert done.returncode == 2 and "signature present, not checked" in done.stdout and "intact" not in done.stdout
    assert guardchain("verify", str(out), "--accept-unchecked").returncode == 0
    stripped = copy.deepcopy(data)
    stripped["signature"] = None
    assert any(m.field == "signature" for m in verify_certificate(stripped).mismatches)
    (tmp_path / "other").mkdir()
    other = load_signing_key(_keys(tmp_path / "other")["good"])
    resigned = copy.deepcopy(data)
    resigned["signed_by"] = other.public_hex
    reseal(resigned)
    value = other.sign(resigned["digest"])
    resigned["signature"] = {"algorithm": "ed25519", "public_key": other.public_hex, "value": value}
    assert verify_certificate(resigned, public_key_hex=trusted).mismatches  # another key than the trusted one
    assert verify_certificate(resigned).signature == "unchecked"  # consistent, but never "verified"


# -- verify trusts nothing it can recompute ------------------------------------------------------------------------


def test_a_fail_turned_into_pass_is_caught(tmp_path, registry):
    out = tmp_path / "fail"
    certify(request(out, edit_config={"bits": 2}, seed=0), registry)  # tiny GPT-2 at 2 bits fails its ratio gate
    data = json.loads((out / "certificate.json").read_text())
    assert data["verdict"] == "FAIL"
    forged = copy.deepcopy(data)
    forged["verdict"], forged["rolled_back"] = "PASS", False
    for gate in forged["gates"]:
        gate["passed"] = True
    fields = {m.field for m in verify_certificate(reseal(forged)).mismatches}
    assert "verdict" in fields and any(f.endswith(".passed") for f in fields)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("primary_metric", "ci_half_width_log"), 0.0001),
        (("primary_metric", "n_final_for_target"), 16),
        (("provenance", "seeds", "torch"), 7),
        (("provenance", "dataset", "config", "n_final"), 99),
        (("edit", "config", "bits"), 4),
    ],
)
def test_derived_fields_are_recomputed_not_trusted(certified, where, value):
    _, data = certified
    forged = copy.deepcopy(data)
    target = forged
    for key in where[:-1]:
        target = target[key]
    if target[where[-1]] == value:
        value = value + 1
    target[where[-1]] = value
    mismatches = verify_certificate(reseal(forged)).mismatches
    assert mismatches, where


def test_weakening_the_policy_is_caught(certified):
    _, data = certified
    forged = copy.deepcopy(data)
    forged["policy"]["guard_chain"] = "tier"  # claims the tier's guards, lists none
    fields = {m.field for m in verify_certificate(reseal(forged)).mismatches}
    assert "policy.guard_chain" in fields or "policy.guards" in fields


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["primary_metric"]["final"]["subject"]["per_unit"].__setitem__(0, float("nan")),
        lambda d: d["primary_metric"]["final"]["subject"]["per_unit"].__setitem__(0, 1e308),
        lambda d: next(g for g in d["gates"] if g["comparison"] == "within").__setitem__("threshold", [0.9]),
        lambda d: next(g for g in d["gates"] if g["comparison"] == "le").__setitem__("measured", "big"),
        lambda d: d["primary_metric"]["bootstrap"].__setitem__("n_resamples", 10**9),
        lambda d: d["policy"]["sizes"].__setitem__("n_resamples", 10**9),
    ],
    ids=["nan", "huge", "one-element-threshold", "string-measurement", "huge-resamples", "huge-policy-resamples"],
)
def test_malformed_values_are_mismatches_never_crashes(tmp_path, certified, tamper):
    _, data = certified
    forged = copy.deepcopy(data)
    tamper(forged)
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    done = guardchain("verify", str(path), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_unreadable_certificates_exit_2_with_a_code(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)
    for path in (deep, tmp_path / "missing.json"):
        done = guardchain("verify", str(path))
        assert done.returncode == 2 and "GC-CERT-UNREADABLE" in done.stderr and "Traceback" not in done.stderr
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps({"schema_version": 1}))
    done = guardchain("verify", str(v1))
    assert done.returncode == 2 and "schema_version" in done.stdout


def test_bad_cli_input_is_a_coded_error(tmp_path):
    deep = "bits=" + "[" * 3000 + "]" * 3000
    for args in (["--edit-config", deep], ["--edit", ""], ["--edit-config", "novalue"]):
        done = guardchain("certify", "--baseline", "tiny-gpt2", "--out", str(tmp_path / "o"), *args)
        assert done.returncode == 2 and "GC-" in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
        assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def failing(tmp_path_factory, registry) -> dict:
    """A FAIL certificate with the tier's guard chain: tiny GPT-2 at 2 bits, conservative tier (guards fail)."""
    out = tmp_path_factory.mktemp("failing") / "cert"
    req = CertifyRequest(
        baseline="tiny-gpt2", tier="conservative", preset=CertifyPreset(edit_config={"bits": 2}), out=out
    )
    cert = certify(req, registry)
    assert cert.verdict == "FAIL" and any(g["status"] == "fail" for g in cert.guards)
    data = json.loads((out / "certificate.json").read_text())
    assert verify_certificate(data, registry=registry).mismatches == []
    return data


def _as_pass(data: dict) -> dict:
    forged = copy.deepcopy(data)
    forged["verdict"], forged["rolled_back"] = "PASS", False
    for gate in forged["gates"]:
        gate["passed"] = True
    return forged


def test_guard_statuses_set_to_pass_are_re_derived_from_their_measurements(failing, registry):
    forged = _as_pass(failing)
    for report in forged["guards"]:
        report["status"] = "pass"
    for gate in forged["gates"]:
        if gate["name"].startswith("guard:"):
            gate["measured"] = "pass"
    fields = {m.field for m in verify_certificate(reseal(forged), registry=registry).mismatches}
    assert any(f.startswith("guards[") and f.endswith(".status") for f in fields), fields


def test_dropping_the_guard_gates_is_caught(failing, registry):
    forged = _as_pass(failing)
    forged["gates"] = [g for g in forged["gates"] if not g["name"].startswith("guard:")]
    messages = [m.render() for m in verify_certificate(reseal(forged), registry=registry).mismatches]
    assert any("gate is missing" in m for m in messages), messages


def test_switching_failing_guards_to_monitor_mode_is_caught(failing, registry):
    forged = _as_pass(failing)
    for index, report in enumerate(forged["guards"]):
        if report["status"] == "fail":
            report["mode"], report["status"] = "monitor", "warn"
            forged["policy"]["guards"][index]["config"]["mode"] = "monitor"
    forged["gates"] = [g for g in forged["gates"] if not g["name"].startswith("guard:")]
    forged["provenance"]["policy_digest"] = _policy_digest(forged)
    fields = {m.field for m in verify_certificate(reseal(forged), registry=registry).mismatches}
    assert any(f.startswith("policy.guards[") for f in fields), fields


def test_a_changed_edit_setting_is_cross_checked_against_the_plan(failing, registry):
    forged = copy.deepcopy(failing)
    forged["edit"]["config"]["bits"] = 8
    fields = {m.field for m in verify_certificate(reseal(forged), registry=registry).mismatches}
    assert "edit.config.bits" in fields


def test_any_guard_measurement_changed_is_caught(failing, registry):
    for index, report in enumerate(failing["guards"]):
        key = next(iter(report["measurements"]), None)
        if key is None:
            continue
        forged = copy.deepcopy(failing)
        forged["guards"][index]["measurements"][key] = forged["guards"][index]["measurements"][key] * 1.5 + 1
        fields = {m.field for m in verify_certificate(reseal(forged), registry=registry).mismatches}
        assert any(f.startswith(f"guards[{index}]") for f in fields), (index, key, fields)


def _policy_digest(data: dict) -> str:
    from guardchain.certify.policy import Policy

    return Policy.model_validate(data["policy"]).digest()
