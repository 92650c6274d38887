"""Request bodies for the OpenAPI document, from the raw models (the endpoints read bodies themselves)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with its ``$defs`` inlined (the raw models do not recurse)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def orders_body(
    models: Sequence[type[BaseModel]], description: str, examples: dict[str, Any]
) -> dict[str, Any]:
    """``openapi_extra`` for a route whose body is one order or a non-empty array of orders.

    The examples matter: the models' schemas describe parsed values (a theimagefile ``orderDate`` shows
    as ``date-time`` though it arrives as ``DD/MM/YYYY HH:MM``), the examples show the wire shape.
    """
    one = inline_schema(models[0]) if len(models) == 1 else {"oneOf": [inline_schema(m) for m in models]}
    schema = {"oneOf": [one, {"type": "array", "items": one, "minItems": 1}]}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/json": {
                    "schema": schema,
                    "examples": {name: {"value": value} for name, value in examples.items()},
                }
            },
        }
    }


ORDER_EXAMPLES: dict[str, Any] = {
    "theimagefile": {
        "orderRef": "TIF-2026-004411", "albumName": "O'Connor Christening", "albumCode": "OCC-1102",
        "orderDate": "30/11/2026 18:05",
        "customer": {"name": "Siobhán O'Connor", "email": "siobhan@example.ie", "telephone": "+353855550142"},
        "items": [{"description": "10x8 Print - IMG_0042", "quantity": 2}],
        "orderTotal": "£64.50",
    },
    "pictime": {
        "orderId": "PT-7781203", "projectId": "p_55f1", "projectName": "Jones Family Session",
        "orderDate": "2026-11-30 09:12:44", "timeZone": "Europe/London",
        "client": {"firstName": "Gareth", "lastName": "Jones", "email": "gareth@example.org"},
        "currency": "GBP",
        "lines": [{"productName": "Framed Print 16x12", "qty": 1, "price": "85.00", "lineTotal": "85.00"}],
        "shippingFee": "7.50", "orderTotal": "92.50", "paymentCollector": "photographer", "status": "paid",
    },
}

SALE_EXAMPLES: dict[str, Any] = {
    "with items": {
        "source": "Etsy", "reference": "ETSY-2231", "date": "2026-11-27",
        "client_name": "Ruth Ellis", "client_email": "ruth@example.com",
        "items": [{"description": "Printed Photo Book 8x8", "quantity": 1, "price": "45.00"}],
        "currency": "GBP",
    },
    "total only": {"source": "Square", "reference": "SQ-90017", "date": "2026-11-20T14:00:00Z", "total": "30.00"},
}
