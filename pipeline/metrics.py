"""Prometheus metrics of the worker."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ORDERS_NORMALISED = Counter(
    "galleryflow_orders_normalised_total", "Raw orders handled by the normaliser", ["outcome"]
)
ORDERS_IMPORTED = Counter(
    "galleryflow_orders_imported_total", "Canonical orders handled by the importer", ["outcome"]
)
BATCH_SECONDS = Histogram(
    "galleryflow_batch_seconds", "Time to process one batch", ["stage"]
)
