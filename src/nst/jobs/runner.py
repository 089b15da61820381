"""Runs a prepared Request: decodes its inputs, calls the engine, finishes the image.

`prepare` (request.py) checks; `execute` runs; `Run.save` finishes (colour and
alpha are already applied; the record goes into the file, written atomically).
Inputs may be paths or PIL images, so the Python API works in memory too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from nst import __version__
from nst.config import Config
from nst.core.color import luminance, match_colors, matched_luminance, with_content_chroma
from nst.core.engine import stylize
from nst.core.features import FeatureExtractor, extractor_for
from nst.core.geometry import used_layers
from nst.core.masks import masks_from_images
from nst.errors import NstError
from nst.events import Event, EventCallback, JobEvent, Result, StepCallback, StepEvent
from nst.files.atomic import remove_stale_temporaries
from nst.files.images import load_image, save_image, to_tensor
from nst.jobs.request import ImageInput, InputFile, Request, check_not_an_input, prepare, scale_plans_on
from nst.record import RunRecord


@dataclass
class Run:
    """A finished run: the result, the request it answered (resolved config, seed
    included), its record, and the content's transparency (kept for PNG/WebP)."""

    result: Result
    request: Request
    record: RunRecord
    alpha: Image.Image | None = None

    @property
    def config(self) -> Config:
        return self.request.config

    def save(self, path: str | Path | None = None) -> Path:
        """Write the image with its record, atomically; by default to the request's output."""
        target = Path(path) if path is not None else self.request.output
        if target is None:
            raise NstError("no output path: pass one to save()")
        return write_output(self.result.image, self.request, self.record, target, self.alpha)


def write_output(image: torch.Tensor | Image.Image, request: Request, record: RunRecord, target: Path,
                 alpha: Image.Image | None = None) -> Path:
    """Write a finished run's image with its record, atomically: `Run.save`, and a
    cluster driver writing the image a worker sent back (a decoded PIL image)."""
    check_not_an_input(target, request.inputs)
    # Writers killed mid-write (kill -9, power loss) leave temporaries: clear theirs.
    remove_stale_temporaries(target.parent)
    return save_image(image, target, record.to_dict(), alpha)


def _decode(item: InputFile, max_pixels: int) -> Image.Image:
    if item.image is not None:
        return item.image.convert("RGBA" if "A" in item.image.getbands() else "RGB")
    assert item.path is not None
    return load_image(item.path, max_pixels)


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


@dataclass
class Tensors:
    """A request's inputs decoded at the sizes its plan fixed, on its device."""

    canvas: torch.Tensor  # (1, 3, H, W): the content at output size, or zeros for a texture
    content: torch.Tensor | None
    styles: list[torch.Tensor]
    masks: torch.Tensor | None
    init: torch.Tensor | None
    alpha: Image.Image | None


def load_tensors(request: Request) -> Tensors:
    """Decode every input of `request` at its planned size (and colour-prepare it)."""
    assert request.sizes is not None
    config, sizes, device = request.config, request.sizes, torch.device(request.device)
    width, height = sizes.canvas
    alpha = None
    if request.content is not None:
        content_image = _fit(_decode(request.content, config.max_pixels), (width, height))
        alpha = content_image.getchannel("A") if content_image.mode == "RGBA" else None
        canvas = to_tensor(content_image).to(device)
    else:
        canvas = torch.zeros(1, 3, height, width, device=device)
    styles = [to_tensor(_fit(_decode(s, config.max_pixels), size)).to(device)
              for s, size in zip(request.styles, sizes.styles, strict=True)]
    masks = None
    if request.masks:
        mask_images = [_decode(m, config.max_pixels) for m in request.masks]
        masks = masks_from_images(mask_images, len(styles), (width, height)).to(device)
    init = None
    if request.init is not None:
        init = to_tensor(_fit(_decode(request.init, config.max_pixels), (width, height))).to(device)
    content = canvas if request.content is not None else None
    if content is not None and config.preserve_color == "luminance":
        # Transfer grey on grey; the content's colours go back on at the end.
        styles = [matched_luminance(style, content) for style in styles]
        content = luminance(content)
        init = luminance(init) if init is not None else None
    elif content is not None and config.preserve_color == "histogram":
        styles = [match_colors(style, content) for style in styles]
    return Tensors(canvas, content, styles, masks, init, alpha)


def execute(
    request: Request,
    on_event: EventCallback | None = None,
    extractor: FeatureExtractor | None = None,
    label: str = "run",
) -> Run:
    """Run a prepared request. Step events and the job's started/finished events
    go to `on_event`; `extractor` lets a caller that runs many requests of one
    network keep it loaded."""
    started = time.perf_counter()
    if on_event is not None:
        on_event(JobEvent("started", label))
    config = request.config
    _prepare_device(request)
    tensors = load_tensors(request)
    torch.manual_seed(config.seed or 0)
    network = extractor if extractor is not None else extractor_for(config).to(request.device)
    result = stylize(network, config, scale_plans_on(request), tensors.canvas, tensors.content,
                     tensors.styles, tensors.masks, tensors.init, on_event)
    if config.preserve_color == "luminance":
        result.image = with_content_chroma(result.image, tensors.canvas.cpu())
    record = _record(request, result, time.perf_counter() - started)
    if on_event is not None:
        on_event(JobEvent("finished", label, elapsed_s=record.wall_time_s, record=record))
    return Run(result, request, record, tensors.alpha)


