"""The studio's library folder: uploads, runs and study folders (see docs/studio.md).

Every path in here is built from a name the server made and checked with a strict
pattern (a run id, an upload's content hash), or, for study folders, from an
existing folder name confined to `studies/` after resolving links. Nothing a
user types becomes a path. Imports neither fastapi nor torch.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from nst.config import DEFAULT_MAX_PIXELS
from nst.errors import NstError
from nst.files.atomic import remove_stale_temporaries, temporary_file, write_text_atomic
from nst.files.images import probe_image
from nst.jobs.study_plan import REPORT_NAME, RESULTS_NAME
from nst.samples import CONTENT_SAMPLES, STYLE_SAMPLES, sample_path

RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{4}")
UPLOAD_ID = re.compile(r"[0-9a-f]{64}\.(?:png|jpg|webp|gif|bmp|tif)")
# Folder names the studio itself creates for sweeps.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# Pillow format -> the extension an upload is stored under (never the user's).
UPLOAD_FORMATS = {"PNG": "png", "JPEG": "jpg", "MPO": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp",
                  "TIFF": "tif"}
STATUSES = ("queued", "running", "finished", "failed", "stopped", "interrupted")
UNFINISHED = ("queued", "running")
RUN_FILE = "run.json"
IMAGE_FILE = "result.png"
INTERRUPTED = "the server stopped before this run finished; its inputs are kept: reload it to run it again"
LABEL_LENGTH = 80


def now() -> str:
    """The time a run was made, sortable as text: 2024-05-01T12:00:00.123."""
    return datetime.datetime.now().isoformat(timespec="milliseconds")


def new_run_id() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def is_run_id(text: str) -> bool:
    return RUN_ID.fullmatch(text) is not None


def sample_names() -> dict[str, list[str]]:
    return {"content": list(CONTENT_SAMPLES), "style": list(STYLE_SAMPLES)}


def sample_file(name: str) -> Path | None:
    """A shipped sample by name (only the names nst ships)."""
    return sample_path(name) if name in (*CONTENT_SAMPLES, *STYLE_SAMPLES) else None


def without_history(run: dict[str, Any]) -> dict[str, Any]:
    """A run as listed: its record without the per-step loss history."""
    record = run.get("record")
    if not isinstance(record, dict) or "history" not in record:
        return run
    return {**run, "record": {k: v for k, v in record.items() if k != "history"}}


class Library:
    """The folder the studio keeps everything in (created if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uploads = self.root / "uploads"
        self.runs = self.root / "runs"
        self.studies = self.root / "studies"
        for folder in (self.uploads, self.runs, self.studies):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise NstError(f"cannot create the studio library {folder}: {error.strerror or error}") \
                    from None
        remove_stale_temporaries(self.uploads)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ uploads

    @contextlib.contextmanager
    def upload_temporary(self) -> Iterator[Path]:
        """A temporary file in uploads/ to receive an upload; removed unless stored."""
        temporary = temporary_file(self.uploads / "upload")
        try:
            yield temporary
        finally:
            temporary.unlink(missing_ok=True)

    def store_upload(self, temporary: Path, name: str) -> dict[str, Any]:
        """Check an uploaded file (header only) and keep it under its content hash.
        NstError (with `name`, never the server's path, in the message) if it is
        not an image nst reads, or too large."""
        shown = name or "the upload"
        try:
            width, height = probe_image(temporary, DEFAULT_MAX_PIXELS)
            with Image.open(temporary) as image:
                kind = image.format or ""
        except NstError as error:
            raise NstError(str(error).replace(str(temporary), shown)) from None
        except OSError as error:
            raise NstError(f"cannot read {shown}: {error}") from None
        extension = UPLOAD_FORMATS.get(kind)
        if extension is None:
            raise NstError(f"{shown}: {kind or 'this'} images are not accepted; use PNG, JPEG, WebP, GIF, "
                           "BMP or TIFF")
        digest = hashlib.sha256()
        with open(temporary, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        upload_id = f"{digest.hexdigest()}.{extension}"
        target = self.uploads / upload_id
        if not target.exists():
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        info = {"id": upload_id, "width": width, "height": height, "name": name}
        write_text_atomic(self.uploads / f"{upload_id}.json", json.dumps(info, ensure_ascii=False))
        return info

    def upload_path(self, upload_id: str) -> Path | None:
        if UPLOAD_ID.fullmatch(upload_id) is None:
            return None
        path = self.uploads / upload_id
        return path if path.is_file() else None

    def upload_name(self, upload_id: str) -> str:
        """The name the upload was given (display only)."""
        try:
            name = json.loads((self.uploads / f"{upload_id}.json").read_text(encoding="utf-8"))["name"]
        except (OSError, ValueError, KeyError, TypeError):
            return upload_id[:12]
        return str(name) if name else upload_id[:12]

    def resolve_ref(self, ref: object, role: str) -> Path:
        """The file of an image reference ("upload:<id>" or "sample:<name>");
        NstError for anything else (a path is never accepted)."""
        if isinstance(ref, str):
            kind, _, name = ref.partition(":")
            path = self.upload_path(name) if kind == "upload" else sample_file(name) if kind == "sample" \
                else None
            if path is not None:
                return path
            if kind in ("upload", "sample"):
                raise NstError(f"{role} image: no such {kind} {name!r}")
        raise NstError(f"{role} image: expected \"upload:<id>\" or \"sample:<name>\", got {ref!r}")

    def ref_name(self, ref: str) -> str:
        kind, _, name = ref.partition(":")
        return self.upload_name(name) if kind == "upload" else name

    # ------------------------------------------------------------ runs

    def run_folder(self, run_id: str) -> Path | None:
        return self.runs / run_id if is_run_id(run_id) else None

    def new_run(self, run: dict[str, Any]) -> dict[str, Any]:
        """Write a new run (an id is given to it) and return it."""
        with self._lock:
            while True:
                run_id = new_run_id()
                folder = self.runs / run_id
                try:
                    folder.mkdir()
                    break
                except FileExistsError:
                    continue
        run = {**run, "id": run_id, "created": now()}
        self.write_run(run)
        return run

    def write_run(self, run: dict[str, Any]) -> None:
        folder = self.run_folder(str(run["id"]))
        if folder is None or not folder.is_dir():
            return  # deleted meanwhile
        write_text_atomic(folder / RUN_FILE, json.dumps(run, indent=1, ensure_ascii=False))

    def read_run(self, run_id: str) -> dict[str, Any] | None:
        folder = self.run_folder(run_id)
        if folder is None:
            return None
        try:
            data = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("id") == run_id else None

    def list_runs(self) -> list[dict[str, Any]]:
        """Every run, newest first."""
        runs = []
        for folder in self.runs.iterdir():
            run = self.read_run(folder.name) if is_run_id(folder.name) else None
            if run is not None:
                runs.append(run)
        runs.sort(key=lambda r: (str(r.get("created", "")), str(r["id"])), reverse=True)
        return runs

    def image_path(self, run_id: str) -> Path | None:
        folder = self.run_folder(run_id)
        if folder is None:
            return None
        path = folder / IMAGE_FILE
        return path if path.is_file() else None

    def delete_run(self, run_id: str) -> bool:
        folder = self.run_folder(run_id)
        if folder is None or not folder.is_dir():
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True

    def recover(self) -> list[str]:
        """At start-up: runs left queued or running by a server that stopped are
        marked interrupted (their inputs and options stay, to be reloaded)."""
        marked = []
        for run in self.list_runs():
            if run.get("status") in UNFINISHED:
                run.update(status="interrupted", error=INTERRUPTED)
                self.write_run(run)
                marked.append(str(run["id"]))
        return marked

    # ------------------------------------------------------------ studies

    def study_folder(self, name: str) -> Path | None:
        """An existing folder directly under studies/ (links resolving elsewhere refused)."""
        if not name or name.startswith(".") or any(c in name for c in "/\\\0"):
            return None
        folder = self.studies / name
        try:
            resolved = folder.resolve()
        except OSError:
            return None
        if resolved.parent != self.studies.resolve() or not resolved.is_dir():
            return None
        return resolved

    def list_studies(self) -> list[dict[str, Any]]:
        """Study and sweep folders: name, title (from results.json), runs, report."""
        studies = []
        for entry in sorted(self.studies.iterdir(), key=lambda p: p.name):
            folder = self.study_folder(entry.name)
            if folder is None:
                continue
            title, runs, sweeps = entry.name, 0, []
            try:
                results = json.loads((folder / RESULTS_NAME).read_text(encoding="utf-8"))
                title = str(results.get("title") or title)
                for sweep in results.get("sweeps", []):
                    runs += len(sweep.get("runs", []))
                    sweeps.append({"name": str(sweep.get("name")), "title": str(sweep.get("title")),
                                   "grid": sweep.get("grid")})
            except (OSError, ValueError, AttributeError, TypeError):
                pass
            studies.append({"name": entry.name, "title": title, "runs": runs, "sweeps": sweeps,
                            "report": (folder / REPORT_NAME).is_file()})
        return studies

    def study_file(self, name: str, relative: str) -> Path | None:
        """A file inside a study folder; None for anything outside it (.., links
        out, hidden files such as the lock and the ownership marker)."""
        folder = self.study_folder(name)
        if folder is None or "\\" in relative or "\0" in relative:
            return None
        parts = PurePosixPath(relative or REPORT_NAME).parts
        if not parts or any(p.startswith(".") or p == "/" for p in parts):
            return None
        try:
            target = folder.joinpath(*parts).resolve()
        except OSError:
            return None
        if not target.is_relative_to(folder) or not target.is_file():
            return None
        return target


def short_label(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LABEL_LENGTH else text[:LABEL_LENGTH - 1] + "…"
