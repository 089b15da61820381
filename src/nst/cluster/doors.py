"""The doors on a cluster: a `jobs.compute.Computer` whose jobs run on a Pool.

batch and studies hand their prepared requests to `ClusterComputer.compute`
exactly as to the local one: each request's input files go into the cluster once
(by content hash), each job becomes a `RequestTask`, and each outcome, as it comes
back, carries the worker's encoded image and record, written by the door with
`Outcome.save` (the same `runner.write_output` as a local run's `Run.save`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from pathlib import Path

from PIL import Image

from nst.cluster.connect import ClusterOptions
from nst.cluster.pool import Pool
from nst.cluster.worker import RequestTask, decode
from nst.errors import NstError
from nst.events import EventCallback, JobEvent, notify
from nst.jobs.compute import Job, Outcome
from nst.jobs.request import Request
from nst.record import RunRecord


class ClusterComputer:
    """A Computer on a Pool (see jobs/compute.py). Given ClusterOptions, it starts
    its pool when the first jobs come (a run with everything resumed never touches
    the cluster) and stops it in `close`; given a started Pool, it uses that one.
    Requests are prepared for the workers' device kind (run_on)."""

    def __init__(self, cluster: ClusterOptions | Pool) -> None:
        self.pool = cluster if isinstance(cluster, Pool) else None
        self.options = cluster.options if isinstance(cluster, Pool) else cluster
        self.owned = self.pool is None
        self.run_on: str | None = self.options.device_kind

    def __enter__(self) -> ClusterComputer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.owned and self.pool is not None:
            self.pool.close()
            self.pool = None

    def compute(self, jobs: Sequence[Job], on_event: EventCallback | None) -> Generator[Outcome, None, None]:
        if not jobs:
            return
        if self.pool is None:
            self.pool = Pool(self.options).start()
        pool = self.pool
        for job in jobs:
            for item in job.request.inputs:
                if item.path is None:
                    raise NstError(f"{job.label}: in-memory inputs do not travel to a cluster")
                pool.put_file(item.path, item.sha256)
        tasks = [RequestTask(job.request, job.label) for job in jobs]

        def started(index: int, worker: str) -> None:
            job = jobs[index]
            notify(on_event, JobEvent("started", job.label, job.index, job.total, worker=worker))

        def noted(text: str) -> None:
            notify(on_event, JobEvent("queued", text, total=None))

        for done in pool.run(tasks, started, noted):
            job = jobs[done.index]
            if done.error is not None:
                yield Outcome(job, error=done.error, worker=done.worker, elapsed_s=done.elapsed_s)
                continue
            picture, record = decode(done.value)
            yield Outcome(job, record, worker=done.worker, elapsed_s=done.elapsed_s,
                          writer=_writer(picture, job.request, record))


def _writer(picture: Image.Image, request: Request, record: RunRecord) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        from nst.jobs.runner import write_output  # noqa: PLC0415

        return write_output(picture, request, record, path)

    return write
