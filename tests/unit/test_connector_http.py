"""Vendor HTTP: Retry-After parsing and the retry loop (httpx MockTransport, no network, no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from connectors.http import (
    RateLimitedError,
    RetryPolicy,
    VendorAuthError,
    VendorError,
    VendorHttp,
    VendorUnavailableError,
    check,
    parse_retry_after,
)

NOW = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("Tue, 01 Dec 2026 09:01:00 GMT", 60.0),
        (format_datetime(NOW - timedelta(minutes=5), usegmt=True), 0.0),  # a date in the past: go now
        (None, None),
        ("", None),
        ("soon", None),
        ("-3", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(attempts=10, initial_delay=1.0, max_delay=5.0)
    assert 0.75 <= policy.backoff(1) <= 1.25
    assert 1.5 <= policy.backoff(2) <= 2.5
    assert policy.backoff(9) == 5.0


class Script:
    """A MockTransport answering a scripted list of responses, recording the waits asked for."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.calls = 0
        self.waits: list[float] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        answer = self.responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def client(self, **policy: float) -> VendorHttp:
        values = {"attempts": 4, "initial_delay": 0.5, "max_delay": 60.0, **policy}
        return VendorHttp("shootproof", policy=RetryPolicy(**values),  # type: ignore[arg-type]
                          transport=httpx.MockTransport(self.handler), sleep=self.sleep)


def problem(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"title": "Too Many Requests" if status == 429 else "Oops",
                                        "detail": "customer jane@example.com"}, headers=headers)


async def test_429_waits_what_retry_after_says_then_succeeds() -> None:
    script = Script(problem(429, {"Retry-After": "3"}), problem(503, {"Retry-After": "1"}),
                    httpx.Response(200, json={"ok": True}))
    async with script.client() as http:
        response = await http.request("GET", "https://vendor.test/studio/brand/1/order")
    assert response.status_code == 200
    assert script.waits == [3.0, 1.0]


async def test_500_without_retry_after_backs_off_exponentially() -> None:
    script = Script(problem(500), problem(502), httpx.Response(200, json={}))
    async with script.client() as http:
        await http.request("GET", "https://vendor.test/x")
    assert len(script.waits) == 2
    assert 0.375 <= script.waits[0] <= 0.625 and 0.75 <= script.waits[1] <= 1.25


async def test_retries_are_bounded() -> None:
    script = Script(*(problem(500) for _ in range(4)))
    async with script.client() as http:
        with pytest.raises(VendorUnavailableError, match="500") as caught:
            await http.request("GET", "https://vendor.test/studio/brand/1/order")
    assert script.calls == 4 and len(script.waits) == 3
    assert "jane@example.com" not in str(caught.value)  # the problem detail is never echoed


async def test_rate_limit_that_outlasts_the_retries_is_reported_with_its_wait() -> None:
    script = Script(*(problem(429, {"Retry-After": "2"}) for _ in range(4)))
    async with script.client() as http:
        with pytest.raises(RateLimitedError) as caught:
            await http.request("GET", "https://vendor.test/x")
    assert caught.value.retry_after == 2.0 and script.waits == [2.0, 2.0, 2.0]


async def test_retry_after_longer_than_the_cap_is_not_waited_inline() -> None:
    script = Script(problem(429, {"Retry-After": "3600"}))
    async with script.client(max_delay=60.0) as http:
        with pytest.raises(RateLimitedError) as caught:
            await http.request("GET", "https://vendor.test/x")
    assert caught.value.retry_after == 3600.0 and script.waits == []


async def test_transport_errors_are_retried() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(204))
    async with script.client() as http:
        response = await http.request("GET", "https://vendor.test/x")
    assert response.status_code == 204 and len(script.waits) == 2


async def test_other_client_errors_are_returned_not_retried() -> None:
    script = Script(problem(404))
    async with script.client() as http:
        response = await http.request("GET", "https://vendor.test/studio/brand/1/order/2/item")
    assert response.status_code == 404 and script.calls == 1
    with pytest.raises(VendorError, match=r"404 to GET /studio/brand/1/order/2/item \(Oops\)") as caught:
        check(response, "shootproof")
    assert "jane@example.com" not in str(caught.value)


def test_check_maps_401_to_auth_error() -> None:
    request = httpx.Request("GET", "https://vendor.test/studio/brand/1/order")
    with pytest.raises(VendorAuthError):
        check(httpx.Response(401, json={"title": "Unauthorized"}, request=request), "shootproof")
    assert check(httpx.Response(200, request=request), "shootproof").status_code == 200
