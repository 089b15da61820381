"""The tasks of a video run, as a worker runs them: optical flow of consecutive
frames (MotionTask) and chains of stylized frames (FrameTask: segments made by
make_frames, or independent frames batched by make_independent_batch), each
frame by the local loop's own rule (jobs.video.next_frame)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nst.cluster.packing import pack_motion, png_bytes, png_tensor, unpack_motion
from nst.cluster.worker import Blob, Task, WorkerContext
from nst.config import Config
from nst.jobs.video_request import VideoOptions

if TYPE_CHECKING:
    from nst.jobs.runner import Executor
    from nst.jobs.video import FrameStylizer

Read = Callable[[Blob], bytes]


def _reader(files: Mapping[str, Path]) -> Read:
    return lambda blob: files[blob.digest].read_bytes()


@dataclass(frozen=True)
class MotionTask(Task):
    """Optical flow of consecutive frames (PNG blobs at the flow size): the packed
    Motion of each frame after the first relative to the one before, at the
    stylized `size` (width, height)."""

    frames: tuple[Blob, ...]
    size: tuple[int, int]
    label: str = "optical flow"

    def blobs(self) -> Sequence[Blob]:
        return self.frames

    def run(self, context: WorkerContext, files: Mapping[str, Path]) -> tuple[bytes, ...]:
        return motions_of([files[blob.digest].read_bytes() for blob in self.frames], self.size)


def motions_of(frames: Sequence[bytes], size: tuple[int, int]) -> tuple[bytes, ...]:
    """Packed motions of frames[t] relative to frames[t - 1], t = 1, 2, ..."""
    from nst.core.flow import motion_between  # noqa: PLC0415

    tensors = [png_tensor(frame) for frame in frames]
    return tuple(pack_motion(motion_between(a, b, size)) for a, b in zip(tensors, tensors[1:], strict=False))


@dataclass(frozen=True)
class Segment:
    """A chain of frames for a worker: frames [first, first + len(frames)), PNG
    at the stylized size, of which those from `keep` on are returned (the
    others are a lead-in). motions[k]: the packed Motion of frames[k] relative
    to the frame before it (None: frames[k] starts from scratch). start: the
    stored stylized frame first - 1 to continue from. toward: a blend's frames,
    one per kept frame, pulled toward with rising shares (see jobs.video.Blend).
    anchor: a stylized frame earlier in the shot, and anchor_motion: the packed
    (composed) Motion of frames[0] relative to it, to tie the first frame to
    (jobs.video.anchored_frame)."""

    first: int
    frames: tuple[Blob, ...]
    motions: tuple[Blob | None, ...]
    keep: int
    start: Blob | None = None
    toward: tuple[Blob, ...] = ()
    anchor: Blob | None = None
    anchor_motion: Blob | None = None

    @property
    def stop(self) -> int:
        return self.first + len(self.frames)

    def blobs(self) -> list[Blob]:
        found = [*self.frames, *self.toward, *(m for m in self.motions if m is not None)]
        return found + [blob for blob in (self.start, self.anchor, self.anchor_motion) if blob is not None]


@dataclass(frozen=True)
class Made:
    """A segment's answer: its kept frames as (index, PNG bytes), in order, each
    frame's (warm-started?, seconds), and the seconds spent on lead-in frames."""

    frames: tuple[tuple[int, bytes], ...]
    times: tuple[tuple[bool, float], ...]
    lead_in_s: float = 0.0


@dataclass(frozen=True)
class FrameTask(Task):
    """Frames for one worker: one or more segments (consistent mode: chains,
    independent mode: one frame each), against styles given as PNG blobs at their
    planned sizes. first_frame: the clip's first frame, for colour preservation
    (a local run matches the styles to it too). decoder: the request's decoder file
    (--method fast, --init fast). Returns one Made per segment."""

    config: Config
    options: VideoOptions
    device: str
    styles: tuple[Blob, ...]
    first_frame: Blob
    segments: tuple[Segment, ...]
    label: str = "frames"
    decoder: Blob | None = None

    def blobs(self) -> Sequence[Blob]:
        found = [*self.styles, self.first_frame, *((self.decoder,) if self.decoder is not None else ())]
        for segment in self.segments:
            found += segment.blobs()
        return list({blob.digest: blob for blob in found}.values())

    def batch_key(self) -> Hashable | None:
        """Independent frames of one clip and settings go to a worker together."""
        if self.options.mode == "consistent" or len(self.segments) != 1:
            return None
        return ("video frame", self.config, self.options, self.device, self.styles, self.first_frame)

    def run(self, context: WorkerContext, files: Mapping[str, Path]) -> tuple[Made, ...]:
        return make_frames(self, _reader(files), context.executor, _decoder_file(self, files))

    @classmethod
    def run_batch(cls, context: WorkerContext, tasks: Sequence[Task], files: Mapping[str, Path]) -> list[Any]:
        frame_tasks = [task for task in tasks if isinstance(task, FrameTask)]
        made = make_independent_batch(frame_tasks, _reader(files), context.executor,
                                      _decoder_file(frame_tasks[0], files))
        return [(each,) for each in made]


