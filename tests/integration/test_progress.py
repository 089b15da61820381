"""Progress over a whole coarse-to-fine run: the run position every door shows
(the CLI's bar, the studio), and the bar itself."""

from __future__ import annotations

import re

import torch

from nst.cli import app as cli
from nst.core.geometry import Scale
from nst.events import StepEvent

SCALES = (Scale(64, 48, 10), Scale(128, 96, 20))  # 3072 and 12288 pixels a step
IMAGE = torch.zeros(1, 3, 4, 4)


def step(scale: int, number: int, elapsed_s: float = 1.0) -> StepEvent:
    return StepEvent(number, SCALES[scale].steps, {"total": 1.0}, elapsed_s, IMAGE, scale, SCALES)


def test_a_coarse_to_fine_transfer_shows_one_bar_over_its_scales(tmp_path, content_path, style_path,
                                                                 capsys) -> None:
    options = ["--size", "96", "--start-size", "48", "--steps", "6", "--scales", "2", "--device", "cpu"]
    output = tmp_path / "out.png"
    code = cli.main(["transfer", str(content_path), str(style_path), "-o", str(output), *options])
    assert code == 0
    err = capsys.readouterr().err
    totals = set(re.findall(r"\d+/(\d+) \[", err))
    assert totals == {"9"}, err  # one bar over both scales (6 + 3 steps), never one per scale
    assert re.search(r"scale 2/2 96x\d+ step [1-3]/3", err), err
    assert "9/9" in err
