"""Where the report writes: atomically, never over a file it did not write, recorded in a certification's manifest
under the folder's lock (so the next certification removes it), and `certify --report`."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest

from guardchain.core.errors import GuardchainError
from guardchain.report.build import write_report
from guardchain.report.codes import DESCRIPTIONS, ReportErrorCode
from guardchain.report.page import MARKER

MEMBER = Path(__file__).resolve().parents[2] / "plugins" / "report"


def manifest(folder: Path) -> dict:
    return json.loads((folder / ".guardchain" / "manifest.json").read_text())


@pytest.fixture
def cert(runs, tmp_path) -> Path:
    """A copy of the int8 certification folder, free to change."""
    folder = tmp_path / "cert"
    shutil.copytree(runs["int8"], folder)
    (folder / "report.html").unlink(missing_ok=True)  # as a certification leaves it (another test may have reported)
    data = manifest(folder)
    data["files"] = [f for f in data["files"] if f != "report.html"]
    (folder / ".guardchain" / "manifest.json").write_text(json.dumps(data))
    return folder


def code_of(call) -> str:
    with pytest.raises(GuardchainError) as caught:
        call()
    return caught.value.code


def test_the_readme_documents_every_error_code():
    import re

    readme = (MEMBER / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"`(GC-REPORT-[A-Z-]+)`", readme)) == {c.value for c in ReportErrorCode}
    assert set(DESCRIPTIONS) == set(ReportErrorCode)


def test_the_report_is_recorded_in_the_manifest_and_replaces_only_its_own_files(cert, tmp_path):
    before = manifest(cert)["files"]
    written = write_report(cert, None, None)
    assert written == cert / "report.html" and written.read_text().startswith("<!doctype html>\n" + MARKER)
    assert manifest(cert)["files"] == [*before, "report.html"]
    write_report(cert, None, None)  # its own file: replaced, listed once
    assert manifest(cert)["files"].count("report.html") == 1
    assert not [p for p in cert.iterdir() if p.name.startswith(".report.html.")]  # no temporary file left

    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    assert code_of(lambda: write_report(cert, mine, None)) == ReportErrorCode.OUT_NOT_OURS
    assert mine.read_text() == "<p>my notes</p>"
    assert code_of(lambda: write_report(cert, cert / "certificate.json", None)) == ReportErrorCode.OUT_INVALID
    assert code_of(lambda: write_report(cert, tmp_path, None)) == ReportErrorCode.OUT_INVALID
    link = tmp_path / "link.html"
    link.symlink_to(cert / "report.html")
    assert code_of(lambda: write_report(cert, link, None)) == ReportErrorCode.OUT_INVALID

    elsewhere = write_report(cert, tmp_path / "out" / "cert.html", None)  # outside the folder: not in its manifest
    assert elsewhere.is_file() and "out/cert.html" not in json.dumps(manifest(cert))


def test_a_running_certification_and_a_foreign_manifest_are_refused(cert):
    fd = os.open(cert / ".guardchain" / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert code_of(lambda: write_report(cert, None, None)) == ReportErrorCode.LOCKED
    finally:
        os.close(fd)
    assert not (cert / "report.html").exists()
    (cert / ".guardchain" / "manifest.json").write_text('{"owner": "someone else", "files": []}')
    assert code_of(lambda: write_report(cert, None, None)) == ReportErrorCode.MANIFEST
    assert not (cert / "report.html").exists()


def test_unreadable_and_foreign_folders_are_refused(cert, tmp_path):
    assert code_of(lambda: write_report(tmp_path / "missing", None, None)) == ReportErrorCode.NOT_A_RUN
    empty = tmp_path / "empty"
    empty.mkdir()
    assert code_of(lambda: write_report(empty, None, None)) == ReportErrorCode.NOT_A_RUN
    data = json.loads((cert / "certificate.json").read_text())
    (cert / "certificate.json").write_text(json.dumps({**data, "schema_version": 1}))
    assert code_of(lambda: write_report(cert, None, None)) == ReportErrorCode.UNREADABLE
    (cert / "certificate.json").write_text("{not json")
    assert code_of(lambda: write_report(cert, None, None)) == ReportErrorCode.UNREADABLE
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"schema_version": 1, "run_id": "x"}))
    assert code_of(lambda: write_report(run, None, None)) == ReportErrorCode.UNREADABLE


def test_cli_codes_and_certify_report(gc, cert, tmp_path):
    done = gc("report", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and done.stderr.startswith("GC-REPORT-NOT-A-RUN") and "Traceback" not in done.stderr

    out = tmp_path / "cert-with-report"
    done = gc("certify", "--baseline", "tiny-gpt2", "--out", str(out), "--report")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "report:" in done.stdout and (out / "report.html").is_file()
    assert "report.html" in manifest(out)["files"]

    # the next certification into the folder retires the report of the previous one with its certificate
    done = gc("certify", "--baseline", "tiny-gpt2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (out / "report.html").exists() and "report.html" not in manifest(out)["files"]

    blocked = gc(
        "certify",
        "--baseline",
        "tiny-gpt2",
        "--out",
        str(tmp_path / "x"),
        "--report",
        env={"GUARDCHAIN_DISABLE_PLUGINS": "report"},
    )
    assert blocked.returncode == 2 and blocked.stderr.startswith("GC-PLUGIN-UNAVAILABLE")
    assert "guardchain-report" in blocked.stderr and not (tmp_path / "x").exists()  # refused before any work
