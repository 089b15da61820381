"""A tiny stand-in for VGG19 in fast tests: a real `FeatureExtractor` (the engine's
own network class: padding, cropping, pooling and arithmetic as for VGG19) over two
small random convolutions (3 -> 8 -> 8 channels), drawn from a fixed seed.

`tiny_config` is a Config that weighs only layers of those two convolutions (one
scale, few steps); `CountingFactory` is an `Executor` network factory that counts
the networks it makes; `picture` writes a small synthetic input image.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from nst.config import Config
from nst.core.features import FeatureExtractor, InputConvention
from nst.core.geometry import used_layers

CHANNELS = (3, 8, 8)
# Inputs in [0, 1] as they are, features on the scale they come out at.
PLAIN = InputConvention(bgr=False, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), value_range=1.0,
                        feature_scale=1.0)
TINY_LAYERS = {"content_layers": ("relu_2",), "style_layers": ("relu_1", "relu_2"), "precision": "fp32",
               "channels_last": False}


def tiny_params(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    params = []
    for inputs, outputs in zip(CHANNELS, CHANNELS[1:], strict=False):
        weight = torch.randn(outputs, inputs, 3, 3, generator=generator) / (3 * inputs ** 0.5)
        params.append((weight, torch.zeros(outputs)))
    return params


def tiny_network(config: Config) -> FeatureExtractor:
    """A FeatureExtractor for the layers `config` weighs (they must lie within two convolutions)."""
    layers = used_layers(config, config.task != "texture", config.task != "reconstruct")
    return FeatureExtractor(tiny_params(), PLAIN, layers, config.pooling, config.precision or "fp32",
                            bool(config.channels_last))


class CountingFactory:
    """tiny_network, counting the networks made (an Executor's factory)."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self, config: Config) -> FeatureExtractor:
        self.made += 1
        return tiny_network(config)


SIZE = 32


def picture(path: Path, seed: int, size: tuple[int, int] = (SIZE, 24),
            spread: tuple[float, float, float] = (0.6, 0.6, 0.6),
            offset: tuple[float, float, float] = (0.2, 0.2, 0.2), noise: float = 0.15) -> Path:
    """A smooth colour gradient (each channel's range: offset to offset + spread) with
    noise on top: structure for content, texture for style."""
    generator = torch.Generator().manual_seed(seed)
    width, height = size
    ys, xs = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    base = torch.stack([xs, ys, 1 - xs * ys]) * torch.tensor(spread).view(3, 1, 1) \
        + torch.tensor(offset).view(3, 1, 1)
    image = (base + noise * torch.randn(3, height, width, generator=generator)).clamp(0, 1)
    array = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(array).save(path)
    return path


def tiny_config(**changes: object) -> Config:
    return Config(**{**TINY_LAYERS, "size": SIZE, "scales": 1, "steps": 20, "seed": 1, "device": "cpu",
                     **changes})
