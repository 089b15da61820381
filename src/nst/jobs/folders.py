"""Output folders shared safely: a lock file keeps two nst runs out of one folder at
a time, and an ownership marker keeps nst from writing into folders it did not make.

Imports no torch: the CLI takes the lock and checks the folder before loading it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import Any

from nst.errors import NstError
from nst.files.atomic import pid_alive, remove_stale_temporaries, write_text_atomic

LOCK_NAME = ".nst-lock"
MARKER_NAME = ".nst-folder.json"
# An empty or half-written lock younger than this is a run still writing it;
# older, it is a run that crashed while creating it.
LOCK_WRITE_GRACE_S = 5.0
LOCK_ATTEMPTS = 200
TAKEOVER_SUFFIX = ".takeover"
TAKEOVER_STUCK_S = 10.0
COMMAND_SHOWN = 80  # characters of the holder's command in messages


def _shown(folder: Path) -> str:
    """A folder as messages name it: 'out/'."""
    return str(folder).rstrip("/") + "/"


def _one_line(text: str, limit: int = COMMAND_SHOWN) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 4] + " ..."


class FolderLock:
    """`with FolderLock(folder, command):` holds `folder/.nst-lock` for one nst run.

    Creates the folder, refuses while another live run holds it, takes over the lock
    of a run that is gone (then `note` says so, for the caller to print) and removes
    temporaries that dead writers left in the folder."""

    def __init__(self, folder: Path, command: str) -> None:
        self.folder = folder
        self.command = command
        self.path = folder / LOCK_NAME
        self.note: str | None = None
        self._content = b""
        self._held = False

    def __enter__(self) -> FolderLock:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise NstError(f"cannot create folder {_shown(self.folder)}: {error.strerror or error}") from None
        self._acquire()
        remove_stale_temporaries(self.folder)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()

    def release(self) -> None:
        """Remove the lock file if it is still ours (never another run's)."""
        if not self._held:
            return
        self._held = False
        try:
            if self.path.read_bytes() == self._content:
                self.path.unlink()
        except OSError:
            pass  # already gone; nothing of ours to remove

    def _acquire(self) -> None:
        took_over: str | None = None
        for _ in range(LOCK_ATTEMPTS):
            if self._create():
                self.note = took_over
                self._held = True
                return
            seen = _read_lock(self.path)
            if seen is None:
                continue  # released between our two looks: try again
            raw, stat = seen
            holder = _parse_lock(raw)
            if holder is None and time.time() - stat.st_mtime < LOCK_WRITE_GRACE_S:
                time.sleep(0.05)  # its run is writing it right now
                continue
            if holder is not None and _holder_alive(holder):
                raise NstError(self._busy_message(holder))
            if _take_over(self.path, raw, stat):
                took_over = _takeover_note(holder)
        raise NstError(f"cannot lock {_shown(self.folder)}: other nst runs keep taking its lock; try again")

    def _create(self) -> bool:
        """Create the lock file; O_EXCL makes exactly one of racing runs succeed."""
        self._content = json.dumps({
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        }).encode()
        try:
            handle = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as error:
            raise NstError(f"cannot lock {_shown(self.folder)}: {error.strerror or error}") from None
        try:
            os.write(handle, self._content)
        finally:
            os.close(handle)
        return True

    def _busy_message(self, holder: dict[str, Any]) -> str:
        command = _one_line(str(holder.get("command", "?")))
        since = _when(holder.get("started"))
        return (f"{_shown(self.folder)} is in use by another nst run "
                f"(pid {holder['pid']} on {holder['host']} since {since}: {command}); wait for it, "
                f"or choose another folder (delete {self.path} if that run is gone)")


def _read_lock(path: Path) -> tuple[bytes, os.stat_result] | None:
    """The lock's bytes and stat, from one open file; None if there is none."""
    try:
        with open(path, "rb") as handle:
            return handle.read(65536), os.fstat(handle.fileno())
    except FileNotFoundError:
        return None
    except OSError:
        pass
    try:
        return b"", os.stat(path)  # unreadable counts as broken
    except OSError:
        return None


def _parse_lock(raw: bytes) -> dict[str, Any] | None:
    """The holder a lock file names, or None if it is empty or broken."""
    try:
        holder = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(holder, dict) or not isinstance(holder.get("host"), str):
        return None
    pid = holder.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return None
    return holder


def _holder_alive(holder: dict[str, Any]) -> bool:
    # A pid on another machine cannot be checked from here: count it as alive.
    return holder["host"] != socket.gethostname() or pid_alive(holder["pid"])


def _take_over(path: Path, raw: bytes, stat: os.stat_result) -> bool:
    """Remove the dead holder's lock, unless another run replaced it meanwhile.

    Takeovers go one at a time, each holding a guard file (O_EXCL again): the
    holder of the guard checks that the lock is still the one judged dead before
    removing it, so no run removes the fresh lock of another."""
    guard = path.with_name(path.name + TAKEOVER_SUFFIX)
    try:
        handle = os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        _clear_stuck_guard(guard)
        time.sleep(0.01)
        return False
    except OSError as error:
        raise NstError(f"cannot take over {path}: {error.strerror or error}") from None
    os.close(handle)
    try:
        now = _read_lock(path)
        if now is None or now[0] != raw or not _same_file(now[1], stat):
            return False  # already taken over, or released
        path.unlink()
        return True
    except OSError as error:
        raise NstError(f"cannot take over {path}: {error.strerror or error}") from None
    finally:
        guard.unlink(missing_ok=True)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_ino, a.st_mtime_ns) == (b.st_ino, b.st_mtime_ns)


