"""Contact sheets: a grid of small input/output pairs, to look over a batch at a glance."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from nst.files.images import load_image, save_image

THUMB = 160  # longest side of each small picture, pixels
COLUMNS = 4  # pairs per row
ROWS_PER_SHEET = 10  # a large batch gets several sheets rather than one huge image
GAP = 20  # between pairs
PAIR_GAP = 4  # between an input and its output
CAPTION = 18  # caption band height
BACKGROUND = (40, 40, 40)
TEXT = (230, 230, 230)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def _thumbnail(path: Path) -> Image.Image:
    """The picture scaled (up or down) to fit a THUMB square."""
    return ImageOps.contain(load_image(path).convert("RGB"), (THUMB, THUMB), Image.Resampling.LANCZOS)


def _caption(text: str, width: int, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> str:
    """`text`, shortened with an ellipsis in the middle to fit `width` pixels."""
    if font.getlength(text) <= width:
        return text
    keep = len(text)
    while keep > 4 and font.getlength(text[: keep // 2] + "…" + text[-(keep // 2):]) > width:
        keep -= 1
    return text[: keep // 2] + "…" + text[-(keep // 2):]


def _sheet(pairs: Sequence[tuple[Path, Path, str]]) -> Image.Image:
    cell_width, cell_height = 2 * THUMB + PAIR_GAP, THUMB + CAPTION
    columns = min(COLUMNS, len(pairs))
    rows = -(-len(pairs) // columns)
    size = (GAP + columns * (cell_width + GAP), GAP + rows * (cell_height + GAP))
    sheet = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font()
    for index, (source, output, label) in enumerate(pairs):
        left = GAP + (index % columns) * (cell_width + GAP)
        top = GAP + (index // columns) * (cell_height + GAP)
        for offset, path in ((0, source), (THUMB + PAIR_GAP, output)):
            thumb = _thumbnail(path)
            # Centre each picture in its square.
            corner = (left + offset + (THUMB - thumb.width) // 2, top + (THUMB - thumb.height) // 2)
            sheet.paste(thumb, corner)
        draw.text((left, top + THUMB + 3), _caption(label, cell_width, font), fill=TEXT, font=font)
    return sheet


def write_contact_sheets(pairs: Sequence[tuple[Path, Path, str]], path: Path) -> list[Path]:
    """Write (input, output, caption) pairs as grids: `path` (index.jpg), then
    index-2.jpg, ... when they do not fit one sheet. Returns the files written."""
    per_sheet = COLUMNS * ROWS_PER_SHEET
    written = []
    for page, start in enumerate(range(0, len(pairs), per_sheet), start=1):
        target = path if page == 1 else path.with_name(f"{path.stem}-{page}{path.suffix}")
        written.append(save_image(_sheet(pairs[start:start + per_sheet]), target))
    return written
