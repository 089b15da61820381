"""`nst video` end to end at tiny sizes: both modes, resume, bad inputs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from clips import one_torch_thread, sliding_frames  # noqa: F401 (an autouse fixture)
from nst.cli.app import main
from nst.config import Config
from nst.errors import NstError
from nst.events import JobEvent
from nst.files.frames import open_clip, read_frames, write_clip
from nst.jobs.video import WorkFolder, stylize_video
from nst.jobs.video_request import VideoOptions, prepare_video

CONFIG = Config(size=32, steps=16, seed=0, device="cpu")


@pytest.fixture
def clip_path(tmp_path: Path) -> Path:
    return write_clip(sliding_frames(count=4), tmp_path / "in.gif", Fraction(10))


def test_consistent_mode_flickers_less_than_independent(
    clip_path: Path, style_path: Path, tmp_path: Path
) -> None:
    runs = {}
    for mode in ("independent", "consistent"):
        runs[mode] = stylize_video(prepare_video(CONFIG, VideoOptions(mode=mode), clip_path, [style_path],
                                                 tmp_path / f"{mode}.gif"))
        out = open_clip(tmp_path / f"{mode}.gif")
        assert (out.frame_count, out.size, out.fps) == (4, (32, 21), 10)
        assert not WorkFolder(tmp_path / f"{mode}.gif").path.exists()  # cleaned up once written
    independent, consistent = runs["independent"], runs["consistent"]
    assert len(consistent.warping_errors) == 3
    assert consistent.warping_error < independent.warping_error / 2
    # Frames after the first are warm-started with a quarter of the steps.
    assert len(consistent.fresh_times) == 1 and len(consistent.warm_times) == 3
    assert len(independent.fresh_times) == 4 and not independent.warm_times


def test_interrupted_run_resumes_from_the_last_finished_frame(
    clip_path: Path, style_path: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out.mp4"

    def stop_after_two(event: object) -> None:
        if isinstance(event, JobEvent) and event.status == "finished" and event.index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        job = prepare_video(CONFIG.replace(seed=None), VideoOptions(), clip_path, [style_path], output)
        stylize_video(job, on_event=stop_after_two)
    work = WorkFolder(output)
    assert not output.exists() and work.finished() == 2
    events: list[object] = []
    done = stylize_video(prepare_video(CONFIG.replace(seed=None), VideoOptions(), clip_path, [style_path],
                                       output), on_event=events.append)
    ends = [e.status for e in events if isinstance(e, JobEvent) and e.status in ("skipped", "finished")]
    assert ends == ["skipped", "skipped", "finished", "finished"]
    assert done.resumed == 2 and len(list(read_frames(open_clip(output)))) == 4
    assert not work.path.exists()


def test_changed_settings_do_not_mix_with_finished_frames(
    clip_path: Path, style_path: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out.gif"
    work = WorkFolder(output)
    work.start({"request": {"inputs": [["content", "0" * 64]]}})
    with pytest.raises(NstError, match="other settings .*request.*--restart"):
        stylize_video(prepare_video(CONFIG, VideoOptions(max_frames=2), clip_path, [style_path], output))
    done = stylize_video(prepare_video(CONFIG, VideoOptions(max_frames=2), clip_path, [style_path], output,
                                       restart=True))
    assert done.frames == 2 and done.resumed == 0


def test_cli_prints_the_warping_error(clip_path: Path, style_path: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "frames"
    status = main(["video", str(clip_path), str(style_path), "-o", str(output), "--size", "32",
                   "--steps", "8", "--max-frames", "2", "--mode", "independent", "--seed", "1", "-q"])
    assert status == 0
    assert sorted(p.name for p in output.iterdir()) == ["frame_00001.png", "frame_00002.png"]
    assert "warping error" in capsys.readouterr().err


def _bad_input(folder: Path, kind: str) -> Path:
    if kind == "junk.mp4":
        (folder / kind).write_bytes(b"junk" * 50)
    elif kind == "empty":
        (folder / kind).mkdir()
    elif kind == "mixed":
        (folder / kind).mkdir()
        first, second = sliding_frames(count=2)
        first.save(folder / kind / "1.png")
        second.resize((20, 20)).save(folder / kind / "2.png")
    return folder / kind


@pytest.mark.parametrize("kind, message", [
    ("missing.mp4", "file not found"),
    ("junk.mp4", "cannot read video"),
    ("empty", "no frames in folder"),
    ("mixed", "frames differ in size"),
])
def test_cli_bad_input_is_one_line_and_leaves_nothing(
    kind: str, message: str, style_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _bad_input(tmp_path, kind)
    output = tmp_path / "out.mp4"
    status = main(["video", str(source), str(style_path), "-o", str(output), "--size", "32", "-q"])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and source.name in err and len(err.strip().splitlines()) == 1
    assert not output.exists() and not WorkFolder(output).path.exists()


def test_bad_options_are_refused(clip_path: Path, style_path: Path, tmp_path: Path) -> None:
    with pytest.raises(NstError, match="unknown mode"):
        VideoOptions(mode="smooth")
    with pytest.raises(NstError, match="frame-steps"):
        VideoOptions(frame_steps=0)
    with pytest.raises(NstError, match="is an input; nst never replaces its inputs"):
        prepare_video(CONFIG, VideoOptions(), clip_path, [style_path], clip_path)


def test_cli_interrupt_says_where_finished_frames_are(
    clip_path: Path, style_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output = tmp_path / "out.mp4"

    def interrupted(*args: object, **kwargs: object) -> None:
        WorkFolder(output).path.mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr("nst.jobs.video.stylize_video", interrupted)
    status = main(["video", str(clip_path), str(style_path), "-o", str(output), "-q"])
    assert status == 130
    assert "run the same command again to resume" in capsys.readouterr().err
