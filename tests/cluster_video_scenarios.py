"""`nst video` on a real two-node Ray cluster on 127.0.0.1 (tests/test_cluster_video.py).

    unshare -n sh -c 'ip link set lo up && exec python tests/cluster_video_scenarios.py WORKDIR'

Run it in a network namespace with only loopback (see tests/cluster_scenarios.py,
whose cluster this copies: a head and a second node, one CPU each). It prints one
JSON line per scenario, `{"scenario": NAME, ...}`, and shuts the cluster down
however the run ends (an alarm bounds it).

consistent: a 6-frame clip to GIF locally and on the cluster in chunks of 3
(overlap 1: the second chunk starts with a lead-in tied to the first frame, and
is blended in), compared. resume: the cluster run interrupted once a frame of the
second round is stored, then run again.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from clips import sliding_frames
from nst.samples import sample_path

TIME_LIMIT_S = 150
FRAMES = 6


def emit(name: str, **fields: Any) -> None:
    print(json.dumps({"scenario": name, **fields}), flush=True)


def gif_frames(path: Path) -> list[np.ndarray]:
    from nst.files.frames import open_clip, read_frames

    return [np.asarray(frame, dtype=np.int16) for frame in read_frames(open_clip(path))]


def run_video(work: Path) -> None:
    """Both scenarios; the interrupted run shares the first run's pool, and the
    rerun starts its own, as a new driver would."""
    import torch

    from nst.cluster.chunks import Chunking
    from nst.cluster.connect import ClusterOptions
    from nst.cluster.pool import Pool
    from nst.cluster.video import stylize_video_on_pool
    from nst.config import Config
    from nst.events import Event, JobEvent
    from nst.files.frames import open_clip, write_clip
    from nst.jobs.video import WorkFolder, stylize_video
    from nst.jobs.video_request import VideoOptions, prepare_video

    torch.set_num_threads(1)  # as each worker (one CPU each): the same arithmetic
    clip = write_clip(sliding_frames(count=FRAMES), work / "in.gif", Fraction(10))
    config, options = Config(size=48, steps=16, seed=0, device="cpu"), VideoOptions()
    styles = [sample_path("starry_night")]
    chunking = Chunking(frames=3, overlap=1)
    local = stylize_video(prepare_video(config, options, clip, styles, work / "local.gif"))
    events: list[JobEvent] = []

    def keep(event: Event) -> None:
        if isinstance(event, JobEvent):
            events.append(event)

    def stop_in_second_round(event: Event) -> None:  # frame 1 is the first round (the shot's first frame)
        if isinstance(event, JobEvent) and event.status == "finished" and event.index > 0:
            raise KeyboardInterrupt

    resumed = work / "resumed.gif"
    interrupted = False
    started = time.perf_counter()
    with Pool(ClusterOptions("auto", workers=2)) as pool:
        up = pool.wait_for_workers(2, 60)
        nodes = {w.name: w.node for w in pool.workers}
        done = stylize_video_on_pool(prepare_video(config, options, clip, styles, work / "cluster.gif"), pool,
                                     chunking, on_event=keep)
        cluster_s = time.perf_counter() - started
        try:
            stylize_video_on_pool(prepare_video(config, options, clip, styles, resumed), pool, chunking,
                                  on_event=stop_in_second_round)
        except KeyboardInterrupt:
            interrupted = True
    a, b = gif_frames(work / "local.gif"), gif_frames(work / "cluster.gif")
    finished = [e for e in events if e.status == "finished"]
    emit("consistent", workers_up=up, frames=[len(a), len(b)],
         sizes=[list(open_clip(work / "local.gif").size), list(open_clip(work / "cluster.gif").size)],
         first_chunk_max_diff=int(max(np.abs(x - y).max() for x, y in zip(a[:3], b[:3], strict=True))),
         local_error=local.warping_error, cluster_error=done.warping_error, seam_error=done.seam_error,
         inside_error=done.inside_error, seams=done.seams, chunks=done.chunks,
         finished=sorted(e.index for e in finished), workers_used=sorted({e.worker for e in finished}),
         nodes_used=len({nodes.get(e.worker) for e in finished}), cluster_s=round(cluster_s, 1))

    work_folder = WorkFolder(resumed)
    kept = sorted(p.name for p in work_folder.path.glob("frame_*.png"))
    mtimes = {name: (work_folder.path / name).stat().st_mtime_ns for name in kept}
    events.clear()

    def untouched_keep(event: Event) -> None:
        keep(event)
        if isinstance(event, JobEvent) and event.status == "finished":
            untouched.append(all((work_folder.path / n).stat().st_mtime_ns == t for n, t in mtimes.items()))

    untouched: list[bool] = []
    with Pool(ClusterOptions("auto", workers=2)) as pool:
        pool.wait_for_workers(2, 60)
        again = stylize_video_on_pool(prepare_video(config, options, clip, styles, resumed), pool, chunking,
                                      on_event=untouched_keep)
    emit("resume", interrupted=interrupted, kept=kept, untouched=all(untouched) and bool(untouched),
         skipped=sorted(e.index for e in events if e.status == "skipped"),
         finished=sorted(e.index for e in events if e.status == "finished"), resumed=again.resumed,
         frames=len(gif_frames(resumed)), work_left=work_folder.path.exists(), seams=again.seams)


SCENARIOS = {"video": run_video}


def main(argv: list[str]) -> int:
    work = Path(argv[0])
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

    def out_of_time(signum: int, frame: Any) -> None:
        raise TimeoutError(f"scenarios ran past {TIME_LIMIT_S} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(TIME_LIMIT_S)
    import ray
    from ray.cluster_utils import Cluster

    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    status = 0
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes(timeout=60)
        os.environ["RAY_ADDRESS"] = cluster.address
        emit("cluster", address=cluster.address, up_s=round(time.perf_counter() - started, 1))
        for name, scenario in SCENARIOS.items():
            began = time.perf_counter()
            try:
                scenario(work)
            except Exception:  # noqa: BLE001  (reported, and the next scenario still runs)
                emit(name, error=traceback.format_exc(limit=8))
                status = 1
            print(f"# {name}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    finally:
        signal.alarm(0)
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
