"""A tiny stand-in for VGG19: nst's own FeatureExtractor with 16 small random
convolutions in VGG19's layout (the same layer names, poolings, margin and input
convention), so every engine path runs as with the real network in a fraction of
the time. Tests whose claim is about the engine, tiles, batching or the doors use
it; tests about what the real weights see stay in tests/integration with VGG19."""

from __future__ import annotations

import pytest
import torch

from nst.core import features
from nst.core.features import CAFFE, ConvParams, InputConvention
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
