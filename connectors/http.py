"""HTTP to gallery vendors: timeouts, bounded retries, back-off on 429 and 5xx honouring Retry-After.

:class:`VendorHttp` wraps one ``httpx.AsyncClient``. It retries transport errors, 429 and 5xx (up to
``attempts`` tries), waiting what ``Retry-After`` says (seconds or an HTTP date) or else an
exponential, jittered delay. A ``Retry-After`` longer than ``max_delay`` is not waited out inline:
:class:`RateLimitedError` carries it to the caller (the scheduler waits that long before the next
poll). Every other answer is returned as is; :func:`check` turns a non-2xx answer into
:class:`VendorError`. Nothing here logs headers or bodies (tokens, personal data): only the method,
the path, the status and the wait.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from pipeline.settings import Settings
from schemas import wire

log = structlog.get_logger(__name__)

USER_AGENT = "galleryflow-connectors/1"


class VendorError(Exception):
    """A vendor answered with an error (or not at all). The message holds no personal data."""

    def __init__(self, message: str, *, status: int | None = None, vendor: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.vendor = vendor


class RateLimitedError(VendorError):
    """429 (or 503) with a Retry-After longer than we wait inline, or retries used up."""

    def __init__(self, message: str, *, retry_after: float | None, status: int | None = 429,
                 vendor: str = "") -> None:
        super().__init__(message, status=status, vendor=vendor)
        self.retry_after = retry_after


class VendorUnavailableError(VendorError):
    """5xx or transport errors until the retries ran out."""


class VendorAuthError(VendorError):
    """401 even after a token refresh, or a refused refresh token: the account must be linked again."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    initial_delay: float = 1.0
    max_delay: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            attempts=settings.connector_max_attempts,
            initial_delay=settings.connector_retry_initial_seconds,
            max_delay=settings.connector_retry_max_seconds,
        )

    def backoff(self, attempt: int) -> float:
        """Delay before try ``attempt + 1`` when the vendor gave no Retry-After (jittered, capped)."""
        base = self.initial_delay * (2 ** (attempt - 1))
        return min(self.max_delay, base * (0.75 + 0.5 * random.random()))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date; None if absent
    or unreadable. A date in the past means 0."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        seconds = float(text)  # lenient: "1.5"
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:  # pragma: no cover - older Pythons
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def problem_title(response: httpx.Response) -> str | None:
    """The ``title`` (or OAuth ``error``) of a problem+json / JSON error body; never the detail."""
    try:
        body = wire.loads(response.content)
    except (wire.WireError, ValueError):
        return None
    if isinstance(body, dict):
        for key in ("title", "error"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:120]
    return None


def check(response: httpx.Response, vendor: str) -> httpx.Response:
    """``response`` when 2xx, else :class:`VendorError` with the status and the problem title."""
    if response.is_success:
        return response
    title = problem_title(response)
    path = urlsplit(str(response.request.url)).path
    message = f"{vendor} answered {response.status_code} to {response.request.method} {path}"
    if title:
        message += f" ({title})"
    if response.status_code == 401:
        raise VendorAuthError(message, status=401, vendor=vendor)
    raise VendorError(message, status=response.status_code, vendor=vendor)


def json_body(response: httpx.Response, vendor: str) -> Any:
    """The JSON body with exact numbers (``Decimal``, never float)."""
    try:
        return wire.loads(response.content)
    except wire.WireError:
        raise VendorError(
            f"{vendor} answered {response.status_code} with a body that is not JSON", vendor=vendor,
            status=response.status_code,
        ) from None


class VendorHttp:
    """One vendor's HTTP client with retries. Use ``async with`` or call :meth:`aclose`."""

    def __init__(
        self,
        vendor: str,
        *,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.vendor = vendor
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self._transport = transport
        self._sleep = sleep
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    @classmethod
    def from_settings(cls, vendor: str, settings: Settings, **kwargs: Any) -> VendorHttp:
        return cls(vendor, policy=RetryPolicy.from_settings(settings),
                   timeout=settings.connector_http_timeout_seconds, **kwargs)

    def clone(self) -> VendorHttp:
        """A separate client with the same settings (its own connections, closed on its own)."""
        return VendorHttp(self.vendor, policy=self.policy, timeout=self.timeout, transport=self._transport,
                          sleep=self._sleep)

    async def __aenter__(self) -> VendorHttp:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send, retrying transport errors, 429 and 5xx; returns the first other answer."""
        path = urlsplit(url).path
        attempts = max(1, self.policy.attempts)
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                response = await self._client.request(method, url, headers=headers, params=params, data=data)
            except httpx.TransportError as exc:
                if last:
                    raise VendorUnavailableError(
                        f"{self.vendor} unreachable ({type(exc).__name__}) after {attempts} tries: {method} {path}",
                        vendor=self.vendor,
                    ) from None
                wait = self.policy.backoff(attempt)
                log.warning("vendor unreachable, retrying", vendor=self.vendor, method=method, path=path,
                            error_type=type(exc).__name__, attempt=attempt, retry_in=round(wait, 2))
                await self._sleep(wait)
                continue
            if not _retryable(response.status_code):
                return response
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            await response.aread()
            if retry_after is not None and retry_after > self.policy.max_delay:
                raise RateLimitedError(
                    f"{self.vendor} asked to wait {retry_after:.0f} s ({status} to {method} {path})",
                    retry_after=retry_after, status=status, vendor=self.vendor,
                )
            if last:
                if status == 429:
                    raise RateLimitedError(
                        f"{self.vendor} still rate-limiting after {attempts} tries ({method} {path})",
                        retry_after=retry_after, status=status, vendor=self.vendor,
                    )
                title = problem_title(response)
                raise VendorUnavailableError(
                    f"{self.vendor} answered {status} to {method} {path} after {attempts} tries"
                    + (f" ({title})" if title else ""),
                    status=status, vendor=self.vendor,
                )
            wait = retry_after if retry_after is not None else self.policy.backoff(attempt)
            log.warning("vendor busy or failing, retrying", vendor=self.vendor, method=method, path=path,
                        status=status, attempt=attempt, retry_in=round(wait, 2),
                        retry_after_header=retry_after is not None)
            await self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover
