"""Ed25519 keys for certificates: read and checked up front, used to sign and to check a signature.

A certification reads its signing key before any model loads (:func:`load_signing_key`), so a bad key costs
nothing and never leaves a run half done. Make a key pair with OpenSSL (or any Ed25519 tool)::

    openssl genpkey -algorithm ed25519 -out certify-key.pem        # private: keep it private
    openssl pkey -in certify-key.pem -pubout -out certify-key.pub  # public: give it to whoever verifies

The signature is over the UTF-8 bytes of the certificate's ``digest``; the body names the signer's public key
(``signed_by``) so that stripping the signature changes the digest. Needs the ``cryptography`` package
(``pip install 'guardchain-certify[sign]'``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardchain.certify.codes import CertifyErrorCode
from guardchain.core.errors import GuardchainError

_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_KEY_BYTES = 64 * 1024


@dataclass(frozen=True)
class SigningKey:
    """A checked Ed25519 private key.

    :ivar public_hex: the raw 32-byte public key, hex (what ``signed_by`` records).
    """

    key: Any
    public_hex: str

    def sign(self, digest: str) -> str:
        """The 64-byte Ed25519 signature of ``digest`` (UTF-8), hex."""
        return str(self.key.sign(digest.encode()).hex())


def _error(code: CertifyErrorCode, message: str, hint: str = "", path: str = "") -> GuardchainError:
    return GuardchainError.single(code, message, hint=hint, path=path)


def _crypto() -> tuple[Any, Any, Any]:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise _error(
            CertifyErrorCode.KEY_UNSUPPORTED,
            "signing and checking signatures need the 'cryptography' package",
            hint="pip install 'guardchain-certify[sign]'",
        ) from exc
    return serialization, ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey


def _read(path: Path, option: str) -> bytes:
    if not path.exists():
        raise _error(CertifyErrorCode.KEY_NOT_FOUND, f"key file {str(path)!r} not found", path=option)
    if not path.is_file():
        raise _error(CertifyErrorCode.KEY_INVALID, f"{str(path)!r} is not a key file", path=option)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise _error(CertifyErrorCode.KEY_NOT_FOUND, f"cannot read key file {str(path)!r}: {exc}", path=option) from exc
    if len(data) > MAX_KEY_BYTES:
        raise _error(CertifyErrorCode.KEY_INVALID, f"{str(path)!r} is too large to be a key", path=option)
    return data


def load_signing_key(path: str | Path) -> SigningKey:
    """Read and check an unencrypted PEM (PKCS#8) Ed25519 private key.

    :raises GuardchainError: ``GC-CERT-KEY-NOT-FOUND``, ``-INVALID`` (not a PEM private key), ``-ENCRYPTED``,
        ``-TYPE`` (RSA, EC...), ``-UNSUPPORTED`` (no ``cryptography``).
    """
    data = _read(Path(path), "--sign")
    serialization, private_type, _ = _crypto()
    if b"PUBLIC KEY" in data and b"PRIVATE KEY" not in data:
        raise _error(
            CertifyErrorCode.KEY_INVALID,
            f"{str(path)!r} holds a public key; --sign needs the private key",
            path="--sign",
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # cryptography's way of saying "this key needs a password"
        raise _error(
            CertifyErrorCode.KEY_ENCRYPTED,
            f"the private key {str(path)!r} is encrypted",
            hint="decrypt it: openssl pkey -in KEY -out KEY.plain.pem",
            path="--sign",
        ) from exc
    except Exception as exc:
        raise _error(
            CertifyErrorCode.KEY_INVALID,
            f"{str(path)!r} is not a PEM private key",
            hint="make one with: openssl genpkey -algorithm ed25519 -out key.pem",
            path="--sign",
        ) from exc
    if not isinstance(key, private_type):
        raise _error(
            CertifyErrorCode.KEY_TYPE,
            f"{str(path)!r} is a {type(key).__name__.removeprefix('_')} key; certificates are signed with Ed25519",
            hint="make one with: openssl genpkey -algorithm ed25519 -out key.pem",
            path="--sign",
        )
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey(key=key, public_hex=public.hex())


def load_public_key(value: str) -> str:
    """A trusted public key for ``verify --pubkey``: 64 hex digits, or a PEM public key file; returns the hex.

    :raises GuardchainError: ``GC-CERT-KEY-NOT-FOUND`` (a path that does not exist), ``-PRIVATE`` (a private key
        was given), ``-INVALID``, ``-TYPE``, ``-UNSUPPORTED``.
    """
    if _HEX_KEY.match(value.strip()):
        return value.strip().lower()
    path = Path(value)
    data = _read(path, "--pubkey")
    if b"PRIVATE KEY" in data:
        raise _error(
            CertifyErrorCode.KEY_PRIVATE,
            f"{str(path)!r} is a private key; --pubkey takes the public key",
            hint="derive it: openssl pkey -in KEY -pubout -out KEY.pub (and keep the private key private)",
            path="--pubkey",
        )
    serialization, _, public_type = _crypto()
    try:
        key = serialization.load_pem_public_key(data)
    except Exception as exc:
        raise _error(
            CertifyErrorCode.KEY_INVALID,
            f"{str(path)!r} is neither a PEM public key nor 64 hex digits",
            path="--pubkey",
        ) from exc
    if not isinstance(key, public_type):
        raise _error(
            CertifyErrorCode.KEY_TYPE,
            f"{str(path)!r} is not an Ed25519 public key",
            path="--pubkey",
        )
    return str(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex())


def signature_valid(public_hex: str, signature_hex: str, digest: str) -> bool:
    """Whether ``signature_hex`` is a valid Ed25519 signature of ``digest`` by ``public_hex``."""
    _, _, public_type = _crypto()
    from cryptography.exceptions import InvalidSignature

    try:
        key = public_type.from_public_bytes(bytes.fromhex(public_hex))
        key.verify(bytes.fromhex(signature_hex), digest.encode())
    except (InvalidSignature, ValueError):
        return False
    return True
