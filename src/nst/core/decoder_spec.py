"""The decoder's architecture, torch-free (the CLI checks its options without torch)."""

from __future__ import annotations

from dataclasses import dataclass

from nst.errors import NstError
from nst.layers import LAYERS, POOL_AFTER, parse_layers

DECODER_FORMAT = "nst-decoder-1"
DECODER_LEVELS = ("relu_5", "relu_9")  # relu3_1 and relu4_1: the first convolution of a block
LEVEL_NAMES = {"relu_5": "relu3_1", "relu_9": "relu4_1"}
DEFAULT_LEVEL = "relu_9"
DEFAULT_WIDTH = 32
MIN_WIDTH, MAX_WIDTH = 4, 256


@dataclass(frozen=True)
class DecoderSpec:
    """The decoder's architecture: the VGG19 layer it decodes (canonical name,
    relu3_1 = relu_5 or relu4_1 = relu_9) and its first block's channel count."""

    level: str = DEFAULT_LEVEL
    width: int = DEFAULT_WIDTH

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", parse_layers([self.level])[0])
        if self.level not in DECODER_LEVELS:
            raise NstError(f"a decoder decodes relu3_1 or relu4_1, not {self.level}")
        if not MIN_WIDTH <= self.width <= MAX_WIDTH:
            raise NstError(f"a decoder's width is {MIN_WIDTH} to {MAX_WIDTH} channels, not {self.width}")

    @property
    def depth(self) -> int:
        """VGG19's 1-based index of the level's convolution."""
        return LAYERS[self.level][0]

    @property
    def factor(self) -> int:
        """How many pixels one feature position covers along a side (4 or 8)."""
        return 1 << sum(1 for index in POOL_AFTER if index < self.depth)

    def metadata(self) -> dict[str, str]:
        return {"format": DECODER_FORMAT, "level": self.level, "width": str(self.width)}

    @property
    def level_name(self) -> str:
        """relu4_1 for relu_9 (for messages)."""
        return LEVEL_NAMES[self.level]
