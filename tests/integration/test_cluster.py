"""Batches and sweeps on a Ray cluster (--cluster): the same pictures and results as a
local run, lost workers' items retried, an interrupted driver resumed; and nothing of
Ray loaded without --cluster.

The cluster tests run tests/cluster_scenarios.py once, in a network namespace that
has only loopback (`unshare -n`): on Linux, Ray would otherwise pick the machine's
own address, and these tests send nothing beyond 127.0.0.1. Where `unshare -n` is
not permitted they are skipped, unless NST_REQUIRE_CLUSTER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clusterkit import require_loopback_cluster, run_scenarios, scenario
from nst import Config
from nst.jobs.compute import Job, LocalComputer
from nst.jobs.request import prepare

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("same", "sweep", "fault", "resume", "fast")
TIMEOUT_S = 200


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every scenario's JSON line, from one two-node cluster."""
    require_loopback_cluster()
    work = tmp_path_factory.mktemp("cluster")
    return run_scenarios("cluster_scenarios.py", [str(work), *SCENARIOS], TIMEOUT_S, "cluster scenarios")




def test_a_cluster_batch_makes_the_pictures_of_a_local_batch(scenarios: dict[str, dict[str, Any]]) -> None:
    same = scenario(scenarios, "same")
    assert same["local_rc"] == 0 and same["done"] == 6 and same["failed"] == 0
    assert same["finished_events"] == 6 and same["sheet"]
    assert same["nodes_used"] == 2, same  # both nodes of the cluster did work
    assert same["threads"] == [1, 1]  # each worker's torch uses its one CPU
    assert same["cluster"]["names_equal"] and same["cluster"]["count"] == 6
    assert same["cluster"]["max_diff"] <= 2, same  # 8-bit values, fixed seed
    # --batch-size 3: the images of one size optimized together, each as alone.
    assert same["batched_rc"] == 0 and same["batched"]["names_equal"]
    assert same["batched"]["max_diff"] <= 2, same


def test_a_fast_cluster_batch_makes_the_pictures_of_a_local_one(scenarios: dict[str, dict[str, Any]]) -> None:
    fast = scenario(scenarios, "fast")
    assert fast["local_rc"] == 0 and fast["cluster_rc"] == 0, fast
    assert fast["compared"]["names_equal"] and fast["compared"]["count"] == 4
    assert fast["compared"]["max_diff"] <= 1, fast  # one pass: equal to an 8-bit level
    # The record names the user's decoder (not the worker's copy) and its content hash.
    assert fast["decoder_in_record"] and fast["decoder_path"] == fast["expected_path"], fast


def test_a_cluster_sweep_writes_the_results_of_a_local_sweep(scenarios: dict[str, dict[str, Any]]) -> None:
    sweep = scenario(scenarios, "sweep")
    assert sweep["local_rc"] == 0 and sweep["cluster_rc"] == 0 and sweep["report"]
    assert sweep["images"] == 4 and sweep["max_diff"] <= 2
    assert sweep["differences"] == []  # results.json, apart from timings


def test_a_worker_killed_mid_item_loses_nothing_and_writes_nothing_twice(
        scenarios: dict[str, dict[str, Any]]) -> None:
    fault = scenario(scenarios, "fault")
    assert fault["killed"], "no worker was killed"
    names = [f"photo{i}.png" for i in range(6)]
    assert fault["done"] == 6 and fault["failed"] == []
    assert fault["outputs"] == names and fault["valid"] == 6
    assert fault["finished"] == names and fault["unique_finished"] == 6  # each written once
    assert fault["started"] > 6  # the killed worker's items were handed out again
    assert any("died" in note for note in fault["notes"])


def test_an_interrupted_cluster_batch_resumes_locally_and_on_the_cluster(
        scenarios: dict[str, dict[str, Any]]) -> None:
    resume = scenario(scenarios, "resume")
    assert resume["interrupted_rc"] == 130, resume
    assert "run the same command again" in resume["stderr_tail"][0]
    assert 2 <= resume["kept"] < 6
    assert resume["local_rc"] == 0 and resume["outputs"] == 6
    assert resume["kept_untouched"]  # finished images were not recomputed
    assert resume["cluster_rc"] == 0 and resume["cluster_rerun_untouched"]


