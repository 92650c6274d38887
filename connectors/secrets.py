"""Secrets at rest: vendor tokens are encrypted before they reach PostgreSQL.

AES-256-GCM with a key derived by HKDF-SHA256 from ``GALLERYFLOW_SECRET_KEY`` (any string; use at
least 32 random bytes, e.g. ``galleryflow connectors new-secret-key``). Each ciphertext is bound to
where it is stored (studio, source, account, field) as associated data, so a ciphertext copied into
another row does not decrypt. Stored form: ``gf1.<key id>.<base64url(nonce | ciphertext+tag)>``; the
key id (derived, reveals nothing of the key) tells a wrong key apart from a damaged value.

There is no fallback key: without ``GALLERYFLOW_SECRET_KEY`` linking and polling stop with a clear
error. ``galleryflow demo`` links no accounts, so it never needs one.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets as _random

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pipeline.settings import Settings

FORMAT = "gf1"
_SALT = b"galleryflow/secrets/v1"
_NONCE_BYTES = 12


class SecretKeyMissingError(RuntimeError):
    """GALLERYFLOW_SECRET_KEY is not set."""


class DecryptionError(ValueError):
    """A stored secret cannot be decrypted (another key, or a damaged or moved value)."""


def _derive(secret: str, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=info).derive(secret.encode("utf-8"))


def new_secret_key() -> str:
    """A fresh random value for GALLERYFLOW_SECRET_KEY (256 bits, URL-safe text)."""
    return _random.token_urlsafe(32)


class Cipher:
    """Encrypts and decrypts short secrets (tokens) bound to a context string."""

    def __init__(self, secret: str) -> None:
        if not secret or not secret.strip():
            raise SecretKeyMissingError("the secret key is empty")
        self._aead = AESGCM(_derive(secret, b"connector tokens", 32))
        self.key_id = _derive(secret, b"key id", 4).hex()

    def __repr__(self) -> str:
        return f"Cipher(key_id={self.key_id})"

    def encrypt(self, plaintext: str, context: str) -> str:
        """Ciphertext of ``plaintext``, decryptable only with the same key and ``context``."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{FORMAT}.{self.key_id}.{body}"

    def decrypt(self, stored: str, context: str) -> str:
        """The plaintext of a value made by :meth:`encrypt` with the same ``context``."""
        try:
            fmt, key_id, body = stored.split(".", 2)
        except ValueError:
            raise DecryptionError("not an encrypted galleryflow secret") from None
        if fmt != FORMAT:
            raise DecryptionError(f"unknown secret format {fmt!r}")
        if key_id != self.key_id:
            raise DecryptionError(
                "the secret was encrypted with another GALLERYFLOW_SECRET_KEY "
                f"(key id {key_id}, this key is {self.key_id}): set the original key or link again"
            )
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode("utf-8"))
        except (InvalidTag, ValueError, binascii.Error):
            raise DecryptionError("the secret is damaged or belongs to another account") from None
        return plain.decode("utf-8")


def cipher_from_settings(settings: Settings) -> Cipher:
    """The cipher keyed by GALLERYFLOW_SECRET_KEY; a clear error when the key is not set."""
    value = settings.secret_key.get_secret_value() if settings.secret_key is not None else ""
    if not value.strip():
        raise SecretKeyMissingError(
            "GALLERYFLOW_SECRET_KEY is not set: linked-account tokens are encrypted with it. "
            "Create one with `galleryflow connectors new-secret-key`, keep it with your other "
            "secrets, and set it for every galleryflow process (link, poll, run)."
        )
    return Cipher(value)
