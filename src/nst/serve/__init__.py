"""The studio (`nst serve`): a local web page over the job layer.

library.py keeps the runs on disk, worker.py runs them (one thread per device),
routes.py answers the page's requests, app.py makes the FastAPI application and
its listening socket. Importing this package loads neither fastapi nor torch: the
command line registers `nst serve` without them, and torch loads when the app is
made (to name the device it computes on). See docs/studio.md for the design and the HTTP API.
"""

from __future__ import annotations
