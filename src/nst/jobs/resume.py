"""The one resume rule of batch, video and studies: finished work is reused
only when its record answers the same request -- the same resolved settings
(record.request_key) and the same input files by content (SHA-256)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nst.files.images import read_metadata
from nst.jobs.request import Request
from nst.record import RunRecord


def read_record(path: Path) -> RunRecord | None | bool:
    """The run record an output at `path` carries; False when the file holds no
    nst metadata at all (somebody else's file); None when it has nst metadata
    of another schema (an older nst version) or is damaged."""
    try:
        metadata = read_metadata(path)
    except (OSError, ValueError, SyntaxError):
        return False
    if not isinstance(metadata, dict) or "nst_version" not in metadata:
        return False
    try:
        return RunRecord.from_dict(metadata)
    except ValueError:
        return None


def answers(record: RunRecord | None | bool, request: Request) -> bool:
    """Whether a finished run's record answers `request` (so it need not run again)."""
    return isinstance(record, RunRecord) and record.key(request.seed_given) == request.key()


def differences(stored: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the values that differ between two nested dicts."""
    names: list[str] = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            names += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            names.append(prefix + key)
    return names
