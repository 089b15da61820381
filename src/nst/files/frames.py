"""Frame sequences in and out: video files, animated GIFs and folders of numbered frames.

Video files go through PyAV (its wheels carry FFmpeg), GIFs and frame folders
through Pillow. Frames are RGB PIL images. Every read error is an NstError that
names the file; every write is atomic (temporary name, then rename).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image, ImageSequence, UnidentifiedImageError

from nst.errors import NstError
from nst.files.atomic import atomic_path, temporary_folder
from nst.files.images import load_image, upright_size

# Containers nst writes, by extension: (video codec, its options, audio codec).
VIDEO_FORMATS: dict[str, tuple[str, dict[str, str], str]] = {
    ".mp4": ("libx264", {"crf": "18", "preset": "medium"}, "aac"),
    ".m4v": ("libx264", {"crf": "18", "preset": "medium"}, "aac"),
    ".mov": ("libx264", {"crf": "18", "preset": "medium"}, "aac"),
    ".mkv": ("libx264", {"crf": "18", "preset": "medium"}, "aac"),
    ".webm": ("libvpx-vp9", {"crf": "30", "b:v": "0", "row-mt": "1"}, "libopus"),
}
GIF_SUFFIX = ".gif"
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
OUTPUT_FRAME_PATTERN = "frame_{:05d}.png"
# A frame folder has no frame rate of its own; GIFs without frame durations show
# at 10 fps in browsers.
FOLDER_DEFAULT_FPS = Fraction(24)
GIF_DEFAULT_FRAME_MS = 100
# Audio sample rates the encoders accept (Opus only runs at 48 kHz).
AUDIO_RATES = {"libopus": 48000}
# Frame rates nst takes: below 1/1000 fps an exact rate no longer fits the
# denominators video containers use; above 1000 fps nothing plays it.
MIN_FPS = Fraction(1, 1000)
MAX_FPS = Fraction(1000)
# GIF frame delays are 16-bit counts of 1/100 s.
GIF_MAX_FRAME_MS = 655_350
# What Pillow raises for a file it cannot decode (DecompressionBombError is none of the others).
PILLOW_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                 Image.DecompressionBombError)


@dataclass(frozen=True)
class Clip:
    """A readable frame sequence, checked: it exists, decodes, has frames."""

    path: Path
    kind: str  # "video", "gif" or "folder"
    fps: Fraction
    size: tuple[int, int]  # width, height as displayed
    frame_count: int | None  # None when the container does not say
    has_audio: bool = False
    frame_files: tuple[Path, ...] = ()  # a folder's frames, in order


def _natural_key(path: Path) -> list[Any]:
    """'frame10' sorts after 'frame9'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def parse_fps(value: float | str | Fraction) -> Fraction:
    """A frame rate as an exact fraction (denominator at most 1001), between MIN_FPS and MAX_FPS."""
    try:
        exact = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        exact = None
    if exact is None or not MIN_FPS <= exact <= MAX_FPS:
        if exact is None and not _is_float(value):
            raise NstError(f"fps must be a number, got {value!r}")
        # inf and nan land here too: Fraction refuses them.
        raise NstError(f"fps must be between {float(MIN_FPS):g} and {float(MAX_FPS):g}, got {value}")
    return exact.limit_denominator(1001)


def _is_float(value: float | str | Fraction) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


# ----------------------------------------------------------------- reading


def open_clip(path: str | Path) -> Clip:
    """Probe a video file, GIF or frame folder; raises NstError if it is unusable."""
    path = Path(path)
    if not path.exists():
        raise NstError(f"file not found: {path}")
    if path.is_dir():
        return _open_folder(path)
    if path.suffix.lower() == GIF_SUFFIX:
        return _open_gif(path)
    return _open_video(path)


def _open_folder(path: Path) -> Clip:
    files = sorted(
        (p for p in path.iterdir()
         if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FRAME_SUFFIXES),
        key=_natural_key,
    )
    if not files:
        raise NstError(
            f"no frames in folder {path} (expected numbered images: {', '.join(FRAME_SUFFIXES)})"
        )
    size = None
    for file in files:
        frame_size = _image_size(file)
        if size is None:
            size, first = frame_size, file
        elif frame_size != size:
            raise NstError(
                f"frames differ in size: {file.name} is {frame_size[0]}x{frame_size[1]} "
                f"but {first.name} is {size[0]}x{size[1]} (in {path})"
            )
    assert size is not None
    return Clip(path, "folder", FOLDER_DEFAULT_FPS, size, len(files), frame_files=tuple(files))


