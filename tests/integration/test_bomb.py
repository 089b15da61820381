"""A decompression bomb on the command line: refused from its header in one line
(exit 2), before any pixel is decoded, naming the file, its pixels, the bytes that
decoding needs and the budget."""

import time
from pathlib import Path

import pytest

from fakes import bomb_png
from nst.cli import app as cli
from nst.core.memory import GIB


def _transfer(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, float]:
    started = time.perf_counter()
    code = cli.main(["transfer", *map(str, argv), "--device", "cpu", "-q"])
    return code, capsys.readouterr().err.strip(), time.perf_counter() - started


def test_a_60000_px_bomb_is_refused_before_decoding(tmp_path: Path, style_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """As found: --max-pixels 4e9 let it through, it decoded for 15 s to 3.2 GB and
    then advised a lower --size. The default budget is the RAM's share: on a 4 GiB
    machine 3 GiB, far below the 27 GiB its decoding needs."""
    monkeypatch.setattr("nst.core.memory.physical_memory", lambda: 4 * GIB)
    bomb = bomb_png(tmp_path / "bomb.png", 60000, 60000)
    output = tmp_path / "out.png"
    code, err, seconds = _transfer(capsys, bomb, style_path, "-o", output, "--max-pixels", "4000000000")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{bomb}: 60000x60000 is 3,600,000,000 pixels; decoding it needs 27.2 GiB" in err
    assert "over the memory budget of 3.0 GiB (--max-memory)" in err and "--size" not in err
    assert seconds < 10 and not output.exists()


def test_a_style_over_max_memory_is_refused_before_decoding(tmp_path: Path, content_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    bomb = bomb_png(tmp_path / "wide.png", 40000, 10000)
    code, err, seconds = _transfer(capsys, content_path, bomb, "-o", tmp_path / "out.png",
                                   "--max-pixels", "1000000000", "--max-memory", "1G", "--size", "32")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{bomb}: 40000x10000 is 400,000,000 pixels; decoding it needs 3.4 GiB, over the memory " \
           "budget of 1.0 GiB (--max-memory)" in err
    assert seconds < 10 and list(tmp_path.iterdir()) == [bomb]
