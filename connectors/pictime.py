"""Pic-Time: polled after the account is linked, or pushed by its order webhook."""

from __future__ import annotations

from schemas.raw import PictimeOrder

SOURCE = "pictime"
MODEL = PictimeOrder
