"""Video style transfer: every frame of a clip, with or without temporal consistency.

`consistent` mode (Ruder et al. 2016) starts frame t from the stylized frame t-1
warped by the optical flow, and adds a temporal loss that holds it to that warped
frame where the flow is reliable. Warm-started frames converge in far fewer
steps than the first. `independent` mode styles each frame alone (the flickering
baseline). Finished frames are kept in a work folder beside the output, so an
interrupted run resumes from the last finished frame.

Like the engine, this module never prints: it reports through callbacks.
"""

from __future__ import annotations

import json
import math
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from nst.config import Config
from nst.core.engine import build_objective, init_image, optimize
from nst.core.features import extractor_for
from nst.core.flow import Motion, flow_side, motion_between, warp_image, warping_error
from nst.core.losses import gaussian_blur, temporal_loss
from nst.errors import NstError
from nst.events import StepCallback
from nst.files.frames import (
    Clip,
    check_output,
    open_clip,
    output_rate,
    parse_fps,
    planned_frames,
    read_frames,
    write_clip,
)
from nst.files.images import load_image, resize_longest, save_image, to_tensor
from nst.jobs.resume import differences, picture_settings
from nst.jobs.runner import select_device

MODES = ("consistent", "independent")
INIT_KINDS = ("content", "noise", "blend")
# Temporal loss weight on our loss scale (features at Caffe/255, content weight
# 10, style 1e6; images in [0, 1]). See README, "Video": higher holds frames
# closer to the warped previous one, at the cost of smearing where flow is wrong.
DEFAULT_TEMPORAL_WEIGHT = 2e4
# The temporal loss compares frames blurred by this much (pixels); see TemporalTarget.
# Measured on bunny.mp4, 8 frames at 128 px: without it, sharpness (mean |Laplacian|)
# fell from 97 to 60 by frame 8; with it, to 86 (independent frames: 93-96).
TEMPORAL_BLUR_SIGMA = 1.0
# Steps for warm-started frames, as a share of --steps (see README for the
# measurement behind it).
WARM_START_SHARE = 0.25
# Below this share of reliable pixels, frame t is a new shot: it starts afresh.
SCENE_CUT_SHARE = 0.2
WORK_SUFFIX = ".nst-work"
SETTINGS_FILE = "settings.json"