def _image_size(path: Path) -> tuple[int, int]:
    """Width and height from the header only (upright, as load_image will give it)."""
    # Header only: corrupt pixel data is left to read_frames, which --max-frames
    # can stop before.
    try:
        with Image.open(path) as image:
            return upright_size(image)
    except PILLOW_ERRORS as error:
        raise NstError(f"cannot read frame {path}: not an image or corrupt") from error


def _open_gif(path: Path) -> Clip:
    durations: list[int] = []
    complete = True
    try:
        with Image.open(path) as image:
            size = image.size
            image.load()  # a GIF whose first frame is corrupt is no clip at all
            try:
                for frame in ImageSequence.Iterator(image):
                    durations.append(frame.info.get("duration") or GIF_DEFAULT_FRAME_MS)
            except PILLOW_ERRORS:
                # Seeking decodes each frame: a corrupt one stops the count here, and
                # read_frames reports it once reached (--max-frames can stop before it).
                complete = False
    except PILLOW_ERRORS as error:
        raise NstError(f"cannot read GIF {path}: not a GIF or corrupt") from error
    if not durations:
        raise NstError(f"{path} has no frames")
    fps = Fraction(1000 * len(durations), sum(durations)).limit_denominator(1001)
    return Clip(path, "gif", fps, size, len(durations) if complete else None)


def _open_video(path: Path) -> Clip:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise NstError(f"{path} has no video stream")
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
            if first is None:
                raise NstError(f"{path} has no frames")
            fps = stream.average_rate or stream.guessed_rate or FOLDER_DEFAULT_FPS
            size = _upright(first).size
            count = stream.frames or None
            has_audio = bool(container.streams.audio)
    except av.FFmpegError as error:
        raise NstError(f"cannot read video {path}: {_reason(error)}") from error
    except PermissionError as error:
        raise NstError(f"cannot read {path}: permission denied") from error
    return Clip(path, "video", Fraction(fps), size, count, has_audio)


def _reason(error: av.FFmpegError) -> str:
    return str(getattr(error, "strerror", None) or error).rstrip(".").lower()


def _upright(frame: av.VideoFrame) -> Image.Image:
    """A decoded frame as RGB, turned the way players show it (phone videos
    store a rotation instead of rotated pixels)."""
    image: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
    rotation = frame.rotation
    return image.rotate(rotation, expand=True) if rotation else image


class _Undecodable(Exception):
    """Frame `number` (1-based, of the input) cannot be decoded, for `reason`."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(number, reason)
        self.number = number
        self.reason = reason


def _decode(clip: Clip) -> Iterator[Image.Image]:
    """The clip's frames; a frame that fails to decode raises _Undecodable."""
    if clip.kind == "folder":
        yield from _decode_folder(clip)
    elif clip.kind == "gif":
        yield from _decode_gif(clip)
    else:
        yield from _decode_video(clip)


def _decode_folder(clip: Clip) -> Iterator[Image.Image]:
    for number, file in enumerate(clip.frame_files, start=1):
        try:
            picture = load_image(file)
        except NstError as error:
            raise _Undecodable(number, str(error)) from error
        yield picture.convert("RGB")


def _decode_gif(clip: Clip) -> Iterator[Image.Image]:
    decoded = 0
    try:
        with Image.open(clip.path) as gif:
            for picture in ImageSequence.Iterator(gif):
                frame = picture.convert("RGB")
                decoded += 1
                yield frame
    except PILLOW_ERRORS as error:
        raise _Undecodable(decoded + 1, f"corrupt GIF data ({error})") from error


