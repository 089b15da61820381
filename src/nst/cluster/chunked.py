"""The driver of a video run on a pool of workers (ChunkedFrames, a jobs.video.FrameLoop).

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

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from nst.cluster.chunks import Chunk, Chunking, Schedule, plan_chunks
from nst.cluster.frame_tasks import FrameTask, Made, MotionTask, Segment
from nst.cluster.local_pool import FramePool
from nst.cluster.packing import compose_motions, pack_motion, png_bytes, png_tensor, unpack_motion
from nst.cluster.worker import Blob
from nst.errors import NstError, NstRuntimeError
from nst.events import EventCallback, JobEvent, notify
from nst.files.atomic import atomic_path, write_text_atomic
from nst.files.frames import Clip, read_frames
from nst.jobs.request import Request
from nst.jobs.video_request import VideoOptions

if TYPE_CHECKING:
    from torch import Tensor

    from nst.jobs.video import VideoRun, WorkFolder

# Frame pairs per flow task: enough to outweigh a task's overhead.
PAIRS_PER_FLOW_TASK = 8


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
        decoder = self._put_decoder()

        def task(segments: Sequence[Segment], label: str) -> FrameTask:
            return FrameTask(self.run.config, self.run.options, self.request.device, styles, decoded.blobs[0],
                             tuple(segments), label, decoder)

        if self.run.options.mode == "consistent":
            self._chains(decoded, task)
        else:
            self._independent(decoded, task)
        if self.failures:
            raise NstRuntimeError("; ".join(self.failures) + f" (finished frames stay in {self.work.path})")
        self.run.frames = self.count
        self._measure(decoded)

    def _put_decoder(self) -> Blob | None:
        """The request's decoder file (--method fast, --init fast) into the pool, by its hash."""
        decoder = self.request.decoder
        if decoder is None or decoder.path is None:
            return None
        try:
            data = decoder.path.read_bytes()
        except OSError as error:
            raise NstError(f"cannot read decoder file {decoder.path}: {error.strerror or error}") from None
        return self.pool.put(data, ".safetensors", decoder.sha256)

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

