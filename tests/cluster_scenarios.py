"""Cluster scenarios on a real two-node Ray cluster on 127.0.0.1 (tests/test_cluster.py).

    unshare -n sh -c 'ip link set lo up && exec python tests/cluster_scenarios.py WORKDIR SCENARIO...'

Run it in a network namespace with only loopback: there Ray cannot pick the
machine's address and every packet stays on 127.0.0.1. One cluster (a head and a
second node, one CPU each, each its own raylet) serves every scenario named; each
prints one JSON line `{"scenario": NAME, ...}` with what the test checks, and the
cluster is shut down at the end, however the run ends (an alarm bounds it).

Scenarios: same (a batch of 6 tiny images locally, on the cluster, and on the
cluster with --batch-size 3), sweep (a tiny sweep locally and on the cluster),
fault (a worker's process killed while it holds an item), resume (the driver
interrupted with SIGINT, then rerun locally and on the cluster).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from nst.samples import sample_path

STEPS, SIZE, SEED = "3", "32", "7"
TIME_LIMIT_S = 240


def emit(name: str, **fields: Any) -> None:
    print(json.dumps({"scenario": name, **fields}), flush=True)


def make_inputs(folder: Path, count: int) -> Path:
    """`count` distinct small photos (crops of the shipped samples)."""
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(sample_path("tubingen")) as image:
        base = image.convert("RGB")
    for index in range(count):
        left = 40 * index
        crop = base.crop((left, 20, left + 200, 170)).resize((40, 30))
        if index % 2:
            crop = ImageOps.mirror(crop)
        crop.save(folder / f"photo{index}.png")
    return folder


def pixels(path: Path) -> list[int]:
    with Image.open(path) as image:
        return list(image.convert("RGB").tobytes())


def max_difference(a: Path, b: Path) -> int:
    """The largest difference of one 8-bit channel value between two images."""
    return max((abs(x - y) for x, y in zip(pixels(a), pixels(b), strict=True)), default=0)


def compare_folders(a: Path, b: Path) -> dict[str, Any]:
    names = sorted(p.name for p in a.glob("*.png"))
    return {"names_equal": names == sorted(p.name for p in b.glob("*.png")), "count": len(names),
            "max_diff": max(max_difference(a / n, b / n) for n in names)}


def nst(*argv: str) -> int:
    from nst.cli.app import main

    return main(list(argv))


def batch_args(folder: Path, out: Path) -> list[str]:
    return ["batch", str(folder), str(sample_path("starry_night")), "-o", str(out), "--size", SIZE,
            "--steps", STEPS, "--seed", SEED, "--precision", "fp32", "-q"]


# ------------------------------------------------------------------ scenarios


def scenario_same(work: Path) -> None:
    """A batch of 6 locally, on the cluster, and batched 3 at a time on the cluster."""
    from nst.cluster.connect import ClusterOptions
    from nst.cluster.doors import ClusterComputer
    from nst.cluster.pool import Pool
    from nst.config import Config
    from nst.events import Event, JobEvent
    from nst.jobs.batch import run_batch

    photos = make_inputs(work / "photos", 6)
    local = nst(*batch_args(photos, work / "local"))
    events: list[JobEvent] = []

    def keep(event: Event) -> None:
        if isinstance(event, JobEvent):
            events.append(event)

    config = Config(size=int(SIZE), steps=int(STEPS), seed=int(SEED), precision="fp32")
    started = time.perf_counter()
    with Pool(ClusterOptions("auto")) as pool:
        # Both workers up before the first item, so that both nodes get work (a
        # worker that starts late could otherwise find the six tiny images done).
        pool.wait_for_workers(2, 60)
        with ClusterComputer(pool) as computer:
            report = run_batch(config, photos, [sample_path("starry_night")], work / "cluster", on_event=keep,
                               computer=computer)
        nodes = {w.name: w.node for w in pool.workers}
        threads = sorted(w.threads for w in pool.workers)
    cluster_s = time.perf_counter() - started
    finished = [e for e in events if e.status == "finished"]
    batched = nst(*batch_args(photos, work / "batched"), "--cluster", "auto", "--batch-size", "3")
    emit("same", local_rc=local, batched_rc=batched, done=len(report.done), failed=len(report.failed),
         finished_events=len(finished), workers_used=sorted({e.worker for e in finished}),
         nodes_used=len({nodes.get(e.worker) for e in finished}), threads=threads,
         cluster=compare_folders(work / "local", work / "cluster"),
         batched=compare_folders(work / "local", work / "batched"), cluster_s=round(cluster_s, 1),
         sheet=(work / "cluster" / "index.jpg").is_file())


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items()
                if not k.endswith("time_s") and k not in ("elapsed_s", "created")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two results.json differ, floats compared to a relative 1e-3."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: lengths {len(a)} != {len(b)}"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in _differences(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if abs(a - b) <= 1e-3 * max(abs(a), abs(b), 1e-9) else [f"{where}: {a} != {b}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def scenario_sweep(work: Path) -> None:
    """A tiny sweep (two content weights, with a shared run) locally and on the cluster."""
    runs = {}
    for name, extra in (("local", []), ("cluster", ["--cluster", "auto"])):
        out = work / f"sweep-{name}"
        rc = nst("sweep", "params", "--content", str(sample_path("tubingen")), "--style",
                 str(sample_path("starry_night")), "--param", "content_weight=10,1e4",
                 "--param", "seed=1,2", "--size", SIZE, "--steps", STEPS, "--precision", "fp32",
                 "-o", str(out), "-q", *extra)
        results = json.loads((out / "results.json").read_text()) if rc == 0 else {}
        runs[name] = (rc, out, results)
    (local_rc, local_out, local), (cluster_rc, cluster_out, cluster) = runs["local"], runs["cluster"]
    images = sorted(p.relative_to(local_out).as_posix() for p in local_out.glob("images/*/*.png"))
    emit("sweep", local_rc=local_rc, cluster_rc=cluster_rc, images=len(images),
         max_diff=max((max_difference(local_out / i, cluster_out / i) for i in images), default=-1),
         differences=_differences(_without_timings(local), _without_timings(cluster))[:5],
         report=(cluster_out / "index.html").is_file())


def scenario_fault(work: Path) -> None:
    """Kill one worker's process while it holds an item: the batch still completes,
    every output once and valid."""
    from nst.cluster.connect import ClusterOptions
    from nst.cluster.doors import ClusterComputer
    from nst.cluster.pool import Pool
    from nst.config import Config
    from nst.events import Event, JobEvent
    from nst.jobs.batch import run_batch
    from nst.jobs.resume import read_record
    from nst.record import RunRecord

    photos = make_inputs(work / "fault-photos", 6)
    config = Config(size=64, steps=3, seed=int(SEED), precision="fp32")
    events: list[JobEvent] = []
    killed: dict[str, Any] = {}
    with Pool(ClusterOptions("auto")) as pool:

        def on_event(event: Event) -> None:
            if not isinstance(event, JobEvent):
                return
            events.append(event)
            # The third item handed out: its worker is busy with its second, and holds this one.
            started = [e for e in events if e.status == "started"]
            if event.status == "started" and len(started) == 3 and not killed:
                worker = next(w for w in pool.workers if w.name == event.worker)
                time.sleep(0.1)  # well inside the item (about a second)
                os.kill(worker.pid, signal.SIGKILL)
                killed.update(name=worker.name, pid=worker.pid, label=event.label)

        report = run_batch(config, photos, [sample_path("starry_night")], work / "fault-out",
                           on_event=on_event, computer=ClusterComputer(pool))
        workers_after = sorted(w.name for w in pool.workers)
    outputs = sorted(p.name for p in (work / "fault-out").glob("*.png"))
    valid = sum(isinstance(read_record(work / "fault-out" / name), RunRecord) for name in outputs)
    finished = [e.label for e in events if e.status == "finished"]
    emit("fault", killed=killed, done=len(report.done), failed=[r for _, r in report.failed],
         outputs=outputs, valid=valid, finished=sorted(finished), unique_finished=len(set(finished)),
         notes=[e.label for e in events if e.status == "queued"], workers_after=workers_after,
         started=len([e for e in events if e.status == "started"]))


def scenario_resume(work: Path) -> None:
    """Interrupt a cluster batch's driver (SIGINT) once some images are written;
    rerun locally, then on the cluster: finished images are not recomputed."""
    photos = make_inputs(work / "resume-photos", 6)
    out = work / "resume-out"
    args = batch_args(photos, out)
    args[args.index("--size") + 1] = "64"
    command = [sys.executable, "-m", "nst", *args, "--cluster", "auto"]
    driver = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("*.png"))) < 2 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    driver.send_signal(signal.SIGINT)
    try:
        _, stderr = driver.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        driver.kill()
        _, stderr = driver.communicate()
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    local_rc = nst(*args)  # the local rerun resumes what the cluster made
    after_local = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    cluster_rc = nst(*args, "--cluster", "auto")  # and a cluster rerun has nothing left to do
    after_cluster = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    emit("resume", interrupted_rc=driver.returncode, stderr_tail=stderr.strip().splitlines()[-1:],
         kept=len(first), local_rc=local_rc, cluster_rc=cluster_rc, outputs=len(after_local),
         kept_untouched=all(after_local[name] == mtime for name, mtime in first.items()),
         cluster_rerun_untouched=after_cluster == after_local)


def scenario_fast(work: Path) -> None:
    """A batch --method fast (a tiny decoder file, shipped to the workers as a blob by its
    hash) locally, and on the cluster batched 2 at a time."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fastkit import tiny_decoder

    photos = make_inputs(work / "fast-photos", 4)
    decoder = tiny_decoder(work / "fast-decoder.safetensors")
    common = ["--method", "fast", "--decoder", str(decoder), "--size", SIZE, "--precision", "fp32", "-q"]

    def batch(out: Path, *extra: str) -> int:
        return nst("batch", str(photos), str(sample_path("starry_night")), "-o", str(out), *common, *extra)

    local = batch(work / "fast-local")
    cluster = batch(work / "fast-cluster", "--cluster", "auto", "--batch-size", "2")
    from nst.jobs.resume import read_record

    record = read_record(work / "fast-cluster" / "photo0.png")
    inputs = [[i.role, i.sha256] for i in record.inputs] if record is not None else []
    emit("fast", local_rc=local, cluster_rc=cluster, compared=compare_folders(work / "fast-local",
                                                                              work / "fast-cluster"),
         decoder_in_record=["decoder", sha256(decoder)] in inputs,
         decoder_path=record.config.decoder if record is not None else None, expected_path=str(decoder))


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


SCENARIOS = {"same": scenario_same, "fast": scenario_fast, "sweep": scenario_sweep, "fault": scenario_fault,
             "resume": scenario_resume}


def main(argv: list[str]) -> int:
    work, names = Path(argv[0]), argv[1:]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

    def out_of_time(signum: int, frame: Any) -> None:
        raise TimeoutError(f"scenarios ran past {TIME_LIMIT_S} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(TIME_LIMIT_S)
    import ray
    from ray.cluster_utils import Cluster

    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    status = 0
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes(timeout=60)
        os.environ["RAY_ADDRESS"] = cluster.address
        emit("cluster", address=cluster.address, up_s=round(time.perf_counter() - started, 1))
        for name in names:
            began = time.perf_counter()
            try:
                SCENARIOS[name](work)
            except Exception:  # noqa: BLE001  (reported, and the next scenario still runs)
                emit(name, error=traceback.format_exc(limit=8))
                status = 1
            print(f"# {name}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    finally:
        signal.alarm(0)
        ray.shutdown()
        cluster.shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
