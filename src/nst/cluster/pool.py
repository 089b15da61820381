"""A pool of long-lived worker actors on a Ray cluster: the interface every door uses.

    from nst.cluster.connect import ClusterOptions
    from nst.cluster.pool import Pool, Task, Blob, WorkerContext, Done

    with Pool(ClusterOptions("local:2")) as pool:       # connects, starts the workers
        blob = pool.put(data, ".png")                   # bytes into the cluster, once
        photo = pool.put_file(path, sha256)             # or a file, read when first needed
        tasks = [MyTask(blob, ...) for ...]             # Task subclasses (worker.py)
        for done in pool.run(tasks, on_start=...):      # as they finish, any order
            if done.error is not None: ...              # NstError / NstRuntimeError
            else: use(done.value)                       # what Task.run returned

Guarantees of `run`: every task is answered exactly once (one `Done` per index).
A worker that dies (its process killed, its node lost, a crash outside the task's
own errors) is replaced by a fresh actor, and the tasks it held go to the queue
again, to another worker where one is free; a task is tried at most
`options.max_attempts` times, then answered with an NstRuntimeError that says why.
NstError and NstRuntimeError raised by a task are final at once (the same input
fails the same way anywhere). Tasks with equal `batch_key()`s go to a worker
together, up to `options.batch_size`. While there is more work than workers,
each worker holds two calls, so the next one's inputs travel while it computes.
Leaving the `with` block (or `close`) kills the workers, and shuts Ray down if
the pool started it (local:N); a KeyboardInterrupt inside `run` leaves through it
the same way. `wait_for_workers` waits for the workers to come up; `release`
lets the object store drop blobs that no task will need again. `reach` connects
to a cluster to join without starting workers (they start with the first `run`),
so that a door fails on an unreachable cluster before it writes anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from nst.cluster.connect import ClusterOptions, Connection, connect, parse_address
from nst.cluster.worker import Blob, Returned, Task, WorkerActor, WorkerContext
from nst.errors import NstError, NstRuntimeError
from nst.version import __version__

__all__ = ["Blob", "Done", "Pool", "Task", "WorkerContext", "WorkerInfo"]

CALLS_PER_WORKER = 2  # one computing, one whose inputs are on their way
START_TIMEOUT_S = 300.0  # for the first worker to come up (a cold node pulls its environment)
POLL_S = 0.5


@dataclass(frozen=True)
class WorkerInfo:
    """A running worker: its name (w1, w2, ...; w2r1 replaced w2 once), host, Ray
    node id, process id (on that host), device kind and torch threads."""

    name: str
    host: str
    node: str
    pid: int
    device: str
    threads: int


@dataclass(frozen=True)
class Done:
    """A task's answer. index: its position in the tasks given to `Pool.run`.
    value: what Task.run returned (None when it failed). error: an NstError or
    NstRuntimeError when it failed for good. worker: the name of the worker that
    answered (the last one tried). attempts: how many workers it was given to.
    elapsed_s: its time on the worker."""

    index: int
    task: Task
    value: Any
    error: Exception | None
    worker: str
    attempts: int
    elapsed_s: float


@dataclass
class _Slot:
    name: str
    actor: Any
    starting: Any  # the info() call of an actor not yet up, else None
    info: WorkerInfo | None = None
    calls: int = 0
    alive: bool = True
    started_at: float = field(default_factory=time.monotonic)


@dataclass
class _Call:
    slot: _Slot
    indices: list[int]


class Pool:
    """Worker actors on a Ray cluster; see the module doc. Not thread-safe: one
    driver thread calls it."""

    def __init__(self, options: ClusterOptions) -> None:
        self.options = options
        self.connection: Connection | None = None
        self._slots: list[_Slot] = []
        self._refs: dict[str, Any] = {}  # blob digest -> ObjectRef
        self._files: dict[str, Path] = {}  # put_file blobs: read when first needed
        self._remote: Any = None
        self._replacements = 0
        self._count = 0  # workers asked for
        self._start_error = ""  # why the last worker that could not start could not
        self._started = False  # the workers were asked for (start)

    # ------------------------------------------------------------ life cycle

    def __enter__(self) -> Pool:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    @property
    def ray(self) -> Any:
        assert self.connection is not None, "start the pool first"
        return self.connection.ray

    def reach(self) -> Pool:
        """Connect now to a cluster to join (auto, ray://HOST:PORT), so that one
        that cannot be reached fails at once (NstError, see connect.py); a private
        one (local:N) starts with the workers. The workers start with the first
        `run`, or `start`."""
        if self.connection is None and parse_address(self.options.address)[0] != "local":
            self.connection = connect(self.options)
        return self

    def start(self) -> Pool:
        """Connect, start the workers and wait until one is up (the others join as
        they come up). NstError when the cluster cannot run a single worker."""
        if self._started:
            return self
        try:
            if self.connection is None:
                self.connection = connect(self.options)
            self._started = True
            self._remote = self.ray.remote(
                num_cpus=self.options.cpus_per_worker, num_gpus=self.options.gpus_per_worker,
                max_restarts=0, max_task_retries=0, scheduling_strategy="SPREAD",
            )(WorkerActor)
            self._count = self._worker_count()
            self._slots = [self._new_slot(f"w{k + 1}") for k in range(self._count)]
            deadline = time.monotonic() + START_TIMEOUT_S
            while not any(slot.info is not None for slot in self._slots):
                if self._start_error and not any(slot.alive for slot in self._slots):
                    raise NstError(f"no worker could start: {self._start_error}")
                if time.monotonic() > deadline or not any(slot.alive for slot in self._slots):
                    raise NstError(self._no_room())
                self._check_starting(POLL_S)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill the workers; shut Ray down if this pool started it."""
        if self.connection is None:
            return
        ray = self.connection.ray
        # Idle workers remove their input caches; busy ones (an interrupt) are just
        # killed, and the next worker started on that machine removes theirs.
        up = [slot for slot in self._slots if slot.alive and slot.info is not None and slot.calls == 0]
        with contextlib.suppress(Exception):
            ray.wait([slot.actor.close.remote() for slot in up], num_returns=len(up), timeout=5)
        for slot in self._slots:
            _kill(ray, slot.actor)
        self._slots, self._refs, self._files, self._started = [], {}, {}, False
        if self.connection.owned:
            self.connection.shutdown()
        self.connection = None

    def wait_for_workers(self, count: int, timeout_s: float) -> int:
        """Wait (at most timeout_s) until `count` workers are up; how many are."""
        deadline = time.monotonic() + timeout_s
        while len(self.workers) < count and time.monotonic() < deadline:
            if not any(slot.alive and slot.starting is not None for slot in self._slots):
                break
            self._check_starting(POLL_S)
        return len(self.workers)

    @property
    def workers(self) -> list[WorkerInfo]:
        """The workers that are up now."""
        return [slot.info for slot in self._slots if slot.alive and slot.info is not None]

    @property
    def device(self) -> str:
        """The device kind every worker computes on: 'cpu' or 'cuda'."""
        return self.options.device_kind

    # ------------------------------------------------------------ inputs

    def put(self, data: bytes, suffix: str = "", digest: str | None = None) -> Blob:
        """Put bytes into the cluster's object store once; tasks name the Blob. They
        stay there while the pool runs, or until `release`."""
        digest = digest or hashlib.sha256(data).hexdigest()
        if digest not in self._refs:
            self._refs[digest] = self.ray.put(data)
        return Blob(digest, suffix)

    def put_file(self, path: Path, digest: str) -> Blob:
        """A file as a Blob (`digest`: its SHA-256, checked on the worker). The file
        is read when the first task that needs it is handed out, and its bytes leave
        the object store when every task of that `run` that needs it is answered, so
        a batch of thousands of photos holds only those in flight."""
        if digest not in self._refs:
            self._files[digest] = path
        return Blob(digest, path.suffix.lower())

    def release(self, *blobs: Blob) -> None:
        """Let the object store drop these blobs' bytes (tasks given later cannot use them)."""
        for blob in blobs:
            self._refs.pop(blob.digest, None)
            self._files.pop(blob.digest, None)

    def _ref(self, blob: Blob) -> Any:
        ref = self._refs.get(blob.digest)
        if ref is None:
            path = self._files[blob.digest]
            try:
                data = path.read_bytes()
            except OSError as error:
                raise NstError(f"cannot read {path}: {error.strerror or error}") from None
            ref = self._refs[blob.digest] = self.ray.put(data)
        return ref

    # ------------------------------------------------------------ running

    def run(self, tasks: Sequence[Task], on_start: Callable[[int, str], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> Iterator[Done]:
        """Run `tasks` on the workers; yield a `Done` for each as it finishes (see the
        module doc). on_start(index, worker) when a task is handed to a worker;
        on_note(text) when a worker dies or is replaced."""
        if not tasks:
            return
        if not self._started:  # a pool that was only reached starts its workers now
            self.start()
        yield from _Dispatch(self, tasks, on_start, on_note or (lambda text: None)).answers()

    # ------------------------------------------------------------ internals

    def _submit(self, slot: _Slot, group: list[Task]) -> Any:
        blobs: dict[str, Blob] = {}
        for task in group:
            for blob in task.blobs():
                blobs.setdefault(blob.digest, blob)
        order = list(blobs.values())
        return slot.actor.run.remote(group, order, *[self._ref(blob) for blob in order])

    def _collect(self, ref: Any, call: _Call, note: Callable[[str], None]
                 ) -> tuple[list[Returned], list[tuple[int, str]]]:
        """The answers of a finished call; when its worker died, none, and every task
        of the call as lost (the worker is replaced)."""
        exceptions = self.ray.exceptions
        try:
            answers: list[Returned] = self.ray.get(ref)
            return answers, []
        except exceptions.RayTaskError as error:  # the call itself raised: the worker lives on
            reason = _first_line(error)
        except exceptions.RayError as error:  # the worker (or its node) is gone
            reason = f"worker {call.slot.name} died ({type(error).__name__})"
            self._replace(call.slot, note, reason)
        return [], [(index, reason) for index in call.indices]

    def _replace(self, slot: _Slot, note: Callable[[str], None], reason: str) -> None:
        if not slot.alive:
            return
        slot.alive = False
        _kill(self.ray, slot.actor)
        budget = self._count * self.options.max_attempts
        if self._replacements >= budget:
            note(f"{reason}; not replaced (already replaced {self._replacements} workers)")
            return
        self._replacements += 1
        base = slot.name.split("r")[0]
        self._slots.append(self._new_slot(f"{base}r{self._replacements}"))
        note(f"{reason}; its work goes to other workers, and a new worker starts")

    def _new_slot(self, name: str) -> _Slot:
        actor = self._remote.remote(name, self.options.threads, self.options.device_kind)
        return _Slot(name, actor, actor.info.remote())

    def _check_starting(self, timeout: float, note: Callable[[str], None] | None = None) -> None:
        """Take in workers that came up; give up on ones that cannot start."""
        starting = {slot.starting: slot for slot in self._slots if slot.alive and slot.starting is not None}
        if not starting:
            return
        ready, waiting = self.ray.wait(list(starting), num_returns=len(starting), timeout=timeout)
        for ref in waiting:
            slot = starting[ref]
            if time.monotonic() - slot.started_at > START_TIMEOUT_S:
                slot.alive = False  # no room for it (or its node is gone): stop waiting
                _kill(self.ray, slot.actor)
                if note is not None:
                    note(f"worker {slot.name} did not start in {START_TIMEOUT_S:.0f} s; going on without it")
        for ref in ready:
            slot = starting[ref]
            slot.starting = None
            try:
                info = self.ray.get(ref)
            except self.ray.exceptions.RayError as error:
                slot.alive = False
                self._start_error = _first_line(error)
                if note is not None:
                    note(f"worker {slot.name} could not start: {self._start_error}")
                continue
            if info["nst_version"] != __version__:
                raise NstError(f"worker {slot.name} on {info['host']} runs nst {info['nst_version']}, "
                               f"this machine {__version__}: install the same version everywhere")
            if info["device"] != self.options.device_kind:
                raise NstError(f"worker {slot.name} on {info['host']} has no CUDA GPU, though "
                               "--gpus-per-worker asks for one")
            slot.info = WorkerInfo(slot.name, info["host"], info["node"], int(info["pid"]), info["device"],
                                   int(info["threads"]))

    def _worker_count(self) -> int:
        if self.options.workers is not None:
            return self.options.workers
        assert self.connection is not None
        if self.connection.local_workers is not None:
            return self.connection.local_workers
        resources = self.ray.cluster_resources()
        count = int(resources.get("CPU", 0) // self.options.cpus_per_worker)
        if self.options.gpus_per_worker > 0:
            count = min(count, int(resources.get("GPU", 0) // self.options.gpus_per_worker))
        if count < 1:
            raise NstError(self._no_room())
        return count

    def _no_room(self) -> str:
        gpus = f" and {self.options.gpus_per_worker:g} GPU" if self.options.gpus_per_worker else ""
        return (f"the cluster has no room for a worker with {self.options.cpus_per_worker:g} CPU{gpus} "
                "(see --cpus-per-worker, --gpus-per-worker and `ray status`)")


class _Dispatch:
    """One `Pool.run`: which tasks wait (pending, first in line first), which worker
    holds which (calls, by the ref of its answer), where each was tried and how
    often, and which file blobs the unanswered tasks still need (users)."""

    def __init__(self, pool: Pool, tasks: Sequence[Task], on_start: Callable[[int, str], None] | None,
                 note: Callable[[str], None]) -> None:
        self.pool, self.tasks, self.on_start, self.note = pool, tasks, on_start, note
        self.users: dict[str, int] = {}  # blob -> tasks not answered yet that need it
        for task in tasks:
            for digest in {blob.digest for blob in task.blobs()}:
                if digest not in pool._refs and digest not in pool._files:
                    raise ValueError(f"blob {digest[:12]} was not put into the pool")
                self.users[digest] = self.users.get(digest, 0) + 1
        self.keys: list[Hashable | None] = [self._batch_key(task) for task in tasks]
        self.pending: deque[int] = deque(range(len(tasks)))
        self.attempts = [0] * len(tasks)
        self.tried: list[set[str]] = [set() for _ in tasks]
        self.calls: dict[Any, _Call] = {}
        self.answered = 0

    def answers(self) -> Iterator[Done]:
        """Hand tasks to the workers that are up, then answer what comes back, until
        every task is answered."""
        pool = self.pool
        while self.answered < len(self.tasks):
            pool._check_starting(0.0, self.note)
            self._hand_out()
            if self.calls:
                yield from self._collect_ready()
            elif not any(slot.alive for slot in pool._slots):
                yield from self._abandon()
            else:
                pool._check_starting(POLL_S, self.note)  # nobody up yet: wait for one

    def _hand_out(self) -> None:
        up = [slot for slot in self.pool._slots if slot.alive and slot.info is not None]
        for depth in range(1, CALLS_PER_WORKER + 1):
            for slot in up:
                # A worker's next call waits behind its current one: queue it only while
                # there is more work than workers, so that the last items go to whoever is free.
                if not self.pending or (depth > 1 and len(self.pending) <= len(up)) or slot.calls >= depth:
                    continue
                group = self._take(slot.name)
                self.calls[self.pool._submit(slot, [self.tasks[i] for i in group])] = _Call(slot, group)
                slot.calls += 1
                for index in group:
                    self.attempts[index] += 1
                    self.tried[index].add(slot.name)
                    if self.on_start is not None:
                        self.on_start(index, slot.name)

    def _batch_key(self, task: Task) -> Hashable | None:
        if self.pool.options.batch_size <= 1:
            return None
        key = task.batch_key()
        return None if key is None else (type(task).__qualname__, key)

    def _take(self, worker: str) -> list[int]:
        """The next task for `worker` (one it has not failed yet, if there is one),
        with up to batch_size - 1 more of its batch key."""
        pending, keys, tried = self.pending, self.keys, self.tried
        first = next((i for i in pending if worker not in tried[i]), pending[0])
        pending.remove(first)
        group = [first]
        if keys[first] is not None:
            for index in list(pending):
                if len(group) >= self.pool.options.batch_size:
                    break
                if keys[index] == keys[first] and worker not in tried[index]:
                    pending.remove(index)
                    group.append(index)
        return group

    def _collect_ready(self) -> Iterator[Done]:
        """Answers of the calls that finished (or nothing, when a worker came up first)."""
        pool = self.pool
        starting = [slot.starting for slot in pool._slots if slot.alive and slot.starting is not None]
        ready, _ = pool.ray.wait(list(self.calls) + starting, num_returns=1, timeout=POLL_S)
        for ref in ready:
            call = self.calls.pop(ref, None)
            if call is None:
                continue  # a worker came up: _check_starting takes it next round
            call.slot.calls -= 1
            answers, lost = pool._collect(ref, call, self.note)
            worker = call.slot.name
            for index, answer in zip(call.indices, answers, strict=False):
                if answer.kind == "ok":
                    yield self._answer(index, answer.value, None, worker, answer.elapsed_s)
                elif answer.kind in ("input", "runtime"):
                    final = NstError if answer.kind == "input" else NstRuntimeError
                    yield self._answer(index, None, final(answer.message), worker, answer.elapsed_s)
                else:
                    lost.append((index, answer.message))
            for index, reason in lost:
                if self.attempts[index] >= pool.options.max_attempts:
                    error = NstRuntimeError(f"failed on {self.attempts[index]} workers; last: {reason}")
                    yield self._answer(index, None, error, worker, 0.0)
                else:
                    self.pending.appendleft(index)  # first in line: it has waited longest

    def _abandon(self) -> Iterator[Done]:
        """Every waiting task failed: no worker is left to run them."""
        while self.pending:
            error = NstRuntimeError(f"no worker left to run it ({self.pool._replacements} replaced)")
            yield self._answer(self.pending.popleft(), None, error, "", 0.0)

    def _answer(self, index: int, value: Any, error: Exception | None, worker: str, elapsed_s: float) -> Done:
        """Task `index` answered for good; its file blobs leave the store when no
        unanswered task needs them."""
        self.answered += 1
        for digest in {blob.digest for blob in self.tasks[index].blobs()}:
            self.users[digest] -= 1
            if self.users[digest] == 0 and digest in self.pool._files:
                self.pool._refs.pop(digest, None)
        return Done(index, self.tasks[index], value, error, worker, self.attempts[index], elapsed_s)


def _kill(ray: Any, actor: Any) -> None:
    with contextlib.suppress(Exception):  # gone already
        ray.kill(actor, no_restart=True)


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        error = cause
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[-1] if text else ''}".rstrip(": ")
