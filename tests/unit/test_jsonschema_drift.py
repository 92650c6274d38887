"""The checked-in JSON Schema files are exactly what the models generate."""

from __future__ import annotations

from schemas.generate import OUT, expected_files


def test_checked_in_schemas_match_the_models() -> None:
    wanted = expected_files()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in OUT.glob("*.schema.json")}
    assert sorted(on_disk) == sorted(wanted), "run: python -m schemas.generate"
    for name, text in wanted.items():
        assert on_disk[name] == text, f"{name} drifted from its model; run: python -m schemas.generate"
