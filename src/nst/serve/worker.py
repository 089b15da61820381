"""The studio's worker: the jobs of one device (jobs.py builds them) queued, run one
at a time on a worker thread through one executor (runner.Executor, which keeps the
feature network loaded from job to job), stopped within one step, and watched
through events published to the `Hub` (hub.py). torch loads with the first job.
Imports neither fastapi nor torch.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import threading
import time
import typing
from collections import deque
from collections.abc import Callable
from typing import Any

from nst.config import Config
from nst.errors import NstError, NstRuntimeError, allocation_failure
from nst.events import Event, JobEvent, StepEvent, position
from nst.jobs.study_plan import StudyPlan
from nst.serve.hub import Hub, Subscriber
from nst.serve.jobs import Job
from nst.serve.library import INTERRUPTED, Library, now, without_history
from nst.tasks import DEFAULTS, FAST_REFUSED

if typing.TYPE_CHECKING:
    from nst.jobs.runner import Executor

# A watching page repaints for every step event and every frame, and on a CPU run each
# repaint takes a core from torch: an update costs chromium about 50-65 ms of CPU, and the
# run loses about as much wall time (benchmarks/studio.py, 2 cores). So a CPU run sends its
# step event and its frame together, at the first step, then one update every 3 s (not at
# each scale's end: in a short run those were most of the updates) and at the run's last
# step; a GPU run does not share its device with the browser: two updates a second.
CPU_UPDATE_INTERVAL_S = 3.0
ACCELERATOR_UPDATE_INTERVAL_S = 0.5
FRAME_QUALITY = 85
LOG = logging.getLogger("nst.serve")


class StudioStop(Exception):  # noqa: N818 (a signal, not an error)
    """Raised from the event callback: the engine stops at the end of that step."""


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


def preview_config(config: Config) -> Config:
    """The fast request whose image a --init fast run starts from, shown first: the
    run's config as --method fast (the optimization's own settings at their defaults)."""
    return config.replace(method="fast", **{name: getattr(DEFAULTS, name) for name in FAST_REFUSED})


class Worker:
    """One thread that runs the jobs of one device in order, through `executor`
    (by default one of its own that keeps one network loaded: runs that ask for
    the same one, sweeps included, reuse it)."""

    def __init__(self, library: Library, device: str, hub: Hub,
                 clock: Callable[[], float] = time.monotonic, executor: Executor | None = None) -> None:
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
        self._executor = executor

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
            if running is not None and running.step is None and running.preview is not None:
                subscriber.offer("frame", running.id, json.dumps(running.preview))
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

        assert job.config is not None
        if job.config.method == "gatys" and job.config.init == "fast":
            self._preview(job, job.config)  # the fast result first; the optimization starts from it
        request = prepare(job.config, job.content, job.styles, job.masks)
        if job.stop.is_set():
            raise StudioStop
        done = self.executor().run(request, lambda event: self._on_event(job, event), label=job.id)
        folder = self.library.run_folder(job.id)
        if folder is None or not folder.is_dir():
            return  # deleted meanwhile
        done.save(folder / "result.png")
        self._set(job, status="finished", error=None, record=done.record.to_dict(),
                  seed=done.config.seed)

    def _preview(self, job: Job, config: Config) -> None:
        """Run the fast result a --init fast run starts from and publish it as a `frame`
        event (the image inside, as a data: URL), before the optimization's first step."""
        from nst.jobs.request import prepare  # noqa: PLC0415

        request = prepare(preview_config(config), job.content, job.styles, job.masks)
        if job.stop.is_set():
            raise StudioStop
        fast = self.executor().run_fast(request, label=job.id)
        frame = _jpeg(fast.result.image)
        with self.lock:
            job.frame, job.frame_number = frame, job.frame_number + 1
            job.preview = {"id": job.id, "frame": job.frame_number, "source": "fast",
                           "elapsed_s": round(self.clock() - job.started_t, 3),
                           "image": "data:image/jpeg;base64," + base64.b64encode(frame).decode("ascii")}
            self.hub.publish("frame", job.preview, job.id)
        if job.stop.is_set():
            raise StudioStop

    def executor(self) -> Executor:
        """The executor of this worker's runs and sweeps (made with the first job:
        it loads torch). It keeps one network: the old one goes before a new one loads."""
        if self._executor is None:
            from nst.jobs.runner import Executor  # noqa: PLC0415  (loads torch)

            self._executor = Executor(keep=1)
        return self._executor

    def _run_sweep(self, job: Job, plan: StudyPlan) -> None:
        from nst.jobs.compute import LocalComputer  # noqa: PLC0415
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

        run_study(plan, on_event, LocalComputer(executor=self.executor()))
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
