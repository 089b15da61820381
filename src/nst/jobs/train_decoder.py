"""`nst train-decoder`: train the fast path's decoder. Files in, checkpoints out.

The objective (each batch is half reconstructions, half stylizations):
  reconstruction rows: decode(encode(x)) against x, pixels (MSE, what PSNR
      measures) plus features at relu1_1..relu4_1 (sharper than pixels alone);
  stylization rows (AdaIN's objective, Huang & Belongie 2017): the content's
      features t with a training style's statistics (AdaIN); the decoded image's
      features at the level against t, and its channel means and standard
      deviations at relu1_1..relu4_1 against the style's.
Every term is divided by its target's mean square, so the weights mean shares.

A checkpoint (the decoder, Adam's state, the random generator's state and the
step) is written atomically beside the output every `checkpoint_every` steps and
when the run is stopped (Ctrl-C, SIGTERM: the step in progress finishes first);
running the same command again resumes from it, and a larger --steps trains on.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from nst.core.decoder import Decoder, crop_to, pad_to_multiple
from nst.core.decoder_spec import DecoderSpec
from nst.core.device import select_device
from nst.core.features import FeatureExtractor, build_extractor
from nst.core.transform import adain, mean_std
from nst.errors import NstError
from nst.jobs.decoder_data import StyleBank, image_files, load_images, random_crops, split
from nst.jobs.decoder_state import (
    TrainingState,
    checkpoint_path,
    deferred_stop,
    read_checkpoint,
    write_checkpoint,
    write_decoder,
)
from nst.jobs.train_options import TrainOptions
from nst.layers import LAYERS

LOSS_LAYERS = ("relu_1", "relu_3", "relu_5", "relu_9")  # relu1_1, relu2_1, relu3_1, relu4_1
IMAGE_LONGEST = 512  # training images are read at most this large
EVAL_LONGEST = 256  # held-out images are reconstructed at this size
EVAL_STYLES = 4  # held-out styles the final report stylizes with
# Styles' statistics are taken at this size: that of the photos whose crops are
# trained on (their shorter side rescaled to between --crop and twice it).
STYLE_LONGEST = 256


@dataclass
class TrainProgress:
    """One step done: `losses` of that step; `psnr` when it was evaluated."""

    step: int
    total: int
    losses: dict[str, float]
    elapsed_s: float
    first_step: int
    psnr: float | None = None


@dataclass
class TrainReport:
    output: Path
    checkpoint: Path
    steps: int
    resumed_from: int
    elapsed_s: float
    train_images: int
    held_out: int
    psnr: float
    psnr_history: list[tuple[int, float]] = field(default_factory=list)
    style_distance: float | None = None  # stylized held-out images against held-out styles
    content_style_distance: float | None = None  # the same, of the content images themselves


@dataclass
class _Data:
    content: list[Tensor]
    held_out: list[Tensor]
    styles: StyleBank | None
    held_out_styles: list[Tensor]
    files: dict[str, int]


def _encode(encoder: FeatureExtractor, images: Tensor, margin: int) -> dict[str, Tensor]:
    """Features of training crops with a reflected margin of `margin` px (the
    level's pooling factor: the borders see image-like context, at (1+2m/crop)^2
    the cost instead of the (1+32/crop)^2 of the extractor's usual 16 px)."""
    normalized = (images - encoder.mean) * encoder.input_gain
    padded = F.pad(normalized, (margin,) * 4, mode="reflect")
    h, w = images.shape[-2:]
    return encoder.features(padded, box=(margin, margin + h, margin, margin + w))


def _relative(value: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(value, target) / target.pow(2).mean().clamp_min(1e-12)


def _style_term(features: dict[str, Tensor], means: dict[str, Tensor], stds: dict[str, Tensor],
                layers: Sequence[str]) -> Tensor:
    """AdaIN's style loss: channel means and stds against the style's, each layer
    divided by the style statistics' mean square, averaged over `layers`."""
    total = torch.zeros((), device=features[layers[0]].device)
    for name in layers:
        mean, std = mean_std(features[name])
        scale = (means[name].pow(2) + stds[name].pow(2)).mean().clamp_min(1e-12)
        total = total + (F.mse_loss(mean, means[name]) + F.mse_loss(std, stds[name])) / scale
    return total / len(layers)


def _losses(decoder: Decoder, encoder: FeatureExtractor, batch: Tensor, styles: StyleBank | None,
            options: TrainOptions, generator: torch.Generator) -> dict[str, Tensor]:
    """The terms of one batch (see the module's docstring); 'total' is their weighted sum."""
    spec = decoder.spec
    layers = loss_layers(spec)
    with torch.no_grad():
        inputs = _encode(encoder, batch, spec.factor)
    level = inputs[spec.level]
    rows = batch.shape[0] // 2 if styles is not None else 0  # stylization rows: the second half
    recon = batch.shape[0] - rows
    target, picked = level, None
    if styles is not None and rows:
        picked = styles.pick(torch.randint(len(styles), (rows,), generator=generator).to(batch.device))
        stylized = adain(level[recon:], picked[0][spec.level], picked[1][spec.level])
        target = torch.cat([level[:recon], stylized])
    with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=options.precision == "bf16"):
        out = decoder(target)
    out = out.float()
    outputs = _encode(encoder, out, spec.factor)
    zero = torch.zeros((), device=batch.device)
    features = sum((_relative(outputs[n][:recon], inputs[n][:recon]) for n in layers), zero) / len(layers)
    terms = {"pixel": F.mse_loss(out[:recon], batch[:recon]), "features": features}
    total = options.pixel_weight * terms["pixel"] + terms["features"]
    if picked is not None:
        terms["content"] = _relative(outputs[spec.level][recon:], target[recon:])
        terms["style"] = _style_term({n: outputs[n][recon:] for n in layers}, *picked, layers)
        total = total + terms["content"] + options.style_weight * terms["style"]
    terms["total"] = total
    return terms


def held_out_psnr(decoder: Decoder, encoder: FeatureExtractor, images: Sequence[Tensor],
                  device: torch.device) -> float:
    """Mean PSNR (dB, peak 1) of decode(encode(x)), clamped to [0, 1] and quantized
    to 8 bits as a saved image is, against x, over the held-out images."""
    decoder.eval()
    scores = []
    with torch.no_grad():
        for image in images:
            x = (image.float() / 255).unsqueeze(0).to(device)
            padded, size = pad_to_multiple(x, decoder.spec.factor)
            out = crop_to(decoder(encoder(padded)[decoder.spec.level]), size)
            out = (out.clamp(0, 1) * 255).round() / 255
            mse = float(F.mse_loss(out, x))
            scores.append(10 * math.log10(1 / max(mse, 1e-10)))
    decoder.train()
    return sum(scores) / len(scores)


def _style_bank(encoder: FeatureExtractor, styles: Sequence[Tensor], device: torch.device,
                layers: Sequence[str]) -> StyleBank:
    means: dict[str, list[Tensor]] = {name: [] for name in layers}
    stds: dict[str, list[Tensor]] = {name: [] for name in layers}
    with torch.no_grad():
        for image in styles:
            features = encoder((image.float() / 255).unsqueeze(0).to(device))
            for name in layers:
                mean, std = mean_std(features[name])
                means[name].append(mean)
                stds[name].append(std)
    return StyleBank({n: torch.cat(v) for n, v in means.items()}, {n: torch.cat(v) for n, v in stds.items()})


def _load_data(content_dirs: Sequence[Path], style_dirs: Sequence[Path]) -> tuple[_Data, list[Tensor]]:
    """The images (and the training styles, whose statistics the bank keeps)."""
    train, held = split(image_files(content_dirs))
    style_train, style_held = split(image_files(style_dirs)) if style_dirs else ([], [])
    files = {"content": len(train), "held_out": len(held), "styles": len(style_train),
             "held_out_styles": len(style_held)}
    styles = load_images(style_train, STYLE_LONGEST) if style_train else []
    return _Data(load_images(train, IMAGE_LONGEST), load_images(held, EVAL_LONGEST), None,
                 load_images(style_held, EVAL_LONGEST), files), styles


def loss_layers(spec: DecoderSpec) -> tuple[str, ...]:
    """The loss layers a decoder of this level is trained with: relu1_1.. up to its level."""
    return tuple(name for name in LOSS_LAYERS if LAYERS[name][0] <= spec.depth)


def _learning_rate(options: TrainOptions, step: int) -> float:
    return options.lr / (1 + options.lr_decay * step)


def _adam(options: TrainOptions, device: torch.device) -> Callable[[Decoder], torch.optim.Optimizer]:
    return lambda decoder: torch.optim.Adam(decoder.to(device).parameters(), lr=options.lr)


def _start(options: TrainOptions, checkpoint: Path, generator: torch.Generator,
           device: torch.device) -> tuple[Decoder, torch.optim.Optimizer, TrainingState]:
    """A fresh decoder (drawn from the seed), or the checkpoint's when there is one."""
    if checkpoint.exists():
        return read_checkpoint(checkpoint, _adam(options, device), generator, options.identity())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        decoder = Decoder(DecoderSpec(options.level, options.width))
    generator.manual_seed(options.seed)
    return decoder, _adam(options, device)(decoder), TrainingState(0, options.identity(), [], 0.0)


def _notes(options: TrainOptions, data: _Data, state: TrainingState) -> dict[str, str]:
    """How the decoder was trained, for its file's metadata."""
    return {"trained_steps": str(state.step), "options": json.dumps(asdict(options), sort_keys=True),
            "images": json.dumps(data.files, sort_keys=True), "psnr_history": json.dumps(state.psnr_history)}


def _step(decoder: Decoder, encoder: FeatureExtractor, optimizer: torch.optim.Optimizer, data: _Data,
          options: TrainOptions, generator: torch.Generator, step: int) -> dict[str, float]:
    """One optimizer step (the `step`-th, 0-based); the losses it saw."""
    device = next(decoder.parameters()).device
    batch = random_crops(data.content, options.batch_size, options.crop, generator).to(device)
    terms = _losses(decoder, encoder, batch, data.styles, options, generator)
    for group in optimizer.param_groups:
        group["lr"] = _learning_rate(options, step)
    optimizer.zero_grad(set_to_none=True)
    torch.autograd.backward(terms["total"])
    optimizer.step()
    return {name: float(value.detach()) for name, value in terms.items()}


def _style_distances(decoder: Decoder, encoder: FeatureExtractor, data: _Data,
                     device: torch.device) -> tuple[float, float] | None:
    """The style term (as trained) of held-out images stylized with held-out styles
    (full strength), and of the content images themselves, for comparison."""
    if not data.held_out_styles:
        return None
    layers = loss_layers(decoder.spec)
    styles = _style_bank(encoder, data.held_out_styles[:EVAL_STYLES], device, layers)
    stylized, plain = [], []
    decoder.eval()
    with torch.no_grad():
        for index, image in enumerate(data.held_out):
            x = (image.float() / 255).unsqueeze(0).to(device)
            chosen = torch.tensor([index % len(styles)])
            means, stds = styles.pick(chosen)
            padded, size = pad_to_multiple(x, decoder.spec.factor)
            level = encoder(padded)[decoder.spec.level]
            out = crop_to(decoder(adain(level, means[decoder.spec.level], stds[decoder.spec.level])), size)
            stylized.append(float(_style_term(encoder(out.clamp(0, 1)), means, stds, layers)))
            plain.append(float(_style_term(encoder(x), means, stds, layers)))
    decoder.train()
    return sum(stylized) / len(stylized), sum(plain) / len(plain)


def train_decoder(
    content_dirs: Sequence[Path],
    style_dirs: Sequence[Path],
    output: Path,
    options: TrainOptions,
    on_progress: Callable[[TrainProgress], None] | None = None,
    encoder: FeatureExtractor | None = None,
) -> TrainReport:
    """Train (or resume training) a decoder on the images of `content_dirs`
    (stylized with those of `style_dirs`; none: reconstruction only) and write it to
    `output` (.safetensors). `encoder`: the VGG19 to train against (default: nst's
    Caffe weights up to the level; tests pass their own)."""
    if output.suffix != ".safetensors":
        raise NstError(f"the decoder is written as .safetensors, not {output.name}")
    device = select_device(options.device)
    options = replace(options, precision=options.arithmetic(device.type))
    spec = DecoderSpec(options.level, options.width)
    data, style_images = _load_data(content_dirs, style_dirs)
    if encoder is None:
        encoder = build_extractor(loss_layers(spec), precision=options.precision or "fp32")
    encoder = encoder.to(device)
    if style_images:
        data.styles = _style_bank(encoder, style_images, device, loss_layers(spec))
    checkpoint = checkpoint_path(output)
    generator = torch.Generator()
    decoder, optimizer, state = _start(options, checkpoint, generator, device)
    resumed_from = state.step
    started = time.monotonic() - state.elapsed_s

    def save() -> None:
        state.elapsed_s = time.monotonic() - started
        write_checkpoint(checkpoint, decoder, optimizer, generator, state)
        write_decoder(decoder, output, _notes(options, data, state))

    try:
        with deferred_stop() as stop:
            while state.step < options.steps:
                losses = _step(decoder, encoder, optimizer, data, options, generator, state.step)
                state.step += 1
                psnr = None
                if state.step % options.eval_every == 0 or state.step == options.steps:
                    psnr = held_out_psnr(decoder, encoder, data.held_out, device)
                    state.psnr_history.append((state.step, round(psnr, 3)))
                if state.step % options.checkpoint_every == 0 or state.step == options.steps:
                    save()
                if on_progress is not None:
                    on_progress(TrainProgress(state.step, options.steps, losses,
                                              time.monotonic() - started, resumed_from, psnr))
                stop.raise_if_asked()
    except KeyboardInterrupt:
        save()  # the steps done so far: the same command resumes from here
        raise
    return _report(decoder, encoder, data, device, output, checkpoint, state, resumed_from, save)


def _report(decoder: Decoder, encoder: FeatureExtractor, data: _Data, device: torch.device, output: Path,
            checkpoint: Path, state: TrainingState, resumed_from: int,
            save: Callable[[], None]) -> TrainReport:
    """The run's end: the held-out PSNR (measured now if the last step had none)
    and the held-out style distances."""
    if not state.psnr_history or state.psnr_history[-1][0] != state.step:
        psnr = held_out_psnr(decoder, encoder, data.held_out, device)
        state.psnr_history.append((state.step, round(psnr, 3)))
        save()
    distances = _style_distances(decoder, encoder, data, device)
    return TrainReport(output, checkpoint, state.step, resumed_from, state.elapsed_s, data.files["content"],
                       data.files["held_out"], state.psnr_history[-1][1], list(state.psnr_history),
                       *(distances or (None, None)))
