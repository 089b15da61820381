"""Stand-ins for the fast path's tests: a random VGG19-shaped network as far as
relu3_1 (the real channel counts, which the decoder expects) as an Executor's
network factory, and a tiny untrained decoder saved as a .safetensors file."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from nst.config import Config
from nst.core.decoder import Decoder, decoder_tensors
from nst.core.decoder_spec import DecoderSpec
from nst.core.features import FeatureExtractor, InputConvention
from nst.core.geometry import used_layers
from nst.layers import CONV_CHANNELS

PLAIN = InputConvention(bgr=False, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), value_range=1.0,
                        feature_scale=1.0)
DEPTH = 5  # relu3_1: the shallower level a decoder decodes, cheap on a CPU
# Layers a gatys run on this network weighs (--init fast tests): relu1_1 .. relu3_1.
FAST_LAYERS = {"content_layers": ("relu_5",), "style_layers": ("relu_1", "relu_3", "relu_5"),
               "precision": "fp32", "channels_last": False}


def vgg_shaped_params(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    params, inputs = [], 3
    for outputs in CONV_CHANNELS[:DEPTH]:
        params.append((torch.randn(outputs, inputs, 3, 3, generator=generator) / (3 * inputs ** 0.5),
                       torch.zeros(outputs)))
        inputs = outputs
    return params


_PARAMS = vgg_shaped_params()


def fast_factory(config: Config) -> FeatureExtractor:
    """An Executor's network factory: the VGG-shaped network for the layers `config` weighs."""
    layers = used_layers(config, config.task != "texture", config.task != "reconstruct")
    return FeatureExtractor(_PARAMS, PLAIN, layers, config.pooling, config.precision or "fp32",
                            bool(config.channels_last))


def tiny_decoder(path: Path, width: int = 4, seed: int = 0) -> Path:
    """An untrained relu3_1 decoder of `width` channels written to `path` (.safetensors)."""
    torch.manual_seed(seed)
    tensors, metadata = decoder_tensors(Decoder(DecoderSpec("relu3_1", width)))
    save_file(tensors, str(path), metadata)
    return path
