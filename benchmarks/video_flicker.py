"""Flicker and speed of `nst video` in both modes, on the first frames of a clip.

    .venv/bin/python benchmarks/video_flicker.py [--size 128] [--frames 24] [--out out/flicker]
    .venv/bin/python benchmarks/video_flicker.py --method fast --decoder D.safetensors --size 256

Prints a markdown table (the one in README, "Video"): per mode, the time of the
first frame and of the frames after it, and the warping error (lower = steadier).
The stylized clips are written as GIFs next to each other for a look.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from nst.config import Config
from nst.jobs.video import VideoOptions, VideoRun, stylize_video
from nst.jobs.video_request import prepare_video

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _row(name: str, done: VideoRun, wall_s: float) -> str:
    first = done.frame_times[0]
    later = done.frame_times[1:]
    later_mean = sum(later) / len(later) if later else float("nan")
    steps = done.config.steps or 0
    later_steps = done.options.warm_steps(steps) if done.options.mode == "consistent" and steps else steps
    name = f"{done.config.method} {name}"
    return (f"| {name} | {steps} | {first:.2f} | {later_steps} | {later_mean:.3f} | {wall_s:.0f} | "
            f"{done.warping_error:.4f} | {done.input_warping_error:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", type=Path, default=SHARED / "video" / "bunny.mp4")
    parser.add_argument("--style", type=Path, default=SHARED / "images" / "style" / "starry_night.jpg")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--modes", default="independent,consistent",
                        help="comma-separated; consistent:W sets the temporal weight")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "flicker")
    parser.add_argument("--method", choices=("gatys", "fast"), default="gatys")
    parser.add_argument("--decoder", help="the decoder file of --method fast (default: the shipped one)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.method == "fast":  # one pass per frame: no steps, no seed
        config = Config(method="fast", decoder=args.decoder, size=args.size, device="cpu")
    else:
        config = Config(size=args.size, steps=args.steps, seed=0, device="cpu")
    print(f"{args.input.name}, first {args.frames} frames at {args.size} px, style {args.style.name}, "
          f"{torch.get_num_threads()} CPU thread(s)\n")
    print("| mode | steps, frame 1 | s, frame 1 | steps, later frames | s per later frame | total s "
          "| warping error | input's own |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in args.modes.split(","):
        mode, _, weight = spec.partition(":")
        options = VideoOptions(mode=mode, max_frames=args.frames, keep_audio=False,
                               **({"temporal_weight": float(weight)} if weight else {}))
        name = spec.replace(":", "-")
        start = time.perf_counter()
        output = args.out / f"{name}.gif"
        done = stylize_video(prepare_video(config, options, args.input, [args.style], output, restart=True))
        print(_row(spec, done, time.perf_counter() - start), flush=True)


if __name__ == "__main__":
    main()
