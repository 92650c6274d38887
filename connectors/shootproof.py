"""ShootProof: polled from the Studio API (OAuth 2); also `galleryflow publish`."""

from __future__ import annotations

from schemas.raw import ShootProofOrder

SOURCE = "shootproof"
MODEL = ShootProofOrder
