"""CLI commands of one area; `pipeline.cli` calls ``register``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `galleryflow` app."""
