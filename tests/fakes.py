"""Stand-ins: a tiny VGG19, small pictures and image files that only look huge.

A tiny stand-in for VGG19: nst's own FeatureExtractor with 16 small random
convolutions in VGG19's layout (the same layer names, poolings, margin and input
convention), so every engine path runs as with the real network in a fraction of
the time. Tests whose claim is about the engine, tiles, batching or the doors use
it; tests about what the real weights see stay in tests/integration with VGG19.

`tiny_config` is a Config that weighs only the first two layers (one scale, few
steps); `CountingFactory` is an `Executor` network factory that counts the networks
it makes; `picture` writes a small synthetic input image."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from nst.config import Config
from nst.core import features
from nst.core.features import CAFFE, ConvParams, FeatureExtractor, InputConvention
from nst.core.geometry import used_layers
from nst.layers import CONV_CHANNELS

TINY_CHANNELS = 8  # every layer: Gram matrices of 8x8, enough for distinct statistics


def tiny_params(channels: int = TINY_CHANNELS, seed: int = 0) -> ConvParams:
    """16 random 3x3 convolutions (He-scaled, so features neither vanish nor blow up
    through 16 layers), zero biases."""
    generator = torch.Generator().manual_seed(seed)
    params: ConvParams = []
    in_channels = 3
    for _ in CONV_CHANNELS:
        scale = (2.0 / (9 * in_channels)) ** 0.5
        weight = torch.randn(channels, in_channels, 3, 3, generator=generator) * scale
        params.append((weight, torch.zeros(channels)))
        in_channels = channels
    return params


def tiny_weights(source: str = "caffe",
                 depth: int = len(CONV_CHANNELS)) -> tuple[ConvParams, InputConvention]:
    """What features.load_weights returns, for any source: the tiny network."""
    return tiny_params()[:depth], CAFFE


def use_tiny_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every extractor built from now on (build_extractor, extractor_for, the
    runner, the doors) in this process is the tiny network."""
    monkeypatch.setattr(features, "_WEIGHT_CACHE", {})
    monkeypatch.setattr(features, "load_weights", tiny_weights)


def bomb_png(path: Path, width: int, height: int, color_type: int = 2) -> Path:
    """A PNG whose header says width x height (8-bit; colour type 2: RGB, 0: grey,
    6: RGBA) followed by one tiny compressed row: a few hundred bytes that read as a
    huge picture. Nothing can decode it whole; a probe of its header reads its size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    row = zlib.compress(b"\0" * 64)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", row) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path


TINY_LAYERS = {"content_layers": ("relu_2",), "style_layers": ("relu_1", "relu_2"), "precision": "fp32",
               "channels_last": False}
SIZE = 32


def tiny_extractor(config: Config) -> FeatureExtractor:
    """The tiny network for the layers `config` weighs, built directly (an Executor's
    network factory: no weight loading involved)."""
    layers = used_layers(config, config.task != "texture", config.task != "reconstruct")
    return FeatureExtractor(tiny_params(), CAFFE, layers, config.pooling, config.precision or "fp32",
                            bool(config.channels_last))


class CountingFactory:
    """tiny_extractor, counting the networks made (an Executor's factory)."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self, config: Config) -> FeatureExtractor:
        self.made += 1
        return tiny_extractor(config)


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
