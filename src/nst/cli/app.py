"""The `nst` command line: parse arguments into a Config, run it, report.

Errors become exit codes in exactly one place, `main`: 2 for bad input (one
line, no traceback), 1 for a run that failed, 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from nst import __version__
from nst.cli.cluster import add_cluster_options, check_cluster_args, cluster_options, computer_for
from nst.cli.serve import add_serve_command, run_serve
from nst.cli.studies import COMMANDS as STUDY_COMMANDS
from nst.cli.studies import add_study_commands, command_line, run_study_command
from nst.config import (
    COLOR_MODES,
    DEFAULT_START_SIZE,
    OPTIMIZERS,
    POOLINGS,
    PRECISIONS,
    PRESETS,
    RECONSTRUCT_WEIGHT,
    STYLE_LOSSES,
    Config,
    apply_preset,
)
from nst.core.memory import BUDGET_SHARE, HISTORY_CAP
from nst.errors import NstError, NstRuntimeError, allocation_failure
from nst.events import Event, StepEvent
from nst.jobs.video_request import MODES, VideoOptions, prepare_video
from nst.layers import parse_layers
from nst.samples import STYLE_SAMPLES, sample_path

if TYPE_CHECKING:
    from nst.jobs.request import Request

# Nothing above imports torch: --help and every refusal that needs no network
# answer at once. The job layer (and torch) load inside the command handlers.

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


def _add_common(
    parser: argparse.ArgumentParser,
    output_help: str = "output image (.png, .jpg, .webp)",
    one_image: bool = True,
) -> None:
    """Options every command shares (and, with `one_image`, those of the commands
    that make one picture). Defaults are None here: Config holds the real ones."""
    parser.add_argument("-o", "--output", required=True, type=Path, help=output_help)
    run_group = parser.add_argument_group("optimization")
    run_group.add_argument("--steps", type=_integer,
                           help="iterations (default: 300 on CPU, 500 on GPU)")
    run_group.add_argument("--optimizer", choices=OPTIMIZERS, help="default: lbfgs")
    run_group.add_argument("--lr", "--learning-rate", dest="learning_rate", type=_number,
                           help="step size (default: 1 for lbfgs, 0.1 for adam)")
    run_group.add_argument("--history-size", type=_history, default="auto", metavar="auto|N",
                           help="L-BFGS: steps it remembers (auto, the default: as many as --max-memory "
                           f"allows, up to {HISTORY_CAP})")
    run_group.add_argument("--ema-decay", type=_number,
                           help="adam: the output is the moving average of the iterates with this decay "
                           f"(default: {DEFAULTS.ema_decay}; 0: the last iterate)")
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
    net.add_argument("--precision", choices=PRECISIONS,
                     help="the network's arithmetic, losses stay float32: fp32, tf32 (CUDA tensor cores; "
                     "the default there) or bf16 (autocast; the default for transfers on a CPU "
                     "with native bf16, else fp32)")
    net.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                     help="run the network in NHWC memory layout (default: on with bf16 on a CPU "
                     "with Intel AMX, where it was 10%% faster; off elsewhere, where it was slower)")
    io = parser.add_argument_group("sizes and output")
    io.add_argument("--size", type=_integer,
                    help="longest side of the output in pixels (default: 384 on CPU, 512 on GPU)")
    io.add_argument("--scales", type=_scales, default="auto", metavar="auto|off|N",
                    help="coarse-to-fine: optimize from --start-size up to --size in about sqrt(2) steps "
                    "(auto, the default), at --size only (off), or in N scales")
    io.add_argument("--start-size", type=_integer,
                    help=f"longest side of the coarsest scale (default: {DEFAULT_START_SIZE})")
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


def _add_style_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--style-size", type=_integer,
                        help="longest side of the style images (default: --size); sets the style's scale")
    parser.add_argument("--style-layer-weights", type=_numbers, metavar="W1,W2,...",
                        help="one weight per style layer (default: 1 each)")
    parser.add_argument("--style-loss", choices=STYLE_LOSSES,
                        help="gram (default): Gram matrices; meancov: feature means and "
                        "covariances (Wasserstein-2), often cleaner colours")
    parser.add_argument("--normalize-gradients", action="store_true", default=None,
                        help="rescale the style layers so each pulls equally hard "
                        "at the start of every scale")


def _add_transfer_options(tr: argparse.ArgumentParser) -> None:
    """The weights, layers and styles of a transfer (shared by transfer, batch and video)."""
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
    tr.add_argument("--preserve-color", choices=COLOR_MODES,
                    help="luminance: keep the content's colours exactly (transfer on luminance only); "
                    "histogram: recolour the style to the content's colour statistics first")
    tr.add_argument("--preset", choices=sorted(PRESETS),
                    help="gatys: content relu4_2, style relu1_1..relu5_1, weights balanced for them")
    _add_style_options(tr)


def _add_batch_parser(commands: Any) -> None:
    batch = commands.add_parser("batch", help="style every image in a folder (resumes where it stopped)")
    batch.add_argument("input_dir", type=Path, metavar="INPUT_DIR", help="folder of images")
    batch.add_argument("styles", nargs="+", type=Path, metavar="STYLE", help="style image(s)")
    batch.add_argument("-r", "--recursive", action="store_true", help="also style images in subfolders")
    batch.add_argument("--format", choices=("png", "jpg", "webp"), default="png",
                       help="output format (default: png)")
    batch.add_argument("--overwrite", action="store_true",
                       help="redo outputs that an earlier run made with other settings")
    _add_transfer_options(batch)
    _add_common(batch, "output folder (created if missing); index.jpg there shows inputs next to outputs",
                one_image=False)
    add_cluster_options(batch)


def _add_video_parser(commands: Any) -> None:
    video = commands.add_parser("video", help="stylize a video, an animated GIF or a folder of frames")
    video.add_argument("input", type=Path, metavar="INPUT",
                       help="video file (.mp4, .webm, .mov, ...), animated .gif "
                       "or a folder of numbered frames")
    video.add_argument("styles", nargs="+", type=Path, metavar="STYLE", help="style image(s)")
    group = video.add_argument_group("video")
    group.add_argument("--mode", choices=MODES, default="consistent",
                       help="consistent (default): each frame starts from the previous one moved by "
                       "optical flow and is held to it; independent: each frame alone (flickers)")
    group.add_argument("--temporal-weight", type=_number,
                       help="weight of the temporal loss in consistent mode (default: 2e4)")
    group.add_argument("--frame-steps", type=_integer,
                       help="steps of each frame after the first in consistent mode "
                       "(default: 1/4 of --steps)")
    group.add_argument("--fps", type=_number,
                       help="frame rate: drops frames of a video or GIF to reach it; "
                       "sets a frame folder's rate (default: the input's; 24 for a folder)")
    group.add_argument("--max-frames", type=_integer, help="stop after this many frames")
    group.add_argument("--no-audio", action="store_true", help="leave out the input's sound track")
    group.add_argument("--restart", action="store_true",
                       help="discard frames an interrupted run left (by default a run resumes)")
    group.add_argument("--chunk-frames", type=_integer, metavar="K",
                       help="with --cluster in consistent mode: frames per chunk, each chained on one "
                       "worker (default: 24)")
    group.add_argument("--chunk-overlap", type=int, metavar="O",
                       help="with --cluster in consistent mode: lead-in frames of a chunk that starts "
                       "inside a shot, and frames blended where it meets the chunk before (default: 3)")
    _add_transfer_options(video)
    _add_common(video, "output video (.mp4, .webm, .mov, .mkv), animated .gif, or a folder for PNG frames",
                one_image=False)
    add_cluster_options(video)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nst", description="Neural style transfer (Gatys et al.) with VGG19.")
    parser.add_argument("--version", action="version", version=f"nst {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    rec = commands.add_parser("reconstruct", help="reconstruct an image from one layer's features")
    rec.add_argument("content", type=Path, help="image to reconstruct")
    rec.add_argument("--content-layers", "--layer", dest="content_layers", default="conv_4", metavar="LAYER",
                     help="the one feature layer to reconstruct from (default: conv_4; --layer is an alias)")
    _add_common(rec)

    tex = commands.add_parser("texture", help="synthesize a texture from Gram statistics")
    tex.add_argument("styles", nargs="+", type=Path, metavar="STYLE", help="style image(s)")
    tex.add_argument("--style-layers", "--layers", dest="style_layers", default="conv_1-conv_5",
                     help="style layers, e.g. conv_1-conv_5 (default) or relu1_1,relu2_1 "
                     "(--layers is an alias)")
    tex.add_argument("--width", type=_integer, help="texture width in pixels")
    tex.add_argument("--height", type=_integer, help="texture height in pixels")
    tex.add_argument("--style-blend", type=_numbers, metavar="W1,W2,...",
                     help="weights of several style images (default: equal)")
    _add_style_options(tex)
    _add_common(tex)

    tr = commands.add_parser("transfer", help="paint a content image in the style of artworks")
    tr.add_argument("content", type=Path, help="content image")
    tr.add_argument("styles", nargs="+", type=Path, metavar="STYLE", help="style image(s)")
    tr.add_argument("--mask", action="append", type=Path, default=[], metavar="MASK",
                    help="spatial control: one colour-labelled image (regions go to the styles from "
                    "the darkest colour to the lightest) or one greyscale mask per style (repeat --mask)")
    _add_transfer_options(tr)
    _add_common(tr)

    _add_batch_parser(commands)
    _add_video_parser(commands)

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
    add_serve_command(commands)
    return parser


# Commands that run another command's task many times.
COMMAND_TASKS = {"batch": "transfer", "video": "transfer"}
# Argument names that map one-to-one onto Config fields.
_CONFIG_FIELDS = {f.name for f in dataclasses.fields(Config)}


def config_from_args(args: argparse.Namespace) -> Config:
    """A Config from parsed arguments: Config defaults, then the preset, then
    whatever the user gave explicitly."""
    config = Config(task=COMMAND_TASKS.get(args.command, args.command))
    if getattr(args, "preset", None):
        config = apply_preset(config, args.preset)
    given: dict[str, Any] = {
        name: value for name, value in vars(args).items()
        if name in _CONFIG_FIELDS and value is not None and name != "task"
    }
    if args.command == "reconstruct":
        given.update(content_layers=parse_layers(args.content_layers), style_layers=(),
                     content_weight=RECONSTRUCT_WEIGHT, style_weight=0.0)
        if len(given["content_layers"]) != 1:
            raise NstError(f"reconstruct takes one layer, got {args.content_layers!r}")
    elif args.command == "texture":
        if args.alpha is not None:  # the one start image it blends (content) does not exist here
            raise NstError("texture has no content image: --alpha only applies to --init blend of a transfer "
                           "or reconstruction")
        given.update(style_layers=parse_layers(args.style_layers), content_layers=(),
                     content_weight=0.0, style_weight=DEFAULTS.style_weight)
    return config.replace(**given)


def _summary(done: Any, output: Path) -> str:
    losses = ", ".join(f"{name} {value:.4g}" for name, value in done.result.losses.items())
    return (f"wrote {output} ({done.result.steps} steps in {done.result.elapsed_s:.1f} s; "
            f"{losses}; seed {done.config.seed})")


def _check_intermediates(output: Path, inputs: Sequence[Path]) -> None:
    """--save-every writes out.step0050.png beside the output: never over an input."""
    pattern = re.compile(re.escape(output.stem) + r"\.step\d{4}" + re.escape(output.suffix) + "$")
    for path in inputs:
        if path.parent.resolve() == output.parent.resolve() and pattern.match(path.name):
            raise NstError(f"--save-every would write over the input {path}; choose another output name")


def _single(args: argparse.Namespace) -> int:
    """reconstruct, texture, transfer: prepare (every check), run, save."""
    from nst.cli.progress import RunBar  # noqa: PLC0415
    from nst.jobs.request import prepare  # noqa: PLC0415

    config = config_from_args(args)
    if args.save_every < 0:
        raise NstError(f"save-every must be 0 or more, got {args.save_every}")
    content = getattr(args, "content", None)
    styles, masks = getattr(args, "styles", []), getattr(args, "mask", [])
    request = prepare(config, content, styles, masks, output=args.output)
    if args.dry_run:
        print(_memory_plan(request), file=sys.stdout)
        return 0
    from nst.jobs.runner import IntermediateSaver, execute  # noqa: PLC0415  (the run needs torch now)

    assert request.output is not None
    output = request.output
    consumers: list[Callable[[Event], None]] = []
    if args.save_every:
        _check_intermediates(output, [i.path for i in request.inputs if i.path is not None])
        saver = IntermediateSaver(output, args.save_every)
        consumers.append(lambda event: saver(event) if isinstance(event, StepEvent) else None)
    bar = None if args.quiet else RunBar(args.command)
    if bar is not None:
        consumers.append(bar)

    def on_event(event: Event) -> None:
        for consumer in consumers:
            consumer(event)

    try:
        done = execute(request, on_event)
    finally:
        if bar is not None:
            bar.close()
    done.save(output)
    if not args.quiet:
        print(_summary(done, output), file=sys.stderr)
    return 0


def _memory_plan(request: Request) -> str:
    """--dry-run: every scale's size, steps, levers and estimated peak memory."""
    import torch  # noqa: PLC0415

    from nst.core.device import memory_budget, plan_on  # noqa: PLC0415
    from nst.core.memory import gib  # noqa: PLC0415

    config = request.config
    assert request.sizes is not None
    device = torch.device(request.device)
    budget = memory_budget(config.max_memory, device)
    plan = plan_on(device, config, request.sizes.scales)
    width, height = request.sizes.canvas
    lines = [f"{config.task} {width}x{height} on {request.device}, {config.precision}, {config.optimizer}, "
             f"memory budget {gib(budget)}: {len(plan)} scale{'s' if len(plan) > 1 else ''}"]
    for index, row in enumerate(plan, 1):
        levers = [f"history {row.history}"] if config.optimizer == "lbfgs" else []
        levers.append(f"tiles of {row.tile_side} px" if row.tile_side else "whole")
        lines.append(f"  scale {index}/{len(plan)}: {row.scale.width}x{row.scale.height}, {row.scale.steps} "
                     f"steps, {', '.join(levers)}: about {gib(row.peak_bytes)}")
    lines.append(f"estimated peak {gib(max(row.peak_bytes for row in plan))}; nothing computed or written")
    return "\n".join(lines)


