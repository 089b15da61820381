"""The `nst` parser and the Config its arguments ask for.

Every default a help text states is read from where it lives (Config, the
video options, the memory plan), and no option has an argparse default that
stands in for Config's: an option left out is None here and Config decides.
What a task means (which fields it sets, which options it refuses) is
nst.tasks's; `config_from_args` only hands it what the user gave.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from nst.cli.cluster import add_cluster_options
from nst.cli.serve import add_serve_command
from nst.cli.studies import add_study_commands
from nst.config import (
    COLOR_MODES,
    DEFAULT_CONTENT_LAYERS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_STYLE_LAYERS,
    METHODS,
    OPTIMIZERS,
    POOLINGS,
    PRECISIONS,
    PRESETS,
    STYLE_LOSSES,
    Config,
    apply_preset,
    default_size,
    default_steps,
)
from nst.core.memory import BUDGET_SHARE, HISTORY_CAP
from nst.errors import NstError
from nst.files.frames import FOLDER_DEFAULT_FPS
from nst.jobs.train_options import TrainOptions
from nst.jobs.video_request import MODES, WARM_START_SHARE, VideoOptions
from nst.plans.sweeps import compact_layers
from nst.samples import STYLE_SAMPLES
from nst.tasks import task_config
from nst.version import __version__

DEFAULTS = Config()
VIDEO_DEFAULTS = VideoOptions()
TRAIN_DEFAULTS = TrainOptions()
BATCH_FORMATS = ("png", "jpg", "webp")
THREADS_VARIABLE = "NST_THREADS"
# Commands that run another command's task many times.
COMMAND_TASKS = {"batch": "transfer", "video": "transfer", "sweep": "transfer"}
# Argument names that map one-to-one onto Config fields.
CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(Config)) - {"task"}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and still exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """parse_args, but a mistyped option names the nearest option of its command."""
    known, extras = parser.parse_known_args(argv)
    if extras:
        command = _subparser(parser, getattr(known, "command", None))
        command.error(unrecognized(extras, command))
    return known


def _subparser(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            chosen = action.choices[name]
            if isinstance(chosen, argparse.ArgumentParser):
                return chosen
    return parser


def unrecognized(extras: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """'unrecognized argument --stlye-weight (did you mean --style-weight?)'; argparse's
    own words where no option is near."""
    options = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    for extra in extras:
        name = extra.split("=", 1)[0]
        close = difflib.get_close_matches(name, options, n=1) if name.startswith("-") else []
        if close:
            return f"unrecognized argument {name} (did you mean {close[0]}?)"
    return f"unrecognized arguments: {' '.join(extras)}"


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _scales(text: str) -> int | None:
    """--scales: 'auto' (None: about sqrt(2) apart), 'off' (1) or a count."""
    if text == "auto":
        return None
    if text == "off":
        return 1
    return _integer(text)


def _history(text: str) -> int | None:
    """--history-size: 'auto' (None: as much as the memory budget allows) or a count."""
    return None if text == "auto" else _integer(text)


_MEMORY_UNITS = {"": 1 << 30, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _memory(text: str) -> int:
    """--max-memory: a size in bytes from '12G', '12GiB', '800M', '0.5T' (binary
    units; a bare number is GiB)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"expected a memory size like 12G or 800M, got {text!r}")
    return max(1, round(float(match[1]) * _MEMORY_UNITS[match[2].lower()]))


def _numbers(text: str) -> tuple[float, ...]:
    return tuple(_number(part) for part in text.split(",") if part.strip())


def thread_count(text: str, source: str = "--threads") -> int:
    """A thread count from --threads or NST_THREADS: a whole number of at least 1."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise NstError(f"{source} must be a whole number of at least 1, got {text!r}")
    return count


def _threads(text: str) -> int:
    try:
        return thread_count(text)
    except NstError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}") from None


def threads_from(args: argparse.Namespace) -> int | None:
    """--threads, else $NST_THREADS, else None (torch's own choice)."""
    if getattr(args, "threads", None) is not None:
        return int(args.threads)
    text = os.environ.get(THREADS_VARIABLE, "").strip()
    return thread_count(text, THREADS_VARIABLE) if text else None


def add_threads_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--threads", type=_threads, metavar="N",
                        help=f"CPU threads torch computes with (default: ${THREADS_VARIABLE}, else torch's "
                        "choice: one per core); 1 is fastest on a machine other jobs keep busy")


