"""nst: optimization-based neural style transfer (Gatys et al.).

The public API::

    from nst import Config, run
    done = run(Config(task="transfer", size=256), "photo.jpg", ["painting.jpg"])
    done.save("out.png")
"""

__version__ = "0.1.0"

from nst.config import PRESETS, Config, apply_preset  # noqa: E402
from nst.errors import NstError, NstRuntimeError  # noqa: E402
from nst.events import Result, StepEvent  # noqa: E402
from nst.jobs.runner import Run, run  # noqa: E402
from nst.layers import parse_layers  # noqa: E402

__all__ = [
    "PRESETS",
    "Config",
    "NstError",
    "NstRuntimeError",
    "Result",
    "Run",
    "StepEvent",
    "__version__",
    "apply_preset",
    "parse_layers",
    "run",
]
