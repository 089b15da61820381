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

import dataclasses
import json
import math
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
from nst.core.features import FeatureExtractor
from nst.core.flow import Motion, motion_between, warp_image, warping_error
from nst.core.losses import gaussian_blur, temporal_loss
from nst.core.memory import ScalePlan
from nst.errors import NstError
from nst.events import EventCallback, JobEvent, StepCallback, notify, steps_only
from nst.files.atomic import write_text_atomic
from nst.files.frames import (
    Clip,
    output_rate,
    planned_frames,
    read_frames,
    write_clip,
)
from nst.files.images import load_image, save_image, to_pil, to_tensor
from nst.jobs.folders import FolderLock
from nst.jobs.request import Request
from nst.jobs.resume import differences
from nst.jobs.runner import Executor
from nst.jobs.tensors import colour_styles, colour_target, restore_colour
from nst.jobs.tensors import frame_tensors as frame_tensors
from nst.jobs.tensors import style_images as style_images
from nst.jobs.video_request import VideoJob, VideoOptions
from nst.record import request_key

# style_images and frame_tensors (from tensors.py) are imported from here by cluster/video.py.

# The temporal loss compares frames blurred by this much (pixels); see TemporalTarget.
# Measured on bunny.mp4, 8 frames at 128 px: without it, sharpness (mean |Laplacian|)
# fell from 97 to 60 by frame 8; with it, to 86 (independent frames: 93-96).
TEMPORAL_BLUR_SIGMA = 1.0
# Below this share of reliable pixels, frame t is a new shot: it starts afresh.
SCENE_CUT_SHARE = 0.2
WORK_SUFFIX = ".nst-work"
SETTINGS_FILE = "settings.json"
JOINS_FILE = "joins.json"  # a chunked run's joins (nst.cluster.video)


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
    # A chunked run (consistent mode on a cluster): how many chunks; per seam (a
    # chunk's first frame against the frame before it, and the frames a blend
    # re-made after it) how it was joined ("continued", "lead-in", "blended") and
    # the warping error of its pairs; the warping errors inside chunks.
    chunks: int = 0
    seams: list[tuple[str, tuple[float, ...]]] = field(default_factory=list)  # per seam: join, its pairs
    inside_errors: list[float] = field(default_factory=list)
    seam_time_s: float = 0.0  # spent on lead-ins and blends (frames not counted in frame_times)

    @property
    def warping_error(self) -> float:
        """Mean warping error of the stylized clip (RGB in [0, 1]); NaN for one frame."""
        return _mean(self.warping_errors)

    @property
    def input_warping_error(self) -> float:
        """The same measure on the input clip: what flow errors alone give."""
        return _mean(self.input_warping_errors)

    @property
    def seam_error(self) -> float:
        """Mean warping error at chunk seams (NaN without seams)."""
        return _mean([error for _, errors in self.seams for error in errors])

    @property
    def inside_error(self) -> float:
        """Mean warping error between frames of one chunk."""
        return _mean(self.inside_errors)


# What makes the frames of a run: fills in the VideoRun, stores every frame in
# the WorkFolder (see _stylize_frames, the local loop).
FrameLoop = Callable[
    [VideoRun, Request, Clip, "Fraction | None", "WorkFolder", "EventCallback | None"], None]


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
        blurred = gaussian_blur(image, TEMPORAL_BLUR_SIGMA)
        return self.weight * temporal_loss(blurred, self.target, self.weights)


