"""nst's two exception types, which the CLI turns into one-line messages, and
the one line for a run that ran out of memory."""

from __future__ import annotations

import re


class NstError(ValueError):
    """A problem the user can fix: bad input, bad option, missing file.

    The CLI prints its message on one line and exits with status 2.
    """


class NstRuntimeError(RuntimeError):
    """A run that started but could not finish (for example it diverged).

    The CLI prints its message on one line and exits with status 1.
    """


# How torch and Python say that memory ran out: torch.OutOfMemoryError (CUDA,
# MPS; matched by name, so this module needs no torch), the CPU allocator's
# RuntimeError, and Python's own MemoryError.
_ALLOCATION_MARKERS = ("can't allocate memory", "DefaultCPUAllocator", "out of memory")
_REQUEST = re.compile(r"tried to allocate (\d+(?:\.\d+)?) ?(bytes|[KMGT]iB|B)\b", re.IGNORECASE)
_UNIT_BYTES = {"bytes": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
_ADVICE = ("lower --max-memory (large scales then run tile by tile, with a shorter L-BFGS history), "
           "--size or --style-size")


def _is_allocation_failure(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(error).__mro__):
        return True
    return isinstance(error, RuntimeError) and any(marker in str(error) for marker in _ALLOCATION_MARKERS)


def _gib(count: float) -> str:
    return f"{count / (1 << 30):.1f} GiB" if count >= 1 << 30 else f"{count / (1 << 20):.1f} MiB"


def allocation_failure(error: BaseException) -> str | None:
    """One line for an error that says memory ran out (with the amount a step
    asked for, when torch gave it), or None for any other error."""
    if not _is_allocation_failure(error):
        return None
    request = _REQUEST.search(str(error))
    if request is None:
        return f"out of memory (the amount a step needed was not reported); {_ADVICE}"
    figure, unit = request.group(1), request.group(2)
    count = float(figure) * _UNIT_BYTES[unit.lower()]
    asked = f"{round(count):,} bytes" if _UNIT_BYTES[unit.lower()] == 1 else f"{figure} {unit}"
    return f"out of memory: a step needed {_gib(count)} more (torch tried to allocate {asked}); {_ADVICE}"
