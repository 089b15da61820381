"""What watching a run live costs: the studio's steps per second with no page
connected against the same run watched by a browser (headless chromium through
Playwright, showing the live frames, the step events and the loss curve).

The server runs in a subprocess (`nst serve`'s app under uvicorn, on a loopback
port, a temporary library); the browser and this script are other processes on the
same machine, as they are for a user. One warm-up run loads torch and the network;
then the runs alternate (no page, page, no page, ..., no page) so that load from
other processes spreads over both, and each watched run is compared with the
unwatched runs on either side of it. Steps per second come from each run's record
(steps / run_time_s, the optimization only). The issue's target: the live view costs
at most 5% of a run's time.

Also printed: the CPU time of the server and of every chromium process during each
run (from /proc), a figure that other jobs on the machine disturb far less than the
wall time: on a shared 2-core machine the wall-time overhead of one round can swing
by ten points either way.

    .venv/bin/python benchmarks/studio.py                         # 128 px, 60 steps, 3 rounds
    .venv/bin/python benchmarks/studio.py --size 256 --steps 100 --rounds 5
    .venv/bin/python benchmarks/studio.py --threads 1             # the server's torch on one core

Needs the serve extra, playwright and a chromium (Debian's /usr/bin/chromium is used,
no browser is downloaded).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from machine import cpu_model  # benchmarks/machine.py: beside this script

TARGET_PERCENT = 5.0
SERVER = """
import sys
from pathlib import Path
import uvicorn
from nst.serve.app import create_app
if int(sys.argv[4]) > 0:
    import torch
    torch.set_num_threads(int(sys.argv[4]))
uvicorn.run(create_app(Path(sys.argv[1]), token=None, device=sys.argv[2]), host="127.0.0.1",
            port=int(sys.argv[3]), log_level="warning")
"""




def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def call(base: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"} if body is not None else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for_server(base: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the studio server exited with status {process.returncode}")
        try:
            call(base, "api/info")
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"the studio server did not answer within {timeout:.0f} s")


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds so far) from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        found[int(entry.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / ticks)
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time of one process (all its threads) so far."""
    found = _processes().get(pid)
    return found[2] if found else 0.0


