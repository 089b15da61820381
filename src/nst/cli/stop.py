"""Stopping a command: SIGTERM ends it as Ctrl-C (SIGINT) does.

Python's default for SIGTERM ends the process at once: no `finally`, no
context manager's exit, so a folder's `.nst-lock` stayed behind. Here SIGTERM
raises `Terminated`, a KeyboardInterrupt, in the main thread: the same cleanup
runs (finished work kept, locks released), and the exit status is 143
(128 + SIGTERM) instead of Ctrl-C's 130.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

INTERRUPTED = 130  # 128 + SIGINT
TERMINATED = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived."""


def stopped_status(stop: BaseException) -> int:
    """The exit status of a command that was stopped: 143 for SIGTERM, 130 for Ctrl-C."""
    return TERMINATED if isinstance(stop, Terminated) else INTERRUPTED


def _terminate(number: int, frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises Terminated (only the main thread
    can take signals; elsewhere, as in a test's thread, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
