"""The raw-order envelope connectors publish on `<app>.orders.raw`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.canonical import Source, StudioContext

ENVELOPE_VERSION: Literal[1] = 1
#: What an envelope adds to its order's JSON, at most: an order within the size limit always fits in
#: its raw message (connectors limit the order; the normaliser limits the message to limit + this).
ENVELOPE_OVERHEAD_BYTES = 64 * 1024


class RawOrderEnvelope(BaseModel):
    """A raw gallery order exactly as received, plus who and when."""

    model_config = ConfigDict(extra="forbid")

    envelope_version: Literal[1] = ENVELOPE_VERSION
    studio: StudioContext
    source: Source
    external_order_id: str
    received_at: AwareDatetime
    connector_version: str
    payload: dict[str, Any]

    def key(self) -> str:
        """Message key: every version of one order lands on one partition, in order."""
        return message_key(self.studio.studio_id, self.source, self.external_order_id)


def message_key(studio_id: str, source: str, external_order_id: str) -> str:
    return f"{studio_id}|{source}|{external_order_id}"