def browser_cpu(root: int) -> dict[int, float]:
    """CPU seconds so far of every chromium process under `root` (this script): the
    browser's work, whatever the page does. Empty where /proc is missing."""
    processes = _processes()
    found = {}
    for pid, (_, name, seconds) in processes.items():
        if not name.startswith("chrom"):
            continue
        parent = pid
        while parent in processes and parent != root:
            parent = processes[parent][0]
        if parent == root:
            found[pid] = seconds
    return found


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two browser_cpu readings (by the processes alive at the second)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def run_job(base: str, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Post a job and wait for its end (one poll per second: a negligible client)."""
    run: dict[str, Any] = call(base, "api/jobs", job)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.0)
        run = call(base, f"api/runs/{run['id']}")
        if run["status"] not in ("queued", "running"):
            break
    else:
        sys.exit(f"run {run['id']} did not finish within {timeout:.0f} s")
    if run["status"] != "finished" or not run.get("record"):
        sys.exit(f"run {run['id']} ended {run['status']}: {run.get('error')}")
    return run


def count_frames(page: Any, into: list[str]) -> None:
    """Collect the URL of every live frame the page asks for."""
    def seen(request: Any) -> None:
        if "/frame" in request.url:
            into.append(request.url)

    page.on("request", seen)


def steps_per_second(run: dict[str, Any]) -> float:
    record = run["record"]
    return float(record["steps"]) / float(record["run_time_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="longest side, pixels (default 128)")
    parser.add_argument("--steps", type=int, default=60, help="steps per run (default 60)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind (default 3)")
    parser.add_argument("--device", default="cpu", help="the server's device (default cpu)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of the server (default: torch's own choice)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one run may take")
    args = parser.parse_args(argv)

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        sys.exit(f"benchmarks/studio.py needs the serve extra and playwright ({error.name} is missing)")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        sys.exit("benchmarks/studio.py needs chromium (Debian: apt-get install chromium)")
    import torch

    from nst import __version__

    print(f"nst studio live-view cost, {datetime.date.today().isoformat()}")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores), load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"nst {__version__}, torch {torch.__version__}, python {platform.python_version()}, "
          f"{subprocess.run([executable, '--version'], capture_output=True, text=True).stdout.strip()}")
    print(f"run: transfer tubingen x starry_night, {args.size} px, {args.steps} steps, device {args.device}; "
          f"{args.rounds} rounds of each, alternating; torch threads "
          f"{args.threads or 'default (' + str(torch.get_num_threads()) + ')'}")

    job = {"task": "transfer", "content": "sample:tubingen", "styles": ["sample:starry_night"],
           "options": {"size": args.size, "steps": args.steps, "seed": 0}}
    results: dict[str, list[float]] = {"no page": [], "page": []}
    frames: list[int] = []
    cpu: dict[str, list[tuple[float, float]]] = {"no page": [], "page": []}
    with tempfile.TemporaryDirectory(prefix="nst-studio-bench-") as folder:
        port = free_port()
        base = f"http://127.0.0.1:{port}/"
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(Path(folder) / "library"), args.device,
                                   str(port), str(args.threads)])
        try:
            wait_for_server(base, server)
            warm = run_job(base, job, args.timeout)
            print(f"warm-up: {steps_per_second(warm):.2f} steps/s")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
                try:
                    for index in range(args.rounds * 2 + 1):  # no page first and last
                        watched = index % 2 == 1
                        page = None
                        fetched: list[str] = []
                        if watched:
                            page = browser.new_page(viewport={"width": 1440, "height": 1000})
                            count_frames(page, fetched)
                            page.goto(base, wait_until="load", timeout=60_000)
                            page.wait_for_selector("#connection[data-state='live']", timeout=60_000)
                        before, server_before = browser_cpu(os.getpid()), cpu_seconds(server.pid)
                        run = run_job(base, job, args.timeout)
                        browser_s = cpu_since(before, browser_cpu(os.getpid()))
                        server_s = cpu_seconds(server.pid) - server_before
                        if page is not None:
                            # The page showed the run live and its final image.
                            card = f"#gallery .card[data-id='{run['id']}'][data-status='finished']"
                            page.wait_for_selector(card, timeout=60_000)
                            page.close()
                            frames.append(len(fetched))
                        rate = steps_per_second(run)
                        kind = "page" if watched else "no page"
                        results[kind].append(rate)
                        extra = f", {len(fetched)} frames" if watched else ""
                        extra += f"; CPU: server {server_s:.2f} s, browser {browser_s:.2f} s"
                        cpu[kind].append((server_s, browser_s))
                        print(f"  round {index // 2 + 1}, {kind:7}: {rate:6.2f} steps/s "
                              f"({run['record']['run_time_s']:.2f} s{extra})")
                finally:
                    browser.close()
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()

    alone = statistics.median(results["no page"])
    with_page = statistics.median(results["page"])
    # Each watched run against the unwatched runs just before and after it: slow drifts
    # in the machine's load cancel out. Overhead = extra run time with the page.
    pairs = []
    for i, rate in enumerate(results["page"]):
        neighbours = results["no page"][i:i + 2]
        pairs.append((statistics.mean(neighbours) / rate - 1) * 100)
    overhead = statistics.median(pairs)
    print(f"no page connected: {alone:.2f} steps/s (median; {min(results['no page']):.2f}-"
          f"{max(results['no page']):.2f})")
    print(f"browser watching : {with_page:.2f} steps/s (median; {min(results['page']):.2f}-"
          f"{max(results['page']):.2f}; {statistics.median(frames):.0f} frames per run)")
    server_cpu = statistics.median(s for s, _ in cpu["page"])
    browser_median = statistics.median(b for _, b in cpu["page"])
    print(f"CPU time per watched run (median): server {server_cpu:.2f} s, browser {browser_median:.2f} s "
          f"({browser_median / server_cpu * 100:.1f}% of the server's; measured from the post to the end "
          "of the run, final image included)")
    print(f"overhead of each watched run against its neighbours: {', '.join(f'{p:+.1f}%' for p in pairs)}")
    print(f"overhead: {overhead:+.1f}% of run time, median (target: at most {TARGET_PERCENT:.0f}%) -> "
          f"{'within' if overhead <= TARGET_PERCENT else 'OVER'} the target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
