"""What `nst train-decoder` writes: the decoder file and the checkpoint it resumes
from, both .safetensors (tensors and a string-to-string metadata table: nothing
is pickled), both written atomically.

The checkpoint holds the decoder in float32 ("decoder.<name>"), Adam's state
("adam.<parameter index>.<exp_avg|exp_avg_sq|step>"), the data generator's state
("generator") and, in its metadata, the step, the options that must match to
resume and the held-out PSNR so far.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch import Tensor

from nst.core.decoder import Decoder, decoder_from_tensors, decoder_tensors
from nst.errors import NstError
from nst.files.atomic import atomic_path

CHECKPOINT_FORMAT = "nst-decoder-checkpoint-1"


def checkpoint_path(output: Path) -> Path:
    """decoder.safetensors -> decoder.checkpoint.safetensors, beside it."""
    return output.with_name(f"{output.stem}.checkpoint.safetensors")


def _save(tensors: dict[str, Tensor], metadata: dict[str, str], path: Path) -> None:
    from safetensors.torch import save_file  # noqa: PLC0415

    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)


def write_decoder(decoder: Decoder, path: Path, notes: dict[str, str] | None = None) -> None:
    """The decoder as nst ships it: fp16 tensors, its architecture (and `notes`:
    how it was trained) in the metadata."""
    tensors, metadata = decoder_tensors(decoder, half=True)
    _save(tensors, {**(notes or {}), **metadata}, path)


@dataclass
class TrainingState:
    """Everything a resumed run needs to go on as if it had never stopped."""

    step: int
    identity: dict[str, Any]
    psnr_history: list[tuple[int, float]]
    elapsed_s: float


def write_checkpoint(path: Path, decoder: Decoder, optimizer: torch.optim.Optimizer,
                     generator: torch.Generator, state: TrainingState) -> None:
    tensors, metadata = decoder_tensors(decoder, half=False)
    out = {f"decoder.{name}": value for name, value in tensors.items()}
    for index, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            out[f"adam.{index}.{key}"] = torch.as_tensor(value).detach().cpu().clone()
    out["generator"] = generator.get_state().clone()
    metadata = {**metadata, "checkpoint": CHECKPOINT_FORMAT, "step": str(state.step),
                "identity": json.dumps(state.identity, sort_keys=True),
                "psnr_history": json.dumps(state.psnr_history), "elapsed_s": f"{state.elapsed_s:.3f}"}
    _save(out, metadata, path)


def read_checkpoint(path: Path, optimizer_for: Any, generator: torch.Generator,
                    identity: dict[str, Any]) -> tuple[Decoder, torch.optim.Optimizer, TrainingState]:
    """The decoder, optimizer (made by `optimizer_for(decoder)`, then given the saved
    state) and training state of a checkpoint; the generator is set to the saved
    state. NstError (one line) when the file is unreadable or the run differs."""
    from safetensors import (
        SafetensorError,  # noqa: PLC0415
        safe_open,  # noqa: PLC0415
    )

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise NstError(f"cannot read checkpoint {path}: {reason}; delete it to start over") from None
    if metadata.get("checkpoint") != CHECKPOINT_FORMAT:
        raise NstError(f"{path} is not an nst train-decoder checkpoint; delete it or choose another -o")
    saved = json.loads(metadata.get("identity", "{}"))
    if saved != identity:
        changed = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
        given = ", ".join(f"{name} {saved.get(name)}" for name in changed)
        raise NstError(f"{path} was made with other options ({given}): "
                       "rerun with those to resume, or delete it to start over")
    decoder = decoder_from_tensors({k[8:]: v for k, v in tensors.items() if k.startswith("decoder.")},
                                   metadata, str(path)).train().requires_grad_(True)
    optimizer = optimizer_for(decoder)
    saved_state = optimizer.state_dict()
    per_param: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("adam."):
            _, index, name = key.split(".", 2)
            per_param.setdefault(int(index), {})[name] = value
    saved_state["state"] = per_param
    optimizer.load_state_dict(saved_state)
    generator.set_state(tensors["generator"])
    history = [(int(s), float(p)) for s, p in json.loads(metadata.get("psnr_history", "[]"))]
    return decoder, optimizer, TrainingState(int(metadata["step"]), saved, history,
                                             float(metadata.get("elapsed_s", 0)))


class StopRequest:
    """SIGINT or SIGTERM that arrived while `deferred_stop` held them."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.previous: dict[int, Any] = {}

    def raise_if_asked(self) -> None:
        """Raise what the signal would have raised (the handler that was in place
        before: KeyboardInterrupt for Ctrl-C, the CLI's Terminated for SIGTERM)."""
        if self.signal is None:
            return
        handler = self.previous.get(self.signal)
        if callable(handler):
            handler(self.signal, None)
        raise KeyboardInterrupt


@contextmanager
def deferred_stop() -> Iterator[StopRequest]:
    """While the block runs, Ctrl-C and SIGTERM only set a flag that the loop checks
    between steps: a step is never cut in half (its update done on some weights and
    not others) before the checkpoint is written. Only the main thread takes signals;
    elsewhere nothing changes."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def hold(number: int, frame: FrameType | None) -> None:
        request.signal = number

    for stop in (signal.SIGINT, signal.SIGTERM):
        request.previous[int(stop)] = signal.signal(stop, hold)
    try:
        yield request
    finally:
        for number, handler in request.previous.items():
            signal.signal(number, handler)