@dataclass(frozen=True)
class VideoOptions:
    """How a clip is cut and how its frames are tied together."""

    mode: str = "consistent"
    temporal_weight: float = DEFAULT_TEMPORAL_WEIGHT
    frame_steps: int | None = None  # steps of warm-started frames; None: WARM_START_SHARE * steps
    fps: float | None = None  # None: the input's frame rate
    max_frames: int | None = None
    keep_audio: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise NstError(f"unknown mode {self.mode!r}; expected one of {', '.join(MODES)}")
        weight = self.temporal_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise NstError(f"temporal-weight must be a number of at least 0, got {weight!r}")
        for name in ("frame_steps", "max_frames"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise NstError(f"{name.replace('_', '-')} must be an integer of at least 1, got {value!r}")
        if self.fps is not None:
            parse_fps(self.fps)

    def warm_steps(self, steps: int) -> int:
        return self.frame_steps or max(1, round(steps * WARM_START_SHARE))


@dataclass(frozen=True)
class FrameEvent:
    """One finished frame (0-based index)."""

    index: int
    total: int | None  # None when the input does not say how many frames it has
    elapsed_s: float  # this frame's time; 0 for a frame resumed from the work folder
    steps: int  # 0 for a resumed frame
    resumed: bool
    warping_error: float | None  # against the previous frame; None for the first


FrameCallback = Callable[[FrameEvent], None]


@dataclass
class VideoRun:
    """A finished video: where it went, what it used, how long frames took and
    how much they flicker."""

    output: Path
    config: Config
    options: VideoOptions
    fps: Fraction
    size: tuple[int, int]
    frames: int = 0
    resumed: int = 0
    frame_times: list[float] = field(default_factory=list)  # per computed frame, in order
    fresh_times: list[float] = field(default_factory=list)  # frames from scratch: the first, scene cuts
    warm_times: list[float] = field(default_factory=list)  # frames warm-started from the previous one
    warping_errors: list[float] = field(default_factory=list)  # one per frame after the first
    input_warping_errors: list[float] = field(default_factory=list)

    @property
    def warping_error(self) -> float:
        """Mean warping error of the stylized clip (RGB in [0, 1]); NaN for one frame."""
        return _mean(self.warping_errors)

    @property
    def input_warping_error(self) -> float:
        """The same measure on the input clip: what flow errors alone give."""
        return _mean(self.input_warping_errors)


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


class TemporalTarget:
    """The temporal loss of one frame: deviation from the previous stylized frame
    warped into this one, where the flow is trusted.

    Both sides are compared slightly blurred (TEMPORAL_BLUR_SIGMA): resampling
    cannot carry pixel-sized texture from frame to frame, so holding the frame
    to it made every frame a little softer than the last.
    """

    def __init__(self, warped: Tensor, weights: Tensor, weight: float) -> None:
        self.target = gaussian_blur(warped, TEMPORAL_BLUR_SIGMA)
        self.weights, self.weight = weights, weight

    def __call__(self, image: Tensor) -> Tensor:
        return self.weight * temporal_loss(gaussian_blur(image, TEMPORAL_BLUR_SIGMA), self.target, self.weights)


class FrameStylizer:
    """Optimizes frames against fixed style targets. Tensors are (B, 3, H, W):
    the frame loop passes one frame at a time, but independent frames could
    share one batch."""

    def __init__(self, config: Config, styles: Sequence[Tensor], device: torch.device) -> None:
        self.config, self.styles, self.device = config, list(styles), device
        self.extractor = extractor_for(config).to(device)

    def __call__(
        self,
        content: Tensor,
        init: Tensor,
        steps: int,
        temporal: TemporalTarget | None = None,
        on_step: StepCallback | None = None,
    ) -> Tensor:
        objective = build_objective(self.extractor, self.config, content, self.styles)
        if temporal is not None:
            objective.extra_terms["temporal"] = temporal
        return optimize(objective, init, self.config.replace(steps=steps), on_step).image


class WorkFolder:
    """Finished stylized frames of an unfinished run (frame_00001.png, ...) and the
    settings that made them, beside the output: out.mp4 -> out.mp4.nst-work/."""

    def __init__(self, output: Path) -> None:
        self.path = output.with_name(output.name + WORK_SUFFIX)

    def frame_path(self, index: int) -> Path:
        return self.path / f"frame_{index + 1:05d}.png"

    def finished(self) -> int:
        """How many frames from the start are done (resuming continues after them)."""
        count = 0
        while self.frame_path(count).exists():
            count += 1
        return count

    def stored_settings(self) -> dict[str, Any] | None:
        settings = self.path / SETTINGS_FILE
        if not settings.exists():
            return None
        try:
            stored: dict[str, Any] = json.loads(settings.read_text())
        except (OSError, ValueError):
            return None
        return stored

    def start(self, settings: dict[str, Any]) -> None:
        self.path.mkdir(exist_ok=True)
        (self.path / SETTINGS_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True))

    def clear(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path)

    def save(self, index: int, image: Tensor) -> Tensor:
        """Store a frame; returns it as stored (8-bit), so that a resumed run
        continues from exactly what an uninterrupted one would have used."""
        save_image(image, self.frame_path(index))
        return self.load(index, image.device)

    def load(self, index: int, device: torch.device) -> Tensor:
        return to_tensor(load_image(self.frame_path(index))).to(device)

    def frames(self, count: int) -> Iterator[Image.Image]:
        for index in range(count):
            yield load_image(self.frame_path(index))


def _settings(config: Config, options: VideoOptions, source: Path, styles: Sequence[str | Path]) -> dict[str, Any]:
    """What decides the frames: a changed value makes finished frames stale. (Not
    --max-frames: a longer run may reuse the frames of a shorter one.)"""
    return {
        "input": str(source.resolve()),
        "styles": [str(Path(s).resolve()) for s in styles],
        "config": picture_settings(config.to_dict(), with_seed=False),
        "video": {k: v for k, v in asdict(options).items() if k not in ("keep_audio", "max_frames")},
    }


def _seed_for(work: WorkFolder, config: Config, settings: dict[str, Any], restart: bool) -> int:
    """The seed of this run: the user's, else that of the frames being resumed, else
    a new one. Raises NstError if the work folder holds frames of other settings."""
    stored = None if restart else work.stored_settings()
    if stored is None:
        work.clear()
        return config.seed if config.seed is not None else secrets.randbelow(2**31)
    changed = differences({k: v for k, v in stored.items() if k != "seed"}, settings)
    if config.seed is not None and config.seed != stored.get("seed"):
        changed.append("seed")
    if changed:
        raise NstError(
            f"{work.path} holds frames of a run with other settings ({', '.join(changed)}); "
            "pass --restart to discard them, or delete the folder"
        )
    return int(stored["seed"])


