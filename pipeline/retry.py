"""Infrastructure errors pause and retry with backoff; they never skip a message."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import structlog
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

log = structlog.get_logger(__name__)
T = TypeVar("T")

_TRANSIENT_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "53300",  # too_many_connections
    "53100",  # disk_full
    "08000", "08003", "08006", "08001", "08004",  # connection exceptions
}


def is_infrastructure_error(exc: BaseException) -> bool:
    """True for errors that say "try again later" (database or broker away), not "this data is bad"."""
    if isinstance(exc, OSError | ConnectionError | asyncio.TimeoutError | TimeoutError):
        return True
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return getattr(exc, "sqlstate", None) in _TRANSIENT_SQLSTATES
    if isinstance(exc, MessageSizeTooLargeError):
        return False  # the message itself is the problem
    if isinstance(exc, KafkaError):
        return True  # broker away, leadership moving, timeouts: wait for it
    return False


async def retry_until_done(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    initial: float = 0.5,
    maximum: float = 15.0,
) -> T:
    """Run ``operation`` until it succeeds, backing off on infrastructure errors.

    Any other exception propagates at once (the caller decides: it is a data error).
    """
    delay = initial
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_infrastructure_error(exc):
                raise
            attempt += 1
            log.warning(
                "infrastructure error, pausing",
                what=what,
                attempt=attempt,
                error_type=type(exc).__name__,
                retry_in=round(delay, 2),
            )
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, maximum)
