"""The studio's jobs as the page posts them: JSON turned into a checked `Job`.

Building a job (`build_job`, `build_sweep`) makes the `Config` the CLI would
make (Config(task=...) with the task's settings, then the options) and runs
every check of `prepare` that needs no torch (`precheck`), so a bad value is
refused when the job is posted; the worker (worker.py) runs it. Imports neither
fastapi nor torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import threading
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nst.tasks
from nst.config import INIT_KINDS, Config, shipped_decoder_path
from nst.errors import NstError
from nst.jobs.request import precheck
from nst.jobs.study_plan import StudyPlan, precheck_sweep
from nst.plans.sweeps import (
    INPUT_PARAMS,
    SWEEPABLE,
    Inputs,
    axis,
    canonical_param,
    params_preset,
)
from nst.serve.library import STUDY_NAME, Library, short_label

MAX_SWEEP_VALUES = 64
WEIGHTS = ("caffe", "torchvision")  # a weights file is for the command line
OPTION_FIELDS = tuple(f.name for f in dataclasses.fields(Config))


def task_config(task: object) -> Config:
    """nst's defaults for a task, as its CLI command sets them."""
    return nst.tasks.task_config(task)


def _is_tuple_field(name: str) -> bool:
    annotation = SWEEPABLE.get(name)
    return any(typing.get_origin(a) is tuple for a in (annotation, *typing.get_args(annotation)))


def option_value(library: Library, name: str, value: Any) -> Any:
    """One option from JSON as Config takes it: lists become tuples; an image
    reference (init) becomes its file; anything that would name a file is refused."""
    if name == "init" and value is not None:
        if value in INIT_KINDS:
            return value
        return str(library.resolve_ref(value, "init"))
    if name == "weights" and value not in WEIGHTS:
        raise NstError(f"weights must be one of {', '.join(WEIGHTS)} in the studio, got {value!r}")
    if _is_tuple_field(name):
        if isinstance(value, list):
            if any(isinstance(v, (list, dict)) for v in value):
                raise NstError(f"{name} must be a list of values, got {value!r}")
            return tuple(value)
        if value is not None and not isinstance(value, str):
            raise NstError(f"{name} must be a list, got {value!r}")
    elif isinstance(value, (list, dict)):
        raise NstError(f"{name} must be a single value, got {value!r}")
    return value


@dataclass(frozen=True)
class FastPath:
    """Whether this studio runs the fast path (--method fast, --init fast), and with
    which decoder: the server's (nst serve --decoder), never one a page names."""

    decoder: str | None = None  # None: the one nst ships
    reason: str | None = None  # why it is not available; None: it is

    @property
    def available(self) -> bool:
        return self.reason is None


def fast_path(decoder: Path | None = None) -> FastPath:
    """The studio's fast path: `decoder` (nst serve --decoder; a missing file is one
    line), else the shipped decoder, else unavailable with the reason the page shows."""
    if decoder is not None:
        if not decoder.is_file():
            raise NstError(f"decoder file not found: {decoder}")
        return FastPath(str(decoder.resolve()))
    if shipped_decoder_path().is_file():
        return FastPath()
    return FastPath(reason=f"the decoder nst ships is missing ({shipped_decoder_path()}): start nst serve "
                    "--decoder FILE (nst train-decoder makes one)")


def _wants_fast(options: Mapping[str, Any]) -> bool:
    return options.get("method") == "fast" or options.get("init") == "fast"


