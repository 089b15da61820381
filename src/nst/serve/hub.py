"""The studio's events: a `Hub` of connected pages, each a `Subscriber`.

Every connected page has a bounded queue of its own; step events replace the
older step event of the same job still waiting there, so a slow page loses
steps, never blocks the worker, and one that falls too far behind is
disconnected (its page reconnects and gets the state again). Imports neither
fastapi nor torch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

SUBSCRIBER_LIMIT = 256  # events waiting for one page before it is disconnected
PING = ("ping", "")


class Subscriber:
    """One connected page: a bounded queue of (kind, JSON text), filled by any
    thread, read by the page's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = SUBSCRIBER_LIMIT) -> None:
        self.loop = loop
        self.limit = limit
        self.pending: deque[list[str]] = deque()
        self.lock = threading.Lock()
        self.wakeup = asyncio.Event()
        self.closed = False

    def offer(self, kind: str, key: str, text: str) -> bool:
        """Queue an event (never blocks); False once the page has fallen too far behind."""
        with self.lock:
            if self.closed:
                return False
            if kind == "step":
                for item in self.pending:
                    if item[0] == "step" and item[1] == key:
                        item[2] = text  # the page gets the newest step, not every step
                        return True
                if len(self.pending) >= self.limit:
                    return True  # dropped: a slow page loses steps
                self.pending.append([kind, key, text])
            elif len(self.pending) >= self.limit:
                self.closed = True
            else:
                self.pending.append([kind, key, text])
        try:
            self.loop.call_soon_threadsafe(self.wakeup.set)
        except RuntimeError:  # its loop is gone
            self.closed = True
        return not self.closed

    async def next(self, timeout: float) -> tuple[str, str] | None:
        """The next event; PING after `timeout` seconds without one; None when closed."""
        while True:
            with self.lock:
                if self.pending:
                    kind, _, text = self.pending.popleft()
                    return kind, text
                if self.closed:
                    return None
                self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout)
            except TimeoutError:
                return PING


class Hub:
    """Every connected page; publish sends an event to each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        with self.lock:
            self.subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self.lock:
            if subscriber in self.subscribers:
                self.subscribers.remove(subscriber)
        subscriber.closed = True

    def publish(self, kind: str, data: Mapping[str, Any], key: str = "") -> None:
        text = json.dumps(data, ensure_ascii=False)
        with self.lock:
            subscribers = list(self.subscribers)
        for subscriber in subscribers:
            if not subscriber.offer(kind, key, text):
                self.unsubscribe(subscriber)

    def close(self) -> None:
        with self.lock:
            subscribers, self.subscribers = self.subscribers, []
        for subscriber in subscribers:
            subscriber.closed = True
            with contextlib.suppress(RuntimeError):
                subscriber.loop.call_soon_threadsafe(subscriber.wakeup.set)