class FrameStylizer:
    """Optimizes frames against fixed style targets, through `executor` (by default
    one of its own, holding the frames' network). Tensors are (B, 3, H, W): the
    frame loop passes one frame at a time, but independent frames could share one
    batch. Colour preservation works per frame (tensors.py, as for a single run):
    `luminance` optimizes the frame's luminance and puts the frame's own chroma
    back on; `histogram` recolours the styles once, to the colours of the first
    frame, so the style targets do not change from frame to frame.
    With --method fast, `fresh` is the fast result (the styles' statistics computed
    once, here), read with the decoder at `decoder_file` (None: the config's)."""

    def __init__(self, config: Config, device: str | torch.device, styles: Sequence[Tensor],
                 first_frame: Tensor, executor: Executor | None = None,
                 plans: Sequence[ScalePlan] = (), decoder_file: Path | None = None) -> None:
        self.config, self.device = config, torch.device(device)
        self.executor = executor or Executor(keep=1)
        self.decoder_file = decoder_file
        self.styles = colour_styles(styles, first_frame, config.preserve_color)
        self.statistics = self.executor.style_statistics(config, self.device, self.styles, decoder_file) \
            if config.method == "fast" or config.init == "fast" else []
        # Each frame shape's plan (size, batch, warm steps), made once: `plans` is the
        # request's for one fresh frame where it made one (a worker plans its own).
        self.plans: dict[tuple[int, ...], tuple[ScalePlan, ...]] = {}
        if plans:
            last = plans[-1].scale
            self.plans[(last.width, last.height, 1, 0)] = tuple(plans)

    @property
    def extractor(self) -> FeatureExtractor:
        """The optimization's network (loaded once, kept by the executor)."""
        return self.executor.network(self.config, self.device)

    def fast(self, content: Tensor) -> Tensor:
        """The fast path's picture of the frames `content` (B, 3, H, W)."""
        mode = self.config.preserve_color
        image = self.executor.fast_image(self.config, self.device, colour_target(content, mode),
                                         self.statistics, decoder_file=self.decoder_file)
        return restore_colour(image, content, mode)

    def _plan(self, content: Tensor, warm_steps: int = 0) -> tuple[ScalePlan, ...]:
        """The plan of a fresh frame's scales (of one warm frame's scale of
        `warm_steps`) for the frames of `content` (B, 3, H, W) on this device."""
        key = (content.shape[-1], content.shape[-2], content.shape[0], warm_steps)
        if key not in self.plans:
            self.plans[key] = self.executor.plan(self.extractor, self.config, content, self.styles,
                                                 warm_steps)
        return self.plans[key]

    def fresh(self, content: Tensor, on_step: StepCallback | None) -> Tensor:
        """A frame from scratch, coarse-to-fine like a single transfer (from the fast
        result with --init fast); with --method fast, the fast result."""
        if self.config.method == "fast":
            return self.fast(content)
        mode = self.config.preserve_color
        init = colour_target(self.fast(content), mode) if self.config.init == "fast" else None
        result = self.executor.stylize(self.extractor, self.config, self._plan(content), content,
                                       colour_target(content, mode), self.styles, init=init, on_step=on_step)
        return restore_colour(result.image.to(self.device), content, mode)

    def warm(self, content: Tensor, init: Tensor, steps: int, temporal: Callable[[Tensor], Tensor] | None,
             on_step: StepCallback | None) -> Tensor:
        """A frame started from `init` (the previous stylized frame, warped), one scale."""
        mode = self.config.preserve_color
        (plan,) = self._plan(content, steps)
        image = self.executor.optimize_scale(self.extractor, self.config, plan, colour_target(content, mode),
                                             self.styles, colour_target(init, mode),
                                             {"temporal": temporal} if temporal is not None else {}, on_step)
        return restore_colour(image.to(self.device), content, mode)


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
        write_text_atomic(self.path / SETTINGS_FILE, json.dumps(settings, indent=2, sort_keys=True))

    def clear(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path)

    def clear_frames(self) -> None:
        """Forget the frames and settings of another run, keeping the folder (and its lock)."""
        if self.path.is_dir():
            for path in self.path.glob("frame_*.png"):
                path.unlink()
            (self.path / SETTINGS_FILE).unlink(missing_ok=True)
            (self.path / JOINS_FILE).unlink(missing_ok=True)

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


def run_settings(request: Request, options: VideoOptions) -> dict[str, Any]:
    """What decides the frames: the request key (config and input files by
    content, seed left out: a resumed run keeps the seed of its frames) and the
    video options. Not --max-frames: a longer run may reuse the frames of a
    shorter one; not --no-audio."""
    key = request_key(request.config, request.input_records(), seed_given=False)
    video = {k: v for k, v in asdict(options).items() if k not in ("keep_audio", "max_frames")}
    return {"request": key, "video": video}


def resume_seed(work: WorkFolder, request: Request, settings: dict[str, Any], restart: bool) -> int | None:
    """The seed of this run: the user's, else that of the frames being resumed, else
    the request's new one (None for --method fast, which draws none). Raises NstError
    if the work folder holds frames of other settings."""
    assert request.config.seed is not None or request.config.method == "fast"
    stored = None if restart else work.stored_settings()
    if stored is None:
        work.clear_frames()
        return request.config.seed
    changed = differences({k: v for k, v in stored.items() if k != "seed"}, settings)
    if request.seed_given and request.config.seed != stored.get("seed"):
        changed.append("seed")
    if changed:
        raise NstError(
            f"{work.path} holds frames of a run with other settings ({', '.join(changed)}); "
            "pass --restart to discard them, or delete the folder"
        )
    return None if stored.get("seed") is None else int(stored["seed"])


