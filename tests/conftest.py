"""Shared fixtures. Test images come from ../shared/data (the repository's
neighbour) when present, else from the package's own samples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from nst.samples import sample_path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_or_sample(relative: str, sample: str) -> Path:
    path = SHARED / relative
    return path if path.exists() else sample_path(sample)


@pytest.fixture(scope="session")
def content_path() -> Path:
    return shared_or_sample("images/content/dancing.jpg", "tubingen")


@pytest.fixture(scope="session")
def style_path() -> Path:
    return shared_or_sample("images/style/starry_night.jpg", "starry_night")


@pytest.fixture(scope="session")
def second_style_path() -> Path:
    return shared_or_sample("images/style/great_wave.jpg", "great_wave")


@pytest.fixture
def small_image(tmp_path: Path) -> Path:
    """A 48x32 RGB gradient written as PNG."""
    image = Image.new("RGB", (48, 32))
    image.putdata([(x * 5, y * 7, 128) for y in range(32) for x in range(48)])
    path = tmp_path / "small.png"
    image.save(path)
    return path


# A miniature study of every part (tiny images, 3 steps), run once per session
# through the CLI; tests/integration/test_studies.py and test_report.py inspect it.
MINI_STUDY = """
title = "Mini study"
[inputs]
content = ["sample:tubingen"]
styles = ["sample:starry_night", "sample:great_wave"]
[defaults]
size = 32
steps = 3
[content_reconstruction]
params = { content_layers = ["conv_1", "conv_5"] }
[texture_synthesis]
params = { style_layers = ["conv_1", "conv_1-conv_3"] }
[style_transfer]
params = { content_weight = [10, 1e5] }
[content_style_grid]
[seed_pairs]
content_layers = "conv_5"
style_layers = "conv_1-conv_2"
[init_comparison]
[input_weighting]
params = { alpha = [0, 0.5, 1] }
[[sweep]]
title = "TV weight"
styles = ["sample:starry_night"]
params = { tv_weight = [0, 1] }
"""


@pytest.fixture(scope="session")
def mini_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of the miniature study (see MINI_STUDY)."""
    from nst.cli.app import main

    folder = tmp_path_factory.mktemp("mini-study")
    config = folder / "mini.toml"
    config.write_text(MINI_STUDY)
    assert main(["study", str(config), "-o", str(folder / "out"), "-q"]) == 0
    return folder / "out"


@pytest.fixture
def tiny_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Extractors of this test are the tiny stand-in for VGG19 (see fakes.py)."""
    from fakes import use_tiny_network

    use_tiny_network(monkeypatch)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Every test on one torch thread: the suite's images are 32-96 px, where a second
    thread only adds hand-offs, and on a shared CPU two threads made a test 10-15x
    slower than one (tests/unit/test_batching.py: 17 s against 1.1 s on 2 cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
