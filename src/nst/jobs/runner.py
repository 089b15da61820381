"""Runs a Config: loads inputs, picks the device, calls the engine, writes outputs.

This is the only module (with images.py) that touches files. Inputs may be paths
or PIL images, so the Python API works in memory too.
"""

from __future__ import annotations

import platform
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from nst import __version__
from nst.config import Config
from nst.core.color import luminance, match_colors, matched_luminance, with_content_chroma
from nst.core.engine import stylize
from nst.core.features import extractor_for
from nst.core.masks import masks_from_images
from nst.errors import NstError
from nst.events import Result, StepCallback, StepEvent
from nst.files.images import check_pixels, load_image, resize_longest, save_image, to_tensor

ImageInput = str | Path | Image.Image


def select_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; others are checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise NstError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise NstError(f"device {name!r} requested but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise NstError(f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise NstError("device 'mps' requested but MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise NstError(f"unsupported device {name!r}; expected auto, cpu, cuda, cuda:N or mps")
    return device


def _open(source: ImageInput, max_pixels: int) -> Image.Image:
    if isinstance(source, Image.Image):
        return source.convert("RGBA" if "A" in source.getbands() else "RGB")
    return load_image(source, max_pixels)


@dataclass
class Run:
    """A finished run: the result, the config it actually used (every default
    filled in, the seed included) and what the output file should record."""

    result: Result
    config: Config
    alpha: Image.Image | None = None  # the content's transparency, kept for PNG/WebP
    inputs: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def metadata(self) -> dict[str, Any]:
        return {
            "nst_version": __version__,
            "config": self.config.to_dict(),
            "inputs": self.inputs,
            "final_losses": self.result.losses,
            "steps": self.result.steps,
            "run_time_s": round(self.result.elapsed_s, 3),
            "device": self.device,
            "torch": torch.__version__,
            "machine": platform.machine(),
        }

    def save(self, path: str | Path) -> Path:
        return save_image(self.result.image, path, self.metadata(), self.alpha)


def _describe(source: ImageInput) -> str:
    return str(source) if not isinstance(source, Image.Image) else "<in-memory image>"


def run(
    config: Config,
    content: ImageInput | None = None,
    styles: Sequence[ImageInput] = (),
    on_step: StepCallback | None = None,
    masks: Sequence[ImageInput] = (),
) -> Run:
    """Run one reconstruction, texture synthesis or transfer as `config` says.

    reconstruct needs `content`; texture needs `styles`; transfer needs both.
    masks (transfer only): one colour-labelled image, or one greyscale image
    per style, giving each style its region (see masks.py).
    """
    _check_inputs(config, content, styles, masks)
    device = select_device(config.device)
    config = config.resolved(device.type)
    if device.type == "cuda":
        # Every scale keeps its image size for hundreds of steps: let cuDNN time its
        # convolution algorithms once per size and keep the fastest.
        torch.backends.cudnn.benchmark = True
    if config.seed is None:
        config = config.replace(seed=secrets.randbelow(2**31))
    assert config.size is not None  # resolved() fills it
    # Load everything before any long computation, so bad input fails at once.
    needs_content = config.task in ("reconstruct", "transfer")
    content_image = _open(content, config.max_pixels) if needs_content and content else None
    style_images = [_open(s, config.max_pixels) for s in styles] if config.task != "reconstruct" else []
    mask_images = [_open(m, config.max_pixels) for m in masks]
    init_source = None
    if config.init not in ("content", "noise", "blend"):
        init_source = _open(str(config.init), config.max_pixels)

    alpha = None
    if content_image is not None:
        content_image = resize_longest(content_image, config.size)
        check_pixels("output", *content_image.size, config.max_pixels)
        if content_image.mode == "RGBA":
            alpha = content_image.getchannel("A")
        canvas = to_tensor(content_image).to(device)
    else:
        width, height = _texture_size(config, style_images[0])
        check_pixels("output", width, height, config.max_pixels)
        canvas = torch.zeros(1, 3, height, width, device=device)
    style_side = config.style_size or config.size
    style_tensors = [to_tensor(resize_longest(s, style_side)).to(device) for s in style_images]
    mask_tensor = None
    if mask_images and content_image is not None:
        mask_tensor = masks_from_images(mask_images, len(style_images), content_image.size).to(device)
    init = None
    if init_source is not None:
        height, width = canvas.shape[-2:]
        init = to_tensor(init_source.resize((width, height), Image.Resampling.LANCZOS)).to(device)

    content_tensor = canvas if content_image is not None else None
    if content_tensor is not None and config.preserve_color == "luminance":
        # Transfer grey on grey; the content's colours go back on at the end.
        style_tensors = [matched_luminance(style, content_tensor) for style in style_tensors]
        content_tensor = luminance(content_tensor)
        init = luminance(init) if init is not None else None
    elif content_tensor is not None and config.preserve_color == "histogram":
        style_tensors = [match_colors(style, content_tensor) for style in style_tensors]

    torch.manual_seed(config.seed or 0)
    extractor = extractor_for(config).to(device)
    result = stylize(extractor, config, canvas, content_tensor, style_tensors, mask_tensor, init, on_step)
    if config.preserve_color == "luminance":
        result.image = with_content_chroma(result.image, canvas.cpu())
    inputs = {"content": _describe(content) if content is not None and content_image else None,
              "styles": [_describe(s) for s in styles] if style_images else [],
              "masks": [_describe(m) for m in masks]}
    return Run(result, config, alpha, inputs, str(device))


def _check_inputs(
    config: Config, content: ImageInput | None, styles: Sequence[ImageInput], masks: Sequence[ImageInput]
) -> None:
    """Refuse combinations that cannot work, before anything is loaded."""
    if config.task in ("reconstruct", "transfer") and content is None:
        raise NstError(f"{config.task} needs a content image")
    if config.task in ("texture", "transfer") and not styles:
        raise NstError(f"{config.task} needs at least one style image")
    if config.style_blend is not None and len(config.style_blend) != len(styles):
        raise NstError(
            f"style-blend has {len(config.style_blend)} weights for {len(styles)} style images"
        )
    if config.task == "texture" and config.init in ("content", "blend"):
        raise NstError("texture synthesis has no content image: use --init noise or an image path")
    if config.preserve_color is not None and config.task != "transfer":
        raise NstError(f"preserve-color needs a content image and a style; {config.task} does not have both")
    if masks and config.task != "transfer":
        raise NstError("masks place styles on a content image: use them with transfer")
    if masks and config.style_blend is not None:
        raise NstError("style-blend mixes styles everywhere, masks place them apart: use one or the other")


def _texture_size(config: Config, style: Image.Image) -> tuple[int, int]:
    """--width/--height if given (one alone keeps the style's aspect), else the
    style image's aspect at --size."""
    assert config.size is not None
    aspect = style.width / style.height
    if config.width and config.height:
        return config.width, config.height
    if config.width:
        return config.width, max(1, round(config.width / aspect))
    if config.height:
        return max(1, round(config.height * aspect)), config.height
    return resize_longest(style, config.size).size


class IntermediateSaver:
    """A step callback that writes the image every `every` steps next to the output
    (out.png -> out.step0050.png)."""

    def __init__(self, output: Path, every: int) -> None:
        self.output, self.every = output, every

    def path_for(self, step: int) -> Path:
        return self.output.with_name(f"{self.output.stem}.step{step:04d}{self.output.suffix}")

    def __call__(self, event: StepEvent) -> None:
        if self.every and event.step % self.every == 0 and event.step < event.total_steps:
            save_image(event.image.cpu(), self.path_for(event.step))

