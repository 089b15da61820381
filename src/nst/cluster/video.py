"""`nst video --cluster`: the frames of a clip stylized by a pool of workers.

Independent mode: every frame is its own task (frames share one size, so the
pool hands up to --batch-size of them to a worker as one batched optimization).

Consistent mode: a frame starts from the stylized frame before it, so frames
form chains. The clip is split at scene cuts (where `nst video` starts afresh
anyway) and into chunks of `Chunking.frames` frames; one worker chains a
chunk's frames exactly as the local loop does (jobs.video.next_frame). Chunks
are handed out in rounds, one per worker:

- a shot that several workers share first gets its first frame made alone
  (the keyframe round), so that chains starting later in the shot can be tied to it;
- a chunk whose predecessor is finished continues from its last stored frame:
  that join is the local chain itself (no seam at all);
- any other chunk starts `Chunking.overlap` frames early (a lead-in, discarded).
  If the lead-in reaches a finished frame it is chained from it, and the join
  is exact again ("overlap"). Otherwise its first frame is tied to the nearest
  finished frame of the shot, warped by the composed optical flow
  (jobs.video.anchored_frame), so the two chains' brush strokes line up where
  the flow is trusted ("lead-in"); a free worker takes the chunk in the middle
  of the longest stretch nobody works on, so such joins stay few;
- once both sides of such a join are finished, a blend re-makes the first
  `overlap` frames after it: chained on from the frame before the join, each
  pulled a little more toward the frame it replaces (jobs.video.Blend), so what
  differs between the two chains crosses over in steps instead of jumping.

Measured on bunny.mp4 at 128 px (README, "Running on a cluster"): a lead-in from
scratch left seams 5x the warping error inside chunks; tied and blended, 1.4x.

Optical flow of every consecutive pair is computed ahead, as parallel tasks on
the workers' CPUs, and travels packed (float32, zlib-compressed when large):
a worker warps exactly what a local run would. The driver alone writes: each
finished frame into the work folder (jobs.video.WorkFolder, the resume of a
local run: a rerun skips finished frames and chunks; joins.json there says how
each chunk joined the one before it), then the clip.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from nst.cluster.worker import Blob, Task, WorkerContext
from nst.config import Config
from nst.errors import NstError, NstRuntimeError
from nst.events import EventCallback, JobEvent, notify
from nst.files.atomic import atomic_path, write_text_atomic
from nst.files.frames import Clip, read_frames
from nst.jobs.request import Request
from nst.jobs.video_request import VideoOptions

if TYPE_CHECKING:
    from PIL import Image
    from torch import Tensor

    from nst.cluster.connect import ClusterOptions
    from nst.cluster.pool import Done
    from nst.core.flow import Motion
    from nst.jobs.video import FrameStylizer, VideoRun, WorkFolder

DEFAULT_CHUNK_FRAMES = 24
DEFAULT_CHUNK_OVERLAP = 3
# Motions larger than this (packed) are zlib-compressed before they travel.
COMPRESS_ABOVE_BYTES = 64 * 1024
# Frame pairs per flow task: enough to outweigh a task's overhead.
PAIRS_PER_FLOW_TASK = 8
# How long a consistent run waits for the workers it asked for before planning rounds.
WAIT_FOR_WORKERS_S = 60.0
_RAW, _ZLIB = b"R", b"Z"


@dataclass(frozen=True)
class Chunking:
    """How consistent mode splits a clip: chunks of `frames` frames; a chunk that
    cannot continue from its finished predecessor starts `overlap` frames early,
    and (with `blend`) its first `overlap` frames are blended in afterwards."""

    frames: int = DEFAULT_CHUNK_FRAMES
    overlap: int = DEFAULT_CHUNK_OVERLAP
    blend: bool = True

    def __post_init__(self) -> None:
        for name, least in (("frames", 1), ("overlap", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise NstError(f"chunk-{name} must be an integer of at least {least}, got {value!r}")


@dataclass(frozen=True)
class Chunk:
    """Frames [start, stop) of the clip, inside the shot that begins at frame `shot`."""

    index: int
    start: int
    stop: int
    shot: int

    def blended(self, overlap: int) -> int:
        """How many of its first frames a blend re-makes (never all: the last
        one stays, for the next chunk to continue from)."""
        return max(0, min(overlap, self.stop - self.start - 1))


def plan_chunks(count: int, cuts: Sequence[int], frames: int) -> list[Chunk]:
    """The chunks of a clip of `count` frames with scene cuts before the frames
    in `cuts`: each shot split into ceil(length / frames) chunks of near-equal length."""
    bounds = sorted({0, *(c for c in cuts if 0 < c < count), count})
    chunks: list[Chunk] = []
    for shot, end in zip(bounds, bounds[1:], strict=False):
        pieces = math.ceil((end - shot) / frames)
        edges = [shot + round(i * (end - shot) / pieces) for i in range(pieces + 1)]
        for start, stop in zip(edges, edges[1:], strict=False):
            chunks.append(Chunk(len(chunks), start, stop, shot))
    return chunks


# ------------------------------------------------------------ what travels


def png_bytes(image: Image.Image | Tensor) -> bytes:
    """An image (PIL, or a tensor in [0, 1]) as PNG bytes: lossless for 8-bit pictures."""
    from PIL import Image  # noqa: PLC0415

    from nst.files.images import to_pil  # noqa: PLC0415

    picture = image if isinstance(image, Image.Image) else to_pil(image)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def png_tensor(data: bytes) -> Tensor:
    """PNG bytes -> (1, 3, H, W) in [0, 1] on the CPU."""
    from PIL import Image  # noqa: PLC0415

    from nst.files.images import to_tensor  # noqa: PLC0415

    with Image.open(io.BytesIO(data)) as picture:
        return to_tensor(picture.convert("RGB"))


def pack_motion(motion: Motion) -> bytes:
    """A Motion as bytes: its flow and weights, float32, compressed when large."""
    stacked = np.concatenate([motion.backward, motion.weights[..., None]], axis=-1).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, stacked, allow_pickle=False)
    raw = buffer.getvalue()
    return _ZLIB + zlib.compress(raw, 1) if len(raw) > COMPRESS_ABOVE_BYTES else _RAW + raw


def unpack_motion(data: bytes) -> Motion:
    from nst.core.flow import Motion  # noqa: PLC0415

    raw = zlib.decompress(data[1:]) if data[:1] == _ZLIB else data[1:]
    stacked = np.load(io.BytesIO(raw), allow_pickle=False)
    return Motion(np.ascontiguousarray(stacked[..., :2]), np.ascontiguousarray(stacked[..., 2]))


def compose_motions(motions: Sequence[Motion]) -> Motion:
    """The Motion of frame k + n relative to frame k, from the n motions of frames
    k + 1 ... k + n (each relative to the frame before it): the flows chained
    (each sampled where the later one points) and the trust multiplied along the way."""
    import torch  # noqa: PLC0415

    from nst.core.flow import Motion, warp  # noqa: PLC0415

    flow, weights = motions[0].backward, motions[0].weights
    for motion in motions[1:]:
        fields = np.concatenate([flow, weights[..., None]], axis=-1).transpose(2, 0, 1)
        moved = warp(torch.from_numpy(np.ascontiguousarray(fields)).unsqueeze(0), motion.backward)
        there = moved[0].numpy().transpose(1, 2, 0)
        flow = motion.backward + there[..., :2]
        weights = motion.weights * np.clip(there[..., 2], 0, 1)
    return Motion(np.ascontiguousarray(flow, dtype=np.float32),
                  np.ascontiguousarray(weights, dtype=np.float32))


# ------------------------------------------------------------ the workers' side

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
    (a local run matches the styles to it too). Returns one Made per segment."""

    config: Config
    options: VideoOptions
    device: str
    styles: tuple[Blob, ...]
    first_frame: Blob
    segments: tuple[Segment, ...]
    label: str = "frames"

    def blobs(self) -> Sequence[Blob]:
        found = [*self.styles, self.first_frame]
        for segment in self.segments:
            found += segment.blobs()
        return list({blob.digest: blob for blob in found}.values())

    def batch_key(self) -> Hashable | None:
        """Independent frames of one clip and settings go to a worker together."""
        if self.options.mode == "consistent" or len(self.segments) != 1:
            return None
        return ("video frame", self.config, self.options, self.device, self.styles, self.first_frame)

    def run(self, context: WorkerContext, files: Mapping[str, Path]) -> tuple[Made, ...]:
        return make_frames(self, _reader(files))

    @classmethod
    def run_batch(cls, context: WorkerContext, tasks: Sequence[Task], files: Mapping[str, Path]) -> list[Any]:
        frame_tasks = [task for task in tasks if isinstance(task, FrameTask)]
        return [(made,) for made in make_independent_batch(frame_tasks, _reader(files))]


