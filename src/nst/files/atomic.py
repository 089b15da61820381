"""Atomic writes: a file is written under a temporary name beside its target and
renamed into place only when complete, so an output is either whole or absent.

A temporary is named `.NAME.nst-<pid>-<host>-<random>.tmp`: the writer's pid and a
tag of its host, so that one killed mid-write (kill -9, power loss) can be told from
one still writing and its leftover removed by `remove_stale_temporaries`."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Temporaries of earlier nst versions carry no pid: only their age tells that the
# writer is gone (every write touches the file, so a live one stays younger).
OLD_TEMPORARY_AGE_S = 600
_NEW_TEMPORARY = re.compile(r"\..+\.nst-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-[a-z0-9_]+\.tmp")
_OLD_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def host_tag() -> str:
    """Eight hex digits naming this machine: a pid means something only on its own host."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _prefix(path: Path) -> str:
    return f".{path.name}.nst-{os.getpid()}-{host_tag()}-"


def temporary_file(path: Path) -> Path:
    """Create an empty temporary file beside `path`, named so it can be cleaned up."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path), suffix=".tmp")
    os.close(handle)
    return Path(temporary)


def temporary_folder(path: Path) -> Path:
    """Create an empty temporary folder beside `path`, named so it can be cleaned up."""
    return Path(tempfile.mkdtemp(dir=path.parent, prefix=_prefix(path), suffix=".tmp"))


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary name beside `path`; rename it to `path` only on success,
    so an output file is either complete or absent."""
    temporary = temporary_file(path)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from others
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically; OSErrors pass to the caller."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def copy_atomic(source: Path, target: Path) -> None:
    """Copy the bytes of `source` to `target` atomically; OSErrors pass to the caller."""
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (it may belong to another user)."""
    if pid <= 0:
        return False  # 0 and negatives would address process groups, not a process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries in `folder` (not below) whose writer is gone: a dead
    pid on this host, or the pid-less kind of earlier versions left untouched for
    OLD_TEMPORARY_AGE_S. Returns what was removed; what cannot be removed stays."""
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        if _is_stale(entry) and _remove(entry):
            removed.append(entry)
    return removed


def _is_stale(entry: Path) -> bool:
    new = _NEW_TEMPORARY.fullmatch(entry.name)
    if new is not None:
        # Another host's pid cannot be checked from here: keep its temporaries.
        return new["host"] == host_tag() and not pid_alive(int(new["pid"]))
    if _OLD_TEMPORARY.fullmatch(entry.name) is None:
        return False
    try:
        return time.time() - entry.lstat().st_mtime > OLD_TEMPORARY_AGE_S
    except OSError:
        return False


def _remove(entry: Path) -> bool:
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    except FileNotFoundError:
        return False  # another cleaner was first
    except OSError:
        return False
    return True


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