def _on_device(values: Any) -> str:
    """'384 on CPU, 512 on GPU' from a function of the device type."""
    return f"{values('cpu')} on CPU, {values('cuda')} on GPU"


def _add_optimization(parser: argparse.ArgumentParser) -> None:
    run = parser.add_argument_group("optimization")
    run.add_argument("--steps", type=_integer, help=f"iterations (default: {_on_device(default_steps)})")
    run.add_argument("--optimizer", choices=OPTIMIZERS, help=f"default: {DEFAULTS.optimizer}")
    run.add_argument("--lr", "--learning-rate", dest="learning_rate", type=_number,
                     help="step size (default: " + ", ".join(
                         f"{rate:g} for {name}" for name, rate in DEFAULT_LEARNING_RATE.items()) + ")")
    run.add_argument("--history-size", type=_history, metavar="auto|N",
                     help="L-BFGS: steps it remembers (auto, the default: as many as --max-memory "
                     f"allows, up to {HISTORY_CAP})")
    run.add_argument("--ema-decay", type=_number,
                     help="adam: the output is the moving average of the iterates with this decay "
                     f"(default: {DEFAULTS.ema_decay:g}; 0: the last iterate)")
    run.add_argument("--init", help="start image: content, noise, blend, fast (the --method fast result) "
                     "or an image path "
                     "(default: content for a transfer, else noise)")
    run.add_argument("--alpha", type=_number, help="noise share for --init blend: noise*A + content*(1-A)"
                     f" (default: {DEFAULTS.alpha:g})")
    run.add_argument("--tv-weight", type=_number,
                     help=f"total-variation weight (default: {DEFAULTS.tv_weight:g})")
    run.add_argument("--seed", type=_integer,
                     help="random seed (default: a random one, recorded in the output)")
    add_threads_option(run)


def _add_network(parser: argparse.ArgumentParser) -> None:
    net = parser.add_argument_group("network and device")
    net.add_argument("--weights", help=f"caffe, torchvision, or a .pth/.safetensors file "
                     f"(default: {DEFAULTS.weights})")
    net.add_argument("--pooling", choices=POOLINGS, help=f"default: {DEFAULTS.pooling}")
    net.add_argument("--device", help=f"auto, cpu, cuda, cuda:N or mps (default: {DEFAULTS.device})")
    net.add_argument("--precision", choices=PRECISIONS,
                     help="the network's arithmetic, losses stay float32: fp32, tf32 (CUDA tensor cores; "
                     "the default there) or bf16 (autocast; the default for transfers on a CPU "
                     "with native bf16, else fp32)")
    net.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                     help="run the network in NHWC memory layout: 10%% faster with bf16 on a CPU with "
                     "Intel AMX, slower elsewhere (default: on there, off elsewhere)")


def _add_sizes(parser: argparse.ArgumentParser, one_image: bool) -> None:
    io = parser.add_argument_group("sizes and output")
    io.add_argument("--size", type=_integer,
                    help=f"longest side of the output in pixels (default: {_on_device(default_size)})")
    io.add_argument("--scales", type=_scales, metavar="auto|off|N",
                    help="coarse-to-fine: optimize from --start-size up to --size in about sqrt(2) steps "
                    "(auto, the default), at --size only (off), or in N scales")
    io.add_argument("--start-size", type=_integer,
                    help=f"longest side of the coarsest scale (default: {DEFAULTS.start_size})")
    io.add_argument("--max-pixels", type=_integer,
                    help=f"refuse images larger than this (default: {DEFAULTS.max_pixels:,})")
    io.add_argument("--max-memory", type=_memory, metavar="SIZE",
                    help="memory a run may use, like 12G or 800M: large scales then run tile by tile and "
                    f"with a shorter L-BFGS history (default: {BUDGET_SHARE * 100:.0f}%% of the RAM, "
                    "or of the GPU's memory)")
    if one_image:
        io.add_argument("--save-every", type=_integer, default=0, metavar="N",
                        help="also save the image every N steps (out.step0050.png, ...)")
        io.add_argument("--dry-run", action="store_true",
                        help="check everything and print each scale's size, steps and estimated peak "
                        "memory; compute and write nothing")
    io.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def _add_common(parser: argparse.ArgumentParser, output_help: str = "output image (.png, .jpg, .webp)",
                one_image: bool = True) -> None:
    """Options every command shares (and, with `one_image`, those of the commands
    that make one picture)."""
    parser.add_argument("-o", "--output", required=True, type=Path, help=output_help)
    _add_optimization(parser)
    _add_network(parser)
    _add_sizes(parser, one_image)


