"""A request's inputs as the engine takes them: decoded, fitted to the size plan,
on the request's device, colour-prepared; and the colour put back afterwards.

The one place that loads styles and applies `preserve_color`, for a single run
(`load_tensors`, runner.py) and for the frames of a video (`style_images`,
`frame_tensors`, video.py) alike:

    luminance  styles become their luminance matched to the content's mean and
               spread, the content (and an init image) its luminance; the result
               gets the content's chroma back (`restore_colour`)
    histogram  styles are recoloured to the content's colour mean and covariance
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor

from nst.core.color import luminance, match_colors, matched_luminance, with_content_chroma
from nst.core.flow import flow_side
from nst.core.masks import masks_from_images
from nst.files.images import load_image, resize_longest, to_tensor
from nst.jobs.request import InputFile, Request


def decode(item: InputFile, max_pixels: int) -> Image.Image:
    """An input as a PIL image: its file decoded, or the in-memory image of the Python API."""
    if item.image is not None:
        return item.image.convert("RGBA" if "A" in item.image.getbands() else "RGB")
    assert item.path is not None
    return load_image(item.path, max_pixels)


def fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


# ---------------------------------------------------------------- colour


def colour_styles(styles: Sequence[Tensor], content: Tensor, preserve_color: str | None) -> list[Tensor]:
    """The style targets for `preserve_color`, prepared against `content` (a frame's
    styles against the first frame, so the targets stay fixed along the clip)."""
    if preserve_color == "luminance":
        return [matched_luminance(style, content) for style in styles]
    if preserve_color == "histogram":
        return [match_colors(style, content) for style in styles]
    return list(styles)


def colour_target(image: Tensor, preserve_color: str | None) -> Tensor:
    """What is optimized of a content, start or temporal target image: its
    luminance under `luminance` (grey on grey), else the image itself."""
    return luminance(image) if preserve_color == "luminance" else image


def restore_colour(image: Tensor, content: Tensor, preserve_color: str | None) -> Tensor:
    """A finished image with the content's colours back on where `preserve_color`
    took them off (luminance: the content's chroma); else the image as it is."""
    return with_content_chroma(image, content) if preserve_color == "luminance" else image


# ---------------------------------------------------------------- a request


@dataclass
class Tensors:
    """A request's inputs decoded at the sizes its plan fixed, on its device."""

    canvas: Tensor  # (1, 3, H, W): the content at output size, or zeros for a texture
    content: Tensor | None  # what the content loss sees (colour-prepared)
    styles: list[Tensor]  # colour-prepared
    masks: Tensor | None
    init: Tensor | None  # colour-prepared
    alpha: Image.Image | None


def style_images(request: Request) -> list[Image.Image]:
    """The style images, decoded and resized to the request's size plan."""
    assert request.sizes is not None
    return [fit(decode(style, request.config.max_pixels), size)
            for style, size in zip(request.styles, request.sizes.styles, strict=True)]


def load_tensors(request: Request) -> Tensors:
    """Decode every input of `request` at its planned size (and colour-prepare it)."""
    assert request.sizes is not None
    config, sizes, device = request.config, request.sizes, torch.device(request.device)
    width, height = sizes.canvas
    alpha = None
    if request.content is not None:
        content_image = fit(decode(request.content, config.max_pixels), (width, height))
        alpha = content_image.getchannel("A") if content_image.mode == "RGBA" else None
        canvas = to_tensor(content_image).to(device)
    else:
        canvas = torch.zeros(1, 3, height, width, device=device)
    styles = [to_tensor(image).to(device) for image in style_images(request)]
    masks = None
    if request.masks:
        mask_images = [decode(m, config.max_pixels) for m in request.masks]
        masks = masks_from_images(mask_images, len(styles), (width, height)).to(device)
    init = None
    if request.init is not None:
        init = to_tensor(fit(decode(request.init, config.max_pixels), (width, height))).to(device)
    if request.content is None:
        return Tensors(canvas, None, styles, masks, init, alpha)
    mode = config.preserve_color
    return Tensors(canvas, colour_target(canvas, mode), colour_styles(styles, canvas, mode), masks,
                   colour_target(init, mode) if init is not None else None, alpha)


def frame_tensors(frame: Image.Image, size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """A decoded frame as it is stylized (longest side `size`, on `device`) and as
    optical flow sees it (at least FLOW_MIN_SIDE, on the CPU)."""
    content = to_tensor(resize_longest(frame, size)).to(device)
    return content, to_tensor(resize_longest(frame, flow_side(size)))