def stylize_video(job: VideoJob, on_event: EventCallback | None = None, frames: FrameLoop | None = None,
                  extra_settings: dict[str, Any] | None = None) -> VideoRun:
    """Stylize the clip of `job` (a video file, GIF or frame folder; see
    prepare_video) into its output.

    Events: a JobEvent per frame (skipped when resumed from the work folder,
    started, finished) and the steps. frames: what makes the frames (default:
    this process, frame after frame; nst.cluster.chunked passes a pool of
    workers) with what else decides them (extra_settings, kept with the finished
    frames: a resumed run must use the same).
    """
    request, clip, options = job.request, job.clip, job.options
    rate = output_rate(clip, job.fps)
    work = WorkFolder(job.output)
    with FolderLock(work.path, job.command) as lock:
        if lock.note and on_event is not None:
            on_event(JobEvent("queued", lock.note, total=None))
        settings = {**run_settings(request, options), **(extra_settings or {})}
        seed = resume_seed(work, request, settings, job.restart)
        request = dataclasses.replace(request, config=request.config.replace(seed=seed))
        work.start({**settings, "seed": seed})
        done = VideoRun(job.output, request.config, options, rate, clip.size)
        (frames or _stylize_frames)(done, request, clip, job.fps, work, on_event)
        audio = clip if options.keep_audio and clip.kind == "video" else None
        write_clip(work.frames(done.frames), job.output, rate, audio)
    work.clear()
    return done


def continues(options: VideoOptions, motion: Motion | None) -> bool:
    """Whether a frame is warm-started from the stylized frame before it: in
    consistent mode, unless the flow explains too little of it (a scene cut)."""
    return options.mode == "consistent" and motion is not None and motion.reliable_share >= SCENE_CUT_SHARE


def next_frame(stylizer: FrameStylizer, options: VideoOptions, content: Tensor, previous: Tensor | None,
               motion: Motion | None, on_step: StepCallback | None,
               toward: Blend | None = None) -> tuple[Tensor, bool]:
    """One frame of a chain: warm-started from `previous` (the stylized frame before
    it, as stored) where `continues` says so, else from scratch. Returns the image
    and whether it was warm-started. The one rule for the local loop and for a
    cluster worker's chunk of frames (which may pass `toward`: see Blend)."""
    warm = previous is not None and continues(options, motion)
    image = _stylize_frame(stylizer, options, content, previous if warm else None, motion, on_step,
                           toward if warm else None)
    return image, warm


@dataclass(frozen=True)
class Blend:
    """Where two chains of frames meet (chunks of a cluster run): a frame of the
    first chain, continued, is pulled toward the second chain's frame at the same
    time by `share` in (0, 1): it starts from the two mixed by `share`, and its
    temporal loss holds it to the previous frame with weight (1 - share) and to
    `image` with weight `share` (everywhere: same time, no flow). Frames with
    rising shares cross from one chain to the other a step at a time."""

    image: Tensor
    share: float


def anchored_frame(stylizer: FrameStylizer, options: VideoOptions, content: Tensor, anchor: Tensor,
                   weights: Tensor, on_step: StepCallback | None) -> Tensor:
    """The first frame of a chain that starts in the middle of a shot, tied to a
    stylized frame of another chain (`anchor`, already warped into this frame;
    `weights` (1, 1, H, W): where that warp is trusted). Made from scratch first,
    then started from the anchor where it is trusted (from scratch elsewhere) and
    held to it by the temporal loss, so the two chains' brush strokes line up
    where their frames meet. With --method fast: the fast result held to the anchor
    (fast_frame)."""
    base = stylizer.fresh(content, on_step)
    weight = options.temporal(stylizer.config.method)
    if stylizer.config.method == "fast":
        return fast_frame(base, [(anchor, weight * weights)])
    assert stylizer.config.steps is not None
    start = weights * anchor + (1 - weights) * base
    temporal = None
    if weight:
        target = colour_target(anchor, stylizer.config.preserve_color)
        temporal = TemporalTarget(target, weights, weight)
    return stylizer.warm(content, start, options.warm_steps(stylizer.config.steps), temporal, on_step)


def as_stored(image: Tensor) -> Tensor:
    """A frame as the work folder stores it (8-bit RGB): what the next frame of a
    chain starts from, locally (WorkFolder.save) and on a worker alike."""
    return to_tensor(to_pil(image)).to(image.device)


