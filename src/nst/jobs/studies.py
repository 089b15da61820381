"""Runs sweeps into a study folder: every image, a grid per sweep, results.json
and index.html, resuming where an earlier, interrupted study stopped.

Layout of a study folder::

    images/<sweep>/<run>.png   every run (its RunRecord inside the PNG)
    grids/<sweep>.png          the sweep's labelled grid
    results.json               every run's place in its sweep and its record
    index.html                 the report (files/report.py)

Every run goes through the job layer: `prepare` makes its Request, and a run is
skipped when its image carries a record that answers that request (the one
resume rule, jobs/resume.py). The folder is locked while a study writes to it,
and a folder nst did not make for this study is refused without --force.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from nst.core.engine import build_objective
from nst.events import EventCallback, JobEvent, notify
from nst.files.atomic import copy_atomic, write_text_atomic
from nst.files.grid import Cell, grid_image, wrap
from nst.files.images import save_image, to_tensor
from nst.files.report import caption_stats, write_report
from nst.jobs.compute import Computer, Job, LocalComputer
from nst.jobs.folders import FolderLock, claim_folder
from nst.jobs.resume import read_record
from nst.jobs.runner import ExtractorCache
from nst.jobs.study_plan import REPORT_NAME, RESULTS_NAME, StudyPlan, earlier_results
from nst.plans.sweeps import RunSpec, Sweep
from nst.record import RunRecord
from nst.results import AxisLabels, Comparison, StudyResults, StudyRun, SweepResult
from nst.version import __version__


def _study_run(plan: StudyPlan, sweep: Sweep, spec: RunSpec, record: RunRecord, status: str) -> StudyRun:
    image = plan.image_path(sweep, spec).relative_to(plan.output).as_posix()
    params = {k: _jsonable(v) for k, v in spec.params.items()}
    return StudyRun(spec.slug, spec.label, tuple(spec.labels), tuple(spec.index), image, params, status,
                    record)


def _jsonable(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _load(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        return to_tensor(image.convert("RGB"))


def compare_runs(a: StudyRun, b: StudyRun, output: Path,
                 networks: ExtractorCache | None = None) -> Comparison:
    """How two runs of the same objective differ: in pixels (mean absolute
    difference on the 0-255 scale) and in the statistics the loss measures
    (their final losses, and the loss of one against the other's targets).
    networks: where the network comes from (on the CPU), kept across comparisons."""
    config = a.record.config
    image_a, image_b = _load(output / a.image), _load(output / b.image)
    term = "content" if config.task == "reconstruct" else "style"
    extractor = (networks or ExtractorCache(keep=1)).get(config, "cpu")
    with torch.no_grad():
        objective = build_objective(extractor, config, image_b, [image_b])
        cross = float(objective(image_a)[term])
    loss_a, loss_b = a.record.losses[term], b.record.losses[term]
    starts = [r.record.history[0][term] for r in (a, b) if r.record.history]
    return Comparison(
        a.slug, b.slug, (a.label, b.label), term,
        pixel_difference=round(float((image_a - image_b).abs().mean()) * 255, 3),
        loss_a=loss_a, loss_b=loss_b, loss_difference=abs(loss_a - loss_b),
        relative_loss_difference=abs(loss_a - loss_b) / max((loss_a + loss_b) / 2, 1e-12),
        cross_loss=cross,
        # For scale: the loss of the start images (noise), after one step.
        start_loss=sum(starts) / len(starts) if starts else None,
    )


def _comparisons(sweep: Sweep, runs: list[StudyRun], output: Path,
                 networks: ExtractorCache) -> list[Comparison]:
    """Each run against the first run that differs from it only along `sweep.compare`."""
    if sweep.compare is None:
        return []
    position = [a.name for a in sweep.axes].index(sweep.compare)
    firsts: dict[tuple[int, ...], StudyRun] = {}
    out = []
    for run in runs:
        key = tuple(i for k, i in enumerate(run.index) if k != position)
        if key in firsts:
            out.append(compare_runs(firsts[key], run, output, networks))
        else:
            firsts[key] = run
    return out


def write_grid(sweep: Sweep, runs: list[StudyRun], output: Path) -> Path:
    """The sweep's labelled grid: one axis wraps into rows; with more, the last
    axis gives the columns and the others the rows."""
    cells = []
    for run in runs:
        with Image.open(output / run.image) as image:
            picture = image.convert("RGB")
        caption = (run.label,) if len(sweep.axes) == 1 else ()
        cells.append(Cell(picture, caption + (caption_stats(run.record) if sweep.show_stats else ())))
    if len(sweep.axes) == 1:
        rows, row_labels, column_labels = wrap(cells, sweep.columns), [], []
    else:
        width = len(sweep.axes[-1].values)
        rows = [list(cells[i:i + width]) for i in range(0, len(cells), width)]
        row_labels = [" · ".join(r.labels[:-1]) for r in runs[::width]]
        column_labels = list(sweep.axes[-1].labels)
    sheet = grid_image(rows, row_labels, column_labels, title=sweep.title)
    path = output / "grids" / f"{sweep.name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_image(sheet, path)


def _sweep_result(sweep: Sweep) -> SweepResult:
    return SweepResult(
        sweep.name, sweep.title, sweep.section, sweep.description, sweep.base.task,
        tuple(AxisLabels(a.name, tuple(a.labels)) for a in sweep.axes),
        sweep.columns, sweep.slider, sweep.show_stats,
    )


def _earlier_sweeps(plan: StudyPlan) -> list[SweepResult]:
    """Sweeps an earlier command wrote to this folder and this plan does not
    redo, so several `nst sweep` commands build up one report."""
    earlier = earlier_results(plan.output)
    if earlier is None:
        return []
    names = {s.name for s in plan.sweeps}
    kept = [s for s in earlier.sweeps if s.name not in names
            and all((plan.output / r.image).is_file() for r in s.runs)]
    for sweep in kept:
        for run in sweep.runs:
            run.status = "resumed"
    return kept


def _write_results(results: StudyResults, output: Path) -> None:
    write_text_atomic(output / RESULTS_NAME, json.dumps(results.to_dict(), indent=1, ensure_ascii=False))
    write_report(results, output / REPORT_NAME)


def run_study(plan: StudyPlan, on_event: EventCallback | None = None,
              computer: Computer | None = None) -> StudyResults:
    """Run (or resume) every sweep of `plan`; returns what results.json holds.

    results.json and index.html are rewritten after each sweep, so an
    interrupted study can be browsed as far as it got. Events: a JobEvent per run
    (started and finished, or skipped when resumed or copied) and the steps.
    computer: where the runs are computed (default: here, one after another;
    cluster.doors.ClusterComputer: on a cluster, all at once, each image written
    as it comes back). This process alone writes files.
    """
    computer = computer or LocalComputer()
    plan.run_on = computer.run_on
    total = plan.check()
    with FolderLock(plan.output, plan.command) as lock:
        if lock.note and on_event is not None:
            on_event(JobEvent("queued", lock.note, total=total))
        claim_folder(plan.output, plan.owner, plan.force)
        return _run_sweeps(plan, total, on_event, computer)


@dataclass
class _Planned:
    """One run of the study, decided before any is computed: resumed from its own
    image, copied from an identical run's, or computed (its job)."""

    sweep: Sweep
    spec: RunSpec
    status: str  # resumed | copied | ran
    source: Path | None = None  # copied: the image of the identical run
    record: RunRecord | None = None  # resumed: its record
    job: Job | None = None


def _plan_runs(plan: StudyPlan, total: int) -> list[_Planned]:
    """Every run in order, and what it needs (the rule of an in-order walk: a run's
    own image first, then the first identical run of this study, else compute it)."""
    made: dict[str, Path] = {}  # request -> image of the first run that makes it
    planned = []
    for sweep in plan.sweeps:
        for spec in sweep.runs():
            path, request = plan.image_path(sweep, spec), plan.request(sweep, spec)
            key = json.dumps(request.key(), sort_keys=True)
            record = plan.saved(sweep, spec)
            if record is not None:
                planned.append(_Planned(sweep, spec, "resumed", record=record))
            elif key in made:
                planned.append(_Planned(sweep, spec, "copied", source=made[key]))
            else:
                job = Job(request, f"{sweep.name} {spec.label}", len(planned), total)
                planned.append(_Planned(sweep, spec, "ran", job=job))
            made.setdefault(key, path)
    return planned


def _run_sweeps(plan: StudyPlan, total: int, on_event: EventCallback | None,
                computer: Computer) -> StudyResults:
    started = time.perf_counter()
    results = StudyResults(plan.title, __version__, torch.__version__, platform.machine(),
                           time.strftime("%Y-%m-%d %H:%M:%S"),
                           _earlier_sweeps(plan) if plan.keep_other_sweeps else [])
    planned = _plan_runs(plan, total)
    networks = ExtractorCache(keep=1)  # the comparisons' (this process computes them, on the CPU)
    outcomes = computer.compute([p.job for p in planned if p.job is not None], on_event)
    computed: dict[int, RunRecord] = {}  # job index -> record of its image, written

    def wait_for(number: int) -> RunRecord:
        """Write every image that comes back until run `number`'s is among them."""
        while number not in computed:
            outcome = next(outcomes)
            if outcome.error is not None:
                raise outcome.error
            assert outcome.record is not None
            run = planned[outcome.job.index]
            outcome.save(plan.image_path(run.sweep, run.spec))
            computed[outcome.job.index] = outcome.record
            notify(on_event, JobEvent("finished", outcome.job.label, outcome.job.index, total,
                                      outcome.record.wall_time_s, record=outcome.record,
                                      worker=outcome.worker))
        return computed[number]

    try:
        number = 0
        for sweep in plan.sweeps:
            entry = _sweep_result(sweep)
            results.sweeps.append(entry)
            for _ in sweep.runs():
                entry.runs.append(_one_run(plan, planned[number], number, total, wait_for, on_event))
                number += 1
            entry.grid = write_grid(sweep, entry.runs, plan.output).relative_to(plan.output).as_posix()
            entry.comparisons = _comparisons(sweep, entry.runs, plan.output, networks)
            results.elapsed_s = time.perf_counter() - started
            _write_results(results, plan.output)
    finally:
        outcomes.close()  # a cluster's pending runs are dropped with it
    return results


def _one_run(plan: StudyPlan, planned: _Planned, number: int, total: int,
             wait_for: Callable[[int], RunRecord], on_event: EventCallback | None) -> StudyRun:
    """Resume, copy or wait for (compute) one run of a sweep."""
    sweep, spec = planned.sweep, planned.spec
    record, status = planned.record, planned.status
    if status == "copied":
        assert planned.source is not None
        path = plan.image_path(sweep, spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        copy_atomic(planned.source, path)
        saved = read_record(path)
        record = saved if isinstance(saved, RunRecord) else None
    elif status == "ran":
        record = wait_for(number)
    if status != "ran":
        notify(on_event, JobEvent("skipped", f"{sweep.name} {spec.label}", number, total, message=status))
    assert record is not None
    return _study_run(plan, sweep, spec, record, status)
