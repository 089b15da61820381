"""`nst video --method fast` end to end on the real VGG19 (to relu3_1) and a tiny
decoder file: every frame written, an interrupted run resumed, optimization options
refused in one line with nothing written."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from clips import one_torch_thread, sliding_frames  # noqa: F401 (an autouse fixture)
from fastkit import tiny_decoder
from nst.cli.app import main
from nst.config import Config
from nst.events import JobEvent
from nst.files.frames import open_clip, read_frames, write_clip
from nst.jobs.video import WorkFolder, stylize_video
from nst.jobs.video_request import VideoOptions, prepare_video


@pytest.fixture
def clip_path(tmp_path: Path) -> Path:
    return write_clip(sliding_frames(count=4), tmp_path / "in.gif", Fraction(10))


@pytest.fixture
def decoder(tmp_path: Path) -> Path:
    return tiny_decoder(tmp_path / "d.safetensors")


def _config(decoder: Path) -> Config:
    return Config(method="fast", decoder=str(decoder), size=32, device="cpu", precision="fp32")


def test_cli_writes_every_frame_with_the_fast_path(clip_path: Path, style_path: Path, decoder: Path,
                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    output = tmp_path / "out.gif"
    rc = main(["video", str(clip_path), str(style_path), "-o", str(output), "--method", "fast",
               "--decoder", str(decoder), "--size", "32", "--device", "cpu", "-q"])
    assert rc == 0
    out = open_clip(output)
    assert (out.frame_count, out.size) == (4, (32, 21))
    err = capsys.readouterr().err
    assert "--method fast" in err and "frames per second" in err and "warping error" in err


def test_an_interrupted_fast_video_resumes(clip_path: Path, style_path: Path, decoder: Path,
                                           tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"

    def stop_after_two(event: object) -> None:
        if isinstance(event, JobEvent) and event.status == "finished" and event.index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stylize_video(prepare_video(_config(decoder), VideoOptions(), clip_path, [style_path], output),
                      on_event=stop_after_two)
    assert not output.exists() and WorkFolder(output).finished() == 2
    events: list[object] = []
    done = stylize_video(prepare_video(_config(decoder), VideoOptions(), clip_path, [style_path], output),
                         on_event=events.append)
    ends = [e.status for e in events if isinstance(e, JobEvent) and e.status in ("skipped", "finished")]
    assert ends == ["skipped", "skipped", "finished", "finished"]
    assert done.resumed == 2 and len(list(read_frames(open_clip(output)))) == 4
    assert done.config.seed is None and len(done.warping_errors) == 3


@pytest.mark.parametrize("option", [["--frame-steps", "3"], ["--steps", "10"], ["--seed", "1"]])
def test_optimization_options_are_refused_in_one_line(clip_path: Path, style_path: Path, decoder: Path,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      option: list[str]) -> None:
    output = tmp_path / "out.gif"
    rc = main(["video", str(clip_path), str(style_path), "-o", str(output), "--method", "fast",
               "--decoder", str(decoder), "--size", "32", "--device", "cpu", *option])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and option[0].lstrip("-") in err, err
    assert not output.exists() and not WorkFolder(output).path.exists()


@pytest.mark.parametrize("mode", ["independent", "consistent"])
def test_fast_frames_on_a_pool_of_workers_match_a_local_run(clip_path: Path, style_path: Path, decoder: Path,
                                                            tmp_path: Path, mode: str) -> None:
    """The cluster's frame tasks (in this process, two planned workers, independent frames
    batched 2 at a time) with the decoder sent as a blob: the frames of a local run."""
    from nst.cluster.local_pool import InProcessPool
    from nst.cluster.video import stylize_video_on_pool

    options = VideoOptions(mode=mode)
    local_run = stylize_video(prepare_video(_config(decoder), options, clip_path, [style_path],
                                            tmp_path / "local.gif"))
    with InProcessPool(2, batch_size=2) as pool:
        pooled = stylize_video_on_pool(prepare_video(_config(decoder), options, clip_path, [style_path],
                                                     tmp_path / "pool.gif", run_on="cpu"), pool)
    assert pooled.frames == local_run.frames == 4
    local_frames = [frame.tobytes() for frame in read_frames(open_clip(tmp_path / "local.gif"))]
    pool_frames = [frame.tobytes() for frame in read_frames(open_clip(tmp_path / "pool.gif"))]
    assert len(pool_frames) == 4
    if mode == "independent":
        assert max(max(abs(a - b) for a, b in zip(x, y, strict=True))
                   for x, y in zip(local_frames, pool_frames, strict=True)) <= 1
