"""Seams of `nst video --cluster` in consistent mode: warping error where chunks meet
against the error inside chunks, on the first frames of a clip.

    .venv/bin/python benchmarks/video_chunks.py [--frames 24] [--size 128] [--chunk-frames 8]
        [--overlap 3] [--workers 3] [--joins plain,anchored,blended]

The chunks run through the same tasks and schedule as on a cluster of --workers
workers, but in this process, one after another (nst.cluster.local_pool.InProcessPool):
the frames, and so the seams, are those of such a cluster; the times are the
total work, not a cluster's wall time. Rows: the local run (one chain), then the
chunked run with each kind of join (--joins):
plain: a lead-in from scratch, no blend; anchored: the lead-in's first frame tied
to the shot's first frame by composed flow, no blend; blended: anchored, and the
join blended in (the default of `nst video --cluster`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from unittest import mock

import torch

from nst.cluster import chunked
from nst.cluster.chunks import Chunking
from nst.cluster.local_pool import InProcessPool
from nst.cluster.video import stylize_video_on_pool
from nst.config import Config
from nst.jobs.video import VideoOptions, VideoRun, stylize_video
from nst.jobs.video_request import prepare_video

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _row(name: str, done: VideoRun, wall_s: float) -> str:
    joins = ", ".join(f"{join} {' '.join(f'{e:.4f}' for e in errors)}" for join, errors in done.seams) or "-"
    ratio = done.seam_error / done.inside_error if done.seams else float("nan")
    inside = done.inside_error if done.chunks else done.warping_error
    return (f"| {name} | {wall_s:.0f} | {done.seam_time_s:.0f} | {done.warping_error:.4f} | {inside:.4f} | "
            f"{done.seam_error:.4f} | {ratio:.2f} | {joins} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=SHARED / "video" / "bunny.mp4")
    parser.add_argument("--style", type=Path, default=SHARED / "images" / "style" / "starry_night.jpg")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--chunk-frames", type=int, default=8)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3, help="workers the schedule plans for")
    parser.add_argument("--joins", default="blended", help="comma-separated: plain, anchored, blended")
    parser.add_argument("--no-local", action="store_true", help="leave out the local run")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "chunks")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    config = Config(size=args.size, steps=args.steps, seed=0, device="cpu")
    options = VideoOptions(max_frames=args.frames, keep_audio=False)
    print(f"{args.input.name}, first {args.frames} frames at {args.size} px, style {args.style.name}, "
          f"chunks of {args.chunk_frames}, overlap {args.overlap}, {args.workers} workers planned, "
          f"{torch.get_num_threads()} CPU thread(s)\n")
    print("| run | work s | s on lead-ins and blends | warping error | inside chunks | at seams "
          "| seams/inside | seams: join, error of each pair |")
    print("|---|---|---|---|---|---|---|---|")
    if not args.no_local:
        start = time.perf_counter()
        done = stylize_video(prepare_video(config, options, args.input, [args.style], args.out / "local.gif",
                                           restart=True))
        print(_row("local", done, time.perf_counter() - start), flush=True)
    for join in args.joins.split(","):
        chunking = Chunking(args.chunk_frames, args.overlap, blend=join == "blended")
        patches = [mock.patch.object(chunked._Run, "_anchor", lambda *a, **k: (None, None)),
                   mock.patch.object(chunked._Run, "_keyframes", lambda *a, **k: None)] \
            if join == "plain" else []
        for patch in patches:
            patch.start()
        try:
            start = time.perf_counter()
            with InProcessPool(args.workers) as pool:
                output = args.out / f"{join}.gif"
                job = prepare_video(config, options, args.input, [args.style], output, restart=True)
                done = stylize_video_on_pool(job, pool, chunking)
            print(_row(f"{args.workers} workers, {join}", done, time.perf_counter() - start), flush=True)
        finally:
            for patch in patches:
                patch.stop()


if __name__ == "__main__":
    main()
