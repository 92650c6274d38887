"""Logging keeps working when the stderr it was set up with is gone (a test's capture, say)."""

from __future__ import annotations

import io
import logging
import sys

import pytest
import structlog

from pipeline.logs import configure


def test_logs_go_to_the_current_stderr_even_after_the_old_one_was_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    old = io.StringIO()
    monkeypatch.setattr(sys, "stderr", old)
    configure("INFO")
    old.close()  # what pytest does to a capture when its test ends
    new = io.StringIO()
    monkeypatch.setattr(sys, "stderr", new)
    structlog.get_logger("t").info("hello from structlog", order_id="o1")
    logging.getLogger("t").warning("hello from logging")
    assert "hello from structlog" in new.getvalue() and "hello from logging" in new.getvalue()
    configure("INFO")
