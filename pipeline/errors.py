"""Named errors galleryflow raises for bad data (infrastructure errors are retried, not raised here)."""

from __future__ import annotations


class GalleryflowError(Exception):
    """Base of galleryflow's own errors."""


class NormaliseError(GalleryflowError, ValueError):
    """A raw order cannot become a canonical order; the message says why (it goes to the dead letter)."""
