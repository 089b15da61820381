"""nst transfer / batch --method fast end to end with the real VGG19 (to relu3_1)
and a tiny untrained decoder file: a PNG with its record, the dry-run plan, and
refusals that exit 2 in one line and write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from fastkit import tiny_decoder
from nst.cli import app as cli
from nst.files.images import read_metadata

QUIET = ["--size", "48", "--quiet", "--device", "cpu", "--precision", "fp32"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


@pytest.fixture
def decoder(tmp_path: Path) -> Path:
    return tiny_decoder(tmp_path / "tiny.safetensors")


def test_transfer_fast_writes_a_png_with_its_record(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    content_path: Path, style_path: Path,
                                                    decoder: Path) -> None:
    out = tmp_path / "out.png"
    code, _, err = run_cli(capsys, "transfer", content_path, style_path, "-o", out, "--method", "fast",
                           "--decoder", decoder, "--strength", "0.7", *QUIET)
    assert code == 0, err
    with Image.open(out) as image:
        width, height = image.size
    with Image.open(content_path) as content:
        assert max(width, height) == 48 and abs(width / height - content.width / content.height) < 0.05
    record = read_metadata(out)
    assert record is not None
    assert record["config"]["method"] == "fast" and record["config"]["strength"] == 0.7
    assert record["steps"] == 0 and record["config"]["decoder"] == str(decoder)


def test_batch_fast_styles_a_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path, content_path: Path,
                                    style_path: Path, decoder: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.open(content_path).convert("RGB").resize((40, 30)).save(folder / name)
    code, _, err = run_cli(capsys, "batch", folder, style_path, "-o", tmp_path / "out", "--method", "fast",
                           "--decoder", decoder, *QUIET)
    assert code == 0, err
    for name in ("a.png", "b.png"):
        record = read_metadata(tmp_path / "out" / name)
        assert record is not None and record["config"]["method"] == "fast"


def test_dry_run_prints_the_fast_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path, content_path: Path,
                                      style_path: Path, decoder: Path) -> None:
    out = tmp_path / "out.png"
    code, printed, err = run_cli(capsys, "transfer", content_path, style_path, "-o", out, "--method", "fast",
                                 "--decoder", decoder, "--dry-run", *QUIET)
    assert code == 0, err
    assert "--method fast" in printed and "one pass" in printed and "estimated peak" in printed
    assert not out.exists()


@pytest.mark.parametrize("extra", [["--steps", "5"], ["--optimizer", "adam"], ["--seed", "1"],
                                   ["--decoder", "missing.safetensors"], ["--decoder", "CORRUPT"],
                                   ["--max-memory", "500M", "--size", "20000"]])
def test_refusals_exit_2_in_one_line_and_write_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       content_path: Path, style_path: Path, decoder: Path,
                                                       extra: list[str]) -> None:
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\xff" * 64)
    extra = [str(corrupt) if value == "CORRUPT" else value for value in extra]
    out = tmp_path / "out.png"
    decoder_option = [] if "--decoder" in extra else ["--decoder", decoder]
    code, _, err = run_cli(capsys, "transfer", content_path, style_path, "-o", out, "--method", "fast",
                           *decoder_option, *QUIET, *extra)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_a_corrupt_decoder_behind_a_valid_header_is_one_line(capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Path, content_path: Path,
                                                             style_path: Path, decoder: Path) -> None:
    """A header that reads well over tensors cut short: the load (not prepare) refuses it."""
    data = decoder.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) - 100])
    out = tmp_path / "out.png"
    code, _, err = run_cli(capsys, "transfer", content_path, style_path, "-o", out, "--method", "fast",
                           "--decoder", cut, *QUIET)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and str(cut) in err
    assert not out.exists()


def test_init_fast_starts_a_gatys_transfer_from_the_fast_result(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path, content_path: Path,
                                                                style_path: Path, decoder: Path) -> None:
    out = tmp_path / "out.png"
    code, _, err = run_cli(capsys, "transfer", content_path, style_path, "-o", out, "--init", "fast",
                           "--decoder", decoder, "--steps", "2", "--scales", "1", *QUIET)
    assert code == 0, err
    record = read_metadata(out)
    assert record is not None
    assert (record["config"]["init"], record["config"]["method"], record["steps"]) == ("fast", "gatys", 2)
