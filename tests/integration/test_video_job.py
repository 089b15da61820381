"""The one object a video run is given (jobs.video_request.VideoJob): built once
by prepare_video, with what the run needs beyond the Request (clip, output,
restart, the lock's command), and refused by the cluster door when it was
prepared for another device kind than the workers'. No frame is stylized here."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import pytest

from clips import sliding_frames
from nst.cluster.connect import ClusterOptions
from nst.cluster.pool import Pool
from nst.cluster.video import stylize_video_on_cluster
from nst.config import Config
from nst.files.frames import write_clip
from nst.jobs.video_request import VideoJob, VideoOptions, prepare_video

CONFIG = Config(size=32, steps=4, seed=0, device="cpu")


@pytest.fixture
def clip_path(tmp_path: Path) -> Path:
    return write_clip(sliding_frames(count=2), tmp_path / "in.gif", Fraction(10))


def test_prepare_video_builds_the_whole_job(clip_path: Path, style_path: Path, tmp_path: Path) -> None:
    job = prepare_video(CONFIG, VideoOptions(fps=5), clip_path, [style_path], str(tmp_path / "out.gif"),
                        restart=True, command="nst video in.gif")
    assert isinstance(job, VideoJob) and job.output == tmp_path / "out.gif"
    assert job.restart and job.command == "nst video in.gif" and job.fps == Fraction(5)
    assert job.clip.path == clip_path and job.request.config.task == "transfer"
    assert prepare_video(CONFIG, VideoOptions(), clip_path, [style_path], tmp_path / "o.gif").fps is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.restart = False  # type: ignore[misc]


def test_the_cluster_door_refuses_a_job_prepared_for_another_device(clip_path: Path, style_path: Path,
                                                                   tmp_path: Path) -> None:
    job = prepare_video(CONFIG.replace(device="auto"), VideoOptions(), clip_path, [style_path],
                        tmp_path / "out.gif", run_on="cuda")
    pool = Pool(ClusterOptions("local:1"))  # never started: the check comes first
    with pytest.raises(ValueError, match="prepared for cuda.*run_on='cpu'"):
        stylize_video_on_cluster(pool, job)
    assert pool.connection is None and not (tmp_path / "out.gif.nst-work").exists()
