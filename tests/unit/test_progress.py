"""Progress over a whole coarse-to-fine run: the run position every door shows
(the CLI's bar, the studio), and the bar itself."""

from __future__ import annotations

import pytest
import torch

from nst.cli.progress import RunBar
from nst.core.geometry import Scale
from nst.events import JobEvent, StepEvent, position

SCALES = (Scale(64, 48, 10), Scale(128, 96, 20))  # 3072 and 12288 pixels a step
IMAGE = torch.zeros(1, 3, 4, 4)


def step(scale: int, number: int, elapsed_s: float = 1.0) -> StepEvent:
    return StepEvent(number, SCALES[scale].steps, {"total": 1.0}, elapsed_s, IMAGE, scale, SCALES)


def test_position_counts_steps_over_every_scale_and_work_by_pixels() -> None:
    first = position(step(0, 10))
    assert (first.step, first.total, first.scale, first.scales) == (10, 30, 0, 2)
    assert (first.width, first.height) == (64, 48)
    # The coarse scale's 10 steps are a seventh of the work: 30720 of 276480 pixel-steps.
    assert first.work_done == pytest.approx(30720 / (30720 + 245760))
    halfway = position(step(1, 10))
    assert halfway.step == 20 and halfway.work_done == pytest.approx((30720 + 122880) / 276480)
    assert position(step(1, 20)).work_done == pytest.approx(1.0)
    # Time left goes by work: 10 s for the first seventh leaves about 80 s, not 20 s by steps.
    assert position(step(0, 10, elapsed_s=10.0)).seconds_left(10.0) == pytest.approx(
        10.0 * (1 / first.work_done - 1))
    assert position(step(0, 1, elapsed_s=0.0)).seconds_left(0.0) is None
    # An event without a schedule (optimize alone): its own scale.
    alone = position(StepEvent(3, 12, {"total": 1.0}, 1.0, IMAGE))
    assert (alone.step, alone.total, alone.scales, alone.width) == (3, 12, 1, 0)


def test_the_bar_names_the_scale_counts_the_whole_run_and_ends_at_its_total(capsys) -> None:
    bar = RunBar("transfer")
    shown = []
    for scale, scale_steps in enumerate((10, 19)):  # the last scale stops a step early
        for number in range(1, scale_steps + 1):
            bar(step(scale, number, elapsed_s=0.01 * number))
            assert bar.bar is not None
            shown.append(str(bar.bar))  # the line as the terminal gets it
    assert "10/30" in shown[9] and "scale 1/2 64x48 step 10/10" in shown[9]
    assert "29/30" in shown[-1] and "scale 2/2 128x96 step 19/20" in shown[-1] and " left" in shown[-1]
    bar(JobEvent("finished", "run"))
    assert bar.bar is not None and bar.bar.n == 30  # ends at its total, not at 29/30
    assert "30/30" in str(bar.bar)
    bar.close()
    assert bar.bar is None
