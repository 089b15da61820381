"""The fast path's decoder: nst's VGG19 features at one layer back to an RGB image.

It mirrors VGG19 from the chosen layer down to the pixels (as AdaIN's decoder
does), at `width` channels in the first block instead of VGG's 64: each pooling
of the encoder becomes a nearest-neighbour upsampling followed by 3x3
convolutions with reflection padding. (Transposed convolutions paint a
checkerboard where their kernels overlap unevenly; zero padding a dark frame.)

The weights live in a .safetensors file (no pickle) whose metadata records the
architecture (`level`, `width`), checked when it is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nst.core.decoder_spec import DECODER_FORMAT, DecoderSpec
from nst.errors import NstError
from nst.layers import CONV_CHANNELS, POOL_AFTER

VGG_WIDTH = 64  # VGG19's first block; the decoder scales every block by width / 64


def _channels(spec: DecoderSpec) -> list[tuple[int, int, bool]]:
    """(in, out, upsample before?) of each convolution, from the level down to RGB:
    VGG19's convolutions 1..depth in reverse, scaled by width / 64."""

    def scaled(index: int) -> int:
        return max(4, CONV_CHANNELS[index - 1] * spec.width // VGG_WIDTH)

    layers: list[tuple[int, int, bool]] = []
    incoming = CONV_CHANNELS[spec.depth - 1]  # the features come in at VGG's width
    for index in range(spec.depth, 1, -1):
        # Convolution k of VGG took k-1's channels in: its mirror gives them back. A
        # pooling after convolution k is undone by an upsampling before the mirror of k.
        out = scaled(index - 1)
        layers.append((incoming, out, index in POOL_AFTER))
        incoming = out
    layers.append((incoming, 3, False))  # the mirror of conv1_1: to RGB
    return layers


class Decoder(nn.Module):
    """features (B, C, h, w) at `spec.level` -> image (B, 3, h*f, w*f), f = spec.factor,
    RGB about [0, 1] (not clamped: training needs the gradient beyond; `decode`
    clamps)."""

    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__()
        self.spec = spec
        self.upsample_before: list[bool] = []
        self.convs = nn.ModuleList()
        for in_ch, out_ch, upsample in _channels(spec):
            self.convs.append(nn.Conv2d(in_ch, out_ch, 3))
            self.upsample_before.append(upsample)

    def forward(self, features: Tensor) -> Tensor:
        x = features
        last = len(self.convs) - 1
        for index, (conv, upsample) in enumerate(zip(self.convs, self.upsample_before, strict=True)):
            if upsample:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = conv(F.pad(x, (1, 1, 1, 1), mode="reflect" if min(x.shape[-2:]) > 1 else "replicate"))
            if index < last:
                x = F.relu(x)
        return x


def pad_to_multiple(image: Tensor, factor: int) -> tuple[Tensor, tuple[int, int]]:
    """image (B, 3, H, W) extended by reflection at the bottom and right to sides
    that are multiples of `factor`; returns it and the original (H, W) to crop back to."""
    height, width = image.shape[-2:]
    bottom, right = -height % factor, -width % factor
    if bottom or right:
        mode = "reflect" if min(height, width) > max(bottom, right) else "replicate"
        image = F.pad(image, (0, right, 0, bottom), mode=mode)
    return image, (height, width)


def crop_to(image: Tensor, size: tuple[int, int]) -> Tensor:
    return image[..., : size[0], : size[1]]


# ------------------------------------------------------------------ the file


def decoder_tensors(decoder: Decoder, half: bool = True) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The tensors (fp16 when `half`: half the file, and ~1e-3 relative error,
    well below an 8-bit level of the output) and metadata a .safetensors file holds."""
    dtype = torch.float16 if half else torch.float32
    tensors = {name: value.detach().to("cpu", dtype).contiguous()
               for name, value in decoder.state_dict().items()}
    return tensors, decoder.spec.metadata()


def decoder_from_tensors(tensors: Mapping[str, Tensor], metadata: Mapping[str, str] | None,
                         origin: str) -> Decoder:
    """A float32 Decoder from a file's tensors and metadata; NstError (one line
    naming `origin`) when they are not a decoder's or not the recorded architecture's."""
    metadata = metadata or {}
    if metadata.get("format") != DECODER_FORMAT:
        raise NstError(f"{origin}: not an nst decoder file (no format {DECODER_FORMAT!r} in its metadata)")
    try:
        spec = DecoderSpec(metadata["level"], int(metadata["width"]))
    except (KeyError, ValueError) as error:
        raise NstError(f"{origin}: the decoder's metadata has no valid level and width ({error})") from None
    except NstError as error:
        raise NstError(f"{origin}: {error}") from None
    decoder = Decoder(spec)
    expected = decoder.state_dict()
    if set(tensors) != set(expected):
        missing = sorted(set(expected) - set(tensors))
        raise NstError(f"{origin}: tensors do not match a {_describe(spec)} decoder "
                       f"(missing {missing[:3]}, unexpected {sorted(set(tensors) - set(expected))[:3]})")
    for name, value in tensors.items():
        if tuple(value.shape) != tuple(expected[name].shape):
            raise NstError(f"{origin}: {name} has shape {tuple(value.shape)}, a {_describe(spec)} "
                           f"decoder has {tuple(expected[name].shape)}")
    decoder.load_state_dict({name: value.float() for name, value in tensors.items()})
    return decoder.eval().requires_grad_(False)


def _describe(spec: DecoderSpec) -> str:
    return f"{spec.level} width-{spec.width}"


def load_decoder(path: Path) -> Decoder:
    """The decoder saved at `path` (.safetensors), float32, in eval mode, frozen."""
    from safetensors import (
        SafetensorError,  # noqa: PLC0415  (only where a decoder is read)
        safe_open,  # noqa: PLC0415
    )

    if not path.is_file():
        raise NstError(f"decoder file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise NstError(f"cannot read decoder file {path}: {reason}") from None
    return decoder_from_tensors(tensors, metadata, str(path))