def _add_style_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--style-size", type=_integer,
                        help="longest side of the style images (default: --size); sets the style's scale")
    parser.add_argument("--style-layer-weights", type=_numbers, metavar="W1,W2,...",
                        help="one weight per style layer (default: 1 each)")
    parser.add_argument("--style-loss", choices=STYLE_LOSSES,
                        help="gram: Gram matrices; meancov: feature means and covariances "
                        f"(Wasserstein-2), often cleaner colours (default: {DEFAULTS.style_loss})")
    parser.add_argument("--normalize-gradients", action="store_true", default=None,
                        help="rescale the style layers so each pulls equally hard "
                        "at the start of every scale")


def _add_transfer_options(tr: argparse.ArgumentParser) -> None:
    """The weights, layers and styles of a transfer (shared by transfer, batch and video)."""
    tr.add_argument("--content-weight", type=_number,
                    help=f"content weight (default: {DEFAULTS.content_weight:g})")
    tr.add_argument("--style-weight", type=_number,
                    help=f"style weight (default: {DEFAULTS.style_weight:g})")
    tr.add_argument("--content-layers", help=f"default: {compact_layers(DEFAULT_CONTENT_LAYERS)}")
    tr.add_argument("--style-layers", help=f"default: {compact_layers(DEFAULT_STYLE_LAYERS)}")
    tr.add_argument("--content-layer-weights", type=_numbers, metavar="W1,W2,...",
                    help="one weight per content layer (default: 1 each)")
    tr.add_argument("--style-blend", type=_numbers, metavar="W1,W2,...",
                    help="weights of several style images (default: equal)")
    tr.add_argument("--preserve-color", choices=COLOR_MODES,
                    help="luminance: keep the content's colours exactly (transfer on luminance only); "
                    "histogram: recolour the style to the content's colour statistics first")
    tr.add_argument("--method", choices=METHODS,
                    help="gatys: optimize the picture; fast: one pass through a trained decoder, "
                    f"under a second (default: {DEFAULTS.method})")
    tr.add_argument("--strength", type=_number,
                    help=f"--method fast: 0 keeps the content, 1 paints the full style (default: "
                    f"{DEFAULTS.strength:g})")
    tr.add_argument("--decoder", help="--method fast: a decoder .safetensors file (nst train-decoder makes "
                    "one; default: the one nst ships)")
    tr.add_argument("--preset", choices=sorted(PRESETS),
                    help="gatys: content relu4_2, style relu1_1..relu5_1, weights balanced for them")
    _add_style_options(tr)


def _add_batch_parser(commands: Any) -> None:
    batch = commands.add_parser("batch", help="style every image in a folder (resumes where it stopped)")
    batch.add_argument("input_dir", type=Path, metavar="INPUT_DIR", help="folder of images")
    batch.add_argument("styles", nargs="+", type=Path, metavar="STYLE", help="style image(s)")
    batch.add_argument("-r", "--recursive", action="store_true", help="also style images in subfolders")
    batch.add_argument("--format", choices=BATCH_FORMATS, default=BATCH_FORMATS[0],
                       help=f"output format (default: {BATCH_FORMATS[0]})")
    batch.add_argument("--overwrite", action="store_true",
                       help="redo outputs that an earlier run made with other settings")
    _add_transfer_options(batch)
    _add_common(batch, "output folder (created if missing); index.jpg there shows inputs next to outputs",
                one_image=False)
    add_cluster_options(batch)


