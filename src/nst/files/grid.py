"""Labelled image grids: the results of a sweep side by side, every cell
labelled in the picture itself so a grid still explains itself when shared alone.

Text uses Pillow's built-in scalable font (Pillow >= 10.1 ships it), so grids
look the same on every machine without any font download.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
TEXT = (34, 34, 34)
MUTED = (96, 96, 96)
GAP = 8  # pixels between cells and around the grid
# Tiny study images (tests, quick looks) are enlarged to this many pixels on
# their longest side, in whole-pixel steps, so labels do not dwarf them.
MIN_DISPLAY_SIDE = 128

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class Cell:
    """One picture of a grid with the lines of text printed under it."""

    image: Image.Image
    caption: tuple[str, ...] = ()


def label_font(size: int) -> Font:
    """Pillow's scalable default font at `size` pixels (its fixed bitmap font
    where Pillow was built without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def wrap(items: Sequence[Cell], columns: int | None = None) -> list[list[Cell | None]]:
    """Lay a flat list of cells out in rows: `columns` per row, by default one
    row for up to five cells, else a near-square block (16 cells: 4x4)."""
    if columns is None:
        columns = len(items) if len(items) <= 5 else math.ceil(math.sqrt(len(items)))
    columns = max(1, columns)
    rows: list[list[Cell | None]] = []
    for start in range(0, len(items), columns):
        row: list[Cell | None] = list(items[start:start + columns])
        rows.append(row + [None] * (columns - len(row)))
    return rows


def _text_size(font: Font, text: str) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return int(right - left), int(bottom - top)


def _line_height(font: Font) -> int:
    return _text_size(font, "Ag|")[1] + 4


def _enlarged(image: Image.Image, factor: int) -> Image.Image:
    if factor == 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def grid_image(
    rows: Sequence[Sequence[Cell | None]],
    row_labels: Sequence[str] = (),
    column_labels: Sequence[str] = (),
    title: str | None = None,
) -> Image.Image:
    """Draw the cells in rows and columns on a white sheet: the title on top,
    column labels above, row labels to the left, each caption under its picture.
    Empty cells (None) stay blank."""
    cells = [cell for row in rows for cell in row if cell is not None]
    if not cells:
        raise ValueError("a grid needs at least one image")
    longest = max(max(cell.image.size) for cell in cells)
    factor = max(1, math.ceil(MIN_DISPLAY_SIDE / longest))
    pictures = [[None if c is None else _enlarged(c.image.convert("RGB"), factor) for c in row]
                for row in rows]
    side = longest * factor
    font = label_font(max(14, min(28, round(side / 11))))
    caption_font = label_font(max(13, min(24, round(side / 13))))
    line, caption_line = _line_height(font), _line_height(caption_font)

    texts = [*column_labels, *(t for c in cells for t in c.caption)]
    cell_width = max([p.width for row in pictures for p in row if p is not None]
                     + [_text_size(caption_font, t)[0] + GAP for t in texts])
    cell_height = max(p.height for row in pictures for p in row if p is not None)
    caption_lines = max(len(c.caption) for c in cells)
    row_height = cell_height + caption_lines * caption_line + GAP
    label_width = max((_text_size(font, t)[0] for t in row_labels), default=-GAP) + GAP
    top = (line + GAP if title else 0) + (line if column_labels else 0)
    columns = max(len(row) for row in rows)
    width = GAP + label_width + columns * (cell_width + GAP)
    height = GAP + top + len(rows) * row_height
    if title:
        width = max(width, _text_size(font, title)[0] + 2 * GAP)

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((GAP, GAP), title, font=font, fill=TEXT)
    x0, y0 = GAP + label_width, GAP + top
    for j, text in enumerate(column_labels):
        centre = x0 + j * (cell_width + GAP) + cell_width // 2
        draw.text((centre, y0 - line // 2 - 2), text, font=font, fill=TEXT, anchor="mm")
    for i, row in enumerate(rows):
        y = y0 + i * row_height
        if i < len(row_labels):
            draw.text((GAP + label_width - GAP, y + cell_height // 2), row_labels[i],
                      font=font, fill=TEXT, anchor="rm")
        for j, cell in enumerate(row):
            picture = pictures[i][j]
            if cell is None or picture is None:
                continue
            x = x0 + j * (cell_width + GAP)
            sheet.paste(picture, (x + (cell_width - picture.width) // 2,
                                  y + (cell_height - picture.height) // 2))
            for k, text in enumerate(cell.caption):
                draw.text((x + cell_width // 2, y + cell_height + k * caption_line + 2), text,
                          font=caption_font, fill=TEXT if k == 0 else MUTED, anchor="mt")
    return sheet
