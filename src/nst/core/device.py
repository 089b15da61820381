"""Where a run computes: the one place that turns --device into a torch device."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from nst.errors import NstError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

    from nst.config import Config
    from nst.core.geometry import Scale
    from nst.core.memory import ScalePlan


def select_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; others are checked."""
    import torch  # noqa: PLC0415  (loaded only once a run is certain to start)

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise NstError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise NstError(f"device {name!r} requested but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise NstError(f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise NstError("device 'mps' requested but MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise NstError(f"unsupported device {name!r}; expected auto, cpu, cuda, cuda:N or mps")
    return device


def device_kind_without_torch(name: str) -> str | None:
    """'cpu', 'cuda' or 'mps' when --device says so without asking torch; None for 'auto'."""
    for kind in ("cpu", "cuda", "mps"):
        if name == kind or name.startswith(f"{kind}:"):
            return kind
    return None


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory of a GPU; None for the CPU (see memory.physical_memory)."""
    import torch  # noqa: PLC0415

    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory())
    return None


def memory_budget(max_memory: int | None, device: torch.device) -> float:
    """A run's memory budget in bytes: --max-memory, or the default share of the
    device's memory (memory.default_budget)."""
    from nst.core.memory import default_budget  # noqa: PLC0415

    return float(max_memory) if max_memory else default_budget(device.type, device_memory(device))


def plan_on(device: torch.device, config: Config, scales: Sequence[Scale], batch: int = 1
            ) -> tuple[ScalePlan, ...]:
    """memory.plan_run for a run on `device`, within its budget (memory_budget)."""
    from nst.core.memory import plan_run  # noqa: PLC0415

    return plan_run(config, scales, memory_budget(config.max_memory, device), batch, device.type)


def set_threads(count: int) -> None:
    """Compute with `count` CPU threads (--threads, NST_THREADS). The pool between
    operators follows when it can: torch lets that be set only once, before its
    first parallel work, so a later call keeps the pool it has."""
    import torch  # noqa: PLC0415

    if count < 1:
        raise NstError(f"threads must be at least 1, got {count}")
    torch.set_num_threads(count)
    # Refused once started (an earlier run in this process): that pool stays.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(count)