def build_config(library: Library, task: object, options: object, device: str,
                 fast: FastPath | None = None) -> Config:
    """The run's Config: the task's defaults, then the options; on the server's device,
    a fast request (or fast start) with the server's decoder (`fast`, default: fast_path())."""
    if not isinstance(options, dict):
        raise NstError(f"options must be an object of Config fields, got {options!r}")
    config = task_config(task)
    changes: dict[str, Any] = {}
    for name, value in options.items():
        if name not in OPTION_FIELDS:
            close = difflib.get_close_matches(str(name), OPTION_FIELDS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise NstError(f"unknown option {name!r}{hint}")
        if name == "task":
            if value != task:
                raise NstError(f"options.task ({value!r}) differs from the job's task ({task!r})")
            continue
        if name == "device":
            continue  # the server's (nst serve --device)
        if name == "decoder":  # a path: the server's, never the page's
            raise NstError("the decoder is the server's: start nst serve --decoder FILE")
        changes[name] = option_value(library, name, value)
    if _wants_fast(options):
        fast = fast or fast_path()
        if not fast.available:
            raise NstError(f"--method fast is not available in this studio: {fast.reason}")
        changes["decoder"] = fast.decoder
    try:
        return nst.tasks.task_config(task, changes, config).replace(device=device)
    except (TypeError, AttributeError) as error:
        raise NstError(f"bad option value: {error}") from None


def _ref(value: object, role: str) -> str:
    if not isinstance(value, str):
        raise NstError(f"{role} image: expected \"upload:<id>\" or \"sample:<name>\", got {value!r}")
    return value


def _refs(library: Library, body: Mapping[str, Any]) -> tuple[str | None, list[str], str | None]:
    content = body.get("content")
    styles = body.get("styles") or []
    mask = body.get("mask")
    if not isinstance(styles, list):
        raise NstError(f"styles must be a list of image references, got {styles!r}")
    content_ref = _ref(content, "content") if content is not None else None
    style_refs = [_ref(s, "style") for s in styles]
    mask_ref = _ref(mask, "mask") if mask is not None else None
    for ref, role in ((content_ref, "content"), *((s, "style") for s in style_refs), (mask_ref, "mask")):
        if ref is not None:
            library.resolve_ref(ref, role)
    return content_ref, style_refs, mask_ref


def _label(library: Library, task: str, content: str | None, styles: Sequence[str]) -> str:
    names = [library.ref_name(s) for s in styles]
    if task == "reconstruct" and content is not None:
        return short_label(f"reconstruct {library.ref_name(content)}")
    if task == "texture":
        return short_label("texture of " + " + ".join(names))
    shown = library.ref_name(content) if content is not None else "?"
    return short_label(f"{shown} × {' + '.join(names)}")


@dataclass
class Job:
    """A queued or running job and its live state (guarded by the worker's lock)."""

    run: dict[str, Any]  # what run.json holds
    config: Config | None = None  # a run's
    content: Path | None = None
    styles: tuple[Path, ...] = ()
    masks: tuple[Path, ...] = ()
    plan: StudyPlan | None = None  # a sweep's
    stop: threading.Event = field(default_factory=threading.Event)
    stop_status: str = "stopped"
    # Live state of the current run.
    frame: bytes | None = None
    frame_number: int = 0
    last_step_t: float = 0.0
    preview: dict[str, Any] | None = None  # a --init fast run's frame event: the fast result
    step: dict[str, Any] | None = None
    started_t: float = 0.0
    optimizing_t: float | None = None
    cells: list[dict[str, str]] = field(default_factory=list)  # a sweep's finished runs

    @property
    def id(self) -> str:
        return str(self.run["id"])


def build_job(library: Library, body: object, device: str, fast: FastPath | None = None) -> Job:
    """A run from POST /api/jobs, checked as far as it can be without torch."""
    if not isinstance(body, dict):
        raise NstError("expected a JSON object with task, content, styles, mask and options")
    task = body.get("task", "transfer")
    options = body.get("options") or {}
    config = build_config(library, task, options, device, fast)
    content_ref, style_refs, mask_ref = _refs(library, body)
    content = library.resolve_ref(content_ref, "content") if content_ref is not None else None
    styles = tuple(library.resolve_ref(s, "style") for s in style_refs)
    masks = (library.resolve_ref(mask_ref, "mask"),) if mask_ref is not None else ()
    precheck(config, content, styles, masks)
    run = {"kind": "run", "task": config.task, "status": "queued",
           "inputs": {"content": content_ref, "styles": style_refs, "mask": mask_ref},
           "options": options, "error": None, "record": None,
           "label": _label(library, config.task, content_ref, style_refs)}
    return Job(run, config, content if config.task != "texture" else None,
               styles if config.task != "reconstruct" else (), masks)


def build_sweep(library: Library, body: object, device: str, fast: FastPath | None = None) -> Job:
    """A one-axis sweep from POST /api/sweeps into studies/<name>/."""
    if not isinstance(body, dict):
        raise NstError("expected a JSON object with name, param, values, content, styles and options")
    name = body.get("name")
    if not isinstance(name, str) or STUDY_NAME.fullmatch(name) is None:
        raise NstError(f"name must be 1-64 letters, digits, '-' or '_' (starting with a letter or digit), "
                       f"got {name!r}")
    param = body.get("param")
    if not isinstance(param, str):
        raise NstError(f"param must be the name of an option to sweep, got {param!r}")
    param = canonical_param(param)
    values = body.get("values")
    if not isinstance(values, list) or not values:
        raise NstError(f"values must be a list of the values of {param} to run, got {values!r}")
    if len(values) > MAX_SWEEP_VALUES:
        raise NstError(f"a sweep takes at most {MAX_SWEEP_VALUES} values, got {len(values)}")
    if param in ("task", "device"):
        raise NstError(f"the studio does not sweep {param}")
    task = body.get("task", "transfer")
    options = body.get("options") or {}
    base = build_config(library, task, options, device, fast)
    content_ref, style_refs, _ = _refs(library, {**body, "mask": None})
    content = library.resolve_ref(content_ref, "content") if content_ref is not None else None
    styles = tuple(library.resolve_ref(s, "style") for s in style_refs)
    if param in INPUT_PARAMS:
        converted = [library.resolve_ref(v, param) for v in values]
    else:
        converted = [option_value(library, param, v) for v in values]
    title = body.get("title") or f"{name}: {param.replace('_', ' ')}"
    (sweep,) = params_preset(Inputs((content,) if content else (), styles[:1]), base,
                             [axis(param, converted)], name=param, title=short_label(str(title)))
    if len(styles) > 1 and base.task != "reconstruct":
        sweep = dataclasses.replace(sweep, styles=styles)
    precheck_sweep(sweep)
    plan = StudyPlan([sweep], library.studies / name, short_label(str(title)), keep_other_sweeps=True,
                     owner="sweep", command="nst serve")
    total = len(sweep.runs())
    run = {"kind": "sweep", "task": base.task, "status": "queued",
           "inputs": {"content": content_ref, "styles": style_refs, "mask": None},
           "options": options, "error": None, "record": None, "study": name,
           "sweep": {"name": name, "param": param, "values": values, "done": 0, "total": total},
           "label": short_label(f"sweep {param}: {', '.join(str(v) for v in values)}")}
    return Job(run, plan=plan)
