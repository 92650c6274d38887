"""Generate the checked-in JSON Schema files from the models: `python -m schemas.generate`.

A test fails when the files drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from schemas import raw
from schemas.canonical import CanonicalOrder
from schemas.envelope import RawOrderEnvelope
from schemas.events import DeadLetter, SaleCommitted

OUT = Path(__file__).resolve().parent / "jsonschema"


def models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {f"raw.{name}": model for name, model in raw.RAW_MODELS.items()}
    found.update({
        "raw-envelope": RawOrderEnvelope,
        "canonical-order": CanonicalOrder,
        "sale-committed": SaleCommitted,
        "dead-letter": DeadLetter,
    })
    return found


def render(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(mode="validation"), indent=2, sort_keys=True) + "\n"


def expected_files() -> dict[str, str]:
    return {f"{name}.schema.json": render(model) for name, model in models().items()}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    wanted = expected_files()
    for stale in OUT.glob("*.schema.json"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(wanted)} schema files to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
