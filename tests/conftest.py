"""Shared fixtures. Test images come from ../shared/data (the repository's
neighbour) when present, else from the package's own samples."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from nst.samples import sample_path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_or_sample(relative: str, sample: str) -> Path:
    path = SHARED / relative
    return path if path.exists() else sample_path(sample)


@pytest.fixture(scope="session")
def content_path() -> Path:
    return shared_or_sample("images/content/dancing.jpg", "tubingen")


@pytest.fixture(scope="session")
def style_path() -> Path:
    return shared_or_sample("images/style/starry_night.jpg", "starry_night")


@pytest.fixture(scope="session")
def second_style_path() -> Path:
    return shared_or_sample("images/style/great_wave.jpg", "great_wave")


@pytest.fixture
def small_image(tmp_path: Path) -> Path:
    """A 48x32 RGB gradient written as PNG."""
    image = Image.new("RGB", (48, 32))
    image.putdata([(x * 5, y * 7, 128) for y in range(32) for x in range(48)])
    path = tmp_path / "small.png"
    image.save(path)
    return path
