"""`nst video` on a Ray cluster: a consistent video in chunks on a real two-node
cluster (tests/cluster_video_scenarios.py, in a loopback-only network namespace,
as tests/test_cluster.py explains), compared with the local run; an interrupted
cluster run resumed. Without `unshare -n` those are skipped, unless
NST_REQUIRE_CLUSTER=1. The chunking itself (plan, schedule, seams, resume) is
tested without Ray, on InProcessPool, which runs the same tasks in this process.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clips import one_torch_thread, sliding_frames  # noqa: F401 (an autouse fixture)
from clusterkit import require_loopback_cluster, run_scenarios, scenario
from nst.cluster.chunks import Chunk, Chunking, Schedule, plan_chunks
from nst.cluster.local_pool import InProcessPool
from nst.cluster.packing import compose_motions, pack_motion, unpack_motion
from nst.cluster.video import stylize_video_on_pool
from nst.config import Config
from nst.errors import NstError
from nst.events import Event, JobEvent
from nst.files.frames import open_clip, read_frames, write_clip
from nst.jobs.video import WorkFolder, stylize_video
from nst.jobs.video_request import VideoOptions, prepare_video

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 170
CONFIG = Config(size=32, steps=16, seed=0, device="cpu")
# A chunk started inside a shot and blended in, against the frames inside chunks
# (warping error): what the issue allows. The 6-frame clip of the cluster scenario,
# at 48 px, gives 1.25 (at 32 px, where the border is a large share of the picture,
# reflection padding moved it from 1.40 to 1.60; benchmarks/video_chunks.py at
# 128 px: 1.41, against 1.48 with zero padding).
SEAM_BOUND = 1.5


def _frames(path: Path) -> list[np.ndarray]:
    return [np.asarray(frame, dtype=np.int16) for frame in read_frames(open_clip(path))]


@pytest.fixture
def clip_path(tmp_path: Path) -> Path:
    return write_clip(sliding_frames(count=6), tmp_path / "in.gif", Fraction(10))


# ------------------------------------------------------------------ without Ray


def test_chunks_split_at_scene_cuts_and_into_equal_parts() -> None:
    assert plan_chunks(10, [], 4) == [Chunk(0, 0, 3, 0), Chunk(1, 3, 7, 0), Chunk(2, 7, 10, 0)]
    assert plan_chunks(10, [6], 4) == [Chunk(0, 0, 3, 0), Chunk(1, 3, 6, 0), Chunk(2, 6, 10, 6)]
    assert plan_chunks(3, [], 24) == [Chunk(0, 0, 3, 0)]
    with pytest.raises(NstError, match="chunk-frames"):
        Chunking(frames=0)


def test_the_schedule_continues_chains_and_splits_the_longest_stretch() -> None:
    chunks = plan_chunks(48, [], 8)  # six chunks of one shot
    schedule = Schedule(chunks, pending={c.index for c in chunks})
    first_round = [schedule.next(), schedule.next()]
    assert [c.index for c in first_round if c] == [0, 3]  # two workers: chains from 0 and from 3
    schedule.done |= {0, 3}
    assert [c.index for c in (schedule.next(), schedule.next()) if c] == [1, 4]  # both continue


def test_motions_travel_exactly_and_compose(clip_path: Path) -> None:
    from nst.core.flow import motion_between
    from nst.files.images import to_tensor

    frames = [to_tensor(frame) for frame in sliding_frames(count=3, width=96, height=64, shift=2)]
    steps = [motion_between(a, b) for a, b in zip(frames, frames[1:], strict=False)]
    again = unpack_motion(pack_motion(steps[0]))
    assert np.array_equal(again.backward, steps[0].backward)
    assert np.array_equal(again.weights, steps[0].weights)
    both = compose_motions(steps)  # frame 2 relative to frame 0: 4 px to the left, where it was
    inside = both.weights > 0.9
    assert inside.mean() > 0.5 and abs(float(np.median(both.backward[..., 0][inside])) + 4) < 0.5


def test_one_worker_makes_the_local_video(clip_path: Path, style_path: Path, tmp_path: Path) -> None:
    local = stylize_video(prepare_video(CONFIG, VideoOptions(), clip_path, [style_path],
                                        tmp_path / "local.gif"))
    with InProcessPool(1) as pool:
        job = prepare_video(CONFIG, VideoOptions(), clip_path, [style_path], tmp_path / "one.gif")
        done = stylize_video_on_pool(job, pool, Chunking(frames=2, overlap=1))
    assert done.chunks == 3 and [join for join, _ in done.seams] == ["continued", "continued"]
    assert all(np.array_equal(a, b) for a, b in zip(_frames(tmp_path / "local.gif"),
                                                     _frames(tmp_path / "one.gif"), strict=True))
    assert done.warping_error == pytest.approx(local.warping_error)


def test_independent_frames_on_workers_equal_local_ones(clip_path: Path, style_path: Path,
                                                        tmp_path: Path) -> None:
    options = VideoOptions(mode="independent")
    stylize_video(prepare_video(CONFIG, options, clip_path, [style_path], tmp_path / "local.gif"))
    with InProcessPool(2) as pool:
        done = stylize_video_on_pool(prepare_video(CONFIG, options, clip_path, [style_path],
                                                   tmp_path / "pool.gif"), pool)
    assert done.frames == 6 and done.chunks == 0 and not done.seams
    assert all(np.array_equal(a, b) for a, b in zip(_frames(tmp_path / "local.gif"),
                                                     _frames(tmp_path / "pool.gif"), strict=True))
    with InProcessPool(2, batch_size=3) as pool:  # frames optimized three at a time: close to alone
        batched = prepare_video(CONFIG, options, clip_path, [style_path], tmp_path / "batched.gif")
        stylize_video_on_pool(batched, pool)
    differences = [np.abs(a - b).mean() for a, b in zip(_frames(tmp_path / "local.gif"),
                                                        _frames(tmp_path / "batched.gif"), strict=True)]
    assert len(differences) == 6 and max(differences) < 8, differences


def test_chunked_frames_resume_and_refuse_other_chunking(clip_path: Path, style_path: Path,
                                                         tmp_path: Path) -> None:
    output = tmp_path / "out.gif"

    def stop(event: Event) -> None:
        if isinstance(event, JobEvent) and event.status == "finished" and event.index >= 2:
            raise KeyboardInterrupt

    with InProcessPool(2) as pool, pytest.raises(KeyboardInterrupt):
        stylize_video_on_pool(prepare_video(CONFIG, VideoOptions(), clip_path, [style_path], output), pool,
                              Chunking(3, 1), on_event=stop)
    work = WorkFolder(output)
    kept = sorted(p.name for p in work.path.glob("frame_*.png"))
    assert 2 <= len(kept) < 6
    with pytest.raises(NstError, match="other settings .*chunks"):
        # A local run continues no chunked run's frames.
        stylize_video(prepare_video(CONFIG, VideoOptions(), clip_path, [style_path], output))
    events: list[JobEvent] = []
    with InProcessPool(2) as pool:
        done = stylize_video_on_pool(prepare_video(CONFIG, VideoOptions(), clip_path, [style_path], output),
                                     pool, Chunking(3, 1), on_event=lambda e: events.append(e) if isinstance(
                                         e, JobEvent) else None)
    assert done.resumed == len(kept) and len(_frames(output)) == 6 and not work.path.exists()
    assert len([e for e in events if e.status == "skipped"]) == len(kept)
    assert len([e for e in events if e.status == "finished"]) == 6 - len(kept)


# ------------------------------------------------------------------ on a two-node cluster


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    require_loopback_cluster()
    work = tmp_path_factory.mktemp("cluster-video")
    return run_scenarios("cluster_video_scenarios.py", [str(work)], TIMEOUT_S, "cluster video scenarios")




def test_a_consistent_video_in_chunks_on_two_nodes(scenarios: dict[str, dict[str, Any]]) -> None:
    video = scenario(scenarios, "consistent")
    assert video["workers_up"] == 2 and video["nodes_used"] == 2, video  # both nodes made frames
    assert video["frames"] == [6, 6] and video["sizes"][0] == video["sizes"][1]
    assert video["finished"] == list(range(6))  # each frame written once
    assert video["chunks"] == 2
    assert video["first_chunk_max_diff"] == 0  # the first chunk is the local chain itself
    # The second chunk began inside the shot: tied to frame 1, then blended in.
    assert [join for join, _ in video["seams"]] == ["blended"]
    assert video["seam_error"] <= SEAM_BOUND * video["inside_error"], video
    assert video["cluster_error"] <= 1.3 * video["local_error"], video


def test_an_interrupted_cluster_video_resumes(scenarios: dict[str, dict[str, Any]]) -> None:
    resume = scenario(scenarios, "resume")
    kept = [int(name.removeprefix("frame_").removesuffix(".png")) - 1 for name in resume["kept"]]
    assert resume["interrupted"] and 2 <= len(kept) < 6, resume
    assert resume["skipped"] == kept  # finished frames are not made again, nor rewritten
    assert resume["finished"] == [i for i in range(6) if i not in kept] and resume["untouched"]
    assert resume["resumed"] == len(resume["kept"]) and resume["frames"] == 6 and not resume["work_left"]
