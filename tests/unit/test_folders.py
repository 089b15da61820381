"""Shared output folders: leftovers of killed writers, the run lock and folder ownership."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import nst.files.atomic as atomic
from nst.errors import NstError
from nst.files.atomic import atomic_path, copy_atomic, host_tag, remove_stale_temporaries, write_text_atomic
from nst.jobs.folders import LOCK_NAME, MARKER_NAME, FolderLock, claim_folder

# The child loads atomic.py alone: importing the nst package would load torch.
WRITER = """
import importlib.util, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("atomic", sys.argv[1])
atomic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atomic)
with atomic.atomic_path(Path(sys.argv[2])) as temporary:
    temporary.write_text("half")
    print("writing", flush=True)
    time.sleep(60)
"""


def _dead_pid() -> int:
    """The pid of a process that has finished."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


def _temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(".tmp"))


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


# ----------------------------------------------------------------- temporaries


def test_a_killed_writer_leaves_a_temporary_that_is_cleaned_up(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, atomic.__file__, str(target)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
        [temporary] = _temporaries(tmp_path)
        assert temporary.name.startswith(f".out.png.nst-{writer.pid}-{host_tag()}-")
        assert remove_stale_temporaries(tmp_path) == []  # its writer is alive: kept
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()  # type: ignore[union-attr]
    assert _temporaries(tmp_path) == [temporary]  # kill -9 skips every cleanup
    assert remove_stale_temporaries(tmp_path) == [temporary]
    assert list(tmp_path.iterdir()) == []


def test_old_and_foreign_temporaries(tmp_path: Path) -> None:
    old, fresh, keep = tmp_path / ".a.png.k2j4_9xz.tmp", tmp_path / ".b.png.a1b2c3d4.tmp", tmp_path / ".keep"
    for path in (old, fresh, keep):
        path.write_text("")
    _age(old, 11 * 60)  # earlier versions named no pid: only age tells
    _age(keep, 11 * 60)
    ours = tmp_path / f".c.png.nst-{os.getpid()}-{host_tag()}-abcd1234.tmp"
    foreign = tmp_path / f".d.png.nst-{_dead_pid()}-{'0' * 8 if host_tag() != '0' * 8 else '1' * 8}-x.tmp"
    for path in (ours, foreign):
        path.write_text("")
    staging = tmp_path / f".frames.nst-{_dead_pid()}-{host_tag()}-abcd1234.tmp"  # a frame folder's staging
    staging.mkdir()
    (staging / "frame_00001.png").write_bytes(b"")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([old, staging])
    assert sorted(tmp_path.iterdir()) == sorted([fresh, keep, ours, foreign])


def test_atomic_helpers_write_whole_files(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "a.txt", "héllo\n")
    copy_atomic(tmp_path / "a.txt", tmp_path / "b.txt")
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "héllo\n"
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "c.txt") as temporary:
        temporary.write_text("half")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


# ----------------------------------------------------------------- the lock


def _write_lock(folder: Path, pid: int, host: str | None = None,
                command: str = "nst batch photos/ a.jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    holder = {"pid": pid, "host": host or socket.gethostname(), "command": command,
              "started": "2026-11-29T13:05:00+01:00"}
    (folder / LOCK_NAME).write_text(json.dumps(holder))


