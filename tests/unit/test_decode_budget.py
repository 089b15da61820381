"""Decoding an input is part of the memory plan: a file whose decoded pixels would
not fit the budget is refused from its header, before a pixel is decoded."""

from pathlib import Path

import pytest
from PIL import Image

from fakes import bomb_png
from nst import Config, NstError
from nst.core.memory import GIB, PROCESS_BYTES, decode_bytes
from nst.files.images import probe_image
from nst.jobs.request import precheck


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any picture is decoded."""
    def refuse(self: Image.Image) -> None:
        raise AssertionError(f"decoded a {self.size} picture")

    monkeypatch.setattr(Image.Image, "load", refuse)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", refuse)


def test_the_decode_estimate_counts_pillows_pixels_and_nsts_copy() -> None:
    pixels = 60000 * 60000
    # RGB: Pillow's 4 bytes a pixel, and the RGB copy load_image converts it to.
    assert decode_bytes(60000, 60000, 4, False) == PROCESS_BYTES + 8 * pixels
    assert decode_bytes(60000, 60000, 1, False) == PROCESS_BYTES + 5 * pixels  # grey
    assert decode_bytes(60000, 60000, 4, True) == PROCESS_BYTES + 12 * pixels  # turned upright: a copy


def test_a_bomb_is_refused_from_its_header_in_one_line(tmp_path: Path, no_decoding: None) -> None:
    bomb = bomb_png(tmp_path / "bomb.png", 20000, 20000)
    assert probe_image(bomb, 10**9) == (20000, 20000)  # the pixel limit alone lets it through
    with pytest.raises(NstError) as refused:
        probe_image(bomb, 10**9, memory_budget=1 * GIB)
    message = str(refused.value)
    assert message == (f"{bomb}: 20000x20000 is 400,000,000 pixels; decoding it needs 3.4 GiB, "
                       "over the memory budget of 1.0 GiB (--max-memory): use a smaller image")
    grey = bomb_png(tmp_path / "grey.png", 20000, 20000, color_type=0)
    with pytest.raises(NstError, match=r"grey.png: 20000x20000 .* needs 2.3 GiB"):
        probe_image(grey, 10**9, memory_budget=1 * GIB)
    assert probe_image(grey, 10**9, memory_budget=3 * GIB) == (20000, 20000)  # it fits


def test_the_request_checks_every_input_against_max_memory(tmp_path: Path, small_image: Path,
                                                          no_decoding: None) -> None:
    bomb = bomb_png(tmp_path / "bomb.png", 20000, 20000)
    config = Config(max_pixels=10**9, max_memory=2 * GIB, size=32)
    precheck(config, small_image, [small_image])
    for content, styles in ((bomb, [small_image]), (small_image, [small_image, bomb])):
        with pytest.raises(NstError, match=r"bomb.png: 20000x20000 .*over the memory budget of 2.0 GiB"):
            precheck(config, content, styles)
    with pytest.raises(NstError, match="bomb.png"):
        precheck(config.replace(init=str(bomb)), small_image, [small_image])


def test_without_max_memory_the_budget_is_the_rams_share(tmp_path: Path, small_image: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         no_decoding: None) -> None:
    monkeypatch.setattr("nst.core.memory.physical_memory", lambda: 4 * GIB)  # a 4 GiB machine
    bomb = bomb_png(tmp_path / "bomb.png", 60000, 60000)
    with pytest.raises(NstError, match=r"3,600,000,000 pixels; decoding it needs 27.2 GiB, over the "
                                       r"memory budget of 3.0 GiB"):
        precheck(Config(max_pixels=4 * 10**9, size=32), bomb, [small_image])


def test_a_budget_below_the_process_share_is_left_to_the_run_plan(small_image: Path) -> None:
    """Nothing fits such a budget: the plan's refusal says why (not 'a smaller image')."""
    assert probe_image(small_image, memory_budget=PROCESS_BYTES - 1) == (48, 32)
