"""What `--cluster` asks for, and the connection to Ray.

    --cluster local[:N]      a private Ray instance on this machine with N workers
                             (default: one per --cpus-per-worker of this machine's CPUs)
    --cluster auto           the cluster this machine belongs to: RAY_ADDRESS when set,
                             else the one `ray start` started here
    --cluster ray://H:P      a remote cluster through Ray Client

This module is the only one that imports ray, and only inside `import_ray`, so
every command without --cluster (and every --help) runs without it. ray is
untyped: it stays `Any` at this boundary.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from nst.errors import NstError

INSTALL_HINT = "pip install 'nst[ray]'"
ADDRESS_FORMS = "local, local:N, auto or ray://HOST:PORT"
DEFAULT_ATTEMPTS = 3


@dataclass(frozen=True)
class ClusterOptions:
    """A cluster run as the command line asks for it.

    address: local, local:N, auto or ray://HOST:PORT (checked by `parse_address`).
    workers: how many worker actors (None: as many as the cluster's CPUs, or
    GPUs with gpus_per_worker, allow; local:N says N). cpus_per_worker and
    gpus_per_worker: what each worker reserves (fractions allowed: several
    workers can share a big GPU); a worker's torch uses that many threads.
    batch_size: up to this many same-size items optimized together on a worker.
    max_attempts: how often one item is tried when workers die under it.
    """

    address: str = "local"
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    batch_size: int = 1
    max_attempts: int = DEFAULT_ATTEMPTS

    def __post_init__(self) -> None:
        parse_address(self.address)
        if self.workers is not None and self.workers < 1:
            raise NstError(f"workers must be at least 1, got {self.workers}")
        if not self.cpus_per_worker > 0:
            raise NstError(f"cpus-per-worker must be more than 0, got {self.cpus_per_worker:g}")
        if self.gpus_per_worker < 0:
            raise NstError(f"gpus-per-worker must be 0 or more, got {self.gpus_per_worker:g}")
        if self.batch_size < 1:
            raise NstError(f"batch-size must be at least 1, got {self.batch_size}")
        if self.max_attempts < 1:
            raise NstError(f"max-attempts must be at least 1, got {self.max_attempts}")

    @property
    def device_kind(self) -> str:
        """What the workers compute on: 'cuda' when each reserves a GPU (or part of one)."""
        return "cuda" if self.gpus_per_worker > 0 else "cpu"

    @property
    def threads(self) -> int:
        """torch threads of one worker: its CPUs (at least one)."""
        return max(1, math.floor(self.cpus_per_worker))


_LOCAL = re.compile(r"local(?::(\d+))?$")
_CLIENT = re.compile(r"ray://[^\s:/]+:\d+$")


def parse_address(text: str) -> tuple[str, int | None]:
    """('local', N or None), ('auto', None) or ('client', None); NstError otherwise."""
    local = _LOCAL.match(text)
    if local:
        count = int(local.group(1)) if local.group(1) else None
        if count is not None and count < 1:
            raise NstError(f"--cluster local:N needs N >= 1, got {text!r}")
        return "local", count
    if text == "auto":
        return "auto", None
    if _CLIENT.match(text):
        return "client", None
    raise NstError(f"unknown --cluster {text!r}; expected {ADDRESS_FORMS}")


def import_ray() -> ModuleType:
    """ray itself, or one line that says what to install."""
    try:
        import ray  # noqa: PLC0415  (only with --cluster)
    except ImportError:
        raise NstError(f"--cluster needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@dataclass
class Connection:
    """A connected Ray driver. `owned`: this process started the Ray instance
    (local:N) and shuts it down at the end; a joined cluster stays up."""

    ray: Any
    owned: bool
    local_workers: int | None  # local:N's N (or what local alone derived)

    def shutdown(self) -> None:
        if self.ray.is_initialized():
            self.ray.shutdown()


def connect(options: ClusterOptions) -> Connection:
    """Start or join the cluster `options.address` names (see the module doc)."""
    ray = import_ray()
    kind, count = parse_address(options.address)
    common: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False,
                              "configure_logging": False}
    if ray.is_initialized():  # a caller (a test, a notebook) already connected: use that
        return Connection(ray, False, None)
    try:
        if kind == "local":
            workers = count or options.workers or max(
                1, math.floor((os.cpu_count() or 1) / options.cpus_per_worker))
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a private instance reports nothing
            cpus = max(1, math.ceil(workers * options.cpus_per_worker))
            ray.init(num_cpus=cpus, include_dashboard=False, **common)
            return Connection(ray, True, workers)
        address = (os.environ.get("RAY_ADDRESS") or "auto") if kind == "auto" else options.address
        ray.init(address=address, **common)
    except ConnectionError as error:
        raise NstError(f"cannot reach the Ray cluster {options.address!r}: {error}") from None
    except (ValueError, RuntimeError) as error:  # ray's "could not find any running Ray instance"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        hint = " (start one with `ray start --head`, or use --cluster local)" if kind == "auto" else ""
        raise NstError(f"cannot join the Ray cluster {options.address!r}: {first}{hint}") from None
    return Connection(ray, False, None)
