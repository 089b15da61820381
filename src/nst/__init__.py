"""nst: optimization-based neural style transfer (Gatys et al.).

The public API::

    from nst import Config, run
    done = run(Config(task="transfer", size=256), "photo.jpg", ["painting.jpg"])
    done.save("out.png")

Importing nst does not import torch: `run` and `Run` load the job layer (and
torch) on first use, so the command line answers --help and refuses bad input
at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nst.config import PRESETS, Config, apply_preset
from nst.errors import NstError, NstRuntimeError
from nst.events import JobEvent, Result, StepEvent
from nst.layers import parse_layers
from nst.record import RunRecord
from nst.version import __version__

if TYPE_CHECKING:
    from nst.jobs.request import Request, prepare
    from nst.jobs.runner import Run, execute, run

_LAZY = {"run": "nst.jobs.runner", "Run": "nst.jobs.runner", "execute": "nst.jobs.runner",
         "prepare": "nst.jobs.request", "Request": "nst.jobs.request"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib  # noqa: PLC0415

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nst' has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "Config",
    "JobEvent",
    "NstError",
    "NstRuntimeError",
    "Request",
    "Result",
    "Run",
    "RunRecord",
    "StepEvent",
    "__version__",
    "apply_preset",
    "execute",
    "parse_layers",
    "prepare",
    "run",
]
