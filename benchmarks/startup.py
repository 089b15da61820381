"""How long the command line takes to answer when it has no real work to do.

`nst --help`, each command's `--help` and the refusal of a bad input should answer
at once: none of them needs torch, which takes about a second to import. Each
case runs in a fresh interpreter (this script's own, so run it with
`.venv/bin/python`), once to warm the file cache and then --runs times, the cases
taking turns so that a burst of load from other processes spreads over all of them.
The time is the wall time of the whole subprocess, interpreter start included: what
a user waits for. Each run also reports whether torch was imported.

    .venv/bin/python benchmarks/startup.py            # median of 7 runs
    .venv/bin/python benchmarks/startup.py --runs 15

Exit status 1 if a case ended with another exit status than expected (the refusal
must exit 2); the times are reported, not enforced.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py: beside this script

TARGET_MS = 500.0
MARKER = "nst-startup-probe:"

# Runs in the fresh interpreter: the CLI's own entry point (`nst` is
# `nst.cli:main`) or a plain import, then one line saying whether torch was loaded.
PROBE = f"""
import json, sys
kind, payload = sys.argv[1], json.loads(sys.argv[2])
code = 0
if kind == "cli":
    from nst.cli import main
    code = main(payload)
else:
    __import__(payload)
sys.stdout.flush()
print("\\n{MARKER}" + json.dumps({{"code": code, "torch": "torch" in sys.modules}}), flush=True)
"""


@dataclass(frozen=True)
class Case:
    label: str
    kind: str  # "cli" (arguments for nst.cli.main) or "import" (a module name)
    payload: list[str] | str
    expected_code: int = 0
    cli: bool = True  # held to the target (the imports are for comparison)


CASES = (
    Case("nst --help", "cli", ["--help"]),
    Case("nst transfer --help", "cli", ["transfer", "--help"]),
    Case("nst batch --help", "cli", ["batch", "--help"]),
    Case("nst video --help", "cli", ["video", "--help"]),
    Case("nst study --help", "cli", ["study", "--help"]),
    Case("nst transfer missing.jpg style.jpg -o out.png (refused)", "cli",
         ["transfer", "missing.jpg", "style.jpg", "-o", "out.png"], expected_code=2),
    Case('python -c "import nst"', "import", "nst", cli=False),
    Case('python -c "import torch"', "import", "torch", cli=False),
    Case("python alone (interpreter start, for comparison)", "import", "json", cli=False),
)


@dataclass
class Sample:
    seconds: float
    code: int | None
    torch: bool | None
    error: str = ""


def run_once(case: Case, cwd: Path) -> Sample:
    command = [sys.executable, "-c", PROBE, case.kind, json.dumps(case.payload)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(MARKER):
            report = json.loads(line[len(MARKER):])
            return Sample(seconds, int(report["code"]), bool(report["torch"]))
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return Sample(seconds, None, None, f"probe exited {done.returncode}: {last}")




def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case (default 7)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"cpu: {cpu_model()} ({os.cpu_count()} logical cores), load average {load:.2f}")
    print(f"python {platform.python_version()} ({sys.executable}), nst {version('nst')}, "
          f"torch {version('torch')}")
    print(f"median of {args.runs} runs, each in a fresh interpreter, after one warm-up run")
    print()

    samples: dict[str, list[Sample]] = {case.label: [] for case in CASES}
    with tempfile.TemporaryDirectory(prefix="nst-startup-") as folder:
        cwd = Path(folder)  # where the refusal's relative paths point: nothing there
        for case in CASES:
            run_once(case, cwd)  # warm-up: file cache, bytecode
        for _ in range(args.runs):
            for case in CASES:
                samples[case.label].append(run_once(case, cwd))

    width = max(len(case.label) for case in CASES)
    print(f"{'command':<{width}}  {'median ms':>9}  {'min ms':>7}  {'exit':>4}  torch imported  target")
    failed = False
    for case in CASES:
        runs = samples[case.label]
        median_ms = statistics.median(s.seconds for s in runs) * 1000
        min_ms = min(s.seconds for s in runs) * 1000
        codes = {s.code for s in runs}
        torch_seen = {s.torch for s in runs}
        code = str(codes.pop()) if len(codes) == 1 else "/".join(sorted(map(str, codes)))
        if None in torch_seen:
            torch_text = "?"  # a run failed before it could tell
        elif len(torch_seen) == 1:
            torch_text = "yes" if torch_seen == {True} else "no"
        else:
            torch_text = "varies"
        verdict = ("ok" if median_ms < TARGET_MS else "over") if case.cli else "-"
        print(f"{case.label:<{width}}  {median_ms:9.0f}  {min_ms:7.0f}  {code:>4}  "
              f"{torch_text:<14}  {verdict}")
        wrong = [s for s in runs if s.code != case.expected_code]
        if wrong:
            failed = True
            why = wrong[0].error or f"exit status {wrong[0].code}"
            print(f"  ! expected exit status {case.expected_code}, got {why}")
    print()
    print(f"target: every nst row under {TARGET_MS / 1000:.1f} s on an idle machine, without importing "
          "torch (the 'import torch' row is what loading torch alone costs)")
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"note: load average {load:.2f}: other processes were running; times are inflated")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
