"""The `nst` command line: parse arguments into a Config, run it, report.

Errors become exit codes in exactly one place, `main`: 2 for bad input (one
line, no traceback), 1 for a run that failed, 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch

from . import __version__
from .cli_studies import COMMANDS as STUDY_COMMANDS
from .cli_studies import add_study_commands, run_study_command
from .config import OPTIMIZERS, POOLINGS, PRESETS, RECONSTRUCT_WEIGHT, Config, apply_preset
from .errors import NstError, NstRuntimeError
from .events import StepEvent
from .images import check_writable
from .layers import parse_layers
from .progress import ProgressBar
from .runner import IntermediateSaver, Run, run
from .samples import STYLE_SAMPLES, sample_path

DEFAULTS = Config()


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and still exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


def _numbers(text: str) -> tuple[float, ...]:
    return tuple(_number(part) for part in text.split(",") if part.strip())


def _add_common(parser: argparse.ArgumentParser) -> None:
    """Options every command shares. Defaults are None here: Config holds the real ones."""
    parser.add_argument("-o", "--output", required=True, type=Path,
                        help="output image (.png, .jpg, .webp)")
    run_group = parser.add_argument_group("optimization")
    run_group.add_argument("--steps", type=_integer,
                           help="iterations (default: 300 on CPU, 500 on GPU)")
    run_group.add_argument("--optimizer", choices=OPTIMIZERS, help="default: lbfgs")
    run_group.add_argument("--lr", "--learning-rate", dest="learning_rate", type=_number,
                           help="step size (default: 1 for lbfgs, 0.02 for adam)")
    run_group.add_argument("--history-size", type=_integer,
                           help=f"L-BFGS history (default: {DEFAULTS.history_size})")
    run_group.add_argument("--init", help="start image: content, noise, blend or an image path")
    run_group.add_argument("--alpha", type=_number,
                           help="noise share for --init blend: noise*A + content*(1-A)"
                           f" (default: {DEFAULTS.alpha})")
    run_group.add_argument("--tv-weight", type=_number, help="total-variation weight (default: 0)")
    run_group.add_argument("--seed", type=_integer,
                           help="random seed (default: a random one, recorded in the output)")
    net = parser.add_argument_group("network and device")
    net.add_argument("--weights", help="caffe (default, offline), torchvision, or a .pth/.safetensors file")
    net.add_argument("--pooling", choices=POOLINGS, help="default: max")
    net.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    io = parser.add_argument_group("sizes and output")
    io.add_argument("--size", type=_integer,
                    help="longest side of the output in pixels (default: 384 on CPU, 512 on GPU)")
    io.add_argument("--max-pixels", type=_integer,
                    help=f"refuse images larger than this (default: {DEFAULTS.max_pixels:,})")
    io.add_argument("--save-every", type=_integer, default=0, metavar="N",
                    help="also save the image every N steps (out.step0050.png, ...)")
    io.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def _add_style_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--style-size", type=_integer,
                        help="longest side of the style images (default: --size); sets the style's scale")
    parser.add_argument("--style-layer-weights", type=_numbers, metavar="W1,W2,...",
                        help="one weight per style layer (default: 1 each)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nst", description="Neural style transfer (Gatys et al.) with VGG19.")
    parser.add_argument("--version", action="version", version=f"nst {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    rec = commands.add_parser("reconstruct", help="reconstruct an image from one layer's features")
    rec.add_argument("content", type=Path, help="image to reconstruct")
    rec.add_argument("--layer", default="conv_4", help="feature layer (default: conv_4)")
    _add_common(rec)

    tex = commands.add_parser("texture", help="synthesize a texture from Gram statistics")
    tex.add_argument("styles", nargs="+", type=Path, metavar="STYLE", help="style image(s)")
    tex.add_argument("--layers", default="conv_1-conv_5",
                     help="style layers, e.g. conv_1-conv_5 (default) or relu1_1,relu2_1")
    tex.add_argument("--width", type=_integer, help="texture width in pixels")
    tex.add_argument("--height", type=_integer, help="texture height in pixels")
    tex.add_argument("--style-blend", type=_numbers, metavar="W1,W2,...",
                     help="weights of several style images (default: equal)")
    _add_style_options(tex)
    _add_common(tex)

    tr = commands.add_parser("transfer", help="paint a content image in the style of artworks")
    tr.add_argument("content", type=Path, help="content image")
    tr.add_argument("styles", nargs="+", type=Path, metavar="STYLE", help="style image(s)")
    tr.add_argument("--content-weight", type=_number,
                    help=f"content weight (default: {DEFAULTS.content_weight:g})")
    tr.add_argument("--style-weight", type=_number,
                    help=f"style weight (default: {DEFAULTS.style_weight:g})")
    tr.add_argument("--content-layers", help="default: conv_4")
    tr.add_argument("--style-layers", help="default: conv_1-conv_5")
    tr.add_argument("--content-layer-weights", type=_numbers, metavar="W1,W2,...",
                    help="one weight per content layer (default: 1 each)")
    tr.add_argument("--style-blend", type=_numbers, metavar="W1,W2,...",
                    help="weights of several style images (default: equal)")
    tr.add_argument("--preset", choices=sorted(PRESETS),
                    help="gatys: content relu4_2, style relu1_1..relu5_1, weights balanced for them")
    _add_style_options(tr)
    _add_common(tr)

    demo = commands.add_parser("demo", help="stylize the shipped sample photo (no arguments needed)")
    demo.add_argument("-o", "--output", type=Path, default=Path("nst-demo"),
                      help="output folder (default: ./nst-demo)")
    demo.add_argument("--style", choices=(*STYLE_SAMPLES, "all"), default="starry_night",
                      help="which sample painting (default: starry_night)")
    demo.add_argument("--size", type=_integer, help="longest side (default: 384 on CPU, 512 on GPU)")
    demo.add_argument("--steps", type=_integer, help="iterations (default: 300 on CPU, 500 on GPU)")
    demo.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    add_study_commands(commands, tr)
    return parser


# Argument names that map one-to-one onto Config fields.
_CONFIG_FIELDS = {f.name for f in dataclasses.fields(Config)}


def config_from_args(args: argparse.Namespace) -> Config:
    """A Config from parsed arguments: Config defaults, then the preset, then
    whatever the user gave explicitly."""
    config = Config(task=args.command)
    if getattr(args, "preset", None):
        config = apply_preset(config, args.preset)
    given: dict[str, Any] = {
        name: value for name, value in vars(args).items()
        if name in _CONFIG_FIELDS and value is not None and name != "task"
    }
    if args.command == "reconstruct":
        given.update(content_layers=parse_layers(args.layer), style_layers=(),
                     content_weight=RECONSTRUCT_WEIGHT, style_weight=0.0)
        if len(given["content_layers"]) != 1:
            raise NstError(f"reconstruct takes one layer, got {args.layer!r}")
    elif args.command == "texture":
        given.update(style_layers=parse_layers(args.layers), content_layers=(),
                     content_weight=0.0, style_weight=DEFAULTS.style_weight)
    return config.replace(**given)


def _summary(done: Run, output: Path) -> str:
    losses = ", ".join(f"{name} {value:.4g}" for name, value in done.result.losses.items())
    return (f"wrote {output} ({done.result.steps} steps in {done.result.elapsed_s:.1f} s; "
            f"{losses}; seed {done.config.seed})")


def _execute(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    output = check_writable(args.output)
    if args.save_every < 0:
        raise NstError(f"save-every must be 0 or more, got {args.save_every}")
    callbacks: list[Callable[[StepEvent], None]] = []
    if args.save_every:
        callbacks.append(IntermediateSaver(output, args.save_every))
    bar = None if args.quiet else ProgressBar(args.command)
    if bar is not None:
        callbacks.append(bar)

    def on_step(event: StepEvent) -> None:
        for callback in callbacks:
            callback(event)

    content = getattr(args, "content", None)
    styles = getattr(args, "styles", [])
    try:
        done = run(config, content, styles, on_step)
    finally:
        if bar is not None:
            bar.close()
    done.save(output)
    if not args.quiet:
        print(_summary(done, output), file=sys.stderr)
    return 0


def _demo(args: argparse.Namespace) -> int:
    """`nst transfer` on the shipped samples, one output per chosen painting."""
    args.output.mkdir(parents=True, exist_ok=True)
    styles = STYLE_SAMPLES if args.style == "all" else (args.style,)
    for style in styles:
        argv = ["transfer", str(sample_path("tubingen")), str(sample_path(style)),
                "-o", str(args.output / f"tubingen_{style}.png")]
        for option in ("size", "steps", "device"):
            if getattr(args, option) is not None:
                argv += [f"--{option}", str(getattr(args, option))]
        if args.quiet:
            argv.append("--quiet")
        _execute(build_parser().parse_args(argv))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_request:  # --help, --version, usage errors (one line, status 2)
        return int(exit_request.code or 0)
    try:
        if args.command in STUDY_COMMANDS:
            return run_study_command(args, config_from_args)
        return _demo(args) if args.command == "demo" else _execute(args)
    except NstError as error:
        print(f"nst: error: {error}", file=sys.stderr)
        return 2
    except NstRuntimeError as error:
        print(f"nst: {error}", file=sys.stderr)
        return 1
    except torch.OutOfMemoryError:
        print("nst: out of memory on the device; try a smaller --size or --device cpu", file=sys.stderr)
        return 1
    except MemoryError:
        print("nst: out of memory; try a smaller --size", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nnst: interrupted; no output written", file=sys.stderr)
        return 130
