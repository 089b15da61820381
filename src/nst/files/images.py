"""Image files in and out: loading with checks, resizing, tensors, atomic saving."""

from __future__ import annotations

import json
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from nst.config import DEFAULT_MAX_PIXELS
from nst.core.geometry import check_pixels as check_pixels
from nst.core.geometry import size_to_fit
from nst.core.memory import PROCESS_BYTES, decode_bytes, gib
from nst.errors import NstError
from nst.files.atomic import atomic_path

if TYPE_CHECKING:
    from torch import Tensor

# torch and numpy are imported where tensors are made, so the command line can
# check every input file before torch loads.

# Formats nst writes, by file extension (Pillow format name).
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
# Formats whose files carry nst's metadata inside; the others get a JSON sidecar.
EMBEDS_METADATA = {"PNG"}
METADATA_KEY = "nst"

# EXIF orientation -> the transposition that makes the picture upright.
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPS_SIDES = frozenset({5, 6, 7, 8})
EXIF_ORIENTATION = 0x0112


class _PillowLimit:
    """Pillow refuses images over twice its MAX_IMAGE_PIXELS, one global. While
    nst opens a file the global is raised to nst's own limit (never lowered), so
    that --max-pixels, checked right after the header is read, decides; it is put
    back when the last open in any thread ends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: list[int] = []
        self.original: int | None = None

    @contextmanager
    def at_least(self, pixels: int) -> Iterator[None]:
        with self.lock:
            if not self.active:
                self.original = Image.MAX_IMAGE_PIXELS
            self.active.append(pixels)
            self._apply()
        try:
            yield
        finally:
            with self.lock:
                self.active.remove(pixels)
                self._apply()

    def _apply(self) -> None:
        if self.original is None or not self.active:
            Image.MAX_IMAGE_PIXELS = self.original
        else:
            Image.MAX_IMAGE_PIXELS = max(self.original, *self.active)


_PILLOW_LIMIT = _PillowLimit()


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise NstError(f"file not found: {path}")
    if path.is_dir():
        raise NstError(f"expected an image file, found a folder: {path}")
    return path


@contextmanager
def _reading(path: Path, max_pixels: int) -> Iterator[None]:
    """Pillow's failures on `path` as one-line NstErrors that name it."""
    try:
        with warnings.catch_warnings(), _PILLOW_LIMIT.at_least(max_pixels):
            # Our own pixel limit replaces Pillow's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except NstError:
        raise  # already one line (the pixel limit), not a decoding failure
    except UnidentifiedImageError as error:
        raise NstError(f"not an image file (or an unsupported format): {path}") from error
    except Image.DecompressionBombError as error:
        # Pillow's limit is at least twice ours here, so ours is the reason.
        raise NstError(
            f"{path}: over the limit of {max_pixels:,} pixels (raise it with --max-pixels)"
        ) from error
    except PermissionError as error:
        raise NstError(f"cannot read {path}: permission denied") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise NstError(f"cannot decode {path} (truncated or corrupt?): {error}") from error


def _orientation(image: Image.Image) -> int:
    """The EXIF (or XMP) orientation in the file's header, 1 when none. Pillow's
    own getexif would decode a whole PNG to look for a late eXIf chunk; the base
    one reads only what the header gave, so probing and loading agree."""
    orientation = Image.Image.getexif(image).get(EXIF_ORIENTATION, 1)
    return orientation if orientation in UPRIGHT else 1


def _upright_size(image: Image.Image, orientation: int) -> tuple[int, int]:
    width, height = image.size
    return (height, width) if orientation in SWAPS_SIDES else (width, height)


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of an opened image as it will be seen, from its header only."""
    return _upright_size(image, _orientation(image))


# Bytes a pixel of these modes takes once Pillow decodes it; every other mode takes 4.
STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


def probe_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS,
                memory_budget: float | None = None) -> tuple[int, int]:
    """(width, height) of an image file as it will be seen (EXIF orientation
    applied), from its header only: no pixel is decoded. Every failure is an
    NstError that names the file, as in load_image. With `memory_budget` (bytes),
    a file whose decoding would not fit it is refused (memory.decode_bytes)."""
    path = _existing(path)
    with _reading(path, max_pixels), Image.open(path) as image:
        orientation = _orientation(image)
        size = _upright_size(image, orientation)
        check_pixels(str(path), *size, max_pixels)
        if memory_budget is not None:
            _check_decode_fits(path, image, orientation in UPRIGHT, memory_budget)
    return size


def _check_decode_fits(path: Path, image: Image.Image, rotated: bool, budget: float) -> None:
    """Refuse, from the header, a file whose decoding alone would exceed the budget:
    decoding it would take that memory (and its time) only to fail."""
    width, height = image.size
    need = decode_bytes(width, height, STORED_BYTES.get(image.mode, 4), rotated)
    # Below the process's own share nothing fits, whatever the image: the run's memory
    # plan refuses that, saying so.
    if need > budget > PROCESS_BYTES:
        raise NstError(
            f"{path}: {width}x{height} is {width * height:,} pixels; decoding it needs {gib(need)}, "
            f"over the memory budget of {gib(budget)} (--max-memory): use a smaller image"
        )


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image file, upright (EXIF orientation applied), fully decoded.

    Returns mode 'RGB', or 'RGBA' when the file has transparency. Every failure
    is an NstError that names the file; the header is checked (probe_image)
    before any pixel is decoded.
    """
    path = _existing(path)
    probe_image(path, max_pixels)
    with _reading(path, max_pixels), Image.open(path) as opened:
        orientation = _orientation(opened)
        check_pixels(str(path), *opened.size, max_pixels)  # the file may have changed since the probe
        opened.load()
        image = opened.transpose(UPRIGHT[orientation]) if orientation in UPRIGHT else opened
        has_alpha = image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info
        )
        return image.convert("RGBA" if has_alpha else "RGB")


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
    import numpy as np  # noqa: PLC0415  (see the note on imports above)
    import torch  # noqa: PLC0415

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
        stored: dict[str, Any] = json.loads(sidecar.read_text())
        return stored
    with Image.open(path) as image:
        text = image.info.get(METADATA_KEY)
    embedded: dict[str, Any] | None = json.loads(text) if text else None
    return embedded
