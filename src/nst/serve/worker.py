"""The studio's jobs: built from what the page posts, queued, run one at a time per
device on a worker thread, stopped within one step, watched through events.

Building a job (`build_job`, `build_sweep`) makes the `Config` the CLI would
make (Config(task=...) with the task's settings, then the options) and runs
every check of `prepare` that needs no torch (`precheck`), so a bad value is
refused when the job is posted; the worker then calls `prepare` and `execute`
(or `run_study` for a sweep), and torch loads with the first job.

Events go to a `Hub`: every connected page has a bounded queue of its own;
step events replace the older step event of the same job still waiting there,
so a slow page loses steps, never blocks the worker, and one that falls
too far behind is disconnected (its page reconnects and gets the state again).
Imports neither fastapi nor torch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import difflib
import io
import json
import logging
import threading
import time
import typing
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nst.tasks
from nst.config import INIT_KINDS, Config
from nst.errors import NstError, NstRuntimeError, allocation_failure
from nst.events import Event, JobEvent, StepEvent, position
from nst.jobs.request import precheck
from nst.jobs.study_plan import StudyPlan, precheck_sweep
from nst.plans.sweeps import INPUT_PARAMS, SWEEPABLE, Inputs, axis, canonical_param, params_preset
from nst.serve.library import INTERRUPTED, STUDY_NAME, Library, now, short_label, without_history

if typing.TYPE_CHECKING:
    from nst.core.features import FeatureExtractor

# A watching page repaints for every step event and every frame, and on a CPU run each
# repaint takes a core from torch: an update costs chromium about 50-65 ms of CPU, and the
# run loses about as much wall time (benchmarks/studio.py, 2 cores). So a CPU run sends its
# step event and its frame together, at the first step, then one update every 3 s (not at
# each scale's end: in a short run those were most of the updates) and at the run's last
# step; a GPU run does not share its device with the browser: two updates a second.
CPU_UPDATE_INTERVAL_S = 3.0
ACCELERATOR_UPDATE_INTERVAL_S = 0.5
FRAME_QUALITY = 85
SUBSCRIBER_LIMIT = 256  # events waiting for one page before it is disconnected
MAX_SWEEP_VALUES = 64
WEIGHTS = ("caffe", "torchvision")  # a weights file is for the command line
OPTION_FIELDS = tuple(f.name for f in dataclasses.fields(Config))
PING = ("ping", "")
LOG = logging.getLogger("nst.serve")


class StudioStop(Exception):  # noqa: N818 (a signal, not an error)
    """Raised from the event callback: the engine stops at the end of that step."""


# ---------------------------------------------------------------- building jobs

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


def build_config(library: Library, task: object, options: object, device: str) -> Config:
    """The run's Config: the task's defaults, then the options; on the server's device."""
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
        changes[name] = option_value(library, name, value)
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
    step: dict[str, Any] | None = None
    started_t: float = 0.0
    optimizing_t: float | None = None
    cells: list[dict[str, str]] = field(default_factory=list)  # a sweep's finished runs

    @property
    def id(self) -> str:
        return str(self.run["id"])


def build_job(library: Library, body: object, device: str) -> Job:
    """A run from POST /api/jobs, checked as far as it can be without torch."""
    if not isinstance(body, dict):
        raise NstError("expected a JSON object with task, content, styles, mask and options")
    task = body.get("task", "transfer")
    options = body.get("options") or {}
    config = build_config(library, task, options, device)
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


def build_sweep(library: Library, body: object, device: str) -> Job:
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
    base = build_config(library, task, options, device)
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


# ---------------------------------------------------------------- events

