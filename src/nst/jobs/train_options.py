"""The options of `nst train-decoder`, and their defaults (torch-free: the CLI's
help and refusals read them without loading torch)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from nst.core.decoder_spec import DECODER_LEVELS, DEFAULT_LEVEL, DEFAULT_WIDTH, MAX_WIDTH, MIN_WIDTH
from nst.errors import NstError
from nst.layers import parse_layers


@dataclass(frozen=True)
class TrainOptions:
    """What a training run does. Those in `identity` must match a checkpoint's to
    resume from it; steps, device, threads, precision and the intervals may change."""

    # The shipped decoder's run: ~1.1 s a step (batch 8 of 128 px crops, width 32, bf16,
    # one thread of the AVX512-BF16 EPYC), so 10000 steps are about 3 hours alone.
    steps: int = 10000
    batch_size: int = 8
    crop: int = 128
    lr: float = 3e-4
    lr_decay: float = 1e-4  # lr / (1 + lr_decay * step), independent of --steps
    seed: int = 0
    level: str = DEFAULT_LEVEL
    width: int = DEFAULT_WIDTH
    # The style term weighs twice the content term: --strength can only take style
    # away at stylization time, never add it.
    style_weight: float = 2.0
    pixel_weight: float = 10.0
    precision: str | None = None  # None: bf16 on a CPU with native bf16 or a GPU, else fp32
    device: str = "cpu"
    checkpoint_every: int = 100  # about 2 minutes of training at most is lost to kill -9
    eval_every: int = 500  # a held-out PSNR every ~10 minutes (it costs ~5 s)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 1:
                raise NstError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.crop < 16 or self.crop % 8:
            raise NstError(f"--crop must be a multiple of 8 of at least 16 pixels, got {self.crop}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise NstError(f"--lr must be a positive number, got {self.lr:g}")
        if self.precision not in (None, "fp32", "bf16"):
            raise NstError(f"training runs in fp32 or bf16, not {self.precision}")
        if parse_layers([self.level])[0] not in DECODER_LEVELS:
            raise NstError(f"--level must be relu3_1 or relu4_1, got {self.level}")
        object.__setattr__(self, "level", parse_layers([self.level])[0])
        if not MIN_WIDTH <= self.width <= MAX_WIDTH:
            raise NstError(f"--width must be between {MIN_WIDTH} and {MAX_WIDTH} channels, got {self.width}")

    def arithmetic(self, device_type: str) -> str:
        """The precision the run computes in: bf16 autocast was 1.9x faster than fp32
        per step on the AVX512-BF16 EPYC; without native bf16 it is emulated (slow)."""
        if self.precision is not None:
            return self.precision
        from nst.config import cpu_has_native_bf16  # noqa: PLC0415  (asks torch)

        return "bf16" if device_type != "cpu" or cpu_has_native_bf16() else "fp32"

    def identity(self) -> dict[str, object]:
        keep = ("batch_size", "crop", "lr", "lr_decay", "seed", "level", "width", "style_weight",
                "pixel_weight")
        return {name: value for name, value in asdict(self).items() if name in keep}


