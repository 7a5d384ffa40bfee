"""Every registered zoo name has a model card whose header agrees with the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from saswap.zoo import get_entry, list_models

ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"


@pytest.mark.parametrize("name", list_models())
def test_model_card(name):
    card = ZOO_DIR / f"{name}.md"
    assert card.is_file(), f"zoo/{name}.md is missing"
    header = card.read_text().split("---")[1]
    fields = dict(line.split(": ", 1) for line in header.strip().splitlines())
    entry = get_entry(name)
    assert fields["name"] == name and fields["engine"] == entry.engine
    assert int(fields["image_size"]) == entry.image_size
    if "published" in fields:
        assert (fields["published"] == "true") == entry.published
