"""What runs on a cluster worker: its state, the unit of work, and the job-layer task.

A worker is a long-lived Ray actor (`WorkerActor`, made remote by pool.py): it sets
torch's threads to its CPUs (an actor without num_cpus would get one thread), loads
VGG19 once, and runs its tasks through one executor that keeps their networks loaded
across tasks (`WorkerContext.executor`).
Input files arrive as bytes (no shared file system) and are kept in the worker's own
cache folder under their SHA-256; results go back as bytes. Workers never write
outputs: the driver does.

This module imports ray only inside the actor's methods, on a worker: the driver
imports it for the task classes, and Ray imports it on the workers by name (so
nst, of the same version, must be installed on every machine of the cluster).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import socket
import tempfile
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nst.errors import NstError, NstRuntimeError
from nst.files.atomic import pid_alive
from nst.version import __version__

if TYPE_CHECKING:
    from PIL import Image

    from nst.jobs.request import InputFile, Request
    from nst.jobs.runner import Executor, Run
    from nst.record import RunRecord


CACHE_PREFIX = "nst-worker-"
CACHED_FILES = 64


def _remove_stale_caches() -> None:
    """Cache folders of workers that are gone (killed workers leave theirs)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{CACHE_PREFIX}*-*"):
        pid = folder.name[len(CACHE_PREFIX):].split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Blob:
    """Input bytes the driver put into the cluster once (`Pool.put`); a task names
    the blobs it needs, and on the worker reads them as files (`files[digest]`)."""

    digest: str  # SHA-256 of the bytes: their name on every worker
    suffix: str = ""  # kept on the worker's copy (".png", ".mp4"), for readers that look at it


class WorkerContext:
    """What a task sees on its worker: a name, the device kind ('cpu' or 'cuda'),
    torch's thread count, a private cache folder, and the executor that runs its tasks."""

    def __init__(self, name: str, threads: int, device: str, cache: Path,
                 executor: Executor | None = None) -> None:
        self.name, self.threads, self.device, self.cache = name, threads, device, cache
        self._executor = executor
        self._used: dict[Path, None] = {}  # cached files, least recently used first

    @property
    def executor(self) -> Executor:
        """The executor of this worker's tasks (made with the first: it loads torch);
        its networks stay loaded from task to task."""
        if self._executor is None:
            from nst.jobs.runner import Executor  # noqa: PLC0415

            self._executor = Executor()
        return self._executor

    def store(self, blob: Blob, data: bytes) -> Path:
        """Keep `data` in the cache as `blob`'s file (checked against its hash). The
        cache keeps the CACHED_FILES used last (the styles of a batch stay; its
        photos come and go: their bytes come with every call that needs them)."""
        path = self.cache / f"{blob.digest}{blob.suffix}"
        if not path.exists():
            if hashlib.sha256(data).hexdigest() != blob.digest:
                raise NstRuntimeError(f"input bytes for {blob.digest[:12]} arrived damaged")
            partial = path.with_name(f".{path.name}.part")
            partial.write_bytes(data)
            os.replace(partial, path)
        self._used.pop(path, None)
        self._used[path] = None
        return path

    def trim(self) -> None:
        """Forget the files used least recently, beyond CACHED_FILES."""
        while len(self._used) > CACHED_FILES:
            oldest = next(iter(self._used))
            del self._used[oldest]
            oldest.unlink(missing_ok=True)


class Task:
    """One unit of work for a worker (subclass it; instances must pickle, and the
    class must live in an importable module: Ray imports it on the workers).

    `label` names it in progress and errors. `blobs()`: the inputs it needs, put
    with `Pool.put`/`Pool.put_file`; they arrive as files, `files[blob.digest]`.
    `run(context, files)` runs on the worker and returns what the driver gets back
    (keep it small: encoded bytes, not tensors). Exceptions: NstError (bad input)
    and NstRuntimeError (a failed run) fail the task at once, like a local run;
    anything else is retried on another worker, like a worker that died.
    `batch_key()`: tasks of one class with equal non-None keys may be handed to
    `run_batch` together (up to --batch-size), which returns one value per task.
    """

    label: str = "task"

    def blobs(self) -> Sequence[Blob]:
        return ()

    def batch_key(self) -> Hashable | None:
        return None

    def run(self, context: WorkerContext, files: Mapping[str, Path]) -> Any:
        raise NotImplementedError

    @classmethod
    def run_batch(cls, context: WorkerContext, tasks: Sequence[Task], files: Mapping[str, Path]) -> list[Any]:
        return [task.run(context, files) for task in tasks]


@dataclass(frozen=True)
class Returned:
    """A task's answer from its worker: the value, or why it failed. kind: 'ok';
    'input' (NstError) and 'runtime' (NstRuntimeError) are final; 'crash' (any
    other exception) is retried like a dead worker."""

    kind: str
    value: Any = None
    message: str = ""
    elapsed_s: float = 0.0


def _failure(error: BaseException) -> Returned:
    if isinstance(error, NstError):
        return Returned("input", message=str(error))
    if isinstance(error, NstRuntimeError):
        return Returned("runtime", message=str(error))
    return Returned("crash", message=f"{type(error).__name__}: {error}")