class Subscriber:
    """One connected page: a bounded queue of (kind, JSON text), filled by any
    thread, read by the page's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = SUBSCRIBER_LIMIT) -> None:
        self.loop = loop
        self.limit = limit
        self.pending: deque[list[str]] = deque()
        self.lock = threading.Lock()
        self.wakeup = asyncio.Event()
        self.closed = False

    def offer(self, kind: str, key: str, text: str) -> bool:
        """Queue an event (never blocks); False once the page has fallen too far behind."""
        with self.lock:
            if self.closed:
                return False
            if kind == "step":
                for item in self.pending:
                    if item[0] == "step" and item[1] == key:
                        item[2] = text  # the page gets the newest step, not every step
                        return True
                if len(self.pending) >= self.limit:
                    return True  # dropped: a slow page loses steps
                self.pending.append([kind, key, text])
            elif len(self.pending) >= self.limit:
                self.closed = True
            else:
                self.pending.append([kind, key, text])
        try:
            self.loop.call_soon_threadsafe(self.wakeup.set)
        except RuntimeError:  # its loop is gone
            self.closed = True
        return not self.closed

    async def next(self, timeout: float) -> tuple[str, str] | None:
        """The next event; PING after `timeout` seconds without one; None when closed."""
        while True:
            with self.lock:
                if self.pending:
                    kind, _, text = self.pending.popleft()
                    return kind, text
                if self.closed:
                    return None
                self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout)
            except TimeoutError:
                return PING


class Hub:
    """Every connected page; publish sends an event to each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        with self.lock:
            self.subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self.lock:
            if subscriber in self.subscribers:
                self.subscribers.remove(subscriber)
        subscriber.closed = True

    def publish(self, kind: str, data: Mapping[str, Any], key: str = "") -> None:
        text = json.dumps(data, ensure_ascii=False)
        with self.lock:
            subscribers = list(self.subscribers)
        for subscriber in subscribers:
            if not subscriber.offer(kind, key, text):
                self.unsubscribe(subscriber)

    def close(self) -> None:
        with self.lock:
            subscribers, self.subscribers = self.subscribers, []
        for subscriber in subscribers:
            subscriber.closed = True
            with contextlib.suppress(RuntimeError):
                subscriber.loop.call_soon_threadsafe(subscriber.wakeup.set)


# ---------------------------------------------------------------- the worker

def _one_line(error: BaseException) -> str:
    if isinstance(error, (NstError, NstRuntimeError)):
        text = str(error)
    else:
        text = allocation_failure(error) or f"{type(error).__name__}: {error}"
    return " ".join(text.split()) or type(error).__name__


def _jpeg(image: Any) -> bytes:
    from nst.files.images import to_pil  # noqa: PLC0415

    buffer = io.BytesIO()
    to_pil(image[:1]).save(buffer, format="JPEG", quality=FRAME_QUALITY)
    return buffer.getvalue()


