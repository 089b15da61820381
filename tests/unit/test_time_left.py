"""The time-left estimate covers the whole run: every scale still to come, each
step costed by what the network computes on (the image and its reflected margin)."""

from __future__ import annotations

import pytest
import torch

from nst.core.engine import schedule_work
from nst.core.geometry import MARGIN, Scale
from nst.core.memory import ScalePlan
from nst.events import StepEvent, position

IMAGE = torch.zeros(1, 3, 2, 2)
# A coarse-to-fine run whose coarse steps cost more per pixel than its fine ones,
# as every run's do: the margin is a larger share of a small image.
SCALES = (Scale(48, 32, 40), Scale(96, 64, 20), Scale(192, 128, 10))


def _padded(scale: Scale) -> int:
    return (scale.width + 2 * MARGIN) * (scale.height + 2 * MARGIN)


def _events_and_times(seconds_per_pixel: float) -> list[tuple[StepEvent, float, float]]:
    """The step events of a fake run of SCALES whose steps take time in proportion
    to the padded pixels, each with the time spent and the true time left."""
    schedule = schedule_work([ScalePlan(scale, 5, None, 0) for scale in SCALES])
    costs = [seconds_per_pixel * _padded(scale) for scale in SCALES for _ in range(scale.steps)]
    total = sum(costs)
    out, spent, index = [], 0.0, 0
    for number, scale in enumerate(SCALES):
        began = spent
        for step in range(1, scale.steps + 1):
            spent += costs[index]
            index += 1
            event = StepEvent(step, scale.steps, {"total": 1.0}, spent - began, IMAGE, number, schedule)
            out.append((event, spent, total - spent))
    return out


def test_the_schedule_costs_a_step_by_the_padded_input() -> None:
    work = schedule_work([ScalePlan(scale, 5, None, 0) for scale in SCALES])
    assert [(w.width, w.height, w.steps) for w in work] == [(s.width, s.height, s.steps) for s in SCALES]
    assert [w.step_cost for w in work] == [_padded(scale) for scale in SCALES]


def test_time_left_follows_the_whole_run_at_every_step_of_every_scale() -> None:
    for event, spent, left in _events_and_times(1e-6):
        estimate = position(event).seconds_left(spent)
        assert estimate is not None
        assert estimate == pytest.approx(left, rel=1e-6, abs=1e-9), (event.scale, event.step)


def test_at_the_end_of_a_scale_the_scales_to_come_are_still_ahead() -> None:
    events = _events_and_times(1e-6)
    last_coarse = next(item for item in events if item[0].scale == 0 and item[0].step == SCALES[0].steps)
    event, spent, left = last_coarse
    estimate = position(event).seconds_left(spent)
    assert estimate is not None and estimate > 0.9 * left  # not the ~0 a per-scale estimate gives
