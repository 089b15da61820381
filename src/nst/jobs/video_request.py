"""What a video job is before it runs: the options of `nst video` that are not
options of a transfer, and the VideoJob its door builds once (the clip's Request,
the clip, where it goes, how it resumes). Torch-free, so the command line refuses
a bad video command before torch loads."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from nst.config import INIT_KINDS, Config
from nst.errors import NstError
from nst.files.frames import Clip, check_output, open_clip, parse_fps
from nst.jobs.request import (
    InputFile,
    Request,
    check_combination,
    check_not_an_input,
    input_file,
    prepare_files,
    sha256_file,
)

MODES = ("consistent", "independent")
# Temporal loss weight on our loss scale (features at Caffe/255, content weight
# 10, style 1e6; images in [0, 1]). See README, "Video": higher holds frames
# closer to the warped previous one, at the cost of smearing where flow is wrong.
DEFAULT_TEMPORAL_WEIGHT = 2e4
# With --method fast there is no loss to add the term to: each frame is the closed-form
# minimizer of |x - fast|^2 + W c |x - warped|^2 per pixel (c: the flow's reliability),
# x = (fast + W c warped) / (1 + W c), so W = 4 keeps 4/5 of the warped previous frame
# where the flow is trusted. See README, "Video" (benchmarks/video_flicker.py).
DEFAULT_FAST_TEMPORAL_WEIGHT = 4.0
# Steps for warm-started frames, as a share of --steps (see README for the
# measurement behind it).
WARM_START_SHARE = 0.25


@dataclass(frozen=True)
class VideoOptions:
    """How a clip is cut and how its frames are tied together."""

    mode: str = "consistent"
    temporal_weight: float | None = None  # None: the method's default (see `temporal`)
    frame_steps: int | None = None  # steps of warm-started frames; None: WARM_START_SHARE * steps
    fps: float | None = None  # None: the input's frame rate
    max_frames: int | None = None
    keep_audio: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise NstError(f"unknown mode {self.mode!r}; expected one of {', '.join(MODES)}")
        weight = self.temporal_weight
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                                   or not math.isfinite(weight) or weight < 0):
            raise NstError(f"temporal-weight must be a number of at least 0, got {weight!r}")
        for name in ("frame_steps", "max_frames"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise NstError(f"{name.replace('_', '-')} must be an integer of at least 1, got {value!r}")
        if self.fps is not None:
            parse_fps(self.fps)

    def warm_steps(self, steps: int) -> int:
        return self.frame_steps or max(1, round(steps * WARM_START_SHARE))

    def temporal(self, method: str = "gatys") -> float:
        """The temporal weight: as given, else the method's default (the optimization's
        loss weight for gatys; the warped previous frame's weight for fast)."""
        if self.temporal_weight is not None:
            return float(self.temporal_weight)
        return DEFAULT_FAST_TEMPORAL_WEIGHT if method == "fast" else DEFAULT_TEMPORAL_WEIGHT

    def for_method(self, method: str) -> VideoOptions:
        """These options with the temporal weight filled in for `method`; NstError for
        one that means nothing to it (--frame-steps: fast runs no optimization)."""
        if method == "fast" and self.frame_steps is not None:
            raise NstError("--method fast runs no optimization: --frame-steps does not apply")
        return replace(self, temporal_weight=self.temporal(method))


def clip_input(clip: Clip) -> InputFile:
    """The clip as the content input of a request: a video or GIF by its file's
    hash, a frame folder by the hashes of its frames in order."""
    if clip.kind == "folder":
        digest = hashlib.sha256()
        for frame in clip.frame_files:
            digest.update(sha256_file(frame).encode())
        sha = digest.hexdigest()
    else:
        sha = sha256_file(clip.path)
    return InputFile("content", str(clip.path), clip.path.resolve(), sha, clip.size)


@dataclass(frozen=True)
class VideoJob:
    """A checked video job, built once by its door (prepare_video) and passed
    through to the run: the clip's Request (sizes, device, seed), the clip, the
    video options, the output path, whether to discard frames an earlier,
    interrupted run left (restart), and the command line the work folder's lock
    names (command)."""

    request: Request
    clip: Clip
    options: VideoOptions
    output: Path
    restart: bool = False
    command: str = "nst video"

    @property
    def fps(self) -> Fraction | None:
        """The frame rate asked for (None: the input's)."""
        return parse_fps(self.options.fps) if self.options.fps is not None else None


def prepare_video(config: Config, options: VideoOptions, source: str | Path, styles: Sequence[str | Path],
                  output: str | Path, run_on: str | None = None, restart: bool = False,
                  command: str = "nst video") -> VideoJob:
    """The job layer's checks for a clip: options, output (never an input), the
    clip and styles (headers), sizes, device, defaults and seed. run_on: the
    device kind of a cluster's workers (see jobs.request.prepare); restart and
    command: see VideoJob."""
    source, output = Path(source), check_output(output)
    if not styles:
        raise NstError("video needs at least one style image")
    options = options.for_method(config.method)
    if config.init is not None and config.init not in INIT_KINDS:
        raise NstError(f"video takes --init {', '.join(INIT_KINDS)}, got {config.init!r}")
    config = config.replace(task="transfer")
    check_combination(config, True, len(styles), 0)
    style_files = tuple(input_file("style", s, config.max_pixels) for s in styles)
    if output.exists() or output.parent.exists():
        check_not_an_input(output, [source, *(s.path for s in style_files if s.path is not None)])
    clip = open_clip(source)
    request = prepare_files(config, clip_input(clip), style_files, run_on=run_on)
    return VideoJob(request, clip, options, output, restart, command)