def _demo(args: argparse.Namespace) -> int:
    """`nst transfer` on the shipped samples, one output per chosen painting."""
    folder: Path = args.output
    if folder.exists() and not folder.is_dir():
        raise NstError(f"the demo writes a folder, but {folder} is a file: give another -o")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NstError(f"cannot create the demo folder {folder}: {error.strerror or error}") from None
    styles = STYLE_SAMPLES if args.style == "all" else (args.style,)
    for style in styles:
        argv = ["transfer", str(sample_path("tubingen")), str(sample_path(style)),
                "-o", str(folder / f"tubingen_{style}.png")]
        for option in ("size", "steps", "device"):
            if getattr(args, option) is not None:
                argv += [f"--{option}", str(getattr(args, option))]
        if args.quiet:
            argv.append("--quiet")
        _single(build_parser().parse_args(argv))
    return 0


def _batch(args: argparse.Namespace) -> int:
    """`nst batch`: failures are listed at the end; the status is 2 if any image failed."""
    from nst.cli.progress import ItemBar  # noqa: PLC0415
    from nst.jobs.batch import run_batch  # noqa: PLC0415

    config = config_from_args(args)
    check_cluster_args(args)
    progress: ItemBar | None = None
    try:
        with computer_for(args) as computer:  # a cluster to join is reached before the bar shows
            progress = None if args.quiet else ItemBar("batch", "image")
            report = run_batch(config, args.input_dir, args.styles, args.output, args.recursive, args.format,
                               args.overwrite, progress, command_line(), computer)
    except KeyboardInterrupt:
        print(f"nst: interrupted; finished images stay in {args.output}: "
              "run the same command again to continue", file=sys.stderr)
        return 130
    finally:
        if progress is not None:
            progress.close()
    if not args.quiet:
        print(_batch_summary(report, args.output), file=sys.stderr)
    for item, reason in report.failed:
        print(f"nst: error: {item.label}: {reason}", file=sys.stderr)
    return 2 if report.failed else 0


