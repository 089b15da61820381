"""Runs sweeps into a study folder: every image, a grid per sweep, results.json
and index.html, resuming where an earlier, interrupted study stopped.

Layout of a study folder::

    images/<sweep>/<run>.png   every run (nst metadata, loss history and the
                               request that made it inside the PNG)
    grids/<sweep>.png          the sweep's labelled grid
    results.json               parameters, losses, timings and histories
    index.html                 the report (report.py)

A run is skipped when its image exists and was made from the same request:
the same unresolved Config and input files with the same content (SHA-256).
Every run goes through `nst.jobs.runner.run`.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image

from nst import __version__
from nst.config import Config
from nst.core.engine import build_objective
from nst.core.features import extractor_for
from nst.errors import NstError
from nst.events import StepEvent
from nst.files.atomic import atomic_path
from nst.files.grid import Cell, grid_image, wrap
from nst.files.images import read_metadata, save_image, to_tensor
from nst.files.report import caption_stats, write_report
from nst.jobs.runner import run, select_device
from nst.plans.sweeps import RunSpec, Sweep

RESULTS_NAME = "results.json"
REPORT_NAME = "index.html"


class Listener(Protocol):
    """What a study reports while it works (the CLI prints it)."""

    def run_started(self, number: int, total: int, sweep: Sweep, spec: RunSpec) -> None: ...
    def step(self, event: StepEvent) -> None: ...
    def run_finished(self, number: int, total: int, record: dict[str, Any]) -> None: ...


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class StudyPlan:
    """The sweeps of a study and where it goes."""

    sweeps: Sequence[Sweep]
    output: Path
    title: str = "nst study"
    force: bool = False  # rerun even when an identical output exists
    keep_other_sweeps: bool = False  # keep sweeps of an earlier results.json in the report
    _hashes: dict[Path, str] = field(default_factory=dict)

    def request(self, spec: RunSpec) -> dict[str, Any]:
        """What decides a run's output: the unresolved config and the input files' content."""
        def digest(path: Path) -> str:
            if path not in self._hashes:
                try:
                    self._hashes[path] = _sha256(path)
                except FileNotFoundError:
                    raise NstError(f"file not found: {path}") from None
                except IsADirectoryError:
                    raise NstError(f"expected an image file, found a folder: {path}") from None
            return self._hashes[path]

        # Resolved, so a default and the value it stands for count as the same request.
        config = spec.config.resolved(select_device(spec.config.device).type)
        return {"config": config.to_dict(),
                "content_sha256": digest(spec.content) if spec.content else None,
                "styles_sha256": [digest(s) for s in spec.styles]}

    def image_path(self, sweep: Sweep, spec: RunSpec) -> Path:
        return self.output / "images" / sweep.name / f"{spec.slug}.png"

    def check(self) -> int:
        """Validate every run before the first one starts; returns how many there are."""
        names = [s.name for s in self.sweeps]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise NstError(f"two sweeps share a name: {', '.join(twice)}")
        total = 0
        for sweep in self.sweeps:
            sweep.check_inputs()
            for spec in sweep.runs():
                self.request(spec)
                total += 1
        return total

    def is_done(self, sweep: Sweep, spec: RunSpec) -> bool:
        return not self.force and _saved_record(self.image_path(sweep, spec), self.request(spec)) is not None


def _saved_record(path: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """The metadata of an earlier run at `path` if it answered the same request."""
    if not path.is_file():
        return None
    try:
        metadata = read_metadata(path)
    except (OSError, ValueError):
        return None  # unreadable or foreign: run again
    if not metadata or metadata.get("request") != request:
        return None
    return metadata


def _rounded(history: Sequence[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: float(f"{v:.5g}") for k, v in losses.items()} for losses in history]


def _execute(spec: RunSpec, path: Path, request: dict[str, Any],
             on_step: Callable[[StepEvent], None] | None) -> dict[str, Any]:
    """Run one spec through nst.jobs.runner.run and save it with its request and history."""
    start = time.perf_counter()
    done = run(spec.config, spec.content, spec.styles, on_step)
    metadata = done.metadata()
    metadata.update(request=request, history=_rounded(done.result.history),
                    wall_time_s=round(time.perf_counter() - start, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(done.result.image, path, metadata, done.alpha)
    return metadata


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)


def _record(plan: StudyPlan, sweep: Sweep, spec: RunSpec, metadata: dict[str, Any],
            status: str) -> dict[str, Any]:
    """A run's entry in results.json."""
    return {
        "slug": spec.slug,
        "label": spec.label,
        "labels": list(spec.labels),
        "index": list(spec.index),
        "image": plan.image_path(sweep, spec).relative_to(plan.output).as_posix(),
        "params": {k: _jsonable(v) for k, v in spec.params.items()},
        "status": status,  # ran | resumed | copied (same request earlier in this study)
        "config": metadata["config"],
        "inputs": metadata["inputs"],
        "losses": metadata["final_losses"],
        "steps": metadata["steps"],
        "run_time_s": metadata["run_time_s"],
        "wall_time_s": metadata.get("wall_time_s", metadata["run_time_s"]),
        "device": metadata["device"],
        "history": metadata.get("history", []),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _load(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        return to_tensor(image.convert("RGB"))


def compare_runs(a: dict[str, Any], b: dict[str, Any], output: Path) -> dict[str, Any]:
    """How two runs of the same objective differ: in pixels (mean absolute
    difference on the 0-255 scale) and in the statistics the loss measures
    (their final losses, and the loss of one against the other's targets)."""
    config = Config(**a["config"])
    image_a, image_b = _load(output / a["image"]), _load(output / b["image"])
    term = "content" if config.task == "reconstruct" else "style"
    extractor = extractor_for(config)
    with torch.no_grad():
        objective = build_objective(extractor, config, image_b, [image_b])
        cross = float(objective(image_a)[term])
    loss_a, loss_b = a["losses"][term], b["losses"][term]
    starts = [r["history"][0][term] for r in (a, b) if r["history"]]
    return {
        "a": a["slug"], "b": b["slug"], "labels": [a["label"], b["label"]], "term": term,
        "pixel_difference": round(float((image_a - image_b).abs().mean()) * 255, 3),
        "loss_a": loss_a, "loss_b": loss_b,
        "loss_difference": abs(loss_a - loss_b),
        "relative_loss_difference": abs(loss_a - loss_b) / max((loss_a + loss_b) / 2, 1e-12),
        "cross_loss": cross,
        # For scale: the loss of the start images (noise), after one step.
        "start_loss": sum(starts) / len(starts) if starts else None,
    }


def _comparisons(sweep: Sweep, runs: list[dict[str, Any]], output: Path) -> list[dict[str, Any]]:
    """Each run against the first run that differs from it only along `sweep.compare`."""
    if sweep.compare is None:
        return []
    position = [a.name for a in sweep.axes].index(sweep.compare)
    firsts: dict[tuple[int, ...], dict[str, Any]] = {}
    out = []
    for record in runs:
        key = tuple(i for k, i in enumerate(record["index"]) if k != position)
        if key in firsts:
            out.append(compare_runs(firsts[key], record, output))
        else:
            firsts[key] = record
    return out


def write_grid(sweep: Sweep, runs: list[dict[str, Any]], output: Path) -> Path:
    """The sweep's labelled grid: one axis wraps into rows; with more, the last
    axis gives the columns and the others the rows."""
    cells = []
    for record in runs:
        with Image.open(output / record["image"]) as image:
            picture = image.convert("RGB")
        caption = (record["label"],) if len(sweep.axes) == 1 else ()
        cells.append(Cell(picture, caption + (caption_stats(record) if sweep.show_stats else ())))
    if len(sweep.axes) == 1:
        rows, row_labels, column_labels = wrap(cells, sweep.columns), [], []
    else:
        width = len(sweep.axes[-1].values)
        rows = [list(cells[i:i + width]) for i in range(0, len(cells), width)]
        row_labels = [" · ".join(r["labels"][:-1]) for r in runs[::width]]
        column_labels = list(sweep.axes[-1].labels)
    sheet = grid_image(rows, row_labels, column_labels, title=sweep.title)
    path = output / "grids" / f"{sweep.name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_image(sheet, path)


def _sweep_entry(sweep: Sweep) -> dict[str, Any]:
    return {
        "name": sweep.name, "title": sweep.title, "section": sweep.section,
        "description": sweep.description, "task": sweep.base.task,
        "axes": [{"name": a.name, "labels": list(a.labels)} for a in sweep.axes],
        "columns": sweep.columns, "slider": sweep.slider, "show_stats": sweep.show_stats,
        "runs": [], "comparisons": [], "grid": None,
    }


def _earlier_sweeps(plan: StudyPlan) -> list[dict[str, Any]]:
    """Sweeps an earlier command wrote to this folder and this plan does not
    redo, so several `nst sweep` commands build up one report."""
    try:
        earlier = json.loads((plan.output / RESULTS_NAME).read_text())
        names = {s.name for s in plan.sweeps}
        kept = [s for s in earlier["sweeps"] if s["name"] not in names
                and all((plan.output / r["image"]).is_file() for r in s["runs"])]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    for sweep in kept:
        for record in sweep["runs"]:
            record["status"] = "resumed"
    return kept


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=1, ensure_ascii=False))


