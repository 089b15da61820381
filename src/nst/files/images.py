"""Image files in and out: loading with checks, resizing, tensors, atomic saving."""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError
from torch import Tensor

from nst.config import DEFAULT_MAX_PIXELS
from nst.errors import NstError
from nst.files.atomic import atomic_path

# Formats nst writes, by file extension (Pillow format name).
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
# Formats whose files carry nst's metadata inside; the others get a JSON sidecar.
EMBEDS_METADATA = {"PNG"}
METADATA_KEY = "nst"


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image file, upright (EXIF orientation applied), fully decoded.

    Returns mode 'RGB', or 'RGBA' when the file has transparency. Every failure
    is an NstError that names the file.
    """
    path = Path(path)
    if not path.exists():
        raise NstError(f"file not found: {path}")
    if path.is_dir():
        raise NstError(f"expected an image file, found a folder: {path}")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit replaces Pillow's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
            check_pixels(str(path), *image.size, max_pixels)
            image.load()
            image = ImageOps.exif_transpose(image)
    except UnidentifiedImageError as error:
        raise NstError(f"not an image file (or an unsupported format): {path}") from error
    except Image.DecompressionBombError as error:
        raise NstError(f"{path}: image too large to open safely (raise --max-pixels)") from error
    except PermissionError as error:
        raise NstError(f"cannot read {path}: permission denied") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise NstError(f"cannot decode {path} (truncated or corrupt?): {error}") from error
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    return image.convert("RGBA" if has_alpha else "RGB")


def check_pixels(label: str, width: int, height: int, max_pixels: int) -> None:
    """Refuse an image (input or output canvas) larger than the pixel limit."""
    if width * height > max_pixels:
        raise NstError(
            f"{label}: {width}x{height} is {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (raise it with --max-pixels)"
        )


def size_to_fit(width: int, height: int, longest: int) -> tuple[int, int]:
    """(width, height) scaled so the longest side is `longest`, aspect kept, each side >= 1."""
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_longest(image: Image.Image, longest: int) -> Image.Image:
    size = size_to_fit(*image.size, longest)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS)


def flatten_alpha(image: Image.Image) -> Image.Image:
    """RGB version of an image; transparent areas become white (they are usually
    undefined colour under the alpha)."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.getchannel("A"))
    return background


def to_tensor(image: Image.Image) -> Tensor:
    """PIL RGB image -> (1, 3, H, W) float32 in [0, 1]."""
    array = np.asarray(flatten_alpha(image), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_pil(image: Tensor, alpha: Image.Image | None = None) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> PIL RGB (RGBA when an alpha mask is given)."""
    if image.dim() == 4:
        image = image[0]
    array = (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    picture = Image.fromarray(array, "RGB")
    if alpha is not None:
        picture.putalpha(alpha.resize(picture.size, Image.Resampling.LANCZOS))
    return picture


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise NstError(
            f"cannot write {path}: unknown extension {suffix or '(none)'!r}; "
            f"use one of {', '.join(sorted(OUTPUT_FORMATS))}"
        )
    return OUTPUT_FORMATS[suffix]


def check_writable(path: str | Path) -> Path:
    """Fail now, before minutes of work, if `path` cannot be written."""
    path = Path(path)
    output_format(path)
    folder = path.parent
    if not folder.exists():
        raise NstError(f"output folder does not exist: {folder}")
    if not folder.is_dir():
        raise NstError(f"output folder is not a folder: {folder}")
    if path.is_dir():
        raise NstError(f"output path is a folder: {path}")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".nst-check-"):
            pass
    except OSError as error:
        raise NstError(f"output folder is not writable: {folder} ({error.strerror})") from error
    return path


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def save_image(
    image: Tensor | Image.Image,
    path: str | Path,
    metadata: dict[str, Any] | None = None,
    alpha: Image.Image | None = None,
) -> Path:
    """Write an image atomically; the format follows the extension. Metadata goes
    into a PNG text chunk, or a `<name>.json` sidecar for JPEG and WebP."""
    path = Path(path)
    fmt = output_format(path)
    picture = image if isinstance(image, Image.Image) else to_pil(image, alpha)
    if fmt == "JPEG":
        picture = flatten_alpha(picture)
    options: dict[str, Any] = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if metadata is not None and fmt in EMBEDS_METADATA:
        info = PngImagePlugin.PngInfo()
        info.add_text(METADATA_KEY, json.dumps(metadata, sort_keys=True))
        options["pnginfo"] = info
    try:
        with atomic_path(path) as temporary:
            picture.save(temporary, format=fmt, **options)
        if metadata is not None and fmt not in EMBEDS_METADATA:
            with atomic_path(sidecar_path(path)) as temporary:
                temporary.write_text(json.dumps(metadata, indent=2, sort_keys=True))
    except OSError as error:
        raise NstError(f"cannot write {path}: {error.strerror or error}") from error
    return path


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The metadata nst wrote with an image (text chunk or sidecar), or None."""
    path = Path(path)
    sidecar = sidecar_path(path)
    if sidecar.exists():
        return json.loads(sidecar.read_text())
    with Image.open(path) as image:
        text = image.info.get(METADATA_KEY)
    return json.loads(text) if text else None
