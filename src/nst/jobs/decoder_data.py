"""The training images of `nst train-decoder`: which files, the held-out split,
random crops and the styles' cached statistics.

Everything random draws from one torch.Generator that the training loop owns
and checkpoints, so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from nst.errors import NstError
from nst.files.frames import FRAME_SUFFIXES
from nst.files.images import load_image, resize_longest, to_tensor

HELD_OUT_SHARE = 0.05  # of each folder's images, chosen by a hash of the file name


def image_files(folders: Sequence[Path]) -> list[Path]:
    """The images in these folders (not their subfolders), sorted by name."""
    files: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise NstError(f"not a folder of images: {folder}")
        found = sorted(p for p in folder.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FRAME_SUFFIXES)
        if not found:
            raise NstError(f"no images in {folder} (expected {', '.join(FRAME_SUFFIXES)})")
        files.extend(found)
    return files


def is_held_out(path: Path, share: float = HELD_OUT_SHARE) -> bool:
    """Deterministic by the file's name alone (not its folder, not the run's seed):
    a file is held out in every run and on every machine, or in none."""
    digest = hashlib.sha256(path.name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def split(files: Sequence[Path], share: float = HELD_OUT_SHARE) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files); a folder too small to spare one trains on all
    and holds out its first file too, so that there is always something to report on."""
    held = [path for path in files if is_held_out(path, share)]
    train = [path for path in files if not is_held_out(path, share)]
    if not train:
        train = list(files)
    if not held:
        held = [files[0]]
    return train, held


def load_images(files: Sequence[Path], longest: int) -> list[Tensor]:
    """Each file as a (3, H, W) uint8 tensor, its longest side at most `longest`
    (uint8: 399 photos of 512 px are 250 MB as float, 60 MB as bytes)."""
    images = []
    for path in files:
        picture = resize_longest(load_image(path), longest) if longest else load_image(path)
        images.append((to_tensor(picture)[0] * 255).round().to(torch.uint8))
    return images


def random_crops(images: Sequence[Tensor], count: int, crop: int, generator: torch.Generator) -> Tensor:
    """(count, 3, crop, crop) float32 in [0, 1]: random images, each rescaled so its
    shorter side is random between `crop` and twice it (never above its own), then a
    random crop, flipped left-right half the time."""
    out = []
    for _ in range(count):
        image = images[int(torch.randint(len(images), (1,), generator=generator))].float() / 255
        short = min(image.shape[-2:])
        top_side = max(crop, min(short, 2 * crop))
        side = crop + float(torch.rand((), generator=generator)) * (top_side - crop)
        scale = side / short
        size = (max(crop, round(image.shape[-2] * scale)), max(crop, round(image.shape[-1] * scale)))
        image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        top = int(torch.randint(size[0] - crop + 1, (1,), generator=generator))
        left = int(torch.randint(size[1] - crop + 1, (1,), generator=generator))
        patch = image[:, top:top + crop, left:left + crop]
        if float(torch.rand((), generator=generator)) < 0.5:
            patch = patch.flip(-1)
        out.append(patch)
    return torch.stack(out).clamp(0, 1)


@dataclass(frozen=True)
class StyleBank:
    """Every training style's channel mean and std at each style layer:
    means[layer], stds[layer] are (S, C, 1, 1). The statistics come from the whole
    style image, as the fast path uses it, so none is computed per step."""

    means: dict[str, Tensor]
    stds: dict[str, Tensor]

    def __len__(self) -> int:
        return next(iter(self.means.values())).shape[0]

    def pick(self, indices: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        return ({name: value[indices] for name, value in self.means.items()},
                {name: value[indices] for name, value in self.stds.items()})
