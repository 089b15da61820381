"""Estimate how long a study takes without running it in full: every distinct
run of the study file runs for a few steps, and its time per step is scaled to
the configured number of steps (L-BFGS does one objective evaluation per step,
so a step costs the same throughout a run).

    .venv/bin/python benchmarks/study_time.py examples/study.toml [--steps 10] [--threads 1]

Times are CPU seconds of this process, which other processes on a shared
machine barely change (wall time does: a descheduled thread stalls the others).
With --threads 1 the total is one core's work, an upper bound for the wall time
on an otherwise idle machine with more cores.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from nst.events import StepEvent
from nst.jobs.runner import run, select_device
from nst.jobs.study_plan import load_study


def _measure(spec, steps: int, clock) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(seconds per step, seconds outside the steps) of one short run on `clock`."""
    marks: list[float] = []

    def on_step(event: StepEvent) -> None:
        marks.append(clock())

    start = clock()
    run(spec.config.replace(steps=steps), spec.content, spec.styles, on_step)
    total = clock() - start
    per_step = (marks[-1] - marks[0]) / (len(marks) - 1)
    return per_step, total - per_step * steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=10, help="steps actually run per run (at least 2)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--wall", action="store_true",
                        help="measure wall time instead (only meaningful on an otherwise idle machine)")
    args = parser.parse_args()
    clock = time.perf_counter if args.wall else time.process_time
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = load_study(args.config)
    seen: set[str] = set()
    total = 0.0
    for sweep in plan.sweeps:
        estimate, count = 0.0, 0
        for spec in sweep.runs():
            key = json.dumps(plan.request(spec), sort_keys=True)
            if key in seen:
                continue  # a run shared between sweeps is computed once by nst study
            seen.add(key)
            steps = spec.config.resolved(select_device(spec.config.device).type).steps or 1
            per_step, overhead = _measure(spec, max(2, args.steps), clock)
            estimate += per_step * steps + overhead
            count += 1
        total += estimate
        print(f"{sweep.name:18s} {count:3d} runs  {estimate / 60:5.1f} min", flush=True)
    print(f"total {total / 60:.1f} min of {'wall' if args.wall else 'CPU'} time with "
          f"{torch.get_num_threads()} thread(s) "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