def _add_video_parser(commands: Any) -> None:
    from nst.cluster.chunks import Chunking  # noqa: PLC0415  (torch- and ray-free; its defaults)

    chunking = Chunking()
    video = commands.add_parser("video", help="stylize a video, an animated GIF or a folder of frames")
    video.add_argument("input", type=Path, metavar="INPUT",
                       help="video file (.mp4, .webm, .mov, ...), animated .gif "
                       "or a folder of numbered frames")
    video.add_argument("styles", nargs="+", type=Path, metavar="STYLE", help="style image(s)")
    group = video.add_argument_group("video")
    group.add_argument("--mode", choices=MODES,
                       help="consistent: each frame starts from the previous one moved by optical flow and "
                       "is held to it; independent: each frame alone (flickers) "
                       f"(default: {VIDEO_DEFAULTS.mode})")
    group.add_argument("--temporal-weight", type=_number, help="weight of the temporal loss in consistent "
                       f"mode (default: {VIDEO_DEFAULTS.temporal():g}); with --method fast, the weight of "
                       "the previous frame moved by the flow against the frame's fast result "
                       f"(default: {VIDEO_DEFAULTS.temporal('fast'):g})")
    group.add_argument("--frame-steps", type=_integer, help="steps of each frame after the first in "
                       f"consistent mode (default: {WARM_START_SHARE:g} of --steps)")
    group.add_argument("--fps", type=_number, help="frame rate: drops frames of a video or GIF to reach it; "
                       "sets a frame folder's rate "
                       f"(default: the input's; {FOLDER_DEFAULT_FPS} for a folder)")
    group.add_argument("--max-frames", type=_integer, help="stop after this many frames")
    group.add_argument("--no-audio", action="store_true", help="leave out the input's sound track")
    group.add_argument("--restart", action="store_true",
                       help="discard frames an interrupted run left (by default a run resumes)")
    group.add_argument("--chunk-frames", type=_integer, metavar="K",
                       help="with --cluster in consistent mode: frames per chunk, each chained on one "
                       f"worker (default: {chunking.frames})")
    group.add_argument("--chunk-overlap", type=_integer, metavar="O",
                       help="with --cluster in consistent mode: lead-in frames of a chunk that starts "
                       "inside a shot, and frames blended where it meets the chunk before "
                       f"(default: {chunking.overlap})")
    _add_transfer_options(video)
    _add_common(video, "output video (.mp4, .webm, .mov, .mkv), animated .gif, or a folder for PNG frames",
                one_image=False)
    add_cluster_options(video)


def _add_single_parsers(commands: Any) -> argparse.ArgumentParser:
    """reconstruct, texture and transfer; returns transfer's parser (sweep shares its options)."""
    rec = commands.add_parser("reconstruct", help="reconstruct an image from one layer's features")
    rec.add_argument("content", type=Path, help="image to reconstruct")
    rec.add_argument("--content-layers", "--layer", dest="content_layers", metavar="LAYER",
                     help="the one feature layer to reconstruct from (default: "
                     f"{compact_layers(DEFAULT_CONTENT_LAYERS)}; --layer is an alias)")
    _add_common(rec)
    tex = commands.add_parser("texture", help="synthesize a texture from Gram statistics")
    tex.add_argument("styles", nargs="+", type=Path, metavar="STYLE", help="style image(s)")
    tex.add_argument("--style-layers", "--layers", dest="style_layers",
                     help="style layers, e.g. conv_1-conv_5 or relu1_1,relu2_1 (default: "
                     f"{compact_layers(DEFAULT_STYLE_LAYERS)}; --layers is an alias)")
    tex.add_argument("--width", type=_integer, help="texture width in pixels")
    tex.add_argument("--height", type=_integer, help="texture height in pixels")
    tex.add_argument("--style-blend", type=_numbers, metavar="W1,W2,...",
                     help="weights of several style images (default: equal)")
    _add_style_options(tex)
    _add_common(tex)
    tr: argparse.ArgumentParser = commands.add_parser(
        "transfer", help="paint a content image in the style of artworks")
    tr.add_argument("content", type=Path, help="content image")
    tr.add_argument("styles", nargs="+", type=Path, metavar="STYLE", help="style image(s)")
    tr.add_argument("--mask", action="append", type=Path, default=[], metavar="MASK",
                    help="spatial control: one colour-labelled image (regions go to the styles from "
                    "the darkest colour to the lightest) or one greyscale mask per style (repeat --mask)")
    _add_transfer_options(tr)
    _add_common(tr)
    return tr