class WorkerActor:
    """The body of a worker actor (pool.py wraps it with ray.remote)."""

    def __init__(self, name: str, threads: int, device: str, weights: str | None = "caffe") -> None:
        import torch  # noqa: PLC0415

        torch.set_num_threads(threads)
        if device == "cuda" and not torch.cuda.is_available():
            device = "cpu"  # the pool notices and refuses: see Pool.start
        _remove_stale_caches()
        cache = Path(tempfile.mkdtemp(prefix=f"{CACHE_PREFIX}{os.getpid()}-"))
        self.context = WorkerContext(name, threads, device, cache)
        if weights is not None:
            from nst.core.features import build_extractor  # noqa: PLC0415

            build_extractor(["conv_16"], weights)  # decode VGG19 once, now, not in the first task

    def info(self) -> dict[str, Any]:
        import ray  # noqa: PLC0415  (on a worker, ray is there)
        import torch  # noqa: PLC0415

        return {"name": self.context.name, "pid": os.getpid(), "host": socket.gethostname(),
                "node": ray.get_runtime_context().get_node_id(),
                "device": self.context.device, "threads": torch.get_num_threads(),
                "nst_version": __version__, "torch_version": torch.__version__,
                "machine": platform.machine()}

    def run(self, tasks: list[Task], blobs: list[Blob], *data: bytes) -> list[Returned]:
        """Run `tasks` (one, or a batch of one batch_key); `data` holds the bytes of
        `blobs`, in order (Ray fetches them from the object store)."""
        self.context.trim()
        files = {blob.digest: self.context.store(blob, chunk)
                 for blob, chunk in zip(blobs, data, strict=True)}
        started = time.perf_counter()
        if len(tasks) > 1:
            try:
                values = type(tasks[0]).run_batch(self.context, tasks, files)
                elapsed = (time.perf_counter() - started) / len(tasks)
                return [Returned("ok", value, elapsed_s=elapsed) for value in values]
            except Exception:  # noqa: BLE001  (run them one by one: each gets its own answer)
                pass
        answers = []
        for task in tasks:
            started = time.perf_counter()
            try:
                answers.append(Returned("ok", task.run(self.context, files),
                                        elapsed_s=time.perf_counter() - started))
            except Exception as error:  # noqa: BLE001  (sent back to the driver, which decides)
                answers.append(_failure(error))
        return answers

    def close(self) -> None:
        shutil.rmtree(self.context.cache, ignore_errors=True)


# ------------------------------------------------------------------ the job layer's task


@dataclass
class RequestTask(Task):
    """One prepared job-layer Request (an image of a batch, a run of a study, a frame
    in independent mode). On the worker its inputs are the blobs' files, its device
    is checked, and it runs through the worker's executor (`run`, or `run_batch` with
    others of its batch key); it returns `encode(run)`: PNG bytes with the run record embedded."""

    request: Request
    label: str = "run"

    def blobs(self) -> Sequence[Blob]:
        return tuple(input_blob(item) for item in self.request.inputs)

    def batch_key(self) -> Hashable | None:
        from nst.jobs.runner import batch_key  # noqa: PLC0415

        return batch_key(self.request)

    def run(self, context: WorkerContext, files: Mapping[str, Path]) -> bytes:
        return encode(context.executor.run(localize(self.request, files)))

    @classmethod
    def run_batch(cls, context: WorkerContext, tasks: Sequence[Task], files: Mapping[str, Path]) -> list[Any]:
        requests = [localize(task.request, files) for task in tasks if isinstance(task, RequestTask)]
        return [encode(run) for run in context.executor.run_batch(requests)]


def input_blob(item: InputFile) -> Blob:
    return Blob(item.sha256, item.path.suffix.lower() if item.path is not None else ".png")


def localize(request: Request, files: Mapping[str, Path]) -> Request:
    """`request` with every input read from this worker's copy of its bytes, and its
    device checked here: the same request (labels, hashes, sizes, resolved config)."""
    from nst.core.device import select_device  # noqa: PLC0415

    select_device(request.device)

    def moved(item: InputFile) -> InputFile:
        # An in-memory image of the Python API travels pickled with the request.
        return item if item.path is None else replace(item, path=files[item.sha256])

    return replace(
        request,
        content=moved(request.content) if request.content is not None else None,
        styles=tuple(moved(s) for s in request.styles),
        masks=tuple(moved(m) for m in request.masks),
        init=moved(request.init) if request.init is not None else None,
        decoder=moved(request.decoder) if request.decoder is not None else None,
        output=None,
    )


def encode(run: Run) -> bytes:
    """A finished run as PNG bytes (lossless 8-bit, alpha kept) with its record embedded."""
    from PIL import PngImagePlugin  # noqa: PLC0415

    from nst.files.images import METADATA_KEY, to_pil  # noqa: PLC0415

    picture = to_pil(run.result.image, run.alpha)
    info = PngImagePlugin.PngInfo()
    info.add_text(METADATA_KEY, json.dumps(run.record.to_dict(), sort_keys=True))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", pnginfo=info, compress_level=1)
    return buffer.getvalue()


def decode(data: bytes) -> tuple[Image.Image, RunRecord]:
    """The picture and record `encode` packed (on the driver)."""
    from PIL import Image  # noqa: PLC0415

    from nst.files.images import METADATA_KEY  # noqa: PLC0415
    from nst.record import RunRecord  # noqa: PLC0415

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        text = image.info.get(METADATA_KEY)
        picture = image.copy()
    if not isinstance(text, str):
        raise NstRuntimeError("a worker's result carries no run record")
    return picture, RunRecord.from_dict(json.loads(text))