def _prepare_device(request: Request) -> None:
    if torch.device(request.device).type == "cuda":
        # Every scale keeps its image size for hundreds of steps: let cuDNN time its
        # convolution algorithms once per size and keep the fastest.
        torch.backends.cudnn.benchmark = True


def _record(request: Request, result: Result, wall_time_s: float) -> RunRecord:
    return RunRecord(
        config=request.config, inputs=request.input_records(), seed_given=request.seed_given,
        losses=result.losses, steps=result.steps, run_time_s=result.elapsed_s,
        wall_time_s=wall_time_s, device=request.device, nst_version=__version__,
        torch_version=torch.__version__, history=tuple(result.history),
    )


def batch_key(request: Request) -> str | None:
    """Requests with the same key can run as one batched optimization (`execute_batch`),
    each image following the path it would follow alone: transfers that differ only in
    their content image, of one size, starting from the content. None: this one runs alone
    (masks, an init image, noise starts, colour preservation and gradient normalization
    all depend on the image, or draw from one seed per run)."""
    config = request.config
    if (request.content is None or request.masks or request.init is not None or config.init != "content"
            or config.preserve_color is not None or config.normalize_gradients):
        return None
    styles = [(style.sha256, style.size) for style in request.styles]
    return json.dumps([config.to_dict(), request.device, styles, repr(request.sizes)], sort_keys=True)


def execute_batch(
    requests: Sequence[Request],
    on_event: EventCallback | None = None,
    extractor: FeatureExtractor | None = None,
) -> list[Run]:
    """Run requests that share one `batch_key` as one batched optimization: the
    engine optimizes each image of a batch exactly as alone (per-image L-BFGS
    histories and losses), so each Run equals its request's `execute` to float
    tolerance. Each record holds its own final losses; its step history is the
    batch's mean. Step events (the batch's mean losses) go to `on_event`."""
    if len(requests) == 1:
        return [execute(requests[0], on_event, extractor)]
    keys = {batch_key(request) for request in requests}
    if None in keys or len(keys) != 1:
        raise ValueError("execute_batch needs requests of one batch_key")
    started = time.perf_counter()
    first = requests[0]
    config = first.config
    _prepare_device(first)
    loaded = [load_tensors(request) for request in requests]
    canvas = torch.cat([tensors.canvas for tensors in loaded])
    contents = [tensors.content for tensors in loaded]
    content = torch.cat([c for c in contents if c is not None])
    torch.manual_seed(config.seed or 0)
    network = extractor if extractor is not None else extractor_for(config).to(first.device)
    plans = scale_plans_on(first, len(requests))  # the batch's memory, not one image's
    result = stylize(network, config, plans, canvas, content, loaded[0].styles, None, None, on_event)
    wall = time.perf_counter() - started
    runs = []
    for index, (request, tensors) in enumerate(zip(requests, loaded, strict=True)):
        own = Result(result.image[index:index + 1], dict(result.image_losses[index]), result.elapsed_s,
                     result.steps, result.history, [result.image_losses[index]])
        runs.append(Run(own, request, _record(request, own, wall), tensors.alpha))
    return runs


class ExtractorCache:
    """The networks of the requests a process runs, kept loaded: one per set of
    layers, weights, pooling, arithmetic and device (the weights themselves are
    decoded once per process and shared). Holds the last few only."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self.networks: dict[tuple[object, ...], FeatureExtractor] = {}

    def __call__(self, request: Request) -> FeatureExtractor:
        config = request.config
        key = (used_layers(config, config.task != "texture", config.task != "reconstruct"), config.weights,
               config.pooling, config.precision, config.channels_last, request.device)
        network = self.networks.pop(key, None)
        if network is None:
            network = extractor_for(config).to(request.device)
        self.networks[key] = network  # most recently used last
        while len(self.networks) > self.keep:
            del self.networks[next(iter(self.networks))]
        return network


def run(
    config: Config,
    content: ImageInput | None = None,
    styles: Sequence[ImageInput] = (),
    on_step: StepCallback | None = None,
    masks: Sequence[ImageInput] = (),
    on_event: EventCallback | None = None,
) -> Run:
    """Run one reconstruction, texture synthesis or transfer as `config` says
    (the Python API: prepare, then execute). `on_step` receives the StepEvents;
    `on_event` the whole stream (StepEvents and the run's JobEvents)."""
    def forward(event: Event) -> None:
        if on_step is not None and isinstance(event, StepEvent):
            on_step(event)
        if on_event is not None:
            on_event(event)

    return execute(prepare(config, content, styles, masks), forward)


class IntermediateSaver:
    """A step callback that writes the image every `every` steps next to the output
    (out.png -> out.step0050.png)."""

    def __init__(self, output: Path, every: int) -> None:
        self.output, self.every = output, every

    def path_for(self, step: int) -> Path:
        return self.output.with_name(f"{self.output.stem}.step{step:04d}{self.output.suffix}")

    def __call__(self, event: StepEvent) -> None:
        if self.every and event.step % self.every == 0 and event.step < event.total_steps:
            save_image(event.image.cpu(), self.path_for(event.step))