def _stylizer(task: FrameTask, read: Read) -> FrameStylizer:
    from nst.core.device import select_device  # noqa: PLC0415
    from nst.jobs.video import FrameStylizer  # noqa: PLC0415

    device = select_device(task.device)
    styles = [png_tensor(read(style)).to(device) for style in task.styles]
    return FrameStylizer(task.config, device, styles, png_tensor(read(task.first_frame)).to(device))


def make_frames(task: FrameTask, read: Read) -> tuple[Made, ...]:
    """Run a FrameTask: each segment a chain through jobs.video.next_frame (the
    local loop's rule), every frame continuing from the one before as stored."""
    from nst.core.flow import warp_image  # noqa: PLC0415
    from nst.jobs.video import Blend, anchored_frame, as_stored, next_frame  # noqa: PLC0415

    stylizer = _stylizer(task, read)
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


def make_independent_batch(tasks: Sequence[FrameTask], read: Read) -> list[Made]:
    """Independent frames of several FrameTasks (one single-frame segment each,
    one batch key) optimized as one batch."""
    import torch  # noqa: PLC0415

    stylizer = _stylizer(tasks[0], read)
    began = time.perf_counter()
    frames = [task.segments[0].frames[0] for task in tasks]
    batch = torch.cat([png_tensor(read(frame)) for frame in frames]).to(stylizer.device)
    images = stylizer.fresh(batch, None)
    each = (time.perf_counter() - began) / len(tasks)
    return [Made(((task.segments[0].first, png_bytes(images[k:k + 1])),), ((False, each),))
            for k, task in enumerate(tasks)]


