"""Any shop (e.g. a Zapier "send sale" step): pushed to the HTTP API with the studio's API key."""

from __future__ import annotations

from schemas.raw import ApiSale

SOURCE = "api"
MODEL = ApiSale
