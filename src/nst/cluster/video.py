"""`nst video --cluster`: the frames of a clip stylized by a pool of workers.

The doors of a run on a pool (`stylize_video_on_pool`, `stylize_video_on_cluster`)
and the summary of its chunks. The run itself is jobs.video.stylize_video, with
its frames made by nst.cluster.chunked.ChunkedFrames; the modules behind it:

chunks.py       how consistent mode cuts a clip: Chunking, plan_chunks, Schedule
packing.py      what travels: frames as PNG bytes, optical flow packed
frame_tasks.py  the tasks a worker runs: MotionTask, FrameTask (make_frames)
local_pool.py   FramePool (what the driver needs of a pool) and InProcessPool
chunked.py      the driver: rounds of chunks, joins and blends, the work folder
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nst.cluster.chunked import ChunkedFrames
from nst.cluster.chunks import Chunking
from nst.cluster.local_pool import FramePool
from nst.events import EventCallback
from nst.jobs.video_request import VideoJob

if TYPE_CHECKING:
    from nst.cluster.pool import Pool
    from nst.jobs.video import VideoRun

# How long a consistent run waits for the workers it asked for before planning rounds.
WAIT_FOR_WORKERS_S = 60.0


def stylize_video_on_pool(job: VideoJob, pool: FramePool, chunking: Chunking | None = None,
                          on_event: EventCallback | None = None) -> VideoRun:
    """jobs.video.stylize_video with the frames made on `pool` (see
    nst.cluster.chunked): the same checks, work folder, resume rule and output."""
    from nst.jobs.video import stylize_video  # noqa: PLC0415

    frames = ChunkedFrames(pool, chunking)
    return stylize_video(job, on_event, frames, frames.settings(job.options))


def stylize_video_on_cluster(pool: Pool, job: VideoJob, chunking: Chunking | None = None,
                             on_event: EventCallback | None = None) -> VideoRun:
    """`nst video --cluster`: the run on `pool`, a Pool for this run (new or only
    reached: its workers start here; closed at the end). job: prepared for the
    workers' device kind (prepare_video(..., run_on=pool.options.device_kind))."""
    from nst.cluster.connect import parse_address  # noqa: PLC0415

    cluster = pool.options
    if job.request.device.split(":")[0] != cluster.device_kind:
        raise ValueError(f"the job was prepared for {job.request.device}, the workers compute on "
                         f"{cluster.device_kind}: prepare it with run_on={cluster.device_kind!r}")
    with pool:
        expected = cluster.workers or parse_address(cluster.address)[1]
        if expected and job.options.mode == "consistent":  # the chunks are planned for the workers up
            pool.wait_for_workers(expected, WAIT_FOR_WORKERS_S)
        return stylize_video_on_pool(job, pool, chunking, on_event)


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