class Worker:
    """One thread that runs the jobs of one device in order."""

    def __init__(self, library: Library, device: str, hub: Hub,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.library = library
        self.device = device
        self.hub = hub
        self.clock = clock
        self.lock = threading.RLock()
        self.wake = threading.Condition(self.lock)
        self.queue: deque[Job] = deque()
        self.current: Job | None = None
        self.closing = False
        self.thread: threading.Thread | None = None
        self._extractor: tuple[tuple[Any, ...], FeatureExtractor] | None = None

    # -------------------------------------------------------- for the app

    def submit(self, job: Job) -> dict[str, Any]:
        """Write the job as a queued run and queue it; returns the run."""
        job.run = self.library.new_run(job.run)
        with self.lock:
            if self.closing:
                raise NstError("the studio is shutting down")
            self.queue.append(job)
            self._publish_job(job)
            self._publish_queue()
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name=f"nst-worker-{self.device}",
                                               daemon=True)
                self.thread.start()
            self.wake.notify_all()
            return dict(job.run)

    def stop(self, run_id: str) -> dict[str, Any] | None:
        """Stop a queued job now, a running one at the end of its step. None if
        it is neither queued nor running."""
        with self.lock:
            if self.current is not None and self.current.id == run_id:
                self.current.stop.set()
                return dict(self.current.run)
            for job in self.queue:
                if job.id == run_id:
                    self.queue.remove(job)
                    self._finish(job, "stopped")
                    self._publish_queue()
                    return dict(job.run)
        return None

    def active(self, run_id: str) -> bool:
        with self.lock:
            return any(job.id == run_id for job in self._jobs())

    def live(self, run_id: str) -> dict[str, Any] | None:
        """A queued or running job's run, as it is now."""
        with self.lock:
            for job in self._jobs():
                if job.id == run_id:
                    return dict(job.run)
        return None

    def frame(self, run_id: str) -> tuple[bytes, int] | None:
        with self.lock:
            job = self.current
            if job is None or job.id != run_id or job.frame is None:
                return None
            return job.frame, job.frame_number

    def subscribe(self, subscriber: Subscriber) -> None:
        """Connect a page: it gets the current state at once (the queue, each
        queued or running job, the running job's last step and sweep), then every
        event. Taken under the lock that every state change holds, so nothing
        falls between the state and the events."""
        with self.lock:
            subscriber.offer("queue", "", json.dumps(self._queue_data()))
            for job in self._jobs():
                subscriber.offer("job", job.id, json.dumps(without_history(job.run), ensure_ascii=False))
            running = self.current
            if running is not None and running.step is not None:
                subscriber.offer("step", running.id, json.dumps(running.step))
            if running is not None and running.plan is not None:
                subscriber.offer("sweep", running.id, json.dumps(self._sweep_data(running)))
            self.hub.subscribe(subscriber)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop: queued jobs and the running one become interrupted (the running
        one at the end of its step); waits up to `timeout` for it."""
        with self.lock:
            self.closing = True
            while self.queue:
                self._finish(self.queue.popleft(), "interrupted")
            if self.current is not None:
                self.current.stop_status = "interrupted"
                self.current.stop.set()
            self.wake.notify_all()
            thread = self.thread
        if thread is not None:
            thread.join(timeout)

    # -------------------------------------------------------- state and events

    def _jobs(self) -> list[Job]:
        return ([self.current] if self.current is not None else []) + list(self.queue)

    def _queue_data(self) -> dict[str, Any]:
        return {"queue": [job.id for job in self.queue],
                "running": self.current.id if self.current is not None else None}

    def _publish_queue(self) -> None:
        self.hub.publish("queue", self._queue_data())

    def _publish_job(self, job: Job) -> None:
        self.hub.publish("job", without_history(job.run), job.id)

    def _set(self, job: Job, **changes: Any) -> None:
        with self.lock:
            job.run.update(changes)
            try:
                self.library.write_run(job.run)
            except OSError as error:  # the page still hears of it; the worker goes on
                LOG.error("nst serve: cannot write run %s: %s", job.id, error)
            self._publish_job(job)

    def _finish(self, job: Job, status: str, error: str | None = None) -> None:
        self._set(job, status=status, error=INTERRUPTED if status == "interrupted" else error)

    def _sweep_data(self, job: Job) -> dict[str, Any]:
        sweep = job.run["sweep"]
        return {"id": job.id, "name": sweep["name"], "done": len(job.cells), "total": sweep["total"],
                "runs": list(job.cells)}

    # -------------------------------------------------------- the thread

    def _loop(self) -> None:
        while True:
            with self.lock:
                while not self.queue and not self.closing:
                    self.wake.wait()
                if self.closing and not self.queue:
                    self.thread = None
                    return
                job = self.queue.popleft()
                self.current = job
                job.started_t = self.clock()
                self._set(job, status="running", started=now())
                self._publish_queue()
            try:
                self._run(job)
            except StudioStop:
                self._finish(job, job.stop_status)
            except Exception as error:  # every failure becomes the run's one-line message
                if not isinstance(error, (NstError, NstRuntimeError)):
                    LOG.error("nst serve: run %s failed", job.id, exc_info=error)
                self._finish(job, "failed", _one_line(error))
            finally:
                with self.lock:
                    job.frame = None
                    self.current = None
                    self._publish_queue()

    def _run(self, job: Job) -> None:
        if job.plan is not None:
            self._run_sweep(job, job.plan)
            return
        from nst.jobs.request import prepare  # noqa: PLC0415
        from nst.jobs.runner import execute  # noqa: PLC0415  (loads torch)

        assert job.config is not None
        request = prepare(job.config, job.content, job.styles, job.masks)
        if job.stop.is_set():
            raise StudioStop
        done = execute(request, lambda event: self._on_event(job, event), self._network(request),
                       label=job.id)
        folder = self.library.run_folder(job.id)
        if folder is None or not folder.is_dir():
            return  # deleted meanwhile
        done.save(folder / "result.png")
        self._set(job, status="finished", error=None, record=done.record.to_dict(),
                  seed=done.config.seed)

    def _network(self, request: Any) -> FeatureExtractor:
        """The feature network, kept loaded while runs ask for the same one."""
        from nst.core.features import extractor_for  # noqa: PLC0415
        from nst.core.geometry import used_layers  # noqa: PLC0415

        config = request.config
        key = (used_layers(config, config.task != "texture", config.task != "reconstruct"), config.weights,
               config.pooling, config.precision, config.channels_last, request.device)
        if self._extractor is None or self._extractor[0] != key:
            self._extractor = None  # free the old one first
            self._extractor = (key, extractor_for(config).to(request.device))
        return self._extractor[1]

    def _run_sweep(self, job: Job, plan: StudyPlan) -> None:
        from nst.jobs.studies import run_study  # noqa: PLC0415  (loads torch)

        specs = [(sweep, spec) for sweep in plan.sweeps for spec in sweep.runs()]
        name = str(job.run["study"])

        def on_event(event: Event) -> None:
            if isinstance(event, JobEvent) and event.status == "started" and event.index < len(specs):
                with self.lock:
                    job.optimizing_t, job.step, job.frame = None, None, None
                    job.started_t = self.clock()
            elif isinstance(event, JobEvent) and event.status in ("finished", "skipped") \
                    and event.index < len(specs):
                sweep, spec = specs[event.index]
                image = plan.image_path(sweep, spec).relative_to(plan.output).as_posix()
                with self.lock:
                    job.cells.append({"label": spec.label, "image": f"/studies/{name}/{image}"})
                    job.run["sweep"]["done"] = len(job.cells)
                    with contextlib.suppress(OSError):  # the count is also in results.json
                        self.library.write_run(job.run)
                    self.hub.publish("sweep", self._sweep_data(job), job.id)
            self._on_event(job, event)

        run_study(plan, on_event)
        self._set(job, status="finished", error=None, report=f"/studies/{name}/index.html")

    def _on_event(self, job: Job, event: Event) -> None:
        """The engine's callback: throttled step events and frames; stop."""
        if isinstance(event, StepEvent):
            self._on_step(job, event)
        if job.stop.is_set():
            raise StudioStop

    def _on_step(self, job: Job, event: StepEvent) -> None:
        now = self.clock()
        if job.optimizing_t is None:
            job.optimizing_t = now - event.elapsed_s
        where = position(event)
        on_cpu = event.image.device.type == "cpu"
        if job.step is not None and where.step < where.total and now - job.last_step_t < (
                CPU_UPDATE_INTERVAL_S if on_cpu else ACCELERATOR_UPDATE_INTERVAL_S):
            return
        frame = _jpeg(event.image)  # with its step event: the page repaints once for both
        left = where.seconds_left(now - job.optimizing_t)
        eta = round(left, 1) if left is not None and len(event.scales) > event.scale else None
        with self.lock:
            job.frame, job.frame_number = frame, job.frame_number + 1
            job.step = {"id": job.id, "step": where.step, "total_steps": where.total, "scale": event.scale,
                        "scales": where.scales,
                        "scale_step": event.step, "scale_steps": event.total_steps,
                        "losses": {k: float(f"{v:.5g}") for k, v in event.losses.items()},
                        "elapsed_s": round(now - job.started_t, 2), "eta_s": eta,
                        "frame": job.frame_number}
            job.last_step_t = now
            self.hub.publish("step", job.step, job.id)