def _decode_video(clip: Clip) -> Iterator[Image.Image]:
    decoded = 0
    try:
        with av.open(str(clip.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                picture = _upright(frame)
                decoded += 1
                yield picture
    except av.FFmpegError as error:
        raise _Undecodable(decoded + 1, _reason(error)) from error


def kept_frame_times(source_fps: Fraction, fps: Fraction) -> Iterator[bool]:
    """For each source frame, whether resampling to `fps` keeps it: the first
    frame at or after each output frame's time (fps must not exceed source_fps)."""
    kept = 0
    index = 0
    while True:
        # Exact fractions: frame `index` shows at index / source_fps.
        keep = Fraction(index, 1) / source_fps >= Fraction(kept, 1) / fps
        kept += keep
        index += 1
        yield keep


def read_frames(
    clip: Clip, fps: Fraction | None = None, max_frames: int | None = None
) -> Iterator[Image.Image]:
    """The clip's frames (RGB), resampled to `fps` and cut after `max_frames`.

    A frame that cannot be decoded ends the frames with an NstError; those
    before it have been yielded and stay valid."""
    keeps = kept_frame_times(clip.fps, fps) if fps is not None and fps != clip.fps else None
    count = 0
    if max_frames is not None and max_frames < 1:
        return
    try:
        for frame in _decode(clip):
            if keeps is not None and not next(keeps):
                continue
            if frame.size != clip.size:
                raise NstError(
                    f"{clip.path}: frame {count + 1} is {frame.width}x{frame.height}, "
                    f"not {clip.size[0]}x{clip.size[1]} like the first"
                )
            count += 1
            yield frame
            # Stop before decoding more: the next frame may be the corrupt one.
            if max_frames is not None and count >= max_frames:
                return
    except _Undecodable as error:
        raise NstError(_undecodable_message(clip, error, count)) from error


def _undecodable_message(clip: Clip, error: _Undecodable, good: int) -> str:
    message = f"cannot decode frame {error.number} of {clip.path}: {_one_line(error.reason)}"
    if good == 0:
        return message
    return f"{message}; --max-frames {good} stops before it"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def output_rate(clip: Clip, fps: Fraction | None) -> Fraction:
    """The frame rate of the output: `fps` if given (resampling a video or GIF,
    or setting a frame folder's rate), else the clip's own."""
    if fps is None:
        return clip.fps
    if clip.kind != "folder" and fps > clip.fps:
        raise NstError(
            f"--fps {float(fps):g} is above the input's {float(clip.fps):g} fps; "
            "nst drops frames to lower the rate but does not invent new ones"
        )
    return fps


def planned_frames(clip: Clip, fps: Fraction | None, max_frames: int | None) -> int | None:
    """How many frames read_frames will give, when the input says (for progress bars)."""
    count = clip.frame_count
    if count is not None and fps is not None and clip.kind != "folder":
        count = -(-count * fps.numerator * clip.fps.denominator // (fps.denominator * clip.fps.numerator))
    if max_frames is not None:
        count = max_frames if count is None else min(count, max_frames)
    return count


# ----------------------------------------------------------------- writing


def output_kind(path: str | Path) -> str:
    """'video', 'gif' or 'folder' by the output's name (a name without extension is a folder)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_FORMATS:
        return "video"
    if suffix == GIF_SUFFIX:
        return "gif"
    if not suffix or path.is_dir():
        return "folder"
    raise NstError(
        f"cannot write {path}: unknown extension {suffix!r}; use "
        f"{', '.join(sorted(VIDEO_FORMATS))}, {GIF_SUFFIX} or a folder name"
    )


def check_output(path: str | Path) -> Path:
    """Fail now, before minutes of work, if the output cannot be written."""
    path = Path(path)
    kind = output_kind(path)
    folder = path.parent
    if not folder.is_dir():
        raise NstError(f"output folder does not exist: {folder}")
    if kind != "folder" and path.is_dir():
        raise NstError(f"output path is a folder: {path}")
    if kind == "folder" and path.exists():
        _check_replaceable(path)
    if not os.access(folder, os.W_OK):
        raise NstError(f"output folder is not writable: {folder}")
    return path


def _check_replaceable(folder: Path) -> None:
    """Only an earlier frame output (frame_00001.png, ...) may be replaced."""
    if not folder.is_dir():
        raise NstError(f"output path exists and is not a folder: {folder}")
    strangers = [p.name for p in folder.iterdir() if not re.fullmatch(r"frame_\d{5,}\.png", p.name)]
    if strangers:
        raise NstError(
            f"output folder {folder} holds other files ({strangers[0]}, ...); "
            "give an empty or new folder"
        )


def write_clip(
    frames: Iterable[Image.Image],
    path: str | Path,
    fps: Fraction,
    audio_from: Clip | None = None,
) -> Path:
    """Write frames as a video file, GIF or frame folder (by `path`), atomically.

    audio_from: a video whose audio track is copied (re-encoded for the container),
    cut to the length of the frames.
    """
    path = Path(path)
    kind = output_kind(path)
    try:
        if kind == "folder":
            return _write_folder(frames, path)
        with atomic_path(path) as temporary:
            if kind == "gif":
                _write_gif(frames, temporary, fps)
            else:
                _write_video(frames, temporary, path.suffix.lower(), fps, audio_from)
    except av.FFmpegError as error:
        raise NstError(f"cannot write {path}: {_reason(error)}") from error
    except OSError as error:
        raise NstError(f"cannot write {path}: {error.strerror or error}") from error
    return path


def _write_folder(frames: Iterable[Image.Image], path: Path) -> Path:
    if path.exists():
        _check_replaceable(path)
    staging = temporary_folder(path)
    try:
        count = 0
        for count, frame in enumerate(frames, start=1):
            frame.save(staging / OUTPUT_FRAME_PATTERN.format(count), format="PNG")
        if not count:
            raise NstError(f"no frames to write to {path}")
        if path.exists():
            # Swap in the new frames, then drop the old ones.
            old = temporary_folder(path)
            os.replace(path, old / "frames")
            os.replace(staging, path)
            shutil.rmtree(old)
        else:
            os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return path


def _write_gif(frames: Iterable[Image.Image], path: Path, fps: Fraction) -> None:
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise NstError(f"no frames to write to {path}")
    # A GIF cannot hold a frame longer than its 16-bit delay allows.
    duration = min(round(1000 / fps), GIF_MAX_FRAME_MS)
    first.save(path, format="GIF", save_all=True, append_images=iterator, duration=duration, loop=0)


def _write_video(
    frames: Iterable[Image.Image], path: Path, suffix: str, fps: Fraction, audio_from: Clip | None
) -> None:
    codec, options, audio_codec = VIDEO_FORMATS[suffix]
    format_name = {".mkv": "matroska", ".webm": "webm", ".mov": "mov"}.get(suffix, "mp4")
    with av.open(str(path), mode="w", format=format_name) as container:
        stream: Any = None  # PyAV's stubs type streams loosely
        audio = None
        count = 0
        for count, frame in enumerate(frames, start=1):
            # yuv420p, the pixel format every player takes, needs even sides.
            even = frame.crop((0, 0, frame.width - frame.width % 2, frame.height - frame.height % 2))
            if stream is None:
                stream = container.add_stream(codec, rate=fps, options=dict(options))
                stream.width, stream.height = even.size
                stream.pix_fmt = "yuv420p"
                if audio_from is not None and audio_from.has_audio:
                    audio = _AudioCopy(audio_from.path, container, audio_codec)
            video_frame = av.VideoFrame.from_image(even)  # type: ignore[no-untyped-call]
            video_frame.pts = count - 1
            video_frame.time_base = 1 / fps
            container.mux(stream.encode(video_frame))
            if audio is not None:
                # Interleave: sound up to the end of this frame.
                audio.copy_until(count / fps)
        if stream is None:
            raise NstError(f"no frames to write to {path}")
        container.mux(stream.encode(None))
        if audio is not None:
            audio.finish()


class _AudioCopy:
    """Re-encodes the first audio track of a file into an output container, a
    stretch at a time, so that sound and pictures interleave in the file."""

    def __init__(self, source: Path, container: Any, codec: str) -> None:
        self.input = av.open(str(source))
        track = self.input.streams.audio[0]
        self.frames = self.input.decode(track)
        self.container = container
        rate = AUDIO_RATES.get(codec, track.rate or 48000)
        self.stream = container.add_stream(codec, rate=rate, layout=track.layout.name)
        self.pending: av.AudioFrame | None = None

    def copy_until(self, seconds: Fraction) -> None:
        while True:
            frame = self.pending or next(self.frames, None)
            self.pending = None
            if frame is None:
                return
            if frame.time is not None and frame.time >= seconds:
                self.pending = frame
                return
            frame.pts = None  # the encoder counts samples from zero
            self.container.mux(self.stream.encode(frame))

    def finish(self) -> None:
        """Flush the encoder; sound after the last frame's end is dropped."""
        self.container.mux(self.stream.encode(None))
        self.input.close()