def test_a_second_lock_is_refused_while_the_first_is_held(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FolderLock(out, "nst batch photos/ a.jpg -o out") as first:
        assert first.note is None
        holder = json.loads((out / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["command"] == "nst batch photos/ a.jpg -o out"
        with pytest.raises(NstError) as refused, FolderLock(out, "nst sweep"):
            pass
        message = str(refused.value)
        assert message.startswith(f"{out}/ is in use by another nst run (pid {os.getpid()} on "
                                  f"{socket.gethostname()} since ")
        assert message.endswith(f": nst batch photos/ a.jpg -o out); wait for it, or choose another folder "
                                f"(delete {out}/{LOCK_NAME} if that run is gone)")
        assert "\n" not in message
        assert (out / LOCK_NAME).exists()  # the refused one did not remove the holder's lock
    assert not (out / LOCK_NAME).exists()


def test_the_lock_of_a_finished_run_is_taken_over_with_a_note(tmp_path: Path) -> None:
    pid = _dead_pid()
    _write_lock(tmp_path, pid)
    leftover = tmp_path / f".a.png.nst-{pid}-{host_tag()}-abcd1234.tmp"
    leftover.write_text("")
    with FolderLock(tmp_path, "nst video clip.mp4") as lock:
        assert lock.note == f"took over the lock of an nst run that is gone: pid {pid}, " \
            "nst batch photos/ a.jpg"
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
        assert not leftover.exists()  # the dead run's temporaries went with it
    assert list(tmp_path.iterdir()) == []


def test_a_lock_from_another_host_counts_as_held(tmp_path: Path) -> None:
    _write_lock(tmp_path, _dead_pid(), host="elsewhere-" + socket.gethostname())
    held = r"in use by another nst run \(pid \d+ on elsewhere-.* since 2026-11-29 13:05: nst batch"
    with pytest.raises(NstError, match=held):
        FolderLock(tmp_path, "nst sweep").__enter__()


def test_an_empty_lock_left_by_a_crash_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_bytes(b"")
    _age(tmp_path / LOCK_NAME, 60)
    with FolderLock(tmp_path, "nst sweep") as lock:
        assert lock.note is not None and "broken lock" in lock.note


def test_a_guard_left_by_a_crashed_takeover_expires(tmp_path: Path) -> None:
    _write_lock(tmp_path, _dead_pid())
    guard = tmp_path / (LOCK_NAME + ".takeover")
    guard.write_text("")
    _age(guard, 60)
    with FolderLock(tmp_path, "nst sweep") as lock:
        assert lock.note is not None and not guard.exists()


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path: Path) -> None:
    with FolderLock(tmp_path, "nst sweep"):
        _write_lock(tmp_path, 4242, host="elsewhere")  # someone deleted ours and started
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == 4242


def test_racing_runs_get_the_lock_once(tmp_path: Path) -> None:
    _write_lock(tmp_path, _dead_pid())  # every racer sees a stale lock to take over
    start = threading.Barrier(6)
    won: list[FolderLock] = []
    refused: list[str] = []

    def race(number: int) -> None:
        lock = FolderLock(tmp_path, f"nst sweep {number}")
        start.wait()
        try:
            won.append(lock.__enter__())
        except NstError as error:
            refused.append(str(error))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(refused) == 5
    assert all("is in use by another nst run" in message for message in refused)
    assert json.loads((tmp_path / LOCK_NAME).read_text())["command"] == won[0].command
    won[0].release()
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NstError, match=r"^cannot create folder .*file/sub/: "):
        FolderLock(tmp_path / "file" / "sub", "nst batch").__enter__()


# ----------------------------------------------------------------- ownership


def _owner(folder: Path) -> str:
    return str(json.loads((folder / MARKER_NAME).read_text())["owner"])


def test_missing_and_empty_folders_are_claimed(tmp_path: Path) -> None:
    claim_folder(tmp_path / "new" / "out", "batch", force=False)
    marker = json.loads((tmp_path / "new" / "out" / MARKER_NAME).read_text())
    assert marker["owner"] == "batch" and marker["nst_version"]
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / LOCK_NAME).write_text("")
    claim_folder(hidden, "sweep", force=False)  # hidden files do not count
    assert _owner(hidden) == "sweep"


def test_a_folder_of_the_same_owner_is_fine(tmp_path: Path) -> None:
    claim_folder(tmp_path, "sweep", force=False)
    (tmp_path / "results.json").write_text("{}")
    claim_folder(tmp_path, "sweep", force=False)  # the next sweep adds to the report
    assert _owner(tmp_path) == "sweep"


def test_a_folder_of_another_owner_is_refused_unless_forced(tmp_path: Path) -> None:
    claim_folder(tmp_path, "study:/home/a/one.toml", force=False)
    (tmp_path / "grid.jpg").write_bytes(b"")
    with pytest.raises(NstError) as refused:
        claim_folder(tmp_path, "study:/home/a/two.toml", force=False)
    assert str(refused.value) == (f"{tmp_path}/ holds files nst did not make for this run (e.g. grid.jpg, "
                                  "made by the study /home/a/one.toml); choose an empty folder, or pass "
                                  "--force to use it anyway")
    claim_folder(tmp_path, "study:/home/a/two.toml", force=True)
    assert _owner(tmp_path) == "study:/home/a/two.toml"


def test_a_folder_of_strangers_files_is_refused_unless_forced(tmp_path: Path) -> None:
    folder = tmp_path / "study-out"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(NstError) as refused:
        claim_folder(folder, "sweep", force=False)
    assert str(refused.value) == (f"{folder}/ holds files nst did not make for this run (e.g. notes.txt); "
                                  "choose an empty folder, or pass --force to use it anyway")
    assert not (folder / MARKER_NAME).exists()
    claim_folder(folder, "batch", force=True)
    assert _owner(folder) == "batch"


@pytest.mark.parametrize("owner, adopted", [("sweep", True), ("study:/x/s.toml", True), ("batch", False)])
def test_folders_of_earlier_versions_are_adopted_by_sweeps_and_studies(tmp_path: Path, owner: str,
                                                                         adopted: bool) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"nst_version": "0.3.0", "runs": []}))
    if adopted:
        claim_folder(tmp_path, owner, force=False)
        assert _owner(tmp_path) == owner
    else:
        with pytest.raises(NstError, match="e.g. results.json"):
            claim_folder(tmp_path, owner, force=False)


def test_a_results_file_without_nst_version_is_a_strangers(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"runs": []}))
    with pytest.raises(NstError, match="holds files nst did not make"):
        claim_folder(tmp_path, "sweep", force=False)