def stylize_video(
    config: Config,
    options: VideoOptions,
    source: str | Path,
    styles: Sequence[str | Path],
    output: str | Path,
    on_frame: FrameCallback | None = None,
    on_step: StepCallback | None = None,
    restart: bool = False,
) -> VideoRun:
    """Stylize the clip at `source` (video file, GIF or frame folder) into `output`.

    restart: discard frames an earlier, interrupted run left in the work folder.
    """
    source, output = Path(source), check_output(output)
    if not styles:
        raise NstError("video needs at least one style image")
    if output.exists() and output.resolve() == source.resolve():
        raise NstError(f"the output would overwrite the input {source}; give another output name")
    if config.init is not None and config.init not in INIT_KINDS:
        raise NstError(f"video takes --init {', '.join(INIT_KINDS)}, got {config.init!r}")
    device = select_device(config.device)
    # Frames are optimized at one scale: a warm start from the previous frame
    # already holds the large structure that coarse-to-fine would build.
    config = config.replace(task="transfer", scales=1).resolved(device.type)
    clip = open_clip(source)
    fps = parse_fps(options.fps) if options.fps is not None else None
    rate = output_rate(clip, fps)
    style_tensors = _load_styles(config, styles, device)

    work = WorkFolder(output)
    settings = _settings(config, options, source, styles)
    config = config.replace(seed=_seed_for(work, config, settings, restart))
    work.start({**settings, "seed": config.seed})

    done = VideoRun(output, config, options, rate, clip.size)
    _stylize_frames(done, clip, fps, style_tensors, work, device, on_frame, on_step)
    audio = clip if options.keep_audio and clip.kind == "video" else None
    write_clip(work.frames(done.frames), output, rate, audio)
    work.clear()
    return done


def _load_styles(config: Config, styles: Sequence[str | Path], device: torch.device) -> list[Tensor]:
    side = config.style_size or config.size
    assert side is not None
    return [to_tensor(resize_longest(load_image(s, config.max_pixels), side)).to(device) for s in styles]


def _stylize_frames(
    run: VideoRun,
    clip: Clip,
    fps: Fraction | None,
    styles: Sequence[Tensor],
    work: WorkFolder,
    device: torch.device,
    on_frame: FrameCallback | None,
    on_step: StepCallback | None,
) -> None:
    """The frame loop, filling in `run`: each frame is resumed from the work folder
    or stylized and stored there."""
    config = run.config
    assert config.size is not None
    stylizer = FrameStylizer(config, styles, device)
    finished = work.finished()
    total = planned_frames(clip, fps, run.options.max_frames)
    consistent = run.options.mode == "consistent"
    previous: tuple[Tensor, Tensor, Tensor] | None = None  # frame t-1: content, stylized, for flow
    for index, frame in enumerate(read_frames(clip, fps, run.options.max_frames)):
        content = to_tensor(resize_longest(frame, config.size)).to(device)
        for_flow = to_tensor(resize_longest(frame, flow_side(config.size)))
        run.size = (content.shape[-1], content.shape[-2])
        start = time.perf_counter()
        motion = motion_between(previous[2], for_flow, run.size) if previous is not None else None
        if index < finished:
            stylized, steps = work.load(index, device), 0
        else:
            warm = consistent and motion is not None and motion.reliable_share >= SCENE_CUT_SHARE
            previous_stylized = previous[1] if warm and previous is not None else None
            image, steps = _stylize_frame(stylizer, run, content, previous_stylized, motion, on_step)
            stylized = work.save(index, image)
            elapsed = time.perf_counter() - start
            run.frame_times.append(elapsed)
            (run.warm_times if warm else run.fresh_times).append(elapsed)
        error = None
        if previous is not None and motion is not None:
            error = warping_error(stylized, previous[1], motion)
            run.warping_errors.append(error)
            run.input_warping_errors.append(warping_error(content, previous[0], motion))
        run.frames, run.resumed = index + 1, min(finished, index + 1)
        if on_frame is not None:
            on_frame(FrameEvent(index, total, run.frame_times[-1] if steps else 0.0, steps,
                                index < finished, error))
        previous = (content, stylized, for_flow)
    if run.frames == 0:
        raise NstError(f"{clip.path} gave no frames")


def _stylize_frame(
    stylizer: FrameStylizer,
    run: VideoRun,
    content: Tensor,
    previous: Tensor | None,
    motion: Motion | None,
    on_step: StepCallback | None,
) -> tuple[Tensor, int]:
    """One frame and its step count: warm-started from `previous` (stylized frame t-1)
    moved by `motion` and held to it, or, without `previous`, from scratch."""
    config, options = run.config, run.options
    assert config.steps is not None
    if previous is None or motion is None:
        init = init_image(str(config.init), content, config.alpha, config.seed)
        return stylizer(content, init, config.steps, None, on_step), config.steps
    warped = warp_image(previous, motion.backward)
    temporal = None
    if options.temporal_weight:
        temporal = TemporalTarget(warped, motion.weight_tensor(content.device), options.temporal_weight)
    steps = options.warm_steps(config.steps)
    return stylizer(content, warped, steps, temporal, on_step), steps
