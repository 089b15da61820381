"""Runs prepared Requests: the `Executor`, the one way every door runs a request, a
batch of requests or a video frame; it keeps the feature networks loaded and alone
calls the engine.

`prepare` (request.py) checks; `Executor.run` runs (tensors.py decodes the inputs
and prepares their colours); `Run.save` finishes (colour and alpha are already
applied; the record goes into the file, written atomically). Inputs may be paths
or PIL images, so the Python API works in memory too (`run`, `execute`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from nst.config import Config, decoder_path
from nst.core.decoder import Decoder, load_decoder
from nst.core.engine import Settings, build_objective, optimize_planned, plan_tensors, stylize
from nst.core.fast import fast_stylize, style_statistics
from nst.core.features import FeatureExtractor, extractor_for
from nst.core.geometry import used_layers
from nst.core.memory import ScalePlan
from nst.core.transform import FeatureStats
from nst.errors import NstError
from nst.events import Event, EventCallback, JobEvent, Result, StepCallback, StepEvent, notify
from nst.files.atomic import remove_stale_temporaries
from nst.files.images import save_image
from nst.jobs.request import ImageInput, Request, check_not_an_input, prepare, scale_plans_on
from nst.jobs.tensors import Tensors, colour_target, load_tensors, restore_colour
from nst.record import RunRecord
from nst.version import __version__

__all__ = ["Executor", "ExtractorCache", "IntermediateSaver", "Run", "Tensors", "batch_key", "execute",
           "execute_batch", "load_tensors", "network_key", "run", "write_output"]


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


# A feature network for a config, on the CPU (the executor moves it to the device):
# extractor_for by default; tests pass a small fake one.
NetworkFactory = Callable[[Config], FeatureExtractor]


def network_key(config: Config, device: str | torch.device) -> tuple[object, ...]:
    """What decides a run's feature network: its layers, weights, pooling, arithmetic
    and device. Runs of one key share one loaded network."""
    return (used_layers(config, config.task != "texture", config.task != "reconstruct"), config.weights,
            config.pooling, config.precision, config.channels_last, str(torch.device(device)))


class ExtractorCache:
    """The networks of the runs a process makes, kept loaded: one per `network_key`
    (the weights themselves are decoded once per process and shared). Holds the last
    `keep` only; the least recently used goes first (before a new one loads)."""

    def __init__(self, keep: int = 4, factory: NetworkFactory | None = None) -> None:
        self.keep = keep
        self.factory: NetworkFactory = factory or extractor_for
        self.networks: dict[tuple[object, ...], FeatureExtractor] = {}

    def get(self, config: Config, device: str | torch.device) -> FeatureExtractor:
        key = network_key(config, device)
        network = self.networks.pop(key, None)
        if network is None:
            while len(self.networks) >= self.keep:  # free the oldest before loading
                del self.networks[next(iter(self.networks))]
            network = self.factory(config).to(device)
        self.networks[key] = network  # most recently used last
        return network

    def __call__(self, request: Request) -> FeatureExtractor:
        return self.get(request.config, request.device)


class Executor:
    """The one way a request, a batch of requests or a video frame runs: every door
    (transfer, batch, studies, the studio, video frames, cluster workers) calls one
    of these, and this class alone calls the engine. It holds the loaded networks
    (an ExtractorCache of `keep`; `factory` makes a network for a config)."""

    def __init__(self, factory: NetworkFactory | None = None, keep: int = 4) -> None:
        self.networks = ExtractorCache(keep, factory)
        self.decoders: dict[tuple[str, int, str], Decoder] = {}  # the last one used, by file and device

    def network(self, config: Config, device: str | torch.device) -> FeatureExtractor:
        return self.networks.get(config, device)

    def decoder(self, config: Config, device: str | torch.device, path: Path | None = None) -> Decoder:
        """The fast path's decoder for `config` on `device` (read from `path` where given:
        a cluster worker's copy of the request's decoder file), kept loaded while its
        file (path and modification time) stays the same."""
        path = path or decoder_path(config)
        try:
            key = (str(path.resolve()), path.stat().st_mtime_ns, str(torch.device(device)))
        except OSError:
            raise NstError(f"decoder file not found: {path}") from None
        decoder = self.decoders.get(key)
        if decoder is None:
            self.decoders.clear()  # one decoder at a time: a new file replaces the old
            decoder = self.decoders[key] = load_decoder(path).to(device)
        return decoder

    def fast_image(self, config: Config, device: str | torch.device, content: torch.Tensor,
                   styles: Sequence[torch.Tensor | FeatureStats], masks: torch.Tensor | None = None,
                   decoder_file: Path | None = None) -> torch.Tensor:
        """The fast path (core/fast.py) on colour-prepared tensors: contents (B, 3, H, W)
        -> (B, 3, H, W), with the encoder computing the decoder's level. styles: images,
        or their statistics (`style_statistics`, once per video)."""
        decoder = self.decoder(config, device, decoder_file)
        encoder = self.network(encoder_config(config, decoder.spec.level), device)
        return fast_stylize(encoder, decoder, content, styles, config.strength, masks, config.style_blend)

    def style_statistics(self, config: Config, device: str | torch.device, styles: Sequence[torch.Tensor],
                         decoder_file: Path | None = None) -> list[FeatureStats]:
        """The styles' feature statistics at the decoder's level: what `fast_image` takes
        for every frame of a clip, computed once."""
        level = self.decoder(config, device, decoder_file).spec.level
        encoder = self.network(encoder_config(config, level), device)
        return [style_statistics(encoder, style, level) for style in styles]

    def run_fast(self, request: Request, on_event: EventCallback | None = None, label: str = "run") -> Run:
        """Run a prepared --method fast request: one pass, no optimization."""
        return self.run_fast_batch([request], on_event, label)[0]

    def run_fast_batch(self, requests: Sequence[Request], on_event: EventCallback | None = None,
                       label: str = "run") -> list[Run]:
        """Fast requests through the network together (one batch_key: one size, the
        same styles, no masks, no colour preservation), or one alone."""
        started = time.perf_counter()
        notify(on_event, JobEvent("started", label))
        first = requests[0]
        config = first.config
        _prepare_device(first)
        loaded = [load_tensors(request) for request in requests]
        content = torch.cat([tensors.content for tensors in loaded if tensors.content is not None])
        image = self.fast_image(config, first.device, content, loaded[0].styles, loaded[0].masks,
                                _decoder_file(first))
        elapsed = time.perf_counter() - started
        runs = []
        for index, (request, tensors) in enumerate(zip(requests, loaded, strict=True)):
            own = restore_colour(image[index:index + 1], tensors.canvas, config.preserve_color).cpu()
            result = Result(own, {}, elapsed, 0, [], [{}])
            runs.append(Run(result, request, _record(request, result, time.perf_counter() - started),
                            tensors.alpha))
        notify(on_event, JobEvent("finished", label, elapsed_s=runs[-1].record.wall_time_s,
                                  record=runs[-1].record))
        return runs

    def run(self, request: Request, on_event: EventCallback | None = None, label: str = "run") -> Run:
        """Run a prepared request. Step events and the job's started/finished events
        go to `on_event`."""
        if request.config.method == "fast":
            return self.run_fast(request, on_event, label)
        started = time.perf_counter()
        notify(on_event, JobEvent("started", label))
        config = request.config
        _prepare_device(request)
        tensors = load_tensors(request)
        if config.init == "fast":  # the optimization starts from the fast result
            tensors = self.with_fast_start(request, tensors)
        torch.manual_seed(config.seed or 0)
        result = self.stylize(self.network(config, request.device), config, scale_plans_on(request),
                              tensors.canvas, tensors.content, tensors.styles, tensors.masks, tensors.init,
                              on_event)
        result.image = restore_colour(result.image, tensors.canvas.cpu(), config.preserve_color)
        record = _record(request, result, time.perf_counter() - started)
        notify(on_event, JobEvent("finished", label, elapsed_s=record.wall_time_s, record=record))
        return Run(result, request, record, tensors.alpha)

    def run_batch(self, requests: Sequence[Request], on_event: EventCallback | None = None) -> list[Run]:
        """Run requests that share one `batch_key` as one batched optimization: the
        engine optimizes each image of a batch exactly as alone (per-image L-BFGS
        histories and losses), so each Run equals its request's `run` to float
        tolerance. Each record holds its own final losses; its step history is the
        batch's mean. Step events (the batch's mean losses) go to `on_event`."""
        if len(requests) == 1:
            return [self.run(requests[0], on_event)]
        keys = {batch_key(request) for request in requests}
        if None in keys or len(keys) != 1:
            raise ValueError("run_batch needs requests of one batch_key")
        if requests[0].config.method == "fast":
            return self.run_fast_batch(requests, on_event)
        started = time.perf_counter()
        first = requests[0]
        config = first.config
        _prepare_device(first)
        loaded = [load_tensors(request) for request in requests]
        canvas = torch.cat([tensors.canvas for tensors in loaded])
        content = torch.cat([tensors.content for tensors in loaded if tensors.content is not None])
        torch.manual_seed(config.seed or 0)
        plans = scale_plans_on(first, len(requests))  # the batch's memory, not one image's
        result = self.stylize(self.network(config, first.device), config, plans, canvas, content,
                              loaded[0].styles, None, None, on_event)
        wall = time.perf_counter() - started
        runs = []
        for index, (request, tensors) in enumerate(zip(requests, loaded, strict=True)):
            own = Result(result.image[index:index + 1], dict(result.image_losses[index]), result.elapsed_s,
                         result.steps, result.history, [result.image_losses[index]])
            runs.append(Run(own, request, _record(request, own, wall), tensors.alpha))
        return runs

    def with_fast_start(self, request: Request, tensors: Tensors) -> Tensors:
        """`tensors` with the fast result as the init image (--init fast), colour-prepared
        as an init image is."""
        assert tensors.content is not None
        fast = self.fast_image(request.config, request.device, tensors.content, tensors.styles, tensors.masks,
                               _decoder_file(request))
        start = restore_colour(fast, tensors.canvas, request.config.preserve_color)
        return dataclasses.replace(tensors, init=colour_target(start, request.config.preserve_color))

    # ------------------------------------------------------------ the engine, called from here only

    def stylize(self, network: FeatureExtractor, config: Config, plans: Sequence[ScalePlan],
                canvas: torch.Tensor, content: torch.Tensor | None, styles: Sequence[torch.Tensor],
                masks: torch.Tensor | None = None, init: torch.Tensor | None = None,
                on_step: StepCallback | None = None) -> Result:
        """Coarse-to-fine through `plans`, as a single run (engine.stylize): requests,
        and video frames made from scratch."""
        return stylize(network, config, plans, canvas, content, styles, masks, init, on_step)

    def plan(self, network: FeatureExtractor, config: Config, canvas: torch.Tensor,
             styles: Sequence[torch.Tensor], steps: int = 0) -> tuple[ScalePlan, ...]:
        """The plan of a run on `canvas` (B, 3, H, W) where it runs (engine.plan_tensors):
        its scales, or one scale of `steps` (a warm video frame)."""
        return plan_tensors(network, config, canvas, styles, steps)

    def optimize_scale(self, network: FeatureExtractor, config: Config, plan: ScalePlan,
                       content: torch.Tensor, styles: Sequence[torch.Tensor], start: torch.Tensor,
                       extra_terms: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
                       on_step: StepCallback | None = None) -> torch.Tensor:
        """One planned scale from `start`, with `extra_terms` added to the loss (a
        warm-started video frame's temporal loss)."""
        objective = build_objective(network, config, content, styles, tile_side=plan.tile_side)
        objective.extra_terms.update(extra_terms)
        return optimize_planned(objective, start, Settings.of(config), plan, on_step).image


def execute(
    request: Request,
    on_event: EventCallback | None = None,
    extractor: FeatureExtractor | None = None,
    label: str = "run",
) -> Run:
    """Run a prepared request (the Python API; doors keep an Executor). `extractor`:
    the network to use, for a caller that keeps one loaded."""
    factory = (lambda config: extractor) if extractor is not None else None
    return Executor(factory, keep=1).run(request, on_event, label)


def execute_batch(
    requests: Sequence[Request],
    on_event: EventCallback | None = None,
    extractor: FeatureExtractor | None = None,
) -> list[Run]:
    """`Executor.run_batch` for requests of one `batch_key`."""
    factory = (lambda config: extractor) if extractor is not None else None
    return Executor(factory, keep=1).run_batch(requests, on_event)


def encoder_config(config: Config, level: str) -> Config:
    """The config whose network (ExtractorCache) is the fast path's encoder: the run's
    weights, pooling, arithmetic and layout, computing the decoder's `level` only."""
    return config.replace(content_layers=(level,), style_layers=(), content_layer_weights=None,
                          style_layer_weights=None)


def _decoder_file(request: Request) -> Path | None:
    """Where a request's decoder is read (a worker's copy of it), if it names one."""
    return request.decoder.path if request.decoder is not None else None


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
    """Requests with the same key can run as one batched optimization (`Executor.run_batch`),
    each image following the path it would follow alone: transfers that differ only in
    their content image, of one size, starting from the content. None: this one runs alone
    (masks, an init image, noise starts, colour preservation and gradient normalization
    all depend on the image, or draw from one seed per run)."""
    config = request.config
    if config.method == "fast":  # colours are prepared per content; masks place styles per image
        if request.content is None or request.masks or config.preserve_color is not None:
            return None
    elif (request.content is None or request.masks or request.init is not None or config.init != "content"
            or config.preserve_color is not None or config.normalize_gradients):
        return None
    styles = [(style.sha256, style.size) for style in request.styles]
    return json.dumps([config.to_dict(), request.device, styles, repr(request.sizes)], sort_keys=True)


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
