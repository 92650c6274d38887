"""Shoot CSV details that decide whether rule 6's gallery mapping can ever match."""

from __future__ import annotations

import pytest

from pipeline.records import CsvError, gallery_source


@pytest.mark.parametrize("spelling", ["Pic-Time", "pictime", "PIC TIME", " pic_time "])
def test_the_vendors_spellings_of_a_gallery_source_map_to_the_source(spelling: str) -> None:
    assert gallery_source(spelling, "line 2") == "pictime"


def test_an_unknown_gallery_source_is_an_error_naming_the_line() -> None:
    with pytest.raises(CsvError, match="line 7: gallery_source must be one of"):
        gallery_source("smugmug", "line 7")


def test_a_blank_gallery_source_maps_nothing() -> None:
    assert gallery_source(None, "line 2") is None