def _batch_summary(report: Any, output: Path) -> str:
    parts = [f"styled {len(report.done)} image(s) into {output}"]
    if report.skipped:
        parts.append(f"{len(report.skipped)} already done")
    if report.failed:
        parts.append(f"{len(report.failed)} failed (listed below)")
    if report.sheets:
        parts.append("contact sheet " + ", ".join(str(sheet) for sheet in report.sheets))
    return "; ".join(parts)


def _video(args: argparse.Namespace) -> int:
    """`nst video`: the flicker measure is printed after every run, even with -q."""
    given = {name: getattr(args, name) for name in ("temporal_weight", "frame_steps", "fps", "max_frames")
             if getattr(args, name) is not None}
    options = VideoOptions(mode=args.mode, keep_audio=not args.no_audio, **given)
    config = config_from_args(args)
    check_cluster_args(args)
    cluster = cluster_options(args)
    chunks = {name: getattr(args, f"chunk_{name}") for name in ("frames", "overlap")
              if getattr(args, f"chunk_{name}") is not None}
    if chunks and cluster is None:
        raise NstError("--chunk-frames and --chunk-overlap split a video among the workers of --cluster")
    if chunks and args.mode != "consistent":
        raise NstError("--chunk-frames and --chunk-overlap cut a consistent video into chains; "
                       "independent frames need no chunks")
    if (args.batch_size or 1) > 1 and (cluster is None or args.mode != "independent"):
        raise NstError("nst video batches frames only when they are independent and spread over workers: "
                       "--batch-size needs --mode independent and --cluster")
    from nst.cluster.chunks import Chunking  # noqa: PLC0415  (torch- and ray-free at import)

    chunking = Chunking(**chunks)
    job = prepare_video(config, options, args.input, args.styles, args.output,
                        run_on=cluster.device_kind if cluster is not None else None, restart=args.restart,
                        command=command_line())
    from nst.cli.progress import ItemBar  # noqa: PLC0415
    from nst.jobs.video import WorkFolder, stylize_video  # noqa: PLC0415  (loads torch)

    pool = None
    if cluster is not None:  # a cluster to join is reached before the bar shows (and fails in one line)
        from nst.cluster.pool import Pool  # noqa: PLC0415

        pool = Pool(cluster).reach()
    progress = None if args.quiet else ItemBar("video", "frame")
    try:
        if pool is not None:
            from nst.cluster.video import stylize_video_on_cluster  # noqa: PLC0415

            done = stylize_video_on_cluster(pool, job, chunking, progress)
        else:
            done = stylize_video(job, progress)
    except KeyboardInterrupt:
        work = WorkFolder(args.output).path
        kept = f"finished frames stay in {work}: run the same command again to resume" \
            if work.exists() else "no output written"
        print(f"nst: interrupted; {kept}", file=sys.stderr)
        return 130
    finally:
        if progress is not None:
            progress.close()
    print(_video_summary(done), file=sys.stderr)
    return 0


