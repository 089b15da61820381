"""The handlers of the commands that compute: reconstruct, texture and transfer
(one picture), demo, batch and video. Each returns the exit status of a run
that went through; refusals are NstErrors, which app.main turns into status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nst.cli.cluster import check_cluster_args, cluster_options, computer_for
from nst.cli.options import build_parser, config_from_args, train_options_from
from nst.cli.serve import run_serve
from nst.cli.stop import stopped_status
from nst.cli.studies import command_line
from nst.errors import NstError
from nst.events import Event, StepEvent
from nst.jobs.video_request import VideoOptions, prepare_video
from nst.samples import STYLE_SAMPLES, sample_path

if TYPE_CHECKING:
    from nst.jobs.request import Request


def _summary(done: Any, output: Path) -> str:
    if done.config.method == "fast":
        return f"wrote {output} (--method fast in {done.result.elapsed_s:.2f} s)"
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

    from nst.core.device import memory_budget  # noqa: PLC0415
    from nst.core.memory import gib  # noqa: PLC0415

    config = request.config
    assert request.sizes is not None
    device = torch.device(request.device)
    budget = memory_budget(config.max_memory, device)
    if config.method == "fast":
        return _fast_plan(request, budget)
    plan = request.scale_plans  # the plan the run would follow, made by prepare
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


def _fast_plan(request: Request, budget: float) -> str:
    """--dry-run of --method fast: its one pass, the decoder and the estimated peak."""
    from nst.config import decoder_path  # noqa: PLC0415
    from nst.core.memory import fast_peak, gib  # noqa: PLC0415
    from nst.jobs.request import decoder_spec  # noqa: PLC0415

    config = request.config
    assert request.sizes is not None
    spec = decoder_spec(config)
    width, height = request.sizes.canvas
    peak = max(fast_peak(w, h, config.precision or "fp32", spec.width, spec.factor)
               for w, h in (request.sizes.canvas, *request.sizes.styles))
    styles = ", ".join(f"{w}x{h}" for w, h in request.sizes.styles)
    return "\n".join([
        f"{config.task} --method fast {width}x{height} on {request.device}, {config.precision}, "
        f"memory budget {gib(budget)}: one pass, no optimization",
        f"  decoder {decoder_path(config)} ({spec.level_name}, width {spec.width}), strength "
        f"{config.strength:g}; styles at {styles}",
        f"estimated peak {gib(peak)}; nothing computed or written"])


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
        for option in ("size", "steps", "device", "threads"):
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
    except KeyboardInterrupt as stop:
        print(f"nst: interrupted; finished images stay in {args.output}: "
              "run the same command again to continue", file=sys.stderr)
        return stopped_status(stop)
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
    names = ("mode", "temporal_weight", "frame_steps", "fps", "max_frames")
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    options = VideoOptions(keep_audio=not args.no_audio, **given)
    config = config_from_args(args)
    check_cluster_args(args)
    cluster = cluster_options(args)
    chunks = {name: getattr(args, f"chunk_{name}") for name in ("frames", "overlap")
              if getattr(args, f"chunk_{name}") is not None}
    if chunks and cluster is None:
        raise NstError("--chunk-frames and --chunk-overlap split a video among the workers of --cluster")
    if chunks and options.mode != "consistent":
        raise NstError("--chunk-frames and --chunk-overlap cut a consistent video into chains; "
                       "independent frames need no chunks")
    if (args.batch_size or 1) > 1 and (cluster is None or options.mode != "independent"):
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
    except KeyboardInterrupt as stop:
        work = WorkFolder(args.output).path
        kept = f"finished frames stay in {work}: run the same command again to resume" \
            if work.exists() else "no output written"
        print(f"nst: interrupted; {kept}", file=sys.stderr)
        return stopped_status(stop)
    finally:
        if progress is not None:
            progress.close()
    print(_video_summary(done), file=sys.stderr)
    return 0


def _video_summary(done: Any) -> str:
    width, height = done.size
    fast = done.config.method == "fast"
    how = "--method fast" if fast else f"seed {done.config.seed}"
    lines = [f"wrote {done.output}: {done.frames} frames, {width}x{height} at {float(done.fps):g} fps, "
             f"{done.options.mode} mode, {how}"]
    if done.resumed:
        lines.append(f"resumed {done.resumed} frame(s) finished by an earlier run")
    computed = done.frame_times
    if fast and computed:
        mean = sum(computed) / len(computed)
        lines.append(f"time: {mean:.2f} s per frame ({1 / mean:.1f} frames per second), one pass each")
    elif done.warm_times and done.fresh_times:
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


def _train_decoder(args: argparse.Namespace) -> int:
    """`nst train-decoder`: Ctrl-C or SIGTERM keep a checkpoint the same command resumes from."""
    options = train_options_from(args)
    from nst.cli.progress import TrainBar  # noqa: PLC0415
    from nst.jobs.train_decoder import train_decoder  # noqa: PLC0415  (loads torch)

    bar = None if args.quiet else TrainBar()
    try:
        report = train_decoder(args.content_dirs, args.style_dir, args.output, options, bar)
    except KeyboardInterrupt as stop:
        print("nst: interrupted; the checkpoint beside the output keeps the steps done: "
              "run the same command again to resume", file=sys.stderr)
        return stopped_status(stop)
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        print(train_summary(report), file=sys.stderr)
    return 0


def train_summary(report: Any) -> str:
    lines = [f"wrote {report.output} ({report.steps} steps, {report.elapsed_s / 60:.1f} min in all"
             + (f", resumed at step {report.resumed_from}" if report.resumed_from else "")
             + f"; checkpoint {report.checkpoint})",
             f"held-out reconstruction PSNR {report.psnr:.2f} dB on {report.held_out} image(s) "
             f"(trained on {report.train_images})"]
    if report.style_distance is not None:
        lines.append(f"held-out style distance {report.style_distance:.4f} stylized, "
                     f"{report.content_style_distance:.4f} for the photos themselves")
    return "\n".join(lines)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "reconstruct": _single, "texture": _single, "transfer": _single,
    "demo": _demo, "batch": _batch, "video": _video, "serve": run_serve, "train-decoder": _train_decoder,
}
