"""theimagefile: pushed to the HTTP API with the studio's API key."""

from __future__ import annotations

from schemas.raw import TheImageFileOrder

SOURCE = "theimagefile"
MODEL = TheImageFileOrder
