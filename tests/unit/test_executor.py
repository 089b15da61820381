"""The one executor (runner.Executor): it runs a request with the network its factory
makes, and every door that runs work in a process goes through it, so runs of one
network key load that network once. A tiny fake network (tests/fakes.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from fakes import SIZE, CountingFactory, picture, tiny_config
from nst.cluster.worker import RequestTask, WorkerContext, decode
from nst.jobs.compute import Job, LocalComputer
from nst.jobs.request import prepare
from nst.jobs.runner import Executor, network_key
from nst.jobs.video import FrameStylizer
from nst.serve.hub import Hub
from nst.serve.jobs import Job as StudioJob
from nst.serve.library import Library
from nst.serve.worker import Worker


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path, Path]:
    return picture(tmp_path / "a.png", 1), picture(tmp_path / "b.png", 2), picture(tmp_path / "style.png", 3)


def test_the_executor_runs_a_request_and_its_losses_fall(images: tuple[Path, Path, Path]) -> None:
    content, _, style = images
    factory = CountingFactory()
    done = Executor(factory).run(prepare(tiny_config(init="noise"), content, [style]))
    totals = [step["total"] for step in done.record.history]
    assert factory.made == 1
    assert done.result.image.shape == (1, 3, 24, SIZE)
    assert len(totals) == 20
    # From noise, 20 L-BFGS steps on two convolutions' statistics: the loss must fall
    # by far more than any rounding (to under a tenth: a loss ratio, not a measured value).
    assert totals[-1] < 0.1 * totals[0]


def test_runs_of_one_network_key_load_it_once_whichever_door_runs_them(
        tmp_path: Path, images: tuple[Path, Path, Path]) -> None:
    content, other, style = images
    factory = CountingFactory()
    executor = Executor(factory)
    config = tiny_config(steps=3)
    requests = [prepare(config, path, [style]) for path in (content, other)]
    # batch and studies: the local computer
    jobs = [Job(request, f"job {i}", i, 2) for i, request in enumerate(requests)]
    outcomes = list(LocalComputer(batch_size=2, executor=executor).compute(jobs, None))
    assert [outcome.error for outcome in outcomes] == [None, None]
    # a cluster worker's task
    context = WorkerContext("test", 1, "cpu", tmp_path, executor=executor)
    files = {item.sha256: item.path for item in requests[0].inputs if item.path is not None}
    _, record = decode(RequestTask(requests[0]).run(context, files))
    assert record.steps == 3
    # the studio's worker thread
    studio = Worker(Library(tmp_path / "studio"), "cpu", Hub(), executor=executor)
    run = studio.submit(StudioJob({"kind": "run", "status": "queued"}, config, content, (style,)))
    deadline = time.monotonic() + 60
    while studio.active(run["id"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    studio.shutdown()
    stored = studio.library.read_run(run["id"])
    assert stored is not None and stored["status"] == "finished"
    # video frames
    frame = requests[0]
    stylizer = FrameStylizer(frame.config, "cpu", [torch.rand(1, 3, 24, SIZE)], torch.rand(1, 3, 24, SIZE),
                             executor)
    first = stylizer.fresh(torch.rand(1, 3, 24, SIZE), None)
    stylizer.warm(torch.rand(1, 3, 24, SIZE), first, 2, None, None)
    assert factory.made == 1


def test_a_new_network_key_loads_a_new_network_and_the_oldest_goes() -> None:
    factory = CountingFactory()
    executor = Executor(factory, keep=1)
    plain, average = tiny_config(), tiny_config(pooling="avg")
    assert network_key(plain, "cpu") != network_key(average, "cpu")
    first = executor.network(plain, "cpu")
    assert executor.network(plain, "cpu") is first
    executor.network(average, "cpu")
    assert factory.made == 2 and len(executor.networks.networks) == 1
    assert executor.network(plain, "cpu") is not first
    assert factory.made == 3
