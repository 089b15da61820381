"""Batch style transfer: every image of a folder, with the options of one transfer.

A batch resumes: an output whose record answers the same request (same
settings, same input files by content) is skipped.
A file that cannot be read is noted and the batch goes on; the caller reports the
failures at the end. Like the engine, this module never prints.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nst.config import Config
from nst.errors import NstError, NstRuntimeError
from nst.events import EventCallback, JobEvent, notify
from nst.files.contact_sheet import write_contact_sheets
from nst.files.images import OUTPUT_FORMATS, load_image
from nst.jobs.compute import Computer, Job, LocalComputer
from nst.jobs.folders import FolderLock
from nst.jobs.request import SEED_RANGE, Request, check_not_an_input, precheck, prepare
from nst.jobs.resume import answers, read_record

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
SHEET_NAME = "index.jpg"


@dataclass(frozen=True)
class BatchItem:
    source: Path
    output: Path
    label: str  # the source's path relative to the input folder


@dataclass
class BatchReport:
    done: list[BatchItem] = field(default_factory=list)
    skipped: list[BatchItem] = field(default_factory=list)
    failed: list[tuple[BatchItem, str]] = field(default_factory=list)
    sheets: list[Path] = field(default_factory=list)
    config: Config | None = None
    upscaled: list[BatchItem] = field(default_factory=list)  # inputs smaller than the output size


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


def run_batch(
    config: Config,
    input_dir: str | Path,
    styles: Sequence[str | Path],
    out_dir: str | Path,
    recursive: bool = False,
    fmt: str = "png",
    overwrite: bool = False,
    on_event: EventCallback | None = None,
    command: str = "nst batch",
    computer: Computer | None = None,
) -> BatchReport:
    """Style every image in `input_dir` into `out_dir`, then write index.jpg there.

    Every image goes through the job layer (prepare, execute, save). Events: a
    JobEvent per image (skipped, started, finished or failed) and the steps.
    overwrite: redo outputs made earlier by nst with other settings (otherwise
    that is an error); files nst did not make are never replaced.
    computer: where the images are computed (default: here, one after another;
    cluster.doors.ClusterComputer: on a cluster). This process alone writes files.
    """
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    _check_folders(input_dir, out_dir)
    if f".{fmt}" not in OUTPUT_FORMATS:
        raise NstError(f"unknown format {fmt!r}; expected one of {', '.join(s[1:] for s in OUTPUT_FORMATS)}")
    if not styles:
        raise NstError("batch needs at least one style image")
    for style in styles:
        load_image(style, config.max_pixels)  # a bad style would fail every image: fail now
    items = plan(input_dir, out_dir, recursive, fmt)
    if not items:
        raise NstError(f"no images in {input_dir} ({', '.join(IMAGE_SUFFIXES)})"
                       + ("" if recursive else "; use --recursive for subfolders"))
    _check_outputs_are_not_inputs(items, styles)
    seed_given = config.seed is not None
    if not seed_given:  # one seed for the whole batch, so its images match
        config = config.replace(seed=secrets.randbelow(SEED_RANGE))
    config = config.replace(task="transfer")
    with FolderLock(out_dir, command) as lock:
        if lock.note and on_event is not None:
            on_event(JobEvent("queued", lock.note, total=len(items)))
        return _run_items(items, config, styles, out_dir, seed_given, overwrite, on_event,
                          computer or LocalComputer())


def _run_items(items: list[BatchItem], config: Config, styles: Sequence[str | Path], out_dir: Path,
               seed_given: bool, overwrite: bool, on_event: EventCallback | None,
               computer: Computer) -> BatchReport:
    report = BatchReport(config=config)
    requests = _prepare_items(items, config, styles, seed_given, report, computer.run_on)
    done_before = _done_before(requests, overwrite)
    total = len(items)
    report.upscaled = [item for item, request in requests.items() if _upscaled(request)]
    if report.upscaled:  # said once, before the runs: the pictures will be softer than the output size
        size = requests[report.upscaled[0]].config.size
        count = len(report.upscaled)
        note = f"batch: {count} input{'s' if count > 1 else ''} smaller than --size {size} " \
            f"{'are' if count > 1 else 'is'} upscaled to it"
        notify(on_event, JobEvent("queued", note, total=total))
    jobs: list[Job] = []
    early: list[JobEvent] = []  # images decided before any runs: reported in their place
    for index, item in enumerate(items):
        failure = next((reason for failed, reason in report.failed if failed == item), None)
        if failure is not None:
            early.append(JobEvent("failed", item.label, index, total, message=failure))
        elif item in done_before:
            report.skipped.append(item)
            early.append(JobEvent("skipped", item.label, index, total, message="done earlier"))
        else:
            jobs.append(Job(requests[item], item.label, index, total))

    def report_early(before: int) -> None:
        while early and early[0].index < before:
            notify(on_event, early.pop(0))

    report_early(jobs[0].index if jobs else total)
    for outcome in computer.compute(jobs, on_event):
        item, job = items[outcome.job.index], outcome.job
        report_early(job.index)
        report.config = job.request.config
        try:
            if outcome.error is not None:
                raise outcome.error
            outcome.save(item.output)
        except (NstError, NstRuntimeError) as error:
            report.failed.append((item, str(error)))
            notify(on_event, JobEvent("failed", item.label, job.index, total, message=str(error),
                                      worker=outcome.worker))
            continue
        report.done.append(item)
        notify(on_event, JobEvent("finished", item.label, job.index, total, outcome.elapsed_s,
                                  record=outcome.record, worker=outcome.worker))
    report_early(total)
    report.failed.sort(key=lambda pair: items.index(pair[0]))
    finished_items = [item for item in items if item in report.done or item in report.skipped]
    if finished_items:
        pairs = [(item.source, item.output, item.label) for item in finished_items]
        report.sheets = write_contact_sheets(pairs, out_dir / SHEET_NAME)
    return report


def _prepare_items(items: list[BatchItem], config: Config, styles: Sequence[str | Path], seed_given: bool,
                   report: BatchReport, run_on: str | None) -> dict[BatchItem, Request]:
    """Each image's Request; an image that cannot be prepared is a failure of
    that image, not of the batch."""
    requests: dict[BatchItem, Request] = {}
    checked = []
    for item in items:  # every check that needs no torch, for every image, first
        try:
            precheck(config, item.source, styles)
            checked.append(item)
        except NstError as error:
            report.failed.append((item, str(error)))
    for item in checked:
        try:
            requests[item] = prepare(config, item.source, styles, seed_given=seed_given, run_on=run_on)
        except NstError as error:
            report.failed.append((item, str(error)))
    return requests


def _upscaled(request: Request) -> bool:
    """Whether the output is larger than the content image (every side grows)."""
    content = request.content
    return content is not None and request.config.size is not None and max(content.size) < request.config.size


def _check_outputs_are_not_inputs(items: Sequence[BatchItem], styles: Sequence[str | Path]) -> None:
    sources = [item.source for item in items] + [Path(s) for s in styles]
    for item in items:
        if item.output.exists():
            check_not_an_input(item.output, sources)


def _done_before(requests: dict[BatchItem, Request], overwrite: bool) -> set[BatchItem]:
    """Outputs an earlier run already made for the same request. Outputs nst made
    for another request are an error unless `overwrite`: they are somebody's
    work; files nst did not make are an error always."""
    done, stale, foreign = set(), [], []
    for item, request in requests.items():
        if not item.output.exists():
            continue
        record = read_record(item.output)
        if record is False:
            foreign.append(item)
        elif answers(record, request):
            done.add(item)
        else:
            stale.append(item)
    if foreign:
        raise NstError(f"{foreign[0].output} exists and was not made by nst; nst does not replace it: "
                       "move it away or choose another output folder")
    if stale and not overwrite:
        raise NstError(
            f"{len(stale)} output(s) already exist from other settings or inputs "
            f"(first: {stale[0].output}); pass --overwrite to redo them, or choose another folder"
        )
    return done

