"""Where a video run's tasks go: the FramePool interface the driver needs, met by
nst.cluster.pool.Pool (workers on Ray) and by InProcessPool (this process)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from nst.cluster.worker import Blob, Task, WorkerContext
from nst.errors import NstError, NstRuntimeError

if TYPE_CHECKING:
    from nst.cluster.pool import Done


class FramePool(Protocol):
    """What the driver needs of a pool (nst.cluster.pool.Pool, or InProcessPool)."""

    @property
    def workers(self) -> Sequence[object]: ...

    def put(self, data: bytes, suffix: str = "", digest: str | None = None) -> Blob: ...

    def release(self, *blobs: Blob) -> None: ...

    def run(self, tasks: Sequence[Task], on_start: Callable[[int, str], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> Iterator[Done]: ...


class InProcessPool:
    """A FramePool that runs tasks in this process, one call at a time, in order,
    through the same Task.run / run_batch as a worker. `count` is the number of
    workers the driver plans for: with it, tests and benchmarks see the schedule
    (and so the seams) of a cluster of that many workers, without Ray."""

    def __init__(self, count: int = 1, batch_size: int = 1) -> None:
        import torch  # noqa: PLC0415

        self.count, self.batch_size = count, batch_size
        self.cache = Path(tempfile.mkdtemp(prefix="nst-in-process-"))
        self.context = WorkerContext("local", torch.get_num_threads(), "cpu", self.cache)
        self.files: dict[str, Path] = {}

    def __enter__(self) -> InProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)

    @property
    def workers(self) -> Sequence[object]:
        return [f"w{k + 1}" for k in range(self.count)]

    def put(self, data: bytes, suffix: str = "", digest: str | None = None) -> Blob:
        blob = Blob(digest or hashlib.sha256(data).hexdigest(), suffix)
        self.files[blob.digest] = self.context.store(blob, data)
        return blob

    def release(self, *blobs: Blob) -> None:
        for blob in blobs:
            path = self.files.pop(blob.digest, None)
            if path is not None:
                path.unlink(missing_ok=True)

    def run(self, tasks: Sequence[Task], on_start: Callable[[int, str], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> Iterator[Done]:
        from nst.cluster.pool import Done  # noqa: PLC0415

        index = 0
        while index < len(tasks):
            group = [index]
            key = tasks[index].batch_key() if self.batch_size > 1 else None
            while key is not None and len(group) < self.batch_size and index + len(group) < len(tasks) \
                    and tasks[index + len(group)].batch_key() == key:
                group.append(index + len(group))
            for k in group:
                if on_start is not None:
                    on_start(k, "local")
            began = time.perf_counter()
            try:
                if len(group) > 1:
                    values = type(tasks[index]).run_batch(self.context, [tasks[k] for k in group], self.files)
                else:
                    values = [tasks[index].run(self.context, self.files)]
            except (NstError, NstRuntimeError) as error:
                for k in group:
                    yield Done(k, tasks[k], None, error, "local", 1, time.perf_counter() - began)
            else:
                each = (time.perf_counter() - began) / len(group)
                for k, value in zip(group, values, strict=True):
                    yield Done(k, tasks[k], value, None, "local", 1, each)
            index += len(group)
