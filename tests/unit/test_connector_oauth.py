"""Pure pieces of the polled connectors: authorize URL, token answers, expiry margin, content hashes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors import pictime, shootproof
from connectors.http import VendorError
from connectors.oauth import OAuthClient, OAuthConfigError, TokenManager, _token_pair
from connectors.polling import content_hash, id_text
from pipeline.settings import Settings


def test_shootproof_authorize_url() -> None:
    settings = Settings(shootproof_client_id="client&id", shootproof_auth_url="https://auth.example/")
    url = shootproof.oauth_client(settings).authorize_url("st/ate=", "https://studio.example/cb?x=1")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://auth.example/oauth2/authorization/new"
    assert parse_qs(parts.query) == {
        "response_type": ["code"], "client_id": ["client&id"], "redirect_uri": ["https://studio.example/cb?x=1"],
        "state": ["st/ate="], "scope": ["studio"],
    }
    assert shootproof.oauth_client(settings).token_endpoint == "https://auth.example/oauth2/authorization/token"


def test_pictime_endpoints_come_from_settings() -> None:
    client = pictime.oauth_client(Settings(pictime_client_id="p", pictime_auth_url="http://127.0.0.1:9"))
    assert client.authorize_url("s", "http://cb").startswith("http://127.0.0.1:9/oauth/authorize?")
    assert client.token_endpoint == "http://127.0.0.1:9/oauth/token"


def test_missing_client_credentials_are_named() -> None:
    client = shootproof.oauth_client(Settings(shootproof_client_id=None, shootproof_client_secret=None))
    with pytest.raises(OAuthConfigError, match="GALLERYFLOW_SHOOTPROOF_CLIENT_ID"):
        client.authorize_url("s", "http://cb")
    with pytest.raises(OAuthConfigError, match="GALLERYFLOW_SHOOTPROOF_CLIENT_SECRET"):
        client.require_credentials()


def test_secrets_stay_out_of_reprs() -> None:
    client = OAuthClient("shootproof", "a", "t", "id", "the-client-secret")
    pair = _token_pair({"access_token": "at-secret", "refresh_token": "rt-secret", "expires_in": 60}, "sp", None)
    assert "the-client-secret" not in repr(client)
    assert "at-secret" not in repr(pair) and "rt-secret" not in repr(pair)


def test_token_answers() -> None:
    before = datetime.now(UTC)
    pair = _token_pair({"access_token": "a", "refresh_token": "r", "token_type": "Bearer",
                        "expires_in": 1209600}, "sp", None)
    assert (pair.access_token, pair.refresh_token) == ("a", "r")
    assert pair.expires_at is not None and pair.expires_at - before >= timedelta(days=14) - timedelta(seconds=5)
    # A vendor that does not rotate keeps the old refresh token; no expires_in means unknown.
    kept = _token_pair({"access_token": "a2"}, "sp", "r-old")
    assert (kept.refresh_token, kept.expires_at) == ("r-old", None)
    with pytest.raises(VendorError):
        _token_pair({"refresh_token": "r"}, "sp", None)
    with pytest.raises(VendorError):
        _token_pair({"access_token": "a", "token_type": "mac"}, "sp", None)


def _row(expires_in: float, lifetime: float) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"token_expires_at": now + timedelta(seconds=expires_in),
            "token_refreshed_at": now + timedelta(seconds=expires_in - lifetime)}


@pytest.mark.parametrize(
    ("expires_in", "lifetime", "expiring"),
    [
        (3600, 1209600, False),  # a production token with an hour left
        (30, 1209600, True),  # within the 60 s margin
        (-1, 1209600, True),  # expired
        (1.5, 2, False),  # a 2 s token: the margin shrinks to half its lifetime
        (0.5, 2, True),
    ],
)
def test_refresh_margin(expires_in: float, lifetime: float, expiring: bool) -> None:
    manager = TokenManager(None, None, None, None, None, margin_seconds=60)  # type: ignore[arg-type]
    assert manager._expiring(_row(expires_in, lifetime)) is expiring
    assert manager._expiring({"token_expires_at": None, "token_refreshed_at": None}) is False


def test_content_hash_ignores_key_order_and_keeps_exact_numbers() -> None:
    a = {"id": 1, "total": Decimal("95.95"), "items": [{"name": "x", "quantity": 2}]}
    b = {"items": [{"quantity": 2, "name": "x"}], "total": Decimal("95.95"), "id": 1}
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash({**a, "total": Decimal("95.96")})
    assert content_hash(a) != content_hash({**a, "status": "canceled"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [(81234567, "81234567"), ("81234567", "81234567"), (" PT-1 ", "PT-1"), (Decimal("12"), "12"),
     (True, None), (None, None), ("  ", None), (1.5, None)],
)
def test_id_text(value: Any, expected: str | None) -> None:
    assert id_text(value) == expected
