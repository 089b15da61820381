"""Frame sequences in and out: round trips, resampling, audio and bad inputs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from clips import overwrite_middle, sliding_frames, truncated_png, write_mp4_with_audio
from nst.errors import NstError
from nst.files.frames import (
    FOLDER_DEFAULT_FPS,
    check_output,
    open_clip,
    output_rate,
    parse_fps,
    planned_frames,
    read_frames,
    write_clip,
)


def _difference(a: list[Image.Image], b: list[Image.Image]) -> float:
    """Largest mean absolute difference of brightness between paired frames (0-255);
    brightness because video codecs keep colour at half resolution."""
    return max(float(np.abs(np.asarray(x.convert("L"), float) - np.asarray(y.convert("L"), float)).mean())
               for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name, tolerance", [("clip.gif", 8.0), ("clip.mp4", 4.0), ("clip.webm", 4.0),
                                             ("clip.mov", 4.0), ("frames", 0.0)])
def test_round_trip_keeps_frames_size_and_rate(tmp_path: Path, name: str, tolerance: float) -> None:
    frames = sliding_frames(count=5)
    path = write_clip(frames, tmp_path / name, Fraction(10))
    clip = open_clip(path)
    back = list(read_frames(clip))
    assert len(back) == 5
    assert clip.size == (48, 32)
    # A frame folder has no rate of its own: it reads at the default.
    assert clip.fps == (FOLDER_DEFAULT_FPS if name == "frames" else 10)
    assert _difference(frames, back) <= tolerance  # GIF palettes and H.264/VP9 are lossy


def test_frame_folder_is_read_in_numeric_order(tmp_path: Path) -> None:
    frames = sliding_frames(count=3)
    for number, frame in zip((9, 10, 100), frames, strict=True):
        frame.save(tmp_path / f"f{number}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    back = list(read_frames(open_clip(tmp_path)))
    assert _difference(frames, back) == 0


def test_fps_drops_frames_and_max_frames_cuts(tmp_path: Path) -> None:
    path = write_clip(sliding_frames(count=8), tmp_path / "clip.gif", Fraction(10))
    clip = open_clip(path)
    assert len(list(read_frames(clip, Fraction(5)))) == 4
    assert planned_frames(clip, Fraction(5), None) == 4
    assert len(list(read_frames(clip, None, 3))) == 3
    with pytest.raises(NstError, match="above the input's 10 fps"):
        output_rate(clip, Fraction(20))


def test_audio_is_kept_and_cut_to_the_frames(tmp_path: Path) -> None:
    source = open_clip(write_mp4_with_audio(tmp_path / "in.mp4", sliding_frames(count=12)))
    assert source.has_audio
    frames = list(read_frames(source, max_frames=6))
    out = write_clip(frames, tmp_path / "out.mp4", source.fps, audio_from=source)
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        seconds = float(audio.duration * audio.time_base)
    assert 0.4 <= seconds <= 0.6  # 6 frames at 12 fps, not the input's 1 s
    silent = open_clip(write_clip(frames, tmp_path / "silent.mp4", source.fps))
    assert not silent.has_audio


def test_odd_frame_sizes_are_written_as_even_video(tmp_path: Path) -> None:
    frames = [frame.crop((0, 0, 47, 31)) for frame in sliding_frames(count=2)]
    clip = open_clip(write_clip(frames, tmp_path / "odd.mp4", Fraction(10)))
    assert clip.size == (46, 30)


def test_unreadable_video_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(NstError, match="cannot read video .*broken.mp4"):
        open_clip(bad)


def test_missing_input_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(NstError, match="file not found"):
        open_clip(tmp_path / "nothing.mp4")
    with pytest.raises(NstError, match="no frames in folder"):
        open_clip(tmp_path)


def test_video_without_pictures_has_no_frames(tmp_path: Path) -> None:
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=44100, layout="mono")
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        chunk.sample_rate = 44100
        container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    with pytest.raises(NstError, match="has no video stream"):
        open_clip(sound)


def test_frames_of_different_sizes_are_refused(tmp_path: Path) -> None:
    first, second = sliding_frames(count=2)
    first.save(tmp_path / "0001.png")
    second.resize((40, 30)).save(tmp_path / "0002.png")
    with pytest.raises(NstError, match="0002.png is 40x30 but 0001.png is 48x32"):
        open_clip(tmp_path)


def test_corrupt_frame_in_folder_is_named(tmp_path: Path) -> None:
    sliding_frames(count=1)[0].save(tmp_path / "0001.png")
    (tmp_path / "0002.png").write_bytes(b"garbage")
    with pytest.raises(NstError, match="0002.png"):
        open_clip(tmp_path)


def test_outputs_are_checked_before_work(tmp_path: Path) -> None:
    with pytest.raises(NstError, match="unknown extension '.avi'"):
        check_output(tmp_path / "out.avi")
    with pytest.raises(NstError, match="does not exist"):
        check_output(tmp_path / "missing" / "out.mp4")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "holiday.jpg").write_bytes(b"")
    with pytest.raises(NstError, match="holds other files"):
        check_output(taken)


def test_frame_folder_output_replaces_an_earlier_one(tmp_path: Path) -> None:
    out = tmp_path / "frames"
    write_clip(sliding_frames(count=4), out, Fraction(10))
    write_clip(sliding_frames(count=2), out, Fraction(10))
    assert sorted(p.name for p in out.iterdir()) == ["frame_00001.png", "frame_00002.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]  # no temporary folders left


def _read_until_error(clip_path: Path) -> tuple[int, str]:
    """How many frames read_frames gave before its NstError, and the message."""
    frames = read_frames(open_clip(clip_path))
    count = 0
    with pytest.raises(NstError) as caught:
        for _ in frames:
            count += 1
    return count, str(caught.value)


def test_corrupt_frame_in_the_middle_of_a_folder_stops_with_a_hint(tmp_path: Path) -> None:
    frames = sliding_frames(count=5)
    for number, frame in enumerate(frames, start=1):
        frame.save(tmp_path / f"{number:04d}.png")
    truncated_png(frames[2], tmp_path / "0003.png")  # its header still reads: open_clip passes
    count, message = _read_until_error(tmp_path)
    assert count == 2  # the frames before it were given
    assert "\n" not in message
    assert message.startswith(f"cannot decode frame 3 of {tmp_path}: ")
    assert "0003.png" in message and message.endswith("--max-frames 2 stops before it")
    assert len(list(read_frames(open_clip(tmp_path), max_frames=2))) == 2  # the hint works


def test_corrupt_video_in_the_middle_stops_with_a_hint(tmp_path: Path) -> None:
    # Found so: H.264 in MP4 with garbage in the middle fails to demux (WebM and
    # MKV of the same frames decode with artifacts instead, which is fine).
    path = overwrite_middle(write_clip(sliding_frames(count=24), tmp_path / "clip.mp4", Fraction(10)))
    count, message = _read_until_error(path)
    assert 0 < count < 24
    assert message == (f"cannot decode frame {count + 1} of {path}: invalid data found when processing "
                       f"input; --max-frames {count} stops before it")
    assert len(list(read_frames(open_clip(path), max_frames=count))) == count


def test_corrupt_gif_in_the_middle_stops_with_a_hint(tmp_path: Path) -> None:
    path = write_clip(sliding_frames(count=8), tmp_path / "clip.gif", Fraction(10))
    path.write_bytes(path.read_bytes()[:path.stat().st_size * 5 // 8])  # cut inside a later frame
    clip = open_clip(path)  # the scan tolerates the cut: --max-frames must be able to stop before it
    assert clip.frame_count is None
    count, message = _read_until_error(path)
    assert 0 < count < 8
    assert message.startswith(f"cannot decode frame {count + 1} of {path}: corrupt GIF data")
    assert message.endswith(f"--max-frames {count} stops before it")
    assert len(list(read_frames(clip, max_frames=count))) == count


def test_gif_with_a_corrupt_first_frame_is_refused_at_once(tmp_path: Path) -> None:
    path = write_clip(sliding_frames(count=2), tmp_path / "clip.gif", Fraction(10))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 4])
    with pytest.raises(NstError, match="cannot read GIF .*clip.gif: not a GIF or corrupt"):
        open_clip(path)


@pytest.mark.parametrize("value", [1e300, float("inf"), float("-inf"), float("nan"), 0, -5, 1000.5, 1e-300,
                                   "1e300", "inf"])
def test_absurd_frame_rates_are_refused_in_one_line(value: float | str) -> None:
    with pytest.raises(NstError, match=r"^fps must be between 0\.001 and 1000, got \S+$"):
        parse_fps(value)


def test_frame_rates_at_the_limits_are_taken() -> None:
    assert parse_fps(1000) == 1000
    assert parse_fps("0.001") == Fraction(1, 1000)
    assert parse_fps("29.97") == Fraction(2997, 100)
    with pytest.raises(NstError, match="fps must be a number, got 'fast'"):
        parse_fps("fast")


def test_extreme_rates_plan_and_write_without_overflow(tmp_path: Path) -> None:
    frames = sliding_frames(count=3)
    slow, fast = parse_fps(0.001), parse_fps(1000)
    gif = open_clip(write_clip(frames, tmp_path / "slow.gif", slow))  # delays past 655 s are capped
    assert gif.frame_count == 3
    video = open_clip(write_clip(frames, tmp_path / "fast.mp4", fast))
    assert video.fps == 1000
    assert planned_frames(video, slow, None) == 1  # the first frame is always kept
    assert output_rate(video, slow) == slow
    assert len(list(read_frames(video, slow))) == 1
    folder = open_clip(write_clip(frames, tmp_path / "frames", fast))
    assert output_rate(folder, fast) == fast and planned_frames(folder, fast, 2) == 2