def _clear_stuck_guard(guard: Path) -> None:
    """A takeover takes milliseconds: an old guard is a run that crashed in one."""
    with contextlib.suppress(OSError):
        if time.time() - guard.stat().st_mtime > TAKEOVER_STUCK_S:
            guard.unlink()


def _takeover_note(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "took over a broken lock file (an nst run crashed while creating it)"
    return (f"took over the lock of an nst run that is gone: pid {holder['pid']}, "
            f"{_one_line(str(holder.get('command', '?')))}")


def _when(started: object) -> str:
    try:
        return datetime.fromisoformat(str(started)).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return "an unknown time"


# ----------------------------------------------------------------- ownership


def claim_folder(folder: Path, owner: str, force: bool) -> None:
    """Make sure `folder` is nst's to write for `owner` ("sweep", "batch",
    "study:<resolved TOML path>"), recording it in `folder/.nst-folder.json`.

    A missing or empty folder (hidden files aside) is claimed, one marked for
    `owner` is fine, a folder an earlier nst sweep or study made (results.json with
    "nst_version") is adopted by sweeps and studies; anything else is refused
    unless `force`, which marks it for `owner`."""
    if folder.exists() and not folder.is_dir():
        raise NstError(f"{folder} is not a folder")
    try:
        visible = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) \
            if folder.exists() else []
    except OSError as error:
        raise NstError(f"cannot read folder {_shown(folder)}: {error.strerror or error}") from None
    marked = _marked_owner(folder)
    if force or not visible or _adoptable(folder, owner):
        if marked != owner:
            _mark(folder, owner)
        return
    if marked == owner:
        return
    example = visible[0] + (f", made by {_describe(marked)}" if marked is not None else "")
    raise NstError(f"{_shown(folder)} holds files nst did not make for this run (e.g. {example}); "
                   "choose an empty folder, or pass --force to use it anyway")


def _marked_owner(folder: Path) -> str | None:
    """The owner the marker names; None if there is no readable marker."""
    try:
        owner = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8")).get("owner")
    except (OSError, ValueError, AttributeError):
        return None
    return owner if isinstance(owner, str) else None


def _adoptable(folder: Path, owner: str) -> bool:
    """A folder without marker that an earlier nst sweep or study wrote, for a sweep or study."""
    if not (owner == "sweep" or owner.startswith("study:")) or (folder / MARKER_NAME).exists():
        return False
    try:
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(results, dict) and "nst_version" in results


def _mark(folder: Path, owner: str) -> None:
    marker = {"owner": owner, "nst_version": _nst_version()}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / MARKER_NAME, json.dumps(marker, indent=1, ensure_ascii=False) + "\n")
    except OSError as error:
        raise NstError(f"cannot write to folder {_shown(folder)}: {error.strerror or error}") from None


def _nst_version() -> str:
    try:
        return version("nst")
    except PackageNotFoundError:
        return "unknown"


def _describe(owner: str) -> str:
    if owner.startswith("study:"):
        return f"the study {owner.removeprefix('study:')}"
    return f"nst {owner}"
