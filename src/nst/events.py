"""The one event stream: the engine's StepEvents and the job layer's JobEvents.

Every door (the CLI's progress bars today, a studio or a cluster driver next)
consumes the same two event types through one callback, `EventCallback`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # the events themselves must not load torch
    from torch import Tensor

    from nst.record import RunRecord


class ScheduledScale(Protocol):
    """A scale of a run's schedule as a step event carries it (ScaleWork, or
    geometry.Scale: its step_cost is its pixels)."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def steps(self) -> int: ...

    @property
    def step_cost(self) -> int: ...


@dataclass(frozen=True)
class ScaleWork:
    """One scale of a run's schedule as step events carry it: its size, its steps
    and the pixels one step computes on (the network's input, its margin included:
    the engine says; 0 counts width x height)."""

    width: int
    height: int
    steps: int
    pixels: int = 0

    @property
    def step_cost(self) -> int:
        return self.pixels or self.width * self.height


@dataclass(frozen=True)
class StepEvent:
    """One finished iteration. `losses` holds the weighted terms ('content',
    'style', 'tv' where used) and 'total'; `image` is the current image
    (B, 3, H, W) in [0, 1], shared with the optimizer: copy it to keep it."""

    step: int  # 1-based within its scale
    total_steps: int  # of this scale
    losses: dict[str, float]
    elapsed_s: float  # since this scale began
    image: Tensor
    scale: int = 0  # index of the current scale in a coarse-to-fine run
    scales: tuple[ScheduledScale, ...] = ()  # the run's whole schedule, coarse to fine (empty: one scale)


@dataclass(frozen=True)
class RunPosition:
    """Where a run stands over all its scales (see `position`)."""

    step: int  # steps done, over every scale
    total: int  # steps in all
    scale: int  # 0-based index of the current scale
    scales: int  # how many
    width: int  # the current scale's size (0 when the event does not say)
    height: int
    work_done: float  # share of the run's work done, 0-1: a step costs its scale's step_cost
    # Seconds per unit of work in the current scale, measured over its steps so far
    # (None before its second step), and the work still to do in this scale and every
    # later one, in the same units.
    scale_rate_s: float | None = None
    work_left: float = 0.0

    def seconds_left(self, spent_s: float) -> float | None:
        """The whole run's time left (every scale still to come): the work left at the
        current scale's pace, or, before that is measured, at the run's pace so far
        (spent_s: the time since the run began). Time goes by the pixel-steps the
        network computes, not by steps: a coarse scale's step is cheaper than a fine
        one's. The current scale's pace rather than the run's: a fine scale costs
        more per pixel than the coarse ones before it (caches), and the run's mean
        pace made the estimate run low at every scale."""
        if self.scale_rate_s is not None:
            return self.scale_rate_s * self.work_left
        if self.work_done <= 0 or spent_s <= 0:
            return None
        return spent_s / self.work_done * (1.0 - self.work_done)


def position(event: StepEvent) -> RunPosition:
    """The run-wide position of a step event."""
    if event.scale < len(event.scales):
        scales: tuple[ScheduledScale, ...] = event.scales
        index, count = event.scale, len(event.scales)
    else:  # no schedule given: the scale alone
        scales, index, count = (ScaleWork(0, 0, event.total_steps, 1),), 0, event.scale + 1
    current = scales[index]
    work = [scale.step_cost * scale.steps for scale in scales]
    done = sum(work[:index]) + current.step_cost * event.step
    measured = event.step >= 2 and event.elapsed_s > 0  # the first step alone says little
    rate = event.elapsed_s / (current.step_cost * event.step) if measured else None
    return RunPosition(sum(scale.steps for scale in scales[:index]) + event.step,
                       sum(scale.steps for scale in scales), event.scale, count, current.width,
                       current.height, min(1.0, done / max(1, sum(work))), rate,
                       float(max(0, sum(work) - done)))


JobStatus = Literal["queued", "started", "finished", "failed", "skipped"]


@dataclass(frozen=True)
class JobEvent:
    """A job (one image of a batch, one frame of a video, one run of a study, a
    single transfer) changed state. `index` is 0-based among `total` jobs of the
    same command (None when the total is not known yet, as for some videos)."""

    status: JobStatus
    label: str  # what the job is: "photos/a.jpg", "frame 12", "layers conv_4"
    index: int = 0
    total: int | None = 1
    elapsed_s: float = 0.0  # finished/failed: the job's wall time
    message: str = ""  # failed: the error; skipped: why
    record: RunRecord | None = field(default=None, repr=False)  # finished runs
    worker: str = ""  # on a cluster: the worker that ran (started) or finished it


Event = StepEvent | JobEvent
EventCallback = Callable[[Event], None]
StepCallback = Callable[[StepEvent], None]


@dataclass
class Result:
    """A finished optimization: the image (B, 3, H, W) in [0, 1] on the CPU, the
    final weighted loss terms (the mean over the B images), the loss history (one
    dict per step), wall time, and the final terms of each image."""

    image: Tensor
    losses: dict[str, float]
    elapsed_s: float
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    image_losses: list[dict[str, float]] = field(default_factory=list)


def notify(callback: EventCallback | None, event: Event) -> None:
    if callback is not None:
        callback(event)


def steps_only(callback: EventCallback | None) -> EventCallback | None:
    """A step callback that passes StepEvents on and nothing else: for a door
    that reports its own job events (with index and total) around a run."""
    if callback is None:
        return None
    forward: EventCallback = callback

    def steps(event: Event) -> None:
        if isinstance(event, StepEvent):
            forward(event)

    return steps
