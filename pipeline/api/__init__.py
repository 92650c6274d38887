"""The HTTP push API (`galleryflow api`): `create_api(settings)` builds the FastAPI app."""

from pipeline.api.app import PUSHED_SOURCES, create_api

__all__ = ["PUSHED_SOURCES", "create_api"]
