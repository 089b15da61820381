"""Time and peak memory of a high-resolution coarse-to-fine transfer on this machine.

    python benchmarks/highres.py --size 1024
    python benchmarks/highres.py --size 2048 --steps 200 --output out2048.png

Runs `nst transfer` (default settings unless given) in a subprocess: first with
--dry-run, for the memory plan (every scale's size, steps, levers and estimated
peak), then for real, and prints its wall time, peak resident memory (max RSS of
the process) beside the estimate, and the final loss from the output's record.
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
from nst.files.images import read_metadata

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
    defaults = Config().resolved("cuda" if torch.cuda.is_available() else "cpu")
    print(f"default precision here: {defaults.precision}"
          f"{' (channels_last)' if defaults.channels_last else ''}; --precision in extra overrides it")
    command = [sys.executable, "-m", "nst", "transfer", str(args.content), str(args.style),
               "-o", str(args.output), "--size", str(args.size), "--steps", str(args.steps),
               "--start-size", str(args.start_size), "--seed", "1", "--quiet", *args.extra]
    plan = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, check=False)
    print(plan.stdout.strip() or plan.stderr.strip())
    if plan.returncode != 0:
        raise SystemExit(f"nst refused the run (status {plan.returncode})")
    start = time.perf_counter()
    done = subprocess.run(command, check=False)
    wall = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # Linux: KiB
    if done.returncode != 0:
        raise SystemExit(f"nst exited with status {done.returncode}")
    record = read_metadata(args.output) or {}
    losses = record.get("final_losses", {})
    print(f"{args.size} px: {wall:.0f} s wall, peak RSS {peak_gib:.2f} GiB (estimated: "
          f"{plan.stdout.strip().splitlines()[-1].split(';')[0].removeprefix('estimated peak ')}), "
          f"final loss {losses.get('total', float('nan')):.4g} -> {args.output}")


if __name__ == "__main__":
    main()