def _video_summary(done: Any) -> str:
    width, height = done.size
    lines = [f"wrote {done.output}: {done.frames} frames, {width}x{height} at {float(done.fps):g} fps, "
             f"{done.options.mode} mode, seed {done.config.seed}"]
    if done.resumed:
        lines.append(f"resumed {done.resumed} frame(s) finished by an earlier run")
    computed = done.frame_times
    if done.warm_times and done.fresh_times:
        first = sum(done.fresh_times) / len(done.fresh_times)
        warm = sum(done.warm_times) / len(done.warm_times)
        warm_steps = done.options.warm_steps(done.config.steps or 1)
        lines.append(f"time: {first:.1f} s for a frame from scratch ({done.config.steps} steps), "
                     f"{warm:.1f} s per warm-started frame ({warm_steps} steps), {first / warm:.1f}x faster")
    elif computed:
        lines.append(f"time: {sum(computed) / len(computed):.1f} s per frame")
    lines.append(f"warping error {done.warping_error:.4f} (input clip: {done.input_warping_error:.4f}): "
                 "mean |difference| between each stylized frame and the previous one moved by the "
                 "input's optical flow, RGB in [0, 1], over pixels where the flow is reliable")
    if done.chunks:
        from nst.cluster.video import chunk_summary  # noqa: PLC0415

        lines.append(chunk_summary(done))
    return "\n".join(lines)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "reconstruct": _single, "texture": _single, "transfer": _single,
    "demo": _demo, "batch": _batch, "video": _video, "serve": run_serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    """The command line. Errors become exit codes here and only here: 2 for bad
    input (one line, no traceback), 1 for a run that failed, 130 for Ctrl-C."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_request:  # --help, --version, usage errors (one line, status 2)
        return int(exit_request.code or 0)
    try:
        if args.command in STUDY_COMMANDS:
            return run_study_command(args, config_from_args)
        return HANDLERS[args.command](args)
    except NstError as error:
        print(f"nst: error: {error}", file=sys.stderr)
        return 2
    except NstRuntimeError as error:
        print(f"nst: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nnst: interrupted; no output written", file=sys.stderr)
        return 130
    except (RuntimeError, MemoryError) as error:
        message = allocation_failure(error)
        if message is None:
            raise
        print(f"nst: {message}", file=sys.stderr)
        return 1
