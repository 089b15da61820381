"""Rebuild the README's gallery from the shipped samples: one labelled grid per
control, written to docs/images/gallery_*.jpg.

    .venv/bin/python docs/gallery.py            # all grids, about 12 minutes on a 2-core CPU
    .venv/bin/python docs/gallery.py color mask # only these

Every picture is an ordinary `nst.run` with the config printed in its caption.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from nst import Config, run
from nst.files.grid import Cell, grid_image
from nst.files.images import resize_longest
from nst.samples import sample_path

OUT = Path(__file__).resolve().parent / "images"
SIZE = 256
SEED = 1


def sky_mask() -> Path:
    """White where tubingen's sky is: pixels close to the top rows' colour,
    scanning down each column until the first that is not."""
    photo = np.asarray(Image.open(sample_path("tubingen")).convert("RGB"), np.float32)
    reference = np.median(photo[:10].reshape(-1, 3), axis=0)
    close = np.sqrt(((photo - reference) ** 2).sum(axis=2)) < 60
    sky = np.cumprod(close, axis=0).astype(bool)  # True until the first non-sky pixel
    path = OUT / "tubingen_sky_mask.png"
    Image.fromarray(sky.astype(np.uint8) * 255).filter(ImageFilter.MedianFilter(9)).save(path)
    return path


def cell(caption: str, styles: list[str], masks: tuple[Path, ...] = (), **options: object) -> Cell:
    config = Config(size=SIZE, seed=SEED, device="cpu").replace(**options)
    done = run(config, sample_path("tubingen"), [sample_path(s) for s in styles], masks=masks)
    result = done.result
    print(f"{caption}: {result.elapsed_s:.1f} s, loss {result.losses['total']:.3g}", file=sys.stderr)
    image = Image.fromarray((result.image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    return Cell(image, (caption, f"{result.elapsed_s:.0f} s, {result.steps} steps"))


def picture(name: str, size: int = SIZE) -> Cell:
    return Cell(resize_longest(Image.open(sample_path(name)).convert("RGB"), size), (name,))


def save(name: str, rows: list[list[Cell]], title: str) -> None:
    grid_image(rows, title=title).save(OUT / f"gallery_{name}.jpg", quality=88)


def scales() -> list[list[Cell]]:
    starry = ["starry_night"]
    return [[picture("tubingen", 384), cell("--scales off", starry, size=384, scales=1),
             cell("--scales auto (default)", starry, size=384)]]


def color() -> list[list[Cell]]:
    starry = ["starry_night"]
    return [[picture("starry_night"), cell("default", starry),
             cell("--preserve-color luminance", starry, preserve_color="luminance"),
             cell("--preserve-color histogram", starry, preserve_color="histogram")]]


def mask() -> list[list[Cell]]:
    path = sky_mask()
    shown = Cell(resize_longest(Image.open(path).convert("RGB"), SIZE), ("--mask (white: sky)",))
    return [[shown, cell("great_wave below, starry_night above", ["great_wave", "starry_night"],
                         masks=(path,))]]


def style_loss() -> list[list[Cell]]:
    styles = ["starry_night", "great_wave", "composition_vii"]
    return [[picture(s) for s in styles],
            [cell(f"gram: {s}", [s]) for s in styles],
            [cell(f"meancov: {s}", [s], style_loss="meancov") for s in styles]]


def style_size() -> list[list[Cell]]:
    starry = ["starry_night"]
    return [[cell("--style-size 128", starry, style_size=128),
             cell("--style-size 256 (= --size)", starry),
             cell("--style-size 512", starry, style_size=512)]]


def optimizer() -> list[list[Cell]]:
    starry = ["starry_night"]
    return [[cell("lbfgs (default)", starry),
             cell("adam (lr 0.1, --ema-decay 0.9)", starry, optimizer="adam"),
             cell("adam, --ema-decay 0", starry, optimizer="adam", ema_decay=0.0)]]


GRIDS = {
    "scales": (scales, "Coarse-to-fine: 128 px up to 384 px in sqrt(2) steps"),
    "color": (color, "Colour control"),
    "mask": (mask, "Spatial control: one style per region"),
    "style_loss": (style_loss, "--style-loss gram (default) and meancov"),
    "style_size": (style_size, "--style-size sets the size of the brush strokes"),
    "optimizer": (optimizer, "Optimizers, --steps 300 (over three scales)"),
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name in sys.argv[1:] or list(GRIDS):
        build, title = GRIDS[name]
        save(name, build(), title)


if __name__ == "__main__":
    main()