def run_study(plan: StudyPlan, listener: Listener | None = None) -> dict[str, Any]:
    """Run (or resume) every sweep of `plan`; returns what results.json holds.

    results.json and index.html are rewritten after each sweep, so an
    interrupted study can be browsed as far as it got.
    """
    total = plan.check()
    try:
        plan.output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NstError(f"cannot create output folder {plan.output}: {error.strerror or error}") from None
    started = time.perf_counter()
    results: dict[str, Any] = {
        "title": plan.title, "nst_version": __version__, "torch": torch.__version__,
        "machine": platform.machine(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "sweeps": _earlier_sweeps(plan) if plan.keep_other_sweeps else [],
    }
    made: dict[str, Path] = {}  # request -> image made earlier in this study
    number = 0
    for sweep in plan.sweeps:
        entry = _sweep_entry(sweep)
        results["sweeps"].append(entry)
        for spec in sweep.runs():
            number += 1
            path, request = plan.image_path(sweep, spec), plan.request(spec)
            key = json.dumps(request, sort_keys=True)
            if listener is not None:
                listener.run_started(number, total, sweep, spec)
            metadata = None if plan.force else _saved_record(path, request)
            status = "resumed"
            if metadata is None and key in made:
                _copy(made[key], path)
                metadata, status = read_metadata(path), "copied"
            if metadata is None:
                metadata = _execute(spec, path, request, listener.step if listener else None)
                status = "ran"
            made.setdefault(key, path)
            entry["runs"].append(_record(plan, sweep, spec, metadata, status))
            if listener is not None:
                listener.run_finished(number, total, entry["runs"][-1])
        entry["grid"] = write_grid(sweep, entry["runs"], plan.output).relative_to(plan.output).as_posix()
        entry["comparisons"] = _comparisons(sweep, entry["runs"], plan.output)
        _finish(results, plan.output, started)
    return results


def _finish(results: dict[str, Any], output: Path, started: float) -> None:
    runs = [r for s in results["sweeps"] for r in s["runs"]]
    results["elapsed_s"] = round(time.perf_counter() - started, 3)
    results["compute_time_s"] = round(sum(r["wall_time_s"] for r in runs), 3)
    results["runs"] = {status: sum(r["status"] == status for r in runs)
                       for status in ("ran", "resumed", "copied")}
    _write_json(output / RESULTS_NAME, results)
    write_report(results, output / REPORT_NAME)
