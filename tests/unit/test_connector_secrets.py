"""Tokens at rest: AES-GCM round trip, bound to their row and field, clear errors."""

from __future__ import annotations

import base64

import pytest

from connectors.secrets import (
    Cipher,
    DecryptionError,
    SecretKeyMissingError,
    cipher_from_settings,
    new_secret_key,
)
from pipeline.settings import Settings

TOKEN = "rt-very-secret-refresh-token-value"
CONTEXT = "harbour-light|shootproof|5501|refresh_token"


def test_round_trip_and_ciphertext_hides_the_token() -> None:
    cipher = Cipher("a test key that is long enough")
    stored = cipher.encrypt(TOKEN, CONTEXT)
    assert TOKEN not in stored
    assert stored.startswith(f"gf1.{cipher.key_id}.")
    assert cipher.decrypt(stored, CONTEXT) == TOKEN
    # A fresh nonce every time: the same token never encrypts to the same text.
    assert cipher.encrypt(TOKEN, CONTEXT) != stored


def test_same_secret_string_gives_the_same_key() -> None:
    stored = Cipher("shared secret").encrypt(TOKEN, CONTEXT)
    assert Cipher("shared secret").decrypt(stored, CONTEXT) == TOKEN


def test_ciphertext_moved_to_another_account_or_field_does_not_decrypt() -> None:
    cipher = Cipher("k" * 40)
    stored = cipher.encrypt(TOKEN, CONTEXT)
    with pytest.raises(DecryptionError, match="another account"):
        cipher.decrypt(stored, "other-studio|shootproof|5501|refresh_token")
    with pytest.raises(DecryptionError):
        cipher.decrypt(stored, "harbour-light|shootproof|5501|access_token")


def test_wrong_key_is_named_as_such() -> None:
    stored = Cipher("first key").encrypt(TOKEN, CONTEXT)
    with pytest.raises(DecryptionError, match="another GALLERYFLOW_SECRET_KEY"):
        Cipher("second key").decrypt(stored, CONTEXT)


@pytest.mark.parametrize("damaged", ["not-a-secret", "gf9.abcd.xyz", "gf1.{kid}.AAAA", "gf1.{kid}.!!!!"])
def test_damaged_values_raise_decryption_error(damaged: str) -> None:
    cipher = Cipher("some key")
    with pytest.raises(DecryptionError):
        cipher.decrypt(damaged.replace("{kid}", cipher.key_id), CONTEXT)


def test_tampered_ciphertext_is_refused() -> None:
    cipher = Cipher("some key")
    stored = cipher.encrypt(TOKEN, CONTEXT)
    prefix, body = stored.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    for position in (0, 12, len(raw) // 2, len(raw) - 1):  # nonce, ciphertext, tag
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        tampered = f"{prefix}.{base64.urlsafe_b64encode(bytes(flipped)).decode().rstrip('=')}"
        with pytest.raises(DecryptionError):
            cipher.decrypt(tampered, CONTEXT)


def test_missing_key_is_a_clear_error() -> None:
    with pytest.raises(SecretKeyMissingError, match="GALLERYFLOW_SECRET_KEY is not set"):
        cipher_from_settings(Settings(secret_key=None))
    with pytest.raises(SecretKeyMissingError):
        cipher_from_settings(Settings(secret_key="   "))


def test_key_from_settings_and_generated_keys() -> None:
    key = new_secret_key()
    assert len(key) >= 40 and key != new_secret_key()
    cipher = cipher_from_settings(Settings(secret_key=key))
    assert cipher.decrypt(cipher.encrypt(TOKEN, CONTEXT), CONTEXT) == TOKEN
    assert key not in repr(cipher)
