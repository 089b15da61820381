"""Where the runs of a batch or a study are computed: here, or on a cluster.

A door (batch.py, studies.py) decides what to run, resumes, and writes every file;
a `Computer` only turns prepared requests into finished images, and yields each
as it is ready (`Outcome`), to be written by the door with `Outcome.save`:

    LocalComputer              this process, one request after another (or a batch of
                               same-size ones with batch_size > 1), in order
    cluster.doors.ClusterComputer   the workers of a Ray cluster, in the order they finish

Torch-free to import (the local runner loads it when the first run starts).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from nst.errors import NstError, NstRuntimeError
from nst.events import EventCallback, JobEvent, notify, steps_only
from nst.jobs.request import Request
from nst.record import RunRecord

if TYPE_CHECKING:
    from nst.jobs.runner import Executor


@dataclass(frozen=True)
class Job:
    """A prepared request to compute. index/total: its place among the door's jobs
    (for the events); label: how progress and errors name it."""

    request: Request
    label: str
    index: int
    total: int


@dataclass
class Outcome:
    """A computed job: its record and `save` (write the image with its record,
    atomically), or the error that stopped it (an NstError or NstRuntimeError,
    as a local run raises it). worker: which cluster worker ran it ('' here)."""

    job: Job
    record: RunRecord | None = None
    error: Exception | None = None
    worker: str = ""
    elapsed_s: float = 0.0
    writer: Callable[[Path], Path] | None = field(default=None, repr=False)

    def save(self, path: Path) -> Path:
        assert self.writer is not None, "a failed job has no image"
        path.parent.mkdir(parents=True, exist_ok=True)
        return self.writer(path)


class Computer(Protocol):
    """Computes jobs; yields one Outcome per job as each finishes (in any order).
    Emits each job's `started` JobEvent (and step events where it can) to
    `on_event`; the door emits finished, failed and skipped. run_on: the device
    kind requests are prepared for when other machines run them (see
    request.prepare), None for this machine."""

    run_on: str | None

    def compute(self, jobs: Sequence[Job],
                on_event: EventCallback | None) -> Generator[Outcome, None, None]: ...


class LocalComputer:
    """Jobs run in this process, in order, each when the door asks for the next
    outcome, through `executor` (runner.Executor: by default one of its own, made
    when the first job runs, that keeps its networks loaded across `compute` calls).
    With batch_size > 1, consecutive jobs of one `runner.batch_key` (the images of
    one size of a batch) run as one batched optimization."""

    run_on: str | None = None

    def __init__(self, batch_size: int = 1, executor: Executor | None = None) -> None:
        self.batch_size = batch_size
        self.executor = executor

    def compute(self, jobs: Sequence[Job], on_event: EventCallback | None) -> Generator[Outcome, None, None]:
        # The run itself needs torch; the door checked everything before without it.
        from nst.jobs.runner import Executor, batch_key  # noqa: PLC0415

        if self.executor is None:
            self.executor = Executor()
        executor = self.executor
        position = 0
        while position < len(jobs):
            group = [jobs[position]]
            key = batch_key(group[0].request) if self.batch_size > 1 else None
            while (key is not None and len(group) < self.batch_size and position + len(group) < len(jobs)
                   and batch_key(jobs[position + len(group)].request) == key):
                group.append(jobs[position + len(group)])
            position += len(group)
            for job in group:
                notify(on_event, JobEvent("started", job.label, job.index, job.total))
            try:
                runs = executor.run_batch([job.request for job in group], steps_only(on_event))
            except (NstError, NstRuntimeError) as error:
                for job in group:
                    yield Outcome(job, error=error)
                continue
            for job, run in zip(group, runs, strict=True):
                yield Outcome(job, run.record, elapsed_s=run.record.wall_time_s, writer=run.save)
