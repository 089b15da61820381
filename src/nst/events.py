"""What the engine reports: one StepEvent per iteration, one Result at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor


@dataclass(frozen=True)
class StepEvent:
    """One finished iteration. `losses` holds the weighted terms ('content',
    'style', 'tv' where used) and 'total'; `image` is the current image
    (B, 3, H, W) in [0, 1], shared with the optimizer: copy it to keep it."""

    step: int  # 1-based
    total_steps: int
    losses: dict[str, float]
    elapsed_s: float
    image: Tensor
    scale: int = 0  # index of the current scale in a coarse-to-fine run


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
