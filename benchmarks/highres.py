"""Time and peak memory of a high-resolution coarse-to-fine transfer on this machine.

    python benchmarks/highres.py --size 1024
    python benchmarks/highres.py --size 2048 --steps 200 --output out2048.png

Runs `nst transfer` (default settings unless given) in a subprocess and prints
its scale schedule, wall time and peak resident memory (max RSS of the process).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from nst import Config
from nst.config import CPU_DEFAULT_STEPS, DEFAULT_START_SIZE
from nst.core.geometry import scale_schedule

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--content", type=Path, default=SHARED / "content" / "tubingen.jpg")
    parser.add_argument("--style", type=Path, default=SHARED / "style" / "starry_night.jpg")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=CPU_DEFAULT_STEPS)
    parser.add_argument("--start-size", type=int, default=DEFAULT_START_SIZE)
    parser.add_argument("--output", type=Path, default=Path("highres.png"))
    parser.add_argument("extra", nargs="*", help="more nst transfer options (after --)")
    args = parser.parse_args(argv)
    schedule = scale_schedule(args.size, args.size, args.start_size, args.steps, None)
    print("schedule (longest side: steps):", ", ".join(f"{s.side}: {s.steps}" for s in schedule))
    defaults = Config().resolved("cuda" if torch.cuda.is_available() else "cpu")
    print(f"default precision here: {defaults.precision}"
          f"{' (channels_last)' if defaults.channels_last else ''}; --precision in extra overrides it")
    command = [sys.executable, "-m", "nst", "transfer", str(args.content), str(args.style),
               "-o", str(args.output), "--size", str(args.size), "--steps", str(args.steps),
               "--start-size", str(args.start_size), "--seed", "1", "--quiet", *args.extra]
    start = time.perf_counter()
    done = subprocess.run(command, check=False)
    wall = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # Linux: KiB
    if done.returncode != 0:
        raise SystemExit(f"nst exited with status {done.returncode}")
    print(f"{args.size} px: {wall:.0f} s wall, peak RSS {peak_gib:.2f} GiB -> {args.output}")


if __name__ == "__main__":
    main()
