"""What `--cluster` asks for, and the connection to Ray.

    --cluster local[:N]      a private Ray instance on this machine with N workers
                             (default: one per --cpus-per-worker of this machine's CPUs)
    --cluster auto           the cluster this machine belongs to: RAY_ADDRESS when set,
                             else the one `ray start` started here
    --cluster ray://H:P      a remote cluster through Ray Client

A cluster to join (auto, ray://) is first reached over TCP within
`ClusterOptions.connect_timeout_s` (--cluster-timeout), so that an address
nothing answers at fails in seconds with one line (NstError: the command exits 2,
a wrong address being a usage error) instead of after Ray's own retries (30 s
for a Ray Client address, without end for a GCS address in RAY_ADDRESS). Ray's
warnings and log lines during the connection stay off the terminal. An address
that accepts the TCP connection but is not Ray is left to Ray's retries.

This module is the only one that imports ray, and only inside `import_ray`, so
every command without --cluster (and every --help) runs without it. ray is
untyped: it stays `Any` at this boundary.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from nst.errors import NstError

INSTALL_HINT = "pip install 'nst[ray]'"
ADDRESS_FORMS = "local, local:N, auto or ray://HOST:PORT"
DEFAULT_ATTEMPTS = 3
# Seconds to reach a cluster to join: a head node on a network answers in well
# under a second; an import of ray and this wait stay inside 10 s in all.
DEFAULT_CONNECT_TIMEOUT_S = 5.0


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
    connect_timeout_s: how long to wait for a cluster to join to answer.
    """

    address: str = "local"
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    batch_size: int = 1
    max_attempts: int = DEFAULT_ATTEMPTS
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S

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
        if not (math.isfinite(self.connect_timeout_s) and self.connect_timeout_s > 0):
            raise NstError(f"cluster-timeout must be a number of seconds above 0, "
                           f"got {self.connect_timeout_s:g}")

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
    check_reachable(options)
    try:
        if kind == "local":
            workers = count or options.workers or max(
                1, math.floor((os.cpu_count() or 1) / options.cpus_per_worker))
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a private instance reports nothing
            cpus = max(1, math.ceil(workers * options.cpus_per_worker))
            with _quiet(capture_stderr=False):  # Ray's own processes inherit this stderr
                ray.init(num_cpus=cpus, include_dashboard=False, **common)
            return Connection(ray, True, workers)
        if kind == "client":
            _bound_client_retries(options.connect_timeout_s)
        with _quiet(capture_stderr=True):
            ray.init(address=_join_address(options), **common)
    except ConnectionError as error:
        raise NstError(f"cannot reach the Ray cluster {options.address!r}: {error}") from None
    except (ValueError, RuntimeError) as error:  # ray's "could not find any running Ray instance"
        first = _first_line(error)
        hint = " (start one with `ray start --head`, or use --cluster local)" if kind == "auto" else ""
        raise NstError(f"cannot join the Ray cluster {options.address!r}: {first}{hint}") from None
    return Connection(ray, False, None)


def check_reachable(options: ClusterOptions) -> None:
    """NstError unless the cluster to join (auto, ray://HOST:PORT) answers a TCP
    connection within options.connect_timeout_s; nothing to do for local. No Ray
    connection is made: the command line checks this before it shows or writes
    anything, and `connect` again before Ray's own (slow) retries."""
    ray = import_ray()  # first: without Ray, one line that says what to install
    if parse_address(options.address)[0] != "local":
        _reach(_host_port(ray, _join_address(options)), options)


def _join_address(options: ClusterOptions) -> str:
    """What ray.init is given for a cluster to join: RAY_ADDRESS (or "auto") for auto."""
    return (os.environ.get("RAY_ADDRESS") or "auto") if options.address == "auto" else options.address


_HOST_PORT = re.compile(r"(?:ray://)?\[?([^\s/\[\]]+?)\]?:(\d+)$")


def _host_port(ray: Any, address: str) -> tuple[str, int] | None:
    """Where a cluster to join listens: ray://HOST:PORT (Ray Client) or HOST:PORT
    (its GCS, as RAY_ADDRESS or the file `ray start` leaves names it); None when
    there is none to probe (Ray then says why it cannot join)."""
    if address == "auto":
        try:  # the address `ray.init("auto")` would use: the newest cluster `ray start` started here
            found = ray._private.services.get_ray_address_from_environment("auto", None)
        except ConnectionError as error:  # none runs here
            raise NstError(f"cannot join the Ray cluster 'auto': {_first_line(error)} (start one with "
                           "`ray start --head`, or use --cluster local)") from None
        except Exception:  # noqa: BLE001  (another Ray version: ray.init says what is wrong)
            return None
        address = found if isinstance(found, str) else ""
    match = _HOST_PORT.match(address)
    return (match.group(1), int(match.group(2))) if match else None


def _reach(where: tuple[str, int] | None, options: ClusterOptions) -> None:
    """A TCP connection to the cluster's port within connect_timeout_s, or NstError."""
    if where is None:
        return
    host, port = where
    try:
        with socket.create_connection(where, timeout=options.connect_timeout_s):
            pass
    except TimeoutError:
        raise NstError(f"cannot reach the Ray cluster {options.address!r}: no answer from {host}:{port} "
                       f"within {options.connect_timeout_s:g} s (see --cluster-timeout)") from None
    except OSError as error:  # refused, no route, unknown host
        reason = error.strerror or str(error) or type(error).__name__
        raise NstError(f"cannot reach the Ray cluster {options.address!r}: {reason} "
                       f"({host}:{port})") from None


def _bound_client_retries(timeout_s: float) -> None:
    """Ray Client tries three times, waiting 5, 10 and 15 s for an address that
    accepts TCP but does not answer as Ray (a proxy, a tunnel with nothing
    behind it): a third of the timeout each instead (its own settings, read when
    its module is first imported; set ones are kept)."""
    each = str(max(1, math.floor(timeout_s / 3)))
    for name in ("RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S", "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S"):
        os.environ.setdefault(name, each)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def _quiet(capture_stderr: bool) -> Iterator[None]:
    """Ray's warnings and log records while connecting stay off the terminal:
    what went wrong is said in one line, by the caller. capture_stderr: also
    what Ray's C++ core writes to file descriptor 2 (its retries), into a
    discarded file."""
    logger = logging.getLogger("ray")
    level = logger.level
    with warnings.catch_warnings(), tempfile.TemporaryFile() as sink:
        warnings.simplefilter("ignore")
        logger.setLevel(logging.CRITICAL)
        saved = None
        if capture_stderr:
            sys.stderr.flush()
            with contextlib.suppress(OSError):  # no descriptor 2 to save: nothing to hide either
                saved = os.dup(2)
                os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            logger.setLevel(level)