def _add_demo_parser(commands: Any) -> None:
    demo = commands.add_parser("demo", help="stylize the shipped sample photo (no arguments needed)")
    demo.add_argument("-o", "--output", type=Path, default=Path("nst-demo"),
                      help="output folder (default: ./nst-demo)")
    demo.add_argument("--style", choices=(*STYLE_SAMPLES, "all"), default=STYLE_SAMPLES[0],
                      help=f"which sample painting (default: {STYLE_SAMPLES[0]})")
    demo.add_argument("--size", type=_integer, help=f"longest side (default: {_on_device(default_size)})")
    demo.add_argument("--steps", type=_integer, help=f"iterations (default: {_on_device(default_steps)})")
    demo.add_argument("--device", help=f"auto, cpu, cuda, cuda:N or mps (default: {DEFAULTS.device})")
    add_threads_option(demo)
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def _add_train_decoder_parser(commands: Any) -> None:
    """`nst train-decoder`: its defaults are TrainOptions' (an option left out is None)."""
    train = commands.add_parser("train-decoder", help="train the decoder of --method fast "
                                "(resumes where it stopped)")
    train.add_argument("content_dirs", nargs="+", type=Path, metavar="IMAGES_DIR",
                       help="folder(s) of photos it learns to reconstruct (5%% held out by file name)")
    train.add_argument("--style-dir", action="append", type=Path, default=[], metavar="DIR",
                       help="folder of paintings whose statistics it learns to paint with (repeat for "
                       "more; none: reconstruction only)")
    train.add_argument("-o", "--output", required=True, type=Path,
                       help="decoder file (.safetensors); its checkpoint is written beside it")
    d = TRAIN_DEFAULTS
    run = train.add_argument_group("training")
    run.add_argument("--steps", type=_integer, help=f"optimizer steps in all (default: {d.steps}); "
                     "a larger count than a finished run's trains it on")
    run.add_argument("--batch-size", type=_integer, help=f"crops per step (default: {d.batch_size})")
    run.add_argument("--crop", type=_integer, help=f"side of the square training crops (default: {d.crop})")
    run.add_argument("--lr", type=_number, help=f"Adam's step size (default: {d.lr:g})")
    run.add_argument("--level", help="VGG19 layer it decodes: relu4_1 or relu3_1 (default: relu4_1)")
    run.add_argument("--width", type=_integer, help=f"channels of its last block (default: {d.width})")
    run.add_argument("--style-weight", type=_number, dest="decoder_style_weight",  # not Config's
                     help=f"style term's weight (default: {d.style_weight:g})")
    run.add_argument("--checkpoint-every", type=_integer,
                     help=f"steps between checkpoints (default: {d.checkpoint_every})")
    run.add_argument("--eval-every", type=_integer,
                     help=f"steps between held-out PSNR reports (default: {d.eval_every})")
    run.add_argument("--seed", type=_integer, help=f"random seed (default: {d.seed})")
    run.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: cpu)")
    run.add_argument("--precision", choices=("fp32", "bf16"),
                     help="bf16 autocast (the default on a GPU or a CPU with native bf16) or fp32")
    add_threads_option(run)
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def train_options_from(args: argparse.Namespace) -> TrainOptions:
    names = {"steps": "steps", "batch_size": "batch_size", "crop": "crop", "lr": "lr", "level": "level",
             "width": "width", "decoder_style_weight": "style_weight", "checkpoint_every": "checkpoint_every",
             "eval_every": "eval_every", "seed": "seed", "device": "device", "precision": "precision"}
    return TrainOptions(**{field: getattr(args, dest) for dest, field in names.items()
                           if getattr(args, dest) is not None})


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nst", description="Neural style transfer (Gatys et al.) with VGG19.")
    parser.add_argument("--version", action="version", version=f"nst {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    transfer = _add_single_parsers(commands)
    _add_batch_parser(commands)
    _add_video_parser(commands)
    _add_demo_parser(commands)
    _add_train_decoder_parser(commands)
    add_study_commands(commands, transfer)
    add_threads_option(commands.choices["study"])
    add_serve_command(commands)
    add_threads_option(commands.choices["serve"])
    return parser


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Config fields the user gave (an option left out is None)."""
    return {name: value for name, value in vars(args).items() if name in CONFIG_FIELDS and value is not None}


def config_from_args(args: argparse.Namespace) -> Config:
    """A Config from parsed arguments: Config defaults, then the preset, then
    whatever the user gave explicitly, as the command's task means them."""
    base = apply_preset(DEFAULTS, args.preset) if getattr(args, "preset", None) else DEFAULTS
    return task_config(COMMAND_TASKS.get(args.command, args.command), given_options(args), base)
