"""Region masks for spatial control: which style paints which part of the image.

Two ways to give them (`--mask`):
  one colour-labelled image with as many colours as there are style images:
      regions are matched to styles from the darkest colour to the lightest
      (with two styles, black takes the first and white the second);
  one greyscale image per style image: white where that style applies, black
      where it does not (grey blends); pixels no mask covers keep the content.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from nst.errors import NstError

# A mask's aspect ratio may differ from the content's by rounding only.
ASPECT_TOLERANCE = 0.02


def masks_from_images(images: list[Image.Image], styles: int, content_size: tuple[int, int]) -> Tensor:
    """(styles, 1, H, W) float32 region weights in [0, 1] at the masks' own resolution.

    content_size (width, height) only checks the aspect ratio: masks are resized
    with the image at every scale.
    """
    if not images:
        raise NstError("no mask given")
    for image in images:
        _check_aspect(image, content_size)
    if len(images) == 1 and styles > 1:
        return _label_masks(images[0], styles)
    if len(images) != styles:
        raise NstError(
            f"{len(images)} masks for {styles} style images: give one colour-labelled mask "
            "or one greyscale mask per style image"
        )
    size = images[0].size
    planes = [np.asarray(image.convert("L").resize(size, Image.Resampling.BILINEAR), np.float32) / 255
              for image in images]
    return torch.from_numpy(np.stack(planes)[:, None]).contiguous()


def _check_aspect(image: Image.Image, content_size: tuple[int, int]) -> None:
    mask_aspect = image.width / image.height
    content_aspect = content_size[0] / content_size[1]
    if abs(mask_aspect / content_aspect - 1) > ASPECT_TOLERANCE:
        raise NstError(
            f"mask is {image.width}x{image.height} but the content image is "
            f"{content_size[0]}x{content_size[1]}: their aspect ratios differ"
        )


def _label_masks(image: Image.Image, styles: int) -> Tensor:
    """One-hot masks from a colour-labelled image: the `styles` most frequent
    colours are the labels (anti-aliased edges and JPEG noise join the nearest)."""
    pixels = np.asarray(image.convert("RGB"), np.int32)
    colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    if len(colours) < styles:
        raise NstError(
            f"the mask has {len(colours)} colour(s) but there are {styles} style images; "
            "give it one colour per style"
        )
    labels = colours[np.argsort(-counts)[:styles]]
    labels = labels[np.argsort(labels.sum(axis=1), kind="stable")]  # darkest first
    distances = ((pixels[:, :, None, :] - labels[None, None]) ** 2).sum(axis=3)
    nearest = distances.argmin(axis=2)
    one_hot = np.stack([nearest == index for index in range(styles)]).astype(np.float32)
    return torch.from_numpy(one_hot[:, None]).contiguous()
