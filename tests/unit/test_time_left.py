"""The time-left estimate covers the whole run: every scale still to come, each
step costed as engine.STEP_COST_MARGIN says, at the pace of the current scale."""

from __future__ import annotations

import pytest
import torch

from nst.core.engine import STEP_COST_MARGIN, schedule_work
from nst.core.geometry import Scale
from nst.core.memory import ScalePlan
from nst.events import StepEvent, position

IMAGE = torch.zeros(1, 3, 2, 2)
# A 512 px transfer's schedule (start size 64, 40 steps) and the median time of a
# step at each of its scales as measured on a 2-core Xeon (fp32): a step costs
# more per pixel at the last scale than at the ones before.
SCALES = (Scale(64, 48, 40), Scale(91, 68, 20), Scale(128, 96, 10), Scale(181, 136, 6),
          Scale(256, 192, 6), Scale(362, 272, 6), Scale(512, 384, 6))
MEASURED_STEP_S = (0.0181, 0.0328, 0.0613, 0.1122, 0.2089, 0.3969, 0.9133)


def _cost(scale: Scale) -> int:
    return (scale.width + STEP_COST_MARGIN) * (scale.height + STEP_COST_MARGIN)


def _run(step_s: tuple[float, ...]) -> list[tuple[StepEvent, float, float]]:
    """The step events of a fake run of SCALES whose steps at scale k take step_s[k],
    each with the time spent so far and the true time left."""
    schedule = schedule_work([ScalePlan(scale, 5, None, 0) for scale in SCALES])
    total = sum(seconds * scale.steps for seconds, scale in zip(step_s, SCALES, strict=True))
    out, spent = [], 0.0
    for number, (seconds, scale) in enumerate(zip(step_s, SCALES, strict=True)):
        for step in range(1, scale.steps + 1):
            spent += seconds
            event = StepEvent(step, scale.steps, {"total": 1.0}, seconds * step, IMAGE, number, schedule)
            out.append((event, spent, total - spent))
    return out


def test_the_schedule_costs_a_step_by_its_pixels_and_margin() -> None:
    work = schedule_work([ScalePlan(scale, 5, None, 0) for scale in SCALES])
    assert [(w.width, w.height, w.steps) for w in work] == [(s.width, s.height, s.steps) for s in SCALES]
    assert [w.step_cost for w in work] == [_cost(scale) for scale in SCALES]


def test_time_left_is_exact_where_steps_cost_what_the_schedule_says() -> None:
    for event, spent, left in _run(tuple(2e-7 * _cost(scale) for scale in SCALES)):
        estimate = position(event).seconds_left(spent)
        assert estimate == pytest.approx(left, rel=1e-6, abs=1e-9), (event.scale, event.step)


def test_time_left_of_a_measured_run_stays_within_a_fifth_at_every_scale() -> None:
    """From every scale's second step on (the first is measured by the run's pace).
    A run-wide pace by W x H pixels was up to 31% high at the coarse scales; by the
    padded input, up to 33% low."""
    for event, spent, left in _run(MEASURED_STEP_S):
        if event.step < 2 or left < 1.0:
            continue
        estimate = position(event).seconds_left(spent)
        assert estimate is not None
        assert abs(estimate / left - 1) < 0.2, (event.scale, event.step, estimate, left)


def test_at_the_end_of_a_scale_the_scales_to_come_are_still_ahead() -> None:
    events = _run(MEASURED_STEP_S)
    event, spent, left = next(item for item in events
                              if item[0].scale == 0 and item[0].step == SCALES[0].steps)
    estimate = position(event).seconds_left(spent)
    assert estimate is not None and estimate > 0.8 * left  # not the ~0 of an estimate per scale
