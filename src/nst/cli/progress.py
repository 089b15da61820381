"""Terminal progress bars: consumers of the one event stream (nst.events).

`RunBar` follows one run's steps; `ItemBar` follows many jobs (the images of
a batch, the frames of a video, the runs of a study) and shows the step of the
job in progress. Both are plain `EventCallback`s.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

from nst.events import Event, JobEvent, RunPosition, StepEvent, position
from nst.files.report import duration

REDRAW_INTERVAL_S = 0.25


def _losses(event: StepEvent) -> str:
    return " ".join(f"{name} {value:.3g}" for name, value in event.losses.items())


class RunBar:
    """One bar for one run, over every scale of a coarse-to-fine run: it counts
    the run's steps and ends at their total; its text names the scale (k of N, its
    size), the step within that scale, the losses and the whole run's time left
    (estimated by pixel-steps: a coarse scale's step is cheaper than a fine one's)."""

    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]{postfix}"  # tqdm adds ", "

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: tqdm | None = None
        self.started = 0.0

    def __call__(self, event: Event) -> None:
        if isinstance(event, JobEvent):
            if event.status == "finished" and self.bar is not None and self.bar.total:
                self.bar.update(self.bar.total - self.bar.n)  # a run may stop early: the bar ends full
                self.bar.refresh()
            return
        where = position(event)
        now = time.monotonic()
        if self.bar is None:
            self.started = now - event.elapsed_s
            self.bar = tqdm(total=where.total, desc=self.label, unit="step", file=sys.stderr,
                            dynamic_ncols=True, leave=False, bar_format=self.FORMAT)
        self.bar.set_postfix_str(_where(event, where, now - self.started), refresh=False)
        self.bar.update(where.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _where(event: StepEvent, where: RunPosition, spent_s: float) -> str:
    """'scale 2/3 256x171 step 40/100, 1m05s left, total 1.2e+05 content ...'."""
    parts = []
    if where.scales > 1:
        size = f" {where.width}x{where.height}" if where.width else ""
        parts.append(f"scale {where.scale + 1}/{where.scales}{size} step {event.step}/{event.total_steps}")
    left = where.seconds_left(spent_s)
    if left is not None:
        parts.append(f"{duration(left)} left")
    parts.append(_losses(event))
    return ", ".join(parts)


class ItemBar:
    """One bar over many jobs; its text shows the job in progress and its step.
    A job's end (finished, skipped, failed) advances it; a `queued` event with a
    label (for example a lock taken over from a dead run) is printed as a note."""

    def __init__(self, label: str, unit: str) -> None:
        self.label, self.unit = label, unit
        self._bar: tqdm | None = None  # drawn at the first event: a refused command shows no empty bar
        self.shown = 0.0
        self.current = ""
        # On a cluster: each worker's first start and how many jobs it finished.
        self.worker_start: dict[str, float] = {}
        self.worker_done: dict[str, int] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            self._step(event)
            return
        self._open(event.total)
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

    @property
    def bar(self) -> tqdm:
        return self._open(None)

    def _open(self, total: int | None) -> tqdm:
        """The bar, drawn first once the count of jobs is known (an empty bar's
        'batch: 0image' would stay in a log as a line of its own)."""
        if self._bar is None:
            self._bar = tqdm(total=total, desc=self.label, unit=self.unit, file=sys.stderr,
                             dynamic_ncols=True)
        return self._bar

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class TrainBar:
    """`nst train-decoder`'s bar: steps, the step's losses and the last held-out PSNR."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.psnr: float | None = None

    def __call__(self, progress: Any) -> None:
        if self.bar is None:
            self.bar = tqdm(total=progress.total, initial=progress.first_step, desc="train-decoder",
                            unit="step", file=sys.stderr, dynamic_ncols=True, leave=False)
        if progress.psnr is not None:
            self.psnr = progress.psnr
        text = " ".join(f"{name} {value:.3g}" for name, value in progress.losses.items())
        if self.psnr is not None:
            text += f", held-out PSNR {self.psnr:.2f} dB"
        self.bar.set_postfix_str(text, refresh=False)
        self.bar.update(progress.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
