"""Throughput of `nst batch` here and on a Ray cluster, and the cluster's cost per item.

    .venv/bin/python benchmarks/cluster.py [--images 16] [--size 128] [--steps 20] [--isolate]

1. images per second for a batch of `--images` photos at `--size` px: locally (one
   process, torch's default threads), then on `--cluster local:2` (two workers of one
   CPU each), measured from the first item handed out to the last written (the
   workers' start-up, reported apart, is paid once per command);
2. the overhead per item with --steps 1: the driver's wall time times the workers,
   less the time the workers spent inside their tasks, per item: preparing and
   sending the inputs, scheduling, returning and writing the image.

--isolate runs it in a network namespace with only loopback (`unshare -n`, Linux,
root): Ray then stays on 127.0.0.1. Prints the CPU model and the date.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py: beside this script
from PIL import Image

from nst.cluster.connect import ClusterOptions
from nst.cluster.doors import ClusterComputer
from nst.cluster.pool import Pool
from nst.config import Config
from nst.events import Event, JobEvent
from nst.jobs.batch import run_batch
from nst.jobs.compute import LocalComputer
from nst.samples import sample_path


def make_photos(folder: Path, count: int, size: int) -> Path:
    """`count` distinct photos of `size` px (crops of the shipped samples)."""
    folder.mkdir(parents=True)
    with Image.open(sample_path("tubingen")) as image:
        base = image.convert("RGB")
    step = max(1, (base.width - 300) // max(count - 1, 1))
    for index in range(count):
        crop = base.crop((index * step, 0, index * step + 300, 225))
        crop.resize((size, size * 3 // 4), Image.Resampling.LANCZOS).save(folder / f"p{index:02d}.png")
    return folder


class Clock:
    """Wall time from the first started to the last finished job, and the
    workers' own time inside their tasks (each finished job's elapsed_s)."""

    def __init__(self) -> None:
        self.first = 0.0
        self.last = 0.0
        self.inside = 0.0
        self.done = 0

    def __call__(self, event: Event) -> None:
        if not isinstance(event, JobEvent):
            return
        now = time.perf_counter()
        if event.status == "started" and not self.first:
            self.first = now
        elif event.status == "finished":
            self.last, self.done = now, self.done + 1
            self.inside += event.elapsed_s

    @property
    def wall(self) -> float:
        return self.last - self.first


def batch(config: Config, photos: Path, out: Path, computer: LocalComputer | ClusterComputer) -> Clock:
    clock = Clock()
    shutil.rmtree(out, ignore_errors=True)
    report = run_batch(config, photos, [sample_path("starry_night")], out, on_event=clock, computer=computer)
    assert not report.failed, report.failed
    return clock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--isolate", action="store_true", help="run inside `unshare -n` (loopback only)")
    args = parser.parse_args()
    if args.isolate:
        argv = " ".join([sys.executable, *[a for a in sys.argv if a != "--isolate"]])
        return subprocess.call(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {argv}"])
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import torch

    print(f"{cpu_model()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads locally")
    work = Path(tempfile.mkdtemp(prefix="nst-cluster-bench-"))
    try:
        photos = make_photos(work / "photos", args.images, args.size)
        config = Config(size=args.size, steps=args.steps, seed=1)
        quick = config.replace(steps=1)
        batch(quick, photos, work / "warm", LocalComputer())  # the weights decoded, torch warm
        threads = torch.get_num_threads()
        local = {}
        for count in sorted({threads, 1}, reverse=True):  # torch's default, and one thread
            torch.set_num_threads(count)
            local[count] = (batch(config, photos, work / f"local{count}", LocalComputer()),
                            batch(quick, photos, work / f"local{count}-quick", LocalComputer()))
        torch.set_num_threads(threads)
        started = time.perf_counter()
        with Pool(ClusterOptions(f"local:{args.workers}", cpus_per_worker=1)) as pool:
            pool.wait_for_workers(args.workers, 300)  # every worker up: start-up is measured apart
            start_up = time.perf_counter() - started
            computer = ClusterComputer(pool)
            batch(quick, photos, work / "cluster-warm", computer)
            cluster = batch(config, photos, work / "cluster", computer)
            cluster_quick = batch(quick, photos, work / "cluster-quick", computer)
        workers, n = args.workers, args.images
        print(f"batch of {n} images at {args.size} px, {args.steps} steps "
              f"(load average {os.getloadavg()[0]:.1f}):")
        for count, (full, _) in local.items():
            print(f"  local, 1 process, {count} thread(s): {n / full.wall:.3f} images/s ({full.wall:.1f} s)")
        print(f"  --cluster local:{workers} (1 CPU each): {n / cluster.wall:.3f} images/s "
              f"({cluster.wall:.1f} s; {cluster.inside / n:.2f} s per image inside a worker); "
              f"workers up in {start_up:.1f} s")
        overhead = (cluster_quick.wall * workers - cluster_quick.inside) / n
        quick_local = ", ".join(f"{count} thread(s) {q.wall / n:.3f} s" for count, (_, q) in local.items())
        print(f"with --steps 1, per image: local {quick_local}; "
              f"cluster {cluster_quick.wall / n:.3f} s of wall time, "
              f"{cluster_quick.inside / n:.3f} s inside a worker; overhead per item "
              f"(driver + transfer + scheduling) {overhead:.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
