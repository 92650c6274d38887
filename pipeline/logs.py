"""Logging: structlog to stderr. Ids only: never names, emails, phones, keys or tokens."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "INFO", json_logs: bool = False) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s", force=True)
    for noisy in ("aiokafka", "faust", "mode", "kafka", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    renderer = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
