"""CLI commands of one area; `pipeline.cli` calls ``register``: `galleryflow api`."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `galleryflow` app."""

    @app.command("api")
    def api(
        host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on")] = 8000,
    ) -> None:
        """Serve the HTTP push API (POST /v1/orders/{source}, POST /v1/sales; /docs, /readyz, /metrics)."""
        import uvicorn

        from pipeline.api import create_api
        from pipeline.logs import configure as configure_logs
        from pipeline.settings import get_settings

        settings = get_settings()
        configure_logs(settings.log_level, settings.log_json)
        uvicorn.run(
            create_api(settings),
            host=host,
            port=port,
            log_config=None,  # uvicorn's loggers go through galleryflow's logging set up above
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=15,
        )
