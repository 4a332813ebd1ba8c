"""The stable error codes of guardchain-certify (documented in the member's README; a test keeps them in step).

Codes never change meaning and are never reused. Each is raised as the first problem of a
:class:`guardchain.core.errors.GuardchainError`; the CLI exits 2 for every one of them.
"""

from __future__ import annotations

from enum import StrEnum


class CertifyErrorCode(StrEnum):
    """Codes of expected failures of ``certify`` and ``verify``."""

    OUT_NOT_OURS = "GC-CERT-OUT-NOT-OURS"
    OUT_NOT_DIR = "GC-CERT-OUT-NOT-DIR"
    OUT_LOCKED = "GC-CERT-OUT-LOCKED"
    KEY_NOT_FOUND = "GC-CERT-KEY-NOT-FOUND"
    KEY_INVALID = "GC-CERT-KEY-INVALID"
    KEY_TYPE = "GC-CERT-KEY-TYPE"
    KEY_ENCRYPTED = "GC-CERT-KEY-ENCRYPTED"
    KEY_PRIVATE = "GC-CERT-KEY-PRIVATE"
    KEY_UNSUPPORTED = "GC-CERT-KEY-UNSUPPORTED"
    CERT_UNREADABLE = "GC-CERT-UNREADABLE"
    GATE_CONFIG = "GC-CERT-GATE-CONFIG"
    GATE_METRIC = "GC-CERT-GATE-METRIC"
    SWEEP_BACKEND = "GC-CERT-SWEEP-BACKEND"
    SWEEP_WORKER_DIED = "GC-CERT-SWEEP-WORKER-DIED"
    SWEEP_INTERRUPTED = "GC-CERT-SWEEP-INTERRUPTED"
    SWEEP_DUPLICATE_CELL = "GC-CERT-SWEEP-DUPLICATE-CELL"


DESCRIPTIONS: dict[CertifyErrorCode, str] = {
    CertifyErrorCode.OUT_NOT_OURS: "`certify --out DIR` names a folder that is not empty and holds no earlier "
    "guardchain certification (no `.guardchain/manifest.json`, no `certificate.json`): guardchain never writes "
    "into, nor deletes from, a folder it does not own. Choose an empty or new folder.",
    CertifyErrorCode.OUT_NOT_DIR: "`certify --out` names something that exists and is not a folder.",
    CertifyErrorCode.OUT_LOCKED: "Another certification is writing into the same `--out` folder right now (its "
    "lock `.guardchain/lock` is held); two runs never write one folder at once.",
    CertifyErrorCode.KEY_NOT_FOUND: "The key file given to `--sign` or `--pubkey` does not exist.",
    CertifyErrorCode.KEY_INVALID: "The key is not a PEM key (nor, for `--pubkey`, 64 hex digits of a raw Ed25519 "
    "public key).",
    CertifyErrorCode.KEY_TYPE: "The key is a valid key of another algorithm (RSA, EC, ...); certificates are "
    "signed with Ed25519 only.",
    CertifyErrorCode.KEY_ENCRYPTED: "The private key given to `--sign` is encrypted with a passphrase; give an "
    "unencrypted PKCS#8 Ed25519 key (kept private by its file permissions).",
    CertifyErrorCode.KEY_PRIVATE: "`--pubkey` was given a private key; give the public key (never share the "
    "private one).",
    CertifyErrorCode.KEY_UNSUPPORTED: "Signing or checking a signature needs the `cryptography` package: "
    "`pip install 'guardchain-certify[sign]'`.",
    CertifyErrorCode.CERT_UNREADABLE: "The certificate file cannot be read or parsed: missing, not UTF-8, not "
    "JSON, larger than 64 MiB, or nested deeper than 64 levels.",
    CertifyErrorCode.GATE_CONFIG: "A metric gate is set up inconsistently: a comparison that needs a bound has "
    "none, a bound the comparison cannot use, or per-unit results that cannot be paired.",
    CertifyErrorCode.GATE_METRIC: "The metric of a metric gate returned something the gate cannot compare: no "
    "per-unit values for a paired comparison, no standard error for a z comparison, no verdict for a verdict "
    "comparison.",
    CertifyErrorCode.SWEEP_BACKEND: "The backend cannot run: `--backend ray` without Ray installed (`pip install "
    "'guardchain-certify[ray]'`), a Ray cluster that cannot be reached at `--ray-address`, or worker processes "
    "that cannot be started.",
    CertifyErrorCode.SWEEP_WORKER_DIED: "A cell's worker process (or Ray actor) died while running it: killed, out of "
    "memory, or crashed in native code. The cell is recorded with this code, the other cells go on on a fresh "
    "worker, and a re-run redoes it.",
    CertifyErrorCode.SWEEP_INTERRUPTED: "The sweep was interrupted (Ctrl-C) before this cell finished. Finished "
    "cells are kept; a re-run of the same file runs only the unfinished ones.",
    CertifyErrorCode.SWEEP_DUPLICATE_CELL: "Two entries of the sweep file expand to the same certification (same "
    "baseline, edit and settings, tier and seed); each cell must be asked for once.",
}