# ------------------------------------------------------------ where tasks run


class FramePool(Protocol):
    """What the driver needs of a pool (nst.cluster.pool.Pool, or InProcessPool)."""

    @property
    def workers(self) -> Sequence[object]: ...

    def put(self, data: bytes, suffix: str = "", digest: str | None = None) -> Blob: ...

    def release(self, *blobs: Blob) -> None: ...

    def run(self, tasks: Sequence[Task], on_start: Callable[[int, str], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> Iterator[Done]: ...


class InProcessPool:
    """A FramePool that runs tasks in this process, one call at a time, in order,
    through the same Task.run / run_batch as a worker. `count` is the number of
    workers the driver plans for: with it, tests and benchmarks see the schedule
    (and so the seams) of a cluster of that many workers, without Ray."""

    def __init__(self, count: int = 1, batch_size: int = 1) -> None:
        import torch  # noqa: PLC0415

        self.count, self.batch_size = count, batch_size
        self.cache = Path(tempfile.mkdtemp(prefix="nst-in-process-"))
        self.context = WorkerContext("local", torch.get_num_threads(), "cpu", self.cache)
        self.files: dict[str, Path] = {}

    def __enter__(self) -> InProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)

    @property
    def workers(self) -> Sequence[object]:
        return [f"w{k + 1}" for k in range(self.count)]

    def put(self, data: bytes, suffix: str = "", digest: str | None = None) -> Blob:
        blob = Blob(digest or hashlib.sha256(data).hexdigest(), suffix)
        self.files[blob.digest] = self.context.store(blob, data)
        return blob

    def release(self, *blobs: Blob) -> None:
        for blob in blobs:
            path = self.files.pop(blob.digest, None)
            if path is not None:
                path.unlink(missing_ok=True)

    def run(self, tasks: Sequence[Task], on_start: Callable[[int, str], None] | None = None,
            on_note: Callable[[str], None] | None = None) -> Iterator[Done]:
        from nst.cluster.pool import Done  # noqa: PLC0415

        index = 0
        while index < len(tasks):
            group = [index]
            key = tasks[index].batch_key() if self.batch_size > 1 else None
            while key is not None and len(group) < self.batch_size and index + len(group) < len(tasks) \
                    and tasks[index + len(group)].batch_key() == key:
                group.append(index + len(group))
            for k in group:
                if on_start is not None:
                    on_start(k, "local")
            began = time.perf_counter()
            try:
                if len(group) > 1:
                    values = type(tasks[index]).run_batch(self.context, [tasks[k] for k in group], self.files)
                else:
                    values = [tasks[index].run(self.context, self.files)]
            except (NstError, NstRuntimeError) as error:
                for k in group:
                    yield Done(k, tasks[k], None, error, "local", 1, time.perf_counter() - began)
            else:
                each = (time.perf_counter() - began) / len(group)
                for k, value in zip(group, values, strict=True):
                    yield Done(k, tasks[k], value, None, "local", 1, each)
            index += len(group)


# ------------------------------------------------------------ the driver


@dataclass
class Schedule:
    """Which chunk a free worker takes next (consistent mode).

    A chunk is pending until handed out, then running, then done. Its first
    frame joins the chain before it without a seam when it begins a shot or its
    predecessor is done (it continues from that chunk's last frame). Otherwise
    it needs a lead-in, and a free worker takes the chunk in the middle of the
    longest run of pending chunks, so that chains meet as rarely as possible.
    """

    chunks: list[Chunk]
    pending: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)

    def joins_cleanly(self, chunk: Chunk) -> bool:
        return chunk.start == chunk.shot or chunk.index - 1 in self.done

    def next(self) -> Chunk | None:
        if not self.pending:
            return None
        order = sorted(self.pending)
        clean = [i for i in order if self.joins_cleanly(self.chunks[i])]
        if clean:
            choice = clean[0]
        else:
            runs: list[list[int]] = []
            for i in order:
                if runs and runs[-1][-1] == i - 1 and self.chunks[i].shot == self.chunks[i - 1].shot:
                    runs[-1].append(i)
                else:
                    runs.append([i])
            longest = max(runs, key=len)  # the first of equally long runs
            choice = longest[len(longest) // 2]
        self.pending.discard(choice)
        return self.chunks[choice]


@dataclass
class _Decoded:
    """A clip ready for the workers: each frame at the stylized size (PNG bytes
    and its blob), and the packed motions (motions[0] is None)."""

    frames: list[bytes]
    blobs: list[Blob]
    motions: list[bytes | None]
    motion_blobs: list[Blob | None]


class ChunkedFrames:
    """The frame loop of a run on a FramePool (a jobs.video.FrameLoop): see the
    module doc. Chunks are handed out in rounds of one per worker (Pool.run takes
    a fixed list of tasks), so a round lasts as long as its slowest chunk."""

    def __init__(self, pool: FramePool, chunking: Chunking | None = None) -> None:
        self.pool, self.chunking = pool, chunking or Chunking()

    def settings(self, options: VideoOptions) -> dict[str, Any]:
        """What decides the frames beyond a local run's settings: consistent mode's
        chunks (a local run continues no chunked run's frames, nor the reverse)."""
        if options.mode != "consistent":
            return {}
        chunking = self.chunking
        return {"chunks": {"frames": chunking.frames, "overlap": chunking.overlap, "blend": chunking.blend}}

    def __call__(self, run: VideoRun, request: Request, clip: Clip, fps: Fraction | None,
                 work: WorkFolder, on_event: EventCallback | None) -> None:
        _Run(self.pool, self.chunking, run, request, work, on_event).go(clip, fps)


class _Run:
    """One run of ChunkedFrames."""

    def __init__(self, pool: FramePool, chunking: Chunking, run: VideoRun, request: Request, work: WorkFolder,
                 on_event: EventCallback | None) -> None:
        self.pool, self.chunking, self.run, self.request = pool, chunking, run, request
        self.work, self.on_event = work, on_event
        self.finished: set[int] = set()
        self.chunks: list[Chunk] = []
        self.joins: dict[int, str] = {}  # first frame of a chunk -> continued | lead-in | blended
        self.failures: list[str] = []
        self.count = 0

    # ------------------------------------------------------------ preparing

    def go(self, clip: Clip, fps: Fraction | None) -> None:
        from nst.jobs.video import style_images  # noqa: PLC0415

        decoded = self._decode(clip, fps)
        self.count = len(decoded.frames)
        self.finished = {i for i in range(self.count) if self.work.frame_path(i).exists()}
        for index in sorted(self.finished):
            notify(self.on_event, JobEvent("skipped", f"frame {index + 1}", index, self.count,
                                           message="finished earlier"))
        self.run.resumed = len(self.finished)
        styles = tuple(self.pool.put(png_bytes(style), ".png") for style in style_images(self.request))

        def task(segments: Sequence[Segment], label: str) -> FrameTask:
            return FrameTask(self.run.config, self.run.options, self.request.device, styles, decoded.blobs[0],
                             tuple(segments), label)

        if self.run.options.mode == "consistent":
            self._chains(decoded, task)
        else:
            self._independent(decoded, task)
        if self.failures:
            raise NstRuntimeError("; ".join(self.failures) + f" (finished frames stay in {self.work.path})")
        self.run.frames = self.count
        self._measure(decoded)

    def _decode(self, clip: Clip, fps: Fraction | None) -> _Decoded:
        """Frames at the stylized size and, computed on the workers, their motions."""
        from nst.core.flow import flow_side  # noqa: PLC0415
        from nst.files.images import resize_longest  # noqa: PLC0415

        size = self.run.config.size
        assert size is not None
        frames: list[bytes] = []
        for_flow: list[Blob] = []
        for frame in read_frames(clip, fps, self.run.options.max_frames):
            picture = resize_longest(frame, size)
            self.run.size = picture.size
            frames.append(png_bytes(picture))
            for_flow.append(self.pool.put(png_bytes(resize_longest(frame, flow_side(size))), ".png"))
        if not frames:
            raise NstError(f"{clip.path} gave no frames")
        blobs = [self.pool.put(frame, ".png") for frame in frames]
        step = PAIRS_PER_FLOW_TASK
        groups = [for_flow[i:i + step + 1] for i in range(0, len(frames) - 1, step)]
        tasks = [MotionTask(tuple(group), self.run.size) for group in groups]
        motions: list[bytes | None] = [None] * len(frames)
        for done in self.pool.run(tasks):
            if done.error is not None:
                raise done.error
            for offset, packed in enumerate(done.value):
                motions[done.index * PAIRS_PER_FLOW_TASK + offset + 1] = packed
        self.pool.release(*for_flow)
        motion_blobs = [self.pool.put(m, ".npy") if m is not None else None for m in motions]
        return _Decoded(frames, blobs, motions, motion_blobs)

    # ------------------------------------------------------------ running

    def _store(self, made: Made, worker: str, counted: bool = True) -> None:
        """The driver's one write: a worker's frames into the work folder."""
        for (index, data), (warm, seconds) in zip(made.frames, made.times, strict=True):
            with atomic_path(self.work.frame_path(index)) as temporary:
                temporary.write_bytes(data)
            self.finished.add(index)
            if counted:
                self.run.frame_times.append(seconds)
                (self.run.warm_times if warm else self.run.fresh_times).append(seconds)
                notify(self.on_event, JobEvent("finished", f"frame {index + 1}", index, self.count, seconds,
                                               worker=worker))
            else:
                self.run.seam_time_s += seconds
        self.run.seam_time_s += made.lead_in_s

    def _started(self, tasks: Sequence[FrameTask]) -> Callable[[int, str], None]:
        def started(index: int, worker: str) -> None:
            task = tasks[index]
            label = _frames_label(task) if task.label != "blend" else "blend " + _frames_label(task)
            first = task.segments[0].keep
            notify(self.on_event, JobEvent("started", label, first, self.count, worker=worker))
        return started

    def _noted(self, text: str) -> None:
        notify(self.on_event, JobEvent("queued", text, total=None))

    def _independent(self, decoded: _Decoded, task: Callable[[Sequence[Segment], str], FrameTask]) -> None:
        self._alone([i for i in range(self.count) if i not in self.finished], decoded, task, "frame")

    def _alone(self, frames: Sequence[int], decoded: _Decoded,
               task: Callable[[Sequence[Segment], str], FrameTask], kind: str) -> None:
        """Each of `frames` from scratch as its own task; each stored as it finishes."""
        tasks = [task([Segment(i, (decoded.blobs[i],), (None,), i)], kind) for i in frames]
        for done in self.pool.run(tasks, self._started(tasks), self._noted):
            if done.error is not None:
                self.failures.append(f"{_frames_label(tasks[done.index])}: {done.error}")
            else:
                self._store(done.value[0], done.worker)

    def _chains(self, decoded: _Decoded, task: Callable[[Sequence[Segment], str], FrameTask]) -> None:
        """Consistent mode: rounds of chunks (and blends), one chunk per worker."""
        from nst.jobs.video import SCENE_CUT_SHARE  # noqa: PLC0415

        cuts = [t for t in range(1, self.count)
                if unpack_motion(_present(decoded.motions[t])).reliable_share < SCENE_CUT_SHARE]
        self.chunks = plan_chunks(self.count, cuts, self.chunking.frames)
        self.run.chunks = len(self.chunks)
        self.joins = self._read_joins()
        schedule = Schedule(self.chunks)
        for chunk in self.chunks:
            complete = all(i in self.finished for i in range(chunk.start, chunk.stop))
            (schedule.done if complete else schedule.pending).add(chunk.index)
        self._keyframes(decoded, task)
        kept = {*decoded.blobs, *(blob for blob in decoded.motion_blobs if blob is not None)}
        while not self.failures:
            parts: list[list[_Part]] = []
            for _ in range(max(1, len(self.pool.workers))):
                next_chunk = schedule.next()
                if next_chunk is None:
                    break
                parts.append([_Part(*self._chunk_segment(next_chunk, decoded), next_chunk)])
            blends = [_Part(self._blend_segment(chunk, decoded), "blend", None)
                      for chunk in self._blends_due(schedule.done)]
            if not parts and not blends:
                break
            # Blends are short: they ride along with the round's chunks.
            parts = parts or [[] for _ in range(min(len(blends), max(1, len(self.pool.workers))))]
            for k, blend in enumerate(blends):
                parts[k % len(parts)].append(blend)
            tasks = [task([part.segment for part in group], "frames" if group[0].chunk else "blend")
                     for group in parts]
            for done in self.pool.run(tasks, self._started(tasks), self._noted):
                if done.error is not None:
                    self.failures.append(f"{_frames_label(tasks[done.index])}: {done.error}")
                    continue
                for made, part in zip(done.value, parts[done.index], strict=True):
                    self._finish(made, part, done.worker, schedule)
            # Stored frames and composed motions served this round only (frames and motions stay).
            self.pool.release(*{blob for group in parts for part in group for blob in (
                part.segment.start, part.segment.anchor, part.segment.anchor_motion, *part.segment.toward)
                if blob is not None and blob not in kept})

    def _keyframes(self, decoded: _Decoded, task: Callable[[Sequence[Segment], str], FrameTask]) -> None:
        """The first round: the first frame of every shot that more than one worker
        will share, so that chunks starting inside the shot can be tied to it."""
        if len(self.pool.workers) < 2:
            return
        shots = sorted({c.shot for c in self.chunks if c.start != c.shot and c.shot not in self.finished})
        self._alone(shots, decoded, task, "frames")

    def _chunk_segment(self, chunk: Chunk, decoded: _Decoded) -> tuple[Segment, str]:
        """Frames [first missing, chunk.stop): continued from the stored frame before
        them when there is one, else after a lead-in. Returns how it joins."""
        missing = next(i for i in range(chunk.start, chunk.stop) if i not in self.finished)
        start = None
        if missing == chunk.shot:
            first, join = missing, "shot"
        elif missing - 1 in self.finished:
            first, join = missing, "continued"
            start = self._put_stored(missing - 1)
        else:
            first, join = max(chunk.shot, missing - self.chunking.overlap), "lead-in"
            reached = [f for f in range(max(chunk.shot, first - 1), missing) if f in self.finished]
            if reached:  # the lead-in reaches a finished frame: chained from it, the join is exact
                first, join = reached[-1] + 1, "overlap"
                start = self._put_stored(reached[-1])
        motions = tuple(decoded.motion_blobs[i] if i > first or start is not None else None
                        for i in range(first, chunk.stop))
        anchor, anchor_motion = self._anchor(chunk, first, decoded) if join == "lead-in" else (None, None)
        segment = Segment(first, tuple(decoded.blobs[first:chunk.stop]), motions, missing, start,
                          anchor=anchor, anchor_motion=anchor_motion)
        return segment, join if missing == chunk.start else "resumed"

    def _anchor(self, chunk: Chunk, first: int, decoded: _Decoded) -> tuple[Blob | None, Blob | None]:
        """The finished frame of the shot nearest before `first` (the frame a lead-in
        starts at) and the Motion of `first` relative to it, where that is trusted
        enough to tie a chain to; (None, None) otherwise."""
        from nst.jobs.video import SCENE_CUT_SHARE  # noqa: PLC0415

        earlier = [i for i in range(chunk.shot, first) if i in self.finished]
        if not earlier:
            return None, None
        anchor = earlier[-1]
        motion = compose_motions([unpack_motion(_present(decoded.motions[t]))
                                  for t in range(anchor + 1, first + 1)])
        if motion.reliable_share < SCENE_CUT_SHARE:
            return None, None
        return self._put_stored(anchor), self.pool.put(pack_motion(motion), ".npy")

    def _put_stored(self, index: int) -> Blob:
        """A finished frame from the work folder, into the pool."""
        return self.pool.put(self.work.frame_path(index).read_bytes(), ".png")

    def _blends_due(self, done: set[int]) -> list[Chunk]:
        """Chunks joined after a lead-in whose both sides are now finished."""
        if not self.chunking.blend:
            return []
        return [chunk for chunk in self.chunks
                if self.joins.get(chunk.start) == "lead-in" and chunk.blended(self.chunking.overlap) > 0
                and chunk.index in done and chunk.index - 1 in done]

    def _blend_segment(self, chunk: Chunk, decoded: _Decoded) -> Segment:
        length = chunk.blended(self.chunking.overlap)
        start, stop = chunk.start, chunk.start + length
        stored = tuple(self._put_stored(i) for i in range(start, stop))
        previous = self._put_stored(start - 1)
        motions = tuple(decoded.motion_blobs[start:stop])
        return Segment(start, tuple(decoded.blobs[start:stop]), motions, start, previous, stored)

    def _finish(self, made: Made, part: _Part, worker: str, schedule: Schedule) -> None:
        if part.chunk is None:  # a blend: its frames replace the chunk's first ones
            self._store(made, worker, counted=False)
            self._set_join(part.segment.first, "blended")
            return
        if part.join in ("continued", "overlap", "lead-in"):
            self._set_join(part.chunk.start, part.join)  # before the frames: a blend is never forgotten
        self._store(made, worker)
        schedule.done.add(part.chunk.index)

    # ------------------------------------------------------------ joins.json

    def _read_joins(self) -> dict[int, str]:
        try:
            from nst.jobs.video import JOINS_FILE  # noqa: PLC0415

            stored = json.loads((self.work.path / JOINS_FILE).read_text())
            return {int(k): str(v) for k, v in stored.items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def _set_join(self, frame: int, join: str) -> None:
        self.joins[frame] = join
        from nst.jobs.video import JOINS_FILE  # noqa: PLC0415

        joins = {str(k): v for k, v in sorted(self.joins.items())}
        write_text_atomic(self.work.path / JOINS_FILE, json.dumps(joins))

    # ------------------------------------------------------------ measuring

    def _measure(self, decoded: _Decoded) -> None:
        """The warping errors, overall and (consistent mode) split into seams (a
        chunk's first frame against the frame before it, with the frames a blend
        re-made) and the pairs inside chunks."""
        from nst.core.flow import warping_error  # noqa: PLC0415

        seams: dict[int, int] = {}  # pair index -> first frame of its chunk
        for chunk in self.chunks:
            if chunk.start != chunk.shot:
                blended = self.joins.get(chunk.start) == "blended"
                length = chunk.blended(self.chunking.overlap) if blended else 0
                seams.update({t: chunk.start for t in range(chunk.start, chunk.start + length + 1)})
        shots = {chunk.shot for chunk in self.chunks}
        errors: dict[int, list[float]] = {}
        previous: tuple[Tensor, Tensor] | None = None
        for index, frame in enumerate(decoded.frames):
            content = png_tensor(frame)
            stylized = self.work.load(index, content.device)
            packed = decoded.motions[index]
            if previous is not None and packed is not None:
                motion = unpack_motion(packed)
                error = warping_error(stylized, previous[1], motion)
                self.run.warping_errors.append(error)
                self.run.input_warping_errors.append(warping_error(content, previous[0], motion))
                if index in seams:
                    errors.setdefault(seams[index], []).append(error)
                elif self.chunks and index not in shots:
                    self.run.inside_errors.append(error)
            previous = (content, stylized)
        self.run.seams = [(self.joins.get(start, "earlier run"), tuple(values))
                          for start, values in sorted(errors.items())]


@dataclass(frozen=True)
class _Part:
    """A segment of a round: how it joins (shot, continued, lead-in, resumed, blend)
    and its chunk (None for a blend)."""

    segment: Segment
    join: str
    chunk: Chunk | None


def _frames_label(task: FrameTask) -> str:
    first = task.segments[0]
    if first.stop - first.keep == 1:
        return f"frame {first.stop}"
    return f"frames {first.keep + 1}-{first.stop}"


def _present(packed: bytes | None) -> bytes:
    assert packed is not None
    return packed


# ------------------------------------------------------------ entry points


def stylize_video_on_pool(
    config: Config,
    options: VideoOptions,
    source: str | Path,
    styles: Sequence[str | Path],
    output: str | Path,
    pool: FramePool,
    chunking: Chunking | None = None,
    on_event: EventCallback | None = None,
    restart: bool = False,
    command: str = "nst video",
    prepared: tuple[Request, Clip] | None = None,
) -> VideoRun:
    """jobs.video.stylize_video with the frames made on `pool` (see the module
    doc): the same checks, work folder, resume rule and output."""
    from nst.jobs.video import stylize_video  # noqa: PLC0415

    frames = ChunkedFrames(pool, chunking)
    return stylize_video(config, options, source, styles, output, on_event, restart, command, prepared,
                         frames=frames, extra_settings=frames.settings(options))


def stylize_video_on_cluster(
    cluster: ClusterOptions,
    config: Config,
    options: VideoOptions,
    source: str | Path,
    styles: Sequence[str | Path],
    output: str | Path,
    chunking: Chunking | None = None,
    on_event: EventCallback | None = None,
    restart: bool = False,
    command: str = "nst video",
    prepared: tuple[Request, Clip] | None = None,
) -> VideoRun:
    """`nst video --cluster`: a Pool started for the run (prepared: prepare_video's
    answer for the workers' device kind, `run_on=cluster.device_kind`)."""
    from nst.cluster.connect import parse_address  # noqa: PLC0415
    from nst.cluster.pool import Pool  # noqa: PLC0415
    from nst.jobs.video_request import prepare_video  # noqa: PLC0415

    prepared = prepared or prepare_video(config, options, source, styles, output, run_on=cluster.device_kind)
    with Pool(cluster) as pool:
        expected = cluster.workers or parse_address(cluster.address)[1]
        if expected and options.mode == "consistent":  # the chunks are planned for the workers up
            pool.wait_for_workers(expected, WAIT_FOR_WORKERS_S)
        return stylize_video_on_pool(config, options, source, styles, output, pool, chunking, on_event,
                                     restart, command, prepared)


def chunk_summary(done: VideoRun) -> str:
    """The seams of a chunked run next to the inside of its chunks, for the CLI."""
    kinds: dict[str, int] = {}
    for join, _ in done.seams:
        kinds[join] = kinds.get(join, 0) + 1
    how = ", ".join(f"{count} {join}" for join, count in sorted(kinds.items()))
    seams = f"{done.seam_error:.4f} ({how})" if done.seams else "none (no chunk began inside a shot)"
    ratio = f": seams {done.seam_error / done.inside_error:.2f}x the inside" \
        if done.seams and done.inside_error > 0 else ""
    extra = f"; {done.seam_time_s:.1f} s on lead-ins and blends" if done.seam_time_s else ""
    return (f"chunks: {done.chunks}; warping error at their seams {seams}, inside chunks "
            f"{done.inside_error:.4f}{ratio}{extra}")
