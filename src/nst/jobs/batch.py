"""Batch style transfer: every image of a folder, with the options of one transfer.

A batch resumes: an output that exists and records the same settings is skipped.
A file that cannot be read is noted and the batch goes on; the caller reports the
failures at the end. Like the engine, this module never prints.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nst.config import Config
from nst.errors import NstError, NstRuntimeError
from nst.events import StepCallback
from nst.files.contact_sheet import write_contact_sheets
from nst.files.images import OUTPUT_FORMATS, load_image, read_metadata
from nst.jobs.resume import picture_settings
from nst.jobs.runner import run, select_device

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
SHEET_NAME = "index.jpg"


@dataclass(frozen=True)
class BatchItem:
    source: Path
    output: Path
    label: str  # the source's path relative to the input folder


@dataclass(frozen=True)
class ImageEvent:
    """One image finished, skipped (done by an earlier run) or failed."""

    index: int
    total: int
    item: BatchItem
    status: str  # "done", "skipped" or "failed"
    message: str = ""
    elapsed_s: float = 0.0


@dataclass
class BatchReport:
    done: list[BatchItem] = field(default_factory=list)
    skipped: list[BatchItem] = field(default_factory=list)
    failed: list[tuple[BatchItem, str]] = field(default_factory=list)
    sheets: list[Path] = field(default_factory=list)
    config: Config | None = None


def find_images(folder: Path, recursive: bool, exclude: Path | None = None) -> list[Path]:
    """Image files in `folder` by extension, sorted; hidden files and folders
    (and `exclude`, the output folder when it lies inside) are left out."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    images = []
    for path in found:
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if exclude is not None and (path == exclude or exclude in path.parents):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
    return sorted(images)


def plan(input_dir: Path, out_dir: Path, recursive: bool, fmt: str) -> list[BatchItem]:
    """Where each input's output goes: the same relative path, with the output's
    extension (a.jpg and a.png in one folder become a_jpg.png and a_png.png)."""
    inside = out_dir.resolve()
    exclude = inside if input_dir.resolve() in inside.parents else None
    sources = find_images(input_dir, recursive, exclude)
    targets = [source.relative_to(input_dir).with_suffix(f".{fmt}") for source in sources]
    clashes = {target for target in targets if targets.count(target) > 1}
    items = []
    for source, target in zip(sources, targets, strict=True):
        if target in clashes:
            target = target.with_name(f"{source.stem}_{source.suffix[1:].lower()}.{fmt}")
        items.append(BatchItem(source, out_dir / target, str(source.relative_to(input_dir))))
    return items


def _check_folders(input_dir: Path, out_dir: Path) -> None:
    if not input_dir.exists():
        raise NstError(f"input folder not found: {input_dir}")
    if not input_dir.is_dir():
        raise NstError(f"expected a folder of images, found a file: {input_dir}")
    if out_dir.exists() and not out_dir.is_dir():
        raise NstError(f"output path is a file, not a folder: {out_dir}")
    if out_dir.resolve() == input_dir.resolve():
        raise NstError("the output folder must differ from the input folder (outputs would replace inputs)")


def _made_with(item: BatchItem, settings: dict[str, Any], seed_given: bool) -> bool | None:
    """Whether an existing output records these settings (None: there is no output)."""
    if not item.output.exists():
        return None
    try:
        metadata = read_metadata(item.output) or {}
    except (OSError, ValueError):
        return False
    inputs = metadata.get("inputs", {})
    return (
        inputs.get("content") == settings["content"]
        and inputs.get("styles") == settings["styles"]
        and picture_settings(metadata.get("config", {}), seed_given)
        == picture_settings(settings["config"], seed_given)
    )


def run_batch(
    config: Config,
    input_dir: str | Path,
    styles: Sequence[str | Path],
    out_dir: str | Path,
    recursive: bool = False,
    fmt: str = "png",
    overwrite: bool = False,
    on_image: Callable[[ImageEvent], None] | None = None,
    on_step: StepCallback | None = None,
) -> BatchReport:
    """Style every image in `input_dir` into `out_dir`, then write index.jpg there.

    overwrite: redo outputs made earlier with other settings (otherwise that is an error).
    """
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    _check_folders(input_dir, out_dir)
    if f".{fmt}" not in OUTPUT_FORMATS:
        raise NstError(f"unknown format {fmt!r}; expected one of {', '.join(s[1:] for s in OUTPUT_FORMATS)}")
    if not styles:
        raise NstError("batch needs at least one style image")
    style_paths = [str(Path(s).resolve()) for s in styles]
    for style in styles:
        load_image(style, config.max_pixels)  # a bad style would fail every image: fail now
    seed_given = config.seed is not None
    config = config.replace(task="transfer").resolved(select_device(config.device).type)
    if not seed_given:
        config = config.replace(seed=secrets.randbelow(2**31))
    items = plan(input_dir, out_dir, recursive, fmt)
    if not items:
        raise NstError(f"no images in {input_dir} ({', '.join(IMAGE_SUFFIXES)})"
                       + ("" if recursive else "; use --recursive for subfolders"))
    done_before = _done_before(items, config, style_paths, seed_given, overwrite)

    out_dir.mkdir(parents=True, exist_ok=True)
    report = BatchReport(config=config)
    for index, item in enumerate(items):
        if item in done_before:
            report.skipped.append(item)
            _notify(on_image, ImageEvent(index, len(items), item, "skipped"))
            continue
        start = time.perf_counter()
        try:
            finished = run(config, item.source.resolve(), style_paths, on_step)
            item.output.parent.mkdir(parents=True, exist_ok=True)
            finished.save(item.output)
        except (NstError, NstRuntimeError) as error:
            report.failed.append((item, str(error)))
            _notify(on_image, ImageEvent(index, len(items), item, "failed", str(error)))
            continue
        report.done.append(item)
        _notify(on_image, ImageEvent(index, len(items), item, "done", "",
                                     time.perf_counter() - start))
    finished_items = [item for item in items if item in report.done or item in report.skipped]
    if finished_items:
        pairs = [(item.source, item.output, item.label) for item in finished_items]
        report.sheets = write_contact_sheets(pairs, out_dir / SHEET_NAME)
    return report


def _done_before(
    items: Sequence[BatchItem], config: Config, styles: list[str], seed_given: bool, overwrite: bool
) -> set[BatchItem]:
    """Outputs an earlier run already made with these settings. Outputs made with
    other settings are an error unless `overwrite`: they are somebody's work."""
    done, stale = set(), []
    for item in items:
        settings = {"content": str(item.source.resolve()), "styles": styles, "config": config.to_dict()}
        match = _made_with(item, settings, seed_given)
        if match:
            done.add(item)
        elif match is False:
            stale.append(item)
    if stale and not overwrite:
        raise NstError(
            f"{len(stale)} output(s) already exist from other settings or inputs "
            f"(first: {stale[0].output}); pass --overwrite to redo them, or choose another folder"
        )
    return done


def _notify(callback: Callable[[ImageEvent], None] | None, event: ImageEvent) -> None:
    if callback is not None:
        callback(event)
