"""What travels between the driver and the workers of a video run: frames as
PNG bytes (lossless for 8-bit pictures) and optical flow as packed float32
(zlib-compressed when large), so a worker warps exactly what a local run would."""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image
    from torch import Tensor

    from nst.core.flow import Motion

# Motions larger than this (packed) are zlib-compressed before they travel.
COMPRESS_ABOVE_BYTES = 64 * 1024
_RAW, _ZLIB = b"R", b"Z"


def png_bytes(image: Image.Image | Tensor) -> bytes:
    """An image (PIL, or a tensor in [0, 1]) as PNG bytes: lossless for 8-bit pictures."""
    from PIL import Image  # noqa: PLC0415

    from nst.files.images import to_pil  # noqa: PLC0415

    picture = image if isinstance(image, Image.Image) else to_pil(image)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def png_tensor(data: bytes) -> Tensor:
    """PNG bytes -> (1, 3, H, W) in [0, 1] on the CPU."""
    from PIL import Image  # noqa: PLC0415

    from nst.files.images import to_tensor  # noqa: PLC0415

    with Image.open(io.BytesIO(data)) as picture:
        return to_tensor(picture.convert("RGB"))


def pack_motion(motion: Motion) -> bytes:
    """A Motion as bytes: its flow and weights, float32, compressed when large."""
    stacked = np.concatenate([motion.backward, motion.weights[..., None]], axis=-1).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, stacked, allow_pickle=False)
    raw = buffer.getvalue()
    return _ZLIB + zlib.compress(raw, 1) if len(raw) > COMPRESS_ABOVE_BYTES else _RAW + raw


def unpack_motion(data: bytes) -> Motion:
    from nst.core.flow import Motion  # noqa: PLC0415

    raw = zlib.decompress(data[1:]) if data[:1] == _ZLIB else data[1:]
    stacked = np.load(io.BytesIO(raw), allow_pickle=False)
    return Motion(np.ascontiguousarray(stacked[..., :2]), np.ascontiguousarray(stacked[..., 2]))


def compose_motions(motions: Sequence[Motion]) -> Motion:
    """The Motion of frame k + n relative to frame k, from the n motions of frames
    k + 1 ... k + n (each relative to the frame before it): the flows chained
    (each sampled where the later one points) and the trust multiplied along the way."""
    import torch  # noqa: PLC0415

    from nst.core.flow import Motion, warp  # noqa: PLC0415

    flow, weights = motions[0].backward, motions[0].weights
    for motion in motions[1:]:
        fields = np.concatenate([flow, weights[..., None]], axis=-1).transpose(2, 0, 1)
        moved = warp(torch.from_numpy(np.ascontiguousarray(fields)).unsqueeze(0), motion.backward)
        there = moved[0].numpy().transpose(1, 2, 0)
        flow = motion.backward + there[..., :2]
        weights = motion.weights * np.clip(there[..., 2], 0, 1)
    return Motion(np.ascontiguousarray(flow, dtype=np.float32),
                  np.ascontiguousarray(weights, dtype=np.float32))
