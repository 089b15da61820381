"""The plan is made once, by prepare: the Request carries every scale's steps,
L-BFGS history and tiles, and the engine runs that plan as it is."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from clips import one_torch_thread  # noqa: F401 (an autouse fixture)
from nst import Config
from nst.core import device, memory
from nst.core.geometry import Scale
from nst.events import StepEvent
from nst.jobs.request import prepare
from nst.jobs.runner import execute

CONFIG = Config(task="reconstruct", content_layers=("conv_1",), size=32, start_size=16, steps=4,
                device="cpu", seed=0)


def test_the_request_carries_the_plan_of_every_scale(small_image: Path) -> None:
    request = prepare(CONFIG, small_image)
    assert request.sizes is not None
    assert [plan.scale for plan in request.scale_plans] == list(request.sizes.scales)
    assert len(request.scale_plans) > 1
    assert all(plan.history >= 1 for plan in request.scale_plans)


def test_the_engine_runs_the_requests_plan_without_planning_again(
        small_image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    request = prepare(CONFIG, small_image)
    # Other steps than the config's, to see whose the engine follows.
    changed = tuple(dataclasses.replace(plan, scale=Scale(plan.scale.width, plan.scale.height, 2 + index))
                    for index, plan in enumerate(request.scale_plans))
    request = dataclasses.replace(request, scale_plans=changed)

    def no_planning(*args: object, **kwargs: object) -> None:
        raise AssertionError("planned again")

    monkeypatch.setattr(device, "plan_on", no_planning)
    monkeypatch.setattr(memory, "plan_run", no_planning)
    events: list[StepEvent] = []
    done = execute(request, lambda event: events.append(event) if isinstance(event, StepEvent) else None)
    steps = {event.scale: event.total_steps for event in events}
    assert steps == {index: 2 + index for index in range(len(changed))}
    assert done.result.steps == sum(2 + index for index in range(len(changed)))
    # The events' schedule is the plan's, each step costed by the padded input.
    assert [(work.width, work.height, work.steps) for work in events[-1].scales] == \
        [(plan.scale.width, plan.scale.height, plan.scale.steps) for plan in changed]
