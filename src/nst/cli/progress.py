"""A terminal progress bar that consumes the engine's StepEvents."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from nst.events import StepEvent

REDRAW_INTERVAL_S = 0.25


class ProgressBar:
    """Shows step, losses and time left on stderr; one bar per run (re-created
    when the scale of a coarse-to-fine run changes)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: tqdm | None = None
        self.scale = -1

    def __call__(self, event: StepEvent) -> None:
        if self.bar is None or event.scale != self.scale:
            self.close()
            self.scale = event.scale
            self.bar = tqdm(total=event.total_steps, desc=self.label, unit="step",
                            file=sys.stderr, dynamic_ncols=True, leave=False)
        self.bar.set_postfix_str(
            " ".join(f"{name} {value:.3g}" for name, value in event.losses.items()), refresh=False
        )
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ItemProgress:
    """One bar over many runs (the images of a batch, the frames of a video);
    its text shows the step of the run in progress. Feed it StepEvents, and
    call advance() when a run ends."""

    def __init__(self, label: str, total: int | None, unit: str) -> None:
        self.bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, dynamic_ncols=True)
        self.shown = 0.0

    def __call__(self, event: StepEvent) -> None:
        # Steps come faster than a terminal wants redrawing.
        now = time.monotonic()
        due = now - self.shown > REDRAW_INTERVAL_S
        self.bar.set_postfix_str(
            f"step {event.step}/{event.total_steps} loss {event.losses['total']:.3g}", refresh=due
        )
        if due:
            self.shown = now

    def advance(self, note: str = "") -> None:
        self.bar.set_postfix_str(note, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