def _stylize_frames(
    run: VideoRun,
    request: Request,
    clip: Clip,
    fps: Fraction | None,
    work: WorkFolder,
    on_event: EventCallback | None,
) -> None:
    """The frame loop, filling in `run`: each frame is resumed from the work folder
    or stylized and stored there."""
    config, device = run.config, torch.device(request.device)
    assert config.size is not None
    stylizer: FrameStylizer | None = None
    finished = work.finished()
    total = planned_frames(clip, fps, run.options.max_frames)
    on_step = steps_only(on_event)
    previous: tuple[Tensor, Tensor, Tensor] | None = None  # frame t-1: content, stylized, for flow
    for index, frame in enumerate(read_frames(clip, fps, run.options.max_frames)):
        label = f"frame {index + 1}"
        content, for_flow = frame_tensors(frame, config.size, device)
        run.size = (content.shape[-1], content.shape[-2])
        if stylizer is None:
            styles = [to_tensor(style).to(device) for style in style_images(request)]
            decoder = request.decoder.path if request.decoder is not None else None
            stylizer = FrameStylizer(config, device, styles, content, None, request.scale_plans, decoder)
        start = time.perf_counter()
        motion = motion_between(previous[2], for_flow, run.size) if previous is not None else None
        if index < finished:
            stylized = work.load(index, device)
            notify(on_event, JobEvent("skipped", label, index, total, message="finished earlier"))
        else:
            notify(on_event, JobEvent("started", label, index, total))
            image, warm = next_frame(stylizer, run.options, content,
                                     previous[1] if previous is not None else None, motion, on_step)
            stylized = work.save(index, image)
            elapsed = time.perf_counter() - start
            run.frame_times.append(elapsed)
            (run.warm_times if warm else run.fresh_times).append(elapsed)
            notify(on_event, JobEvent("finished", label, index, total, elapsed))
        if previous is not None and motion is not None:
            run.warping_errors.append(warping_error(stylized, previous[1], motion))
            run.input_warping_errors.append(warping_error(content, previous[0], motion))
        run.frames, run.resumed = index + 1, min(finished, index + 1)
        previous = (content, stylized, for_flow)
    if run.frames == 0:
        raise NstError(f"{clip.path} gave no frames")


def _stylize_frame(
    stylizer: FrameStylizer,
    options: VideoOptions,
    content: Tensor,
    previous: Tensor | None,
    motion: Motion | None,
    on_step: StepCallback | None,
    toward: Blend | None = None,
) -> Tensor:
    """One frame: warm-started from `previous` (stylized frame t-1) moved by
    `motion` and held to it (and blended `toward` another chain's frame), or,
    without `previous`, from scratch (coarse-to-fine, as `nst transfer` would)."""
    config = stylizer.config
    if previous is None or motion is None:
        return stylizer.fresh(content, on_step)
    warped = warp_image(previous, motion.backward)
    keep = 1.0 - toward.share if toward is not None else 1.0
    weight = options.temporal(config.method)
    if config.method == "fast":  # the same pulls, in closed form
        pulls = [(warped, weight * keep * motion.weight_tensor(content.device))]
        if toward is not None:
            pulls.append((toward.image, torch.full_like(pulls[0][1], weight * toward.share)))
        return fast_frame(stylizer.fresh(content, on_step), pulls)
    assert config.steps is not None
    terms: list[TemporalTarget] = []
    if weight:
        target = colour_target(warped, config.preserve_color)
        weights = motion.weight_tensor(content.device)
        terms.append(TemporalTarget(target, weights, weight * keep))
    start = warped
    if toward is not None:
        start = keep * warped + toward.share * toward.image
        if weight:
            other = colour_target(toward.image, config.preserve_color)
            everywhere = torch.ones_like(motion.weight_tensor(content.device))
            terms.append(TemporalTarget(other, everywhere, weight * toward.share))
    temporal = terms[0] if len(terms) == 1 else _Sum(terms) if terms else None
    return stylizer.warm(content, start, options.warm_steps(config.steps), temporal, on_step)


def fast_frame(fast: Tensor, pulls: Sequence[tuple[Tensor, Tensor]]) -> Tensor:
    """A fast frame held to pictures: per pixel the minimizer of |x - fast|^2 + sum w_k
    |x - picture_k|^2. pulls: (picture (B, 3, H, W), weights (B or 1, 1, H, W) >= 0),
    e.g. the previous frame warped by the flow, weighted by --temporal-weight times
    the flow's reliability (where it is not trusted, the frame stays its fast result)."""
    total, weights = fast, torch.ones_like(fast[:, :1])
    for picture, weight in pulls:
        total, weights = total + weight * picture, weights + weight
    return (total / weights).clamp(0, 1)


class _Sum:
    """Several loss terms as one."""
    def __init__(self, terms: Sequence[Callable[[Tensor], Tensor]]) -> None:
        self.terms = list(terms)

    def __call__(self, image: Tensor) -> Tensor:
        total = self.terms[0](image)
        for term in self.terms[1:]:
            total = total + term(image)
        return total
