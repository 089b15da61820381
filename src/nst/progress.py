"""A terminal progress bar that consumes the engine's StepEvents."""

from __future__ import annotations

import sys

from tqdm import tqdm

from .events import StepEvent


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