def _decoder_file(task: FrameTask, files: Mapping[str, Path]) -> Path | None:
    """This worker's copy of the task's decoder file."""
    return files[task.decoder.digest] if task.decoder is not None else None


def _stylizer(task: FrameTask, read: Read, executor: Executor | None,
              decoder_file: Path | None = None) -> FrameStylizer:
    from nst.core.device import select_device  # noqa: PLC0415
    from nst.jobs.video import FrameStylizer  # noqa: PLC0415

    device = select_device(task.device)
    styles = [png_tensor(read(style)).to(device) for style in task.styles]
    # The worker's executor: its network stays loaded from one task to the next.
    return FrameStylizer(task.config, device, styles, png_tensor(read(task.first_frame)).to(device), executor,
                         decoder_file=decoder_file)


def make_frames(task: FrameTask, read: Read, executor: Executor | None = None,
                decoder_file: Path | None = None) -> tuple[Made, ...]:
    """Run a FrameTask: each segment a chain through jobs.video.next_frame (the
    local loop's rule), every frame continuing from the one before as stored
    (decoder_file: where the task's decoder is on this machine)."""
    from nst.core.flow import warp_image  # noqa: PLC0415
    from nst.jobs.video import Blend, anchored_frame, as_stored, next_frame  # noqa: PLC0415

    stylizer = _stylizer(task, read, executor, decoder_file)
    device = stylizer.device
    made: list[Made] = []
    for segment in task.segments:
        previous = png_tensor(read(segment.start)).to(device) if segment.start is not None else None
        kept: list[tuple[int, bytes]] = []
        times: list[tuple[bool, float]] = []
        lead_in_s = 0.0
        for offset, (frame, packed) in enumerate(zip(segment.frames, segment.motions, strict=True)):
            index = segment.first + offset
            began = time.perf_counter()
            content = png_tensor(read(frame)).to(device)
            motion = unpack_motion(read(packed)) if packed is not None else None
            toward = None
            if segment.toward and index >= segment.keep:
                step = index - segment.keep
                share = (step + 1) / (len(segment.toward) + 1)
                toward = Blend(png_tensor(read(segment.toward[step])).to(device), share)
            if offset == 0 and segment.anchor is not None and segment.anchor_motion is not None:
                tie = unpack_motion(read(segment.anchor_motion))
                anchor = warp_image(png_tensor(read(segment.anchor)).to(device), tie.backward)
                image, warm = anchored_frame(stylizer, task.options, content, anchor,
                                             tie.weight_tensor(device), None), False
            else:
                image, warm = next_frame(stylizer, task.options, content, previous, motion, None, toward)
            previous = as_stored(image)
            elapsed = time.perf_counter() - began
            if index < segment.keep:
                lead_in_s += elapsed
            else:
                kept.append((index, png_bytes(previous)))
                times.append((warm, elapsed))
        made.append(Made(tuple(kept), tuple(times), lead_in_s))
    return tuple(made)


def make_independent_batch(tasks: Sequence[FrameTask], read: Read, executor: Executor | None = None,
                           decoder_file: Path | None = None) -> list[Made]:
    """Independent frames of several FrameTasks (one single-frame segment each,
    one batch key) optimized as one batch (with --method fast: one batched pass)."""
    import torch  # noqa: PLC0415

    stylizer = _stylizer(tasks[0], read, executor, decoder_file)
    began = time.perf_counter()
    frames = [task.segments[0].frames[0] for task in tasks]
    batch = torch.cat([png_tensor(read(frame)) for frame in frames]).to(stylizer.device)
    images = stylizer.fresh(batch, None)
    each = (time.perf_counter() - began) / len(tasks)
    return [Made(((task.segments[0].first, png_bytes(images[k:k + 1])),), ((False, each),))
            for k, task in enumerate(tasks)]
