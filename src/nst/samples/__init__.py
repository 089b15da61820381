"""Sample images shipped with nst for its demo (credits in the README)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).parent
CONTENT_SAMPLES = ("tubingen",)
STYLE_SAMPLES = ("starry_night", "great_wave", "composition_vii")


def sample_path(name: str) -> Path:
    """Path of a shipped sample image by name, e.g. 'starry_night'."""
    return SAMPLE_DIR / f"{name}.jpg"
