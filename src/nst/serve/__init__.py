"""The studio (`nst serve`): a local web page over the job layer.

library.py keeps the runs on disk, worker.py runs them (one thread per device),
app.py is the FastAPI application. Importing this package loads neither fastapi
nor torch: the command line registers `nst serve` without them, and torch loads
when the first job runs. See docs/studio.md for the design and the HTTP API.
"""

from __future__ import annotations
