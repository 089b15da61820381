"""Terminal progress bars: consumers of the one event stream (nst.events).

`RunBar` follows one run's steps; `ItemBar` follows many jobs (the images of
a batch, the frames of a video, the runs of a study) and shows the step of the
job in progress. Both are plain `EventCallback`s.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from nst.events import Event, JobEvent, StepEvent

REDRAW_INTERVAL_S = 0.25


def _losses(event: StepEvent) -> str:
    return " ".join(f"{name} {value:.3g}" for name, value in event.losses.items())


class RunBar:
    """Step, losses and time left of one run on stderr; one bar per scale of a
    coarse-to-fine run (re-created when the scale changes)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: tqdm | None = None
        self.scale = -1

    def __call__(self, event: Event) -> None:
        if not isinstance(event, StepEvent):
            return
        if self.bar is None or event.scale != self.scale:
            self.close()
            self.scale = event.scale
            self.bar = tqdm(total=event.total_steps, desc=self.label, unit="step",
                            file=sys.stderr, dynamic_ncols=True, leave=False)
        self.bar.set_postfix_str(_losses(event), refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ItemBar:
    """One bar over many jobs; its text shows the job in progress and its step.
    A job's end (finished, skipped, failed) advances it; a `queued` event with a
    label (for example a lock taken over from a dead run) is printed as a note."""

    def __init__(self, label: str, unit: str) -> None:
        self.bar = tqdm(total=None, desc=label, unit=unit, file=sys.stderr, dynamic_ncols=True)
        self.shown = 0.0
        self.current = ""
        # On a cluster: each worker's first start and how many jobs it finished.
        self.worker_start: dict[str, float] = {}
        self.worker_done: dict[str, int] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            self._step(event)
            return
        if event.total is not None and self.bar.total != event.total:
            self.bar.total = event.total
        if event.status == "queued":
            self.bar.write(f"nst: {event.label}", file=sys.stderr)
        elif event.status == "started":
            self.current = event.label
            if event.worker:
                self.worker_start.setdefault(event.worker, time.monotonic())
            else:
                self.bar.set_postfix_str(event.label, refresh=True)
        else:
            if event.worker and event.status == "finished":
                self.worker_done[event.worker] = self.worker_done.get(event.worker, 0) + 1
            self.bar.set_postfix_str(self._rates() if event.worker else self._note(event), refresh=False)
            self.bar.update(1)

    def _rates(self) -> str:
        """Each worker's finished jobs per second since it started its first (a cluster run)."""
        now = time.monotonic()
        rates = []
        for worker, start in sorted(self.worker_start.items()):
            rate = self.worker_done.get(worker, 0) / max(now - start, 1e-9)
            rates.append(f"{worker} {rate:.2f}/s" if rate >= 0.1 else f"{worker} {rate * 60:.2f}/min")
        return " ".join(rates)

    @staticmethod
    def _note(event: JobEvent) -> str:
        if event.status == "finished":
            return f"{event.label} {event.elapsed_s:.1f} s"
        return f"{event.status} {event.label}"

    def _step(self, event: StepEvent) -> None:
        # Steps come faster than a terminal wants redrawing.
        now = time.monotonic()
        due = now - self.shown > REDRAW_INTERVAL_S
        self.bar.set_postfix_str(
            f"{self.current} step {event.step}/{event.total_steps} loss {event.losses['total']:.3g}",
            refresh=due,
        )
        if due:
            self.shown = now

    def close(self) -> None:
        self.bar.close()