# ------------------------------------------------------------------ without a cluster


def test_nothing_loads_ray_without_cluster(tmp_path: Path, small_image: Path, style_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    small_image.rename(photos / "a.png")
    code = """
import sys
from nst.cli.app import main
try:
    main(["batch", "--help"])
except SystemExit:
    pass
assert "ray" not in sys.modules, "batch --help imported ray"
status = main(["batch", sys.argv[1], sys.argv[2], "-o", sys.argv[3], "--size", "32", "--steps", "1", "-q"])
print(status, "ray" in sys.modules)
"""
    done = _python(code, str(photos), str(style_path), str(tmp_path / "out"))
    assert done.stdout.splitlines()[-1].split() == ["0", "False"], done.stderr


def test_without_ray_cluster_fails_in_one_line(tmp_path: Path, small_image: Path, style_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    small_image.rename(photos / "a.png")
    code = """
import sys
sys.modules["ray"] = None  # as if Ray were not installed
from nst.cli.app import main
sys.exit(main(["batch", sys.argv[1], sys.argv[2], "-o", sys.argv[3], "--cluster", "local:2"]))
"""
    done = _python(code, str(photos), str(style_path), str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "pip install 'nst[ray]'" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["--cluster", "nowhere"], "unknown --cluster 'nowhere'"),
    (["--cluster", "local:0"], "local:N needs N >= 1"),
    (["--workers", "2"], "--workers needs --cluster"),
    (["--cluster", "local", "--cpus-per-worker", "0"], "cpus-per-worker must be more than 0"),
])
def test_cluster_options_are_checked_before_anything_runs(
        tmp_path: Path, small_image: Path, style_path: Path, capsys: pytest.CaptureFixture[str],
        argv: list[str], message: str) -> None:
    from nst.cli.app import main

    assert main(["batch", str(small_image.parent), str(style_path), "-o", str(tmp_path / "out"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cluster_options_on_every_door() -> None:
    from nst.cli.app import build_parser

    parser = build_parser()
    for command in (["batch", "in", "s.jpg"], ["video", "in.mp4", "s.jpg"], ["sweep"], ["study", "s.toml"]):
        args = parser.parse_args([*command, "-o", "out", "--cluster", "auto", "--workers", "3",
                                  "--cpus-per-worker", "2", "--gpus-per-worker", "0.25", "--batch-size", "4"])
        assert (args.cluster, args.workers, args.cpus_per_worker, args.gpus_per_worker, args.batch_size) \
            == ("auto", 3, 2.0, 0.25, 4), command


def test_a_batch_of_two_equals_two_single_runs(content_path: Path, style_path: Path, tmp_path: Path) -> None:
    """What a worker does with --batch-size: same-size images in one optimization."""
    from PIL import Image, ImageOps

    from nst.files.images import to_tensor

    with Image.open(content_path) as image:
        ImageOps.mirror(image.convert("RGB")).save(tmp_path / "mirrored.png")
    config = Config(size=48, steps=3, seed=5, precision="fp32")
    requests = [prepare(config, path, [style_path]) for path in (content_path, tmp_path / "mirrored.png")]
    jobs = [Job(request, f"image {i}", i, 2) for i, request in enumerate(requests)]
    pictures = {}
    for size in (1, 2):
        for outcome in LocalComputer(batch_size=size).compute(jobs, None):
            assert outcome.error is None and outcome.record is not None
            path = outcome.save(tmp_path / f"b{size}-{outcome.job.index}.png")
            with Image.open(path) as saved:
                pictures[size, outcome.job.index] = to_tensor(saved.convert("RGB"))
            assert outcome.record.losses["total"] > 0
    for index in range(2):
        assert (pictures[1, index] - pictures[2, index]).abs().max() <= 2 / 255 + 1e-6
    assert (pictures[1, 0] - pictures[1, 1]).abs().max() > 0.1  # two different pictures
